"""GPU energy: NVML through a fake pynvml module, nvidia-smi through a fake executable."""

from __future__ import annotations

import csv
import importlib
import threading
import time
from pathlib import Path
from types import ModuleType

import psutil
import pytest

from energy_profiler.config.energy_settings import EnergySettings
from energy_profiler.energy import nvidia_smi, nvml
from energy_profiler.energy.gpu_traces import GpuSeries
from energy_profiler.energy.integrate import WindowIntegral
from energy_profiler.energy.samples import SampleSink, null_sink
from energy_profiler.energy.selection import gpus_for
from test.conftest import fast_fake, measure

FAKE_SMI = fast_fake(Path(__file__).parent / "fixtures" / "fake_nvidia_smi.py")


def fake_pynvml() -> ModuleType:
    return importlib.import_module("test.fixtures.fake_pynvml")


def test_nvml_uses_the_energy_counter_and_integrates_power_where_it_is_missing(tmp_path: Path) -> None:
    sink = SampleSink(tmp_path / "gpu_samples.csv")
    measurement = measure(nvml.NvmlMonitor(fake_pynvml, interval_s=0.05, gpus=None, sink=sink), 1.0)
    sink.close()
    gpu0, gpu1 = measurement.details["per_gpu"]
    assert (gpu0["method"], gpu1["method"]) == ("nvml_counter", "nvml_power")
    assert measurement.method == "nvml_power"  # not every GPU had the counter
    assert gpu0["energy_j"] == gpu0["counter_j"] == pytest.approx(250, rel=0.05)
    assert gpu1["counter_j"] is None and gpu1["energy_j"] == pytest.approx(75, rel=0.05)
    assert measurement.energy_j == pytest.approx(gpu0["energy_j"] + gpu1["energy_j"])
    assert gpu0["name"] == "NVIDIA H100 80GB HBM3" and gpu0["uuid"].startswith("GPU-0000")
    # mW -> W, bytes -> MiB; power columns are the sum over GPUs, utilisation over all samples.
    fields = measurement.fields
    assert fields["gpu_power_avg_w"] == pytest.approx(325) and fields["gpu_power_max_w"] == pytest.approx(325)
    assert fields["gpu_mem_max_mib"] == pytest.approx(5500 + 1024)
    assert fields["gpu_util_max_pct"] == 97 and fields["gpu_temp_max_c"] == 64
    assert gpu0["samples"] >= 15 and gpu0["interval_achieved_s"] == pytest.approx(0.05, rel=0.5)
    with (tmp_path / "gpu_samples.csv").open() as file:
        quantities = {(row["source"], row["quantity"]) for row in csv.DictReader(file)}
    assert {("gpu0", "power"), ("gpu0", "power_instant"), ("gpu1", "sm_clock")} <= quantities


def test_nvml_counter_and_integral_are_crosschecked_with_their_sign(monkeypatch: pytest.MonkeyPatch) -> None:
    measurement = measure(nvml.NvmlMonitor(fake_pynvml, interval_s=0.05, gpus=["0"], sink=null_sink()), 1.0)
    assert measurement.method == "nvml_counter"
    assert [gpu["index"] for gpu in measurement.details["per_gpu"]] == ["0"]
    crosscheck = measurement.fields["gpu_energy_crosscheck_pct"]
    assert isinstance(crosscheck, float) and abs(crosscheck) < 2  # integral of the samples vs the counter
    # The power readings say 250 W, the counter 200 W: the integral is 25% above the counter.
    monkeypatch.setenv("FAKE_NVML_COUNTER_W", "200")
    measurement = measure(nvml.NvmlMonitor(fake_pynvml, interval_s=0.05, gpus=["0"], sink=null_sink()), 1.0)
    assert measurement.energy_j == pytest.approx(200 * 1.0, rel=0.05)  # the counter is what is recorded
    assert measurement.fields["gpu_energy_crosscheck_pct"] == pytest.approx(25, abs=3)


def test_nvml_selects_gpus_by_uuid() -> None:
    uuid = "GPU-55555555-6666-7777-8888-999999999999"
    measurement = measure(nvml.NvmlMonitor(fake_pynvml, interval_s=0.05, gpus=[uuid], sink=null_sink()), 0.3)
    assert [(g["index"], g["uuid"]) for g in measurement.details["per_gpu"]] == [("1", uuid)]


def test_nvml_missing_library_is_an_empty_value_with_a_reason() -> None:
    def missing() -> ModuleType:
        module = fake_pynvml()

        class Broken(ModuleType):
            NVMLError = module.NVMLError

            def nvmlInit(self) -> None:
                raise module.NVMLError(module.NVML_ERROR_LIBRARY_NOT_FOUND)

        return Broken("pynvml")

    assert nvml.probe(missing).reason == "NVML did not start: NVML Shared Library Not Found."
    measurement = measure(nvml.NvmlMonitor(missing, interval_s=0.05, gpus=None, sink=null_sink()), 0.1)
    assert (measurement.method, measurement.energy_j) == ("none", None)
    assert measurement.reason == "NVML did not start: NVML Shared Library Not Found."


def test_nvml_host_facts() -> None:
    facts = nvml.gpu_facts(fake_pynvml)
    assert facts["gpu_driver"] == "550.54.15"
    assert facts["gpus"][0] == {"index": 0, "name": "NVIDIA H100 80GB HBM3",
                                "uuid": "GPU-00000000-1111-2222-3333-444444444444", "power_limit_w": 700.0}


REAL_LINES = [
    "2026/11/24 10:30:45.123, 0, GPU-aaaaaaaa-0000-0000-0000-000000000000, 151.23, 97, 35, 40123, 67",
    "2026/11/24 10:30:45.124, 1, GPU-bbbbbbbb-1111-1111-1111-111111111111, [N/A], 0, [Not Supported], 3, 31",
]


def test_nvidia_smi_lines_parse_with_missing_fields() -> None:
    first, second = (nvidia_smi.parse_line(line) for line in REAL_LINES)
    assert first is not None and second is not None
    assert (first.index, first.power_w, first.util_pct) == ("0", 151.23, 97)
    assert (first.mem_used_mib, first.temp_c) == (40123, 67)
    assert second.power_w is None and second.mem_util_pct is None
    assert second.time_unix_s - first.time_unix_s == pytest.approx(0.001, abs=1e-6)
    assert nvidia_smi.parse_line("Failed to initialize NVML: Driver/library version mismatch") is None


def test_nvidia_smi_is_one_long_lived_process_integrated_per_gpu() -> None:
    monitor = nvidia_smi.NvidiaSmiMonitor(FAKE_SMI, interval_s=0.05, gpus=None, sink=null_sink())
    assert monitor.executable == FAKE_SMI
    measurement = measure(monitor, 1.5)
    assert measurement.method == "nvidia_smi"
    gpu0, gpu1 = measurement.details["per_gpu"]
    # Energy over the window: 150 W and 60 W for its length (edges hold the nearest reading). The
    # window is start() to stop() as the monitor saw them: 1.5 s of sleep, more on a loaded machine.
    window_s = measurement.window_s
    assert window_s is not None and 1.5 <= window_s < 1.7
    assert gpu0["energy_j"] == pytest.approx(150 * window_s, rel=0.03)
    assert gpu1["energy_j"] == pytest.approx(60 * window_s, rel=0.03)
    # Coverage is what the readings span of the window: less the fake's own start-up (longer under load).
    assert 0.6 < gpu0["coverage"] <= 1 and gpu0["interval_achieved_s"] == pytest.approx(0.05, rel=0.4)
    assert measurement.fields["gpu_power_avg_w"] == pytest.approx(210)
    assert measurement.details["command"][-2:] == ["-lms", "50"]


def test_nvidia_smi_without_power_readings_is_not_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_SMI_POWER_W", "[N/A],[N/A]")
    measurement = measure(nvidia_smi.NvidiaSmiMonitor(FAKE_SMI, interval_s=0.05, gpus=None, sink=null_sink()), 0.4)
    assert (measurement.method, measurement.energy_j) == ("none", None)
    assert measurement.reason == "nvidia-smi gave no power.draw for GPU 0 ([N/A])."


def test_nvidia_smi_selected_gpus_and_facts() -> None:
    measurement = measure(nvidia_smi.NvidiaSmiMonitor(FAKE_SMI, interval_s=0.05, gpus=["1"], sink=null_sink()), 0.4)
    assert [gpu["index"] for gpu in measurement.details["per_gpu"]] == ["1"]
    assert nvidia_smi.probe(FAKE_SMI).reason == "2 GPU(s): NVIDIA A100-SXM4-40GB, NVIDIA A100-SXM4-40GB"
    assert nvidia_smi.gpu_facts(FAKE_SMI)["gpus"][1]["power_limit_w"] == 400.0


def test_the_gpus_measured_follow_settings_then_cuda_visible_devices() -> None:
    assert gpus_for(EnergySettings(), {}) is None
    assert gpus_for(EnergySettings(), {"CUDA_VISIBLE_DEVICES": "1, GPU-abc"}) == ("1", "GPU-abc")
    assert gpus_for(EnergySettings(), {"CUDA_VISIBLE_DEVICES": ""}) == ()
    assert gpus_for(EnergySettings(gpus=("0",)), {"CUDA_VISIBLE_DEVICES": "1"}) == ("0",)


def test_a_failing_nvidia_smi_reports_its_own_message(tmp_path: Path) -> None:
    broken = tmp_path / "nvidia-smi"
    message = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
    broken.write_text(f'#!/bin/sh\necho "{message}" >&2\nexit 9\n')
    broken.chmod(0o755)
    measurement = measure(nvidia_smi.NvidiaSmiMonitor(str(broken), interval_s=0.05, gpus=None, sink=null_sink()), 0.3)
    assert (measurement.method, measurement.energy_j) == ("none", None)
    assert measurement.reason == ("nvidia-smi failed: NVIDIA-SMI has failed because it couldn't communicate "
                                  "with the NVIDIA driver.")


def test_nvidia_smi_lines_after_the_window_only_cut_its_edge(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_SMI_TERM_DELAY_S", "0.5")  # half a second more of 150 W lines after the window
    measurement = measure(nvidia_smi.NvidiaSmiMonitor(FAKE_SMI, interval_s=0.05, gpus=["0"], sink=null_sink()), 1.0)
    window_s = measurement.window_s
    assert window_s is not None and window_s == measurement.details["window_s"]  # one window, one length
    # Edges hold the nearest reading: 150 W over exactly the window, not the 0.5 s that came after.
    assert measurement.energy_j == pytest.approx(150 * window_s, rel=0.01)
    assert measurement.details["per_gpu"][0]["samples"] <= window_s / 0.05 + 2


def test_nvml_measures_exactly_its_window_with_one_length() -> None:
    monitor = nvml.NvmlMonitor(fake_pynvml, interval_s=0.05, gpus=["1"], sink=null_sink())  # power integral
    time.sleep(0.3)  # built well before it starts, as a trial builds it before backgrounds and warm-up
    measurement = measure(monitor, 0.5)
    window_s = measurement.window_s
    assert window_s is not None and window_s == measurement.details["window_s"]
    assert 0.5 <= window_s < 0.55
    assert measurement.energy_j == pytest.approx(75 * window_s, rel=0.01)
    # The first deadline is set at start(): no zero-length first interval, no 0 W point.
    gpu = measurement.details["per_gpu"][0]
    assert gpu["power_min_w"] == 75 and gpu["interval_achieved_s"] == pytest.approx(0.05, rel=0.2)


def open_descriptors() -> list[str]:
    return sorted(path.name for path in Path("/proc/self/fd").iterdir())


def test_monitors_started_and_failed_a_thousand_times_leave_nothing_behind(tmp_path: Path) -> None:
    """A long campaign whose backends fail every attempt must not run out of descriptors or threads.

    The descriptors and threads are compared exactly, so one leaked per start shows after any
    number of starts: the nvidia-smi starts, each a fork of this (large) process, run 100 times.
    """
    from energy_profiler.energy import rapl

    nvml_state = fake_pynvml()._state
    no_zones = tmp_path / "powercap"
    no_zones.mkdir()
    unstartable = tmp_path / "nvidia-smi"  # found and executable, but exec fails (ENOENT from the kernel)
    unstartable.write_text("#!/no/such/interpreter\n")
    unstartable.chmod(0o755)
    descriptors, threads = open_descriptors(), threading.active_count()
    for _ in range(1000):
        for monitor in (nvml.NvmlMonitor(fake_pynvml, interval_s=0.05, gpus=["7"], sink=null_sink()),
                        rapl.RaplMonitor(no_zones, interval_s=0.05, sink=null_sink())):
            measurement = measure(monitor, 0)
            assert measurement.method == "none" and measurement.reason
    for _ in range(100):
        for command in (tmp_path / "absent", unstartable):
            measurement = measure(nvidia_smi.NvidiaSmiMonitor(str(command), 0.05, None, sink=null_sink()), 0)
            assert measurement.method == "none" and measurement.reason
    for _ in range(20):  # and those that work, stopped at once
        measure(nvml.NvmlMonitor(fake_pynvml, interval_s=0.05, gpus=None, sink=null_sink()), 0)
        measure(nvidia_smi.NvidiaSmiMonitor(FAKE_SMI, 0.05, None, sink=null_sink()), 0)
    assert nvml_state["initialised"] == 0  # every nvmlInit had its nvmlShutdown
    assert open_descriptors() == descriptors
    assert threading.active_count() == threads


def test_six_hours_of_samples_at_10_hz_keep_memory_bounded() -> None:
    """Nothing per sample is kept: 216,000 samples grow the process by 2 MiB at most, under 10 bytes a
    sample (holding samples cost 79 MiB per GPU-hour at 0.1 s, 2.3 kB a sample). Six hours, not a day:
    the bound per sample is what is tested, and a day of samples took 7 s of CPU."""
    series = GpuSeries(index="0", integral=WindowIntegral(0.0))
    sink = null_sink()
    process = psutil.Process()
    rss_before = process.memory_info().rss
    for n in range(216_000):  # 6 h at 0.1 s
        t = n * 0.1
        series.add(sink, t, t, t, power_w=200.0 + n % 7, util_pct=90, mem_used_mib=40_000, temp_c=60)
    assert process.memory_info().rss - rss_before < 2 * 2**20
    assert series.spacing.count == sink.rows / 4 == 216_000
    assert series.integral.energy_j(21_600.0) == pytest.approx(203 * 21_600, rel=0.001)
