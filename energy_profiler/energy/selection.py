"""Choosing the energy backends for a campaign, and building a trial's monitors.

`auto` walks CPU rapl -> perf -> estimate and GPU nvml -> nvidia_smi, taking the first available and
keeping every other backend's reason. A backend named explicitly must be available, else the campaign
does not start. Every hardware root is injectable through `Hardware` (and environment variables).
`doctor` and the campaign call the same `choose`, so what doctor says is what a campaign does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from energy_profiler.config.energy_settings import EnergySettings
from energy_profiler.energy import cpu_tdp, estimate, nvidia_smi, nvml, rapl
from energy_profiler.energy import perf as perf_backend
from energy_profiler.energy.base import Availability, Kind, Monitor
from energy_profiler.energy.samples import SampleSink
from energy_profiler.errors import ToolExit
from energy_profiler.system.nvml_module import NvmlLoader, load_pynvml

CPU_CHAIN = ("rapl", "perf", "estimate")
GPU_CHAIN = ("nvml", "nvidia_smi")
NONE = "none"


@dataclass(frozen=True)
class Hardware:
    """Where each backend finds its hardware; tests point these at fakes."""

    powercap_root: Path = field(default_factory=rapl.powercap_root)
    perf: str = field(default_factory=perf_backend.perf_executable)
    perf_events: Path = field(default_factory=perf_backend.events_dir)
    perf_paranoid: Path = field(default_factory=perf_backend.paranoid_file)
    nvidia_smi: str = field(default_factory=nvidia_smi.nvidia_smi_executable)
    nvml_loader: NvmlLoader = load_pynvml
    cpuinfo: Path = field(default_factory=cpu_tdp.cpuinfo_path)


def probe(backend: str, settings: EnergySettings, hardware: Hardware) -> Availability:
    """Whether `backend` can measure on this machine with these settings."""
    if backend == "rapl":
        return rapl.probe(hardware.powercap_root, settings.interval_s)
    if backend == "perf":
        return perf_backend.probe(hardware.perf, hardware.perf_events, hardware.perf_paranoid)
    if backend == "estimate":
        return estimate.probe(estimate.find_tdp(settings.cpu_tdp_w, hardware.powercap_root, hardware.cpuinfo))
    if backend == "nvml":
        return nvml.probe(hardware.nvml_loader)
    if backend == "nvidia_smi":
        return nvidia_smi.probe(hardware.nvidia_smi)
    raise ValueError(f"unknown energy backend {backend!r}")


def _inline(reason: str) -> str:
    """A reason sentence without its full stop, for use inside a line."""
    return reason.rstrip(".")


@dataclass(frozen=True)
class Choice:
    """The backends a campaign uses, and what was found about every backend considered."""

    cpu: str
    gpu: str
    probed: Mapping[str, Availability]
    tdp: estimate.Tdp | None = None
    """The TDP the estimate uses, when the estimate is the CPU method."""

    def chosen(self, kind: Kind) -> str:
        return self.cpu if kind == "cpu" else self.gpu

    def passed_over(self, kind: Kind) -> list[str]:
        """The better backends that were not available, each with its reason."""
        chain = CPU_CHAIN if kind == "cpu" else GPU_CHAIN
        chosen = self.chosen(kind)
        better = chain[: chain.index(chosen)] if chosen in chain else chain
        return [f"{name}: {_inline(self.probed[name].reason)}" for name in better
                if name in self.probed and not self.probed[name].available]

    def describe(self) -> list[str]:
        """One line per device: the method, and why each better one was passed over."""
        lines = []
        for kind in ("cpu", "gpu"):
            chosen = self.chosen(kind)
            passed = self.passed_over(kind)
            suffix = f" (not used: {'; '.join(passed)})" if passed else ""
            how = f"{chosen} ({_inline(self.probed[chosen].reason)})" if chosen in self.probed else chosen
            lines.append(f"{kind} energy: {how}{suffix}")
        return lines

    def brief(self, kind: Kind) -> str:
        """Why `kind` is not measured, in a few words (`no RAPL, no perf power events, no TDP known`)."""
        chain = CPU_CHAIN if kind == "cpu" else GPU_CHAIN
        words = [self.probed[name].brief or _inline(self.probed[name].reason) for name in chain
                 if name in self.probed and not self.probed[name].available]
        return ", ".join(words) or f"energy.{kind} is 'none'"


class EnergySetupError(ToolExit):
    """An explicitly chosen backend is unavailable, or a required measurement would be missing (exit 2)."""

    def __init__(self, problems: Sequence[str], choice: Choice):
        self.problems = list(problems)
        self.choice = choice
        super().__init__(*problems)


def choose(settings: EnergySettings, hardware: Hardware) -> Choice:
    """Pick the CPU and GPU backends; raise EnergySetupError for an impossible request."""
    probed: dict[str, Availability] = {}
    problems: list[str] = []

    def pick(kind: str, requested: str, chain: tuple[str, ...]) -> str:
        if requested == NONE:
            return NONE
        candidates = chain if requested == "auto" else (requested,)
        for name in candidates:
            probed[name] = probe(name, settings, hardware)
            if probed[name].available:
                return name
        if requested != "auto":
            availability = probed[requested]
            fix = f"; fix: {availability.fix}" if availability.fix else ""
            problems.append(f"energy.{kind}: {requested} is not available: {_inline(availability.reason)}{fix}")
        return NONE

    cpu = pick("cpu", settings.cpu, CPU_CHAIN)
    gpu = pick("gpu", settings.gpu, GPU_CHAIN)
    tdp = None
    if cpu == "estimate":
        found = estimate.find_tdp(settings.cpu_tdp_w, hardware.powercap_root, hardware.cpuinfo)
        tdp = found if isinstance(found, estimate.Tdp) else None
    choice = Choice(cpu=cpu, gpu=gpu, probed=probed, tdp=tdp)
    for kind, chosen in (("cpu", cpu), ("gpu", gpu)):
        if kind in settings.require and chosen in (NONE, "estimate"):
            what = "only estimated" if chosen == "estimate" else "not measured"
            problems.append(f"energy.require: {kind} energy would be {what}; run `mutation.py doctor` for the fixes")
    if problems:
        raise EnergySetupError(problems, choice)
    return choice


def gpus_for(settings: EnergySettings, environment: Mapping[str, str]) -> tuple[str, ...] | None:
    """The GPUs to measure: the settings' list, else the workload's CUDA_VISIBLE_DEVICES, else all (None)."""
    if settings.gpus is not None:
        return settings.gpus
    visible = environment.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return None
    return tuple(part.strip() for part in visible.split(",") if part.strip())


def make_monitors(choice: Choice, settings: EnergySettings, hardware: Hardware,
                  environment: Mapping[str, str], sinks: Mapping[Kind, SampleSink], *,
                  perf_spare: perf_backend.PerfSpare | None = None) -> list[Monitor]:
    """Fresh monitors for one training window (a monitor measures one window only).

    With `perf_spare`, the perf monitor is the one started ahead of time (see PerfSpare).
    """
    monitors: list[Monitor] = []
    if choice.cpu == "rapl":
        monitors.append(rapl.RaplMonitor(hardware.powercap_root, settings.interval_s, sinks["cpu"]))
    elif choice.cpu == "perf":
        monitors.append(perf_spare.take() if perf_spare is not None
                        else perf_backend.PerfMonitor(hardware.perf, hardware.perf_events))
    elif choice.cpu == "estimate":
        assert choice.tdp is not None
        monitors.append(estimate.EstimateMonitor(choice.tdp))
    gpus = gpus_for(settings, environment)
    if gpus == ():
        return monitors  # CUDA_VISIBLE_DEVICES is empty: the training sees no GPU
    if choice.gpu == "nvml":
        monitors.append(nvml.NvmlMonitor(hardware.nvml_loader, settings.gpu_interval_s, gpus, sinks["gpu"]))
    elif choice.gpu == "nvidia_smi":
        monitors.append(nvidia_smi.NvidiaSmiMonitor(hardware.nvidia_smi, settings.gpu_interval_s, gpus, sinks["gpu"]))
    return monitors
