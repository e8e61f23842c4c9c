"""Energy measurement: CPU (rapl, perf, estimate) and GPU (nvml, nvidia_smi) backends.

What a measurement yields for a record is `model.energy_fields.EnergyFields`: a value that was not
measured is None with a reason beside it, never 0, and every value says the method that gave it.
"""
