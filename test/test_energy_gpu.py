"""GPU energy: NVML through a fake pynvml module, nvidia-smi through a fake executable."""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from types import ModuleType

import pytest

from energy_profiler.energy import nvidia_smi, nvml
from energy_profiler.energy.base import Measurement, Monitor, Window
from energy_profiler.energy.selection import EnergySettings, gpus_for

FAKE_SMI = str(Path(__file__).parent / "fixtures" / "fake_nvidia_smi.py")


def fake_pynvml() -> ModuleType:
    return importlib.import_module("test.fixtures.fake_pynvml")


def measure(monitor: Monitor, seconds: float) -> Measurement:
    monitor.start()
    time.sleep(seconds)
    monitor.stop()
    return monitor.result(Window(duration_s=seconds))


def test_nvml_uses_the_energy_counter_and_integrates_power_where_it_is_missing() -> None:
    measurement = measure(nvml.NvmlMonitor(fake_pynvml, interval_s=0.05, gpus=None), 1.0)
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
    quantities = {(s.source, s.quantity) for s in measurement.samples}
    assert {("gpu0", "power"), ("gpu0", "power_instant"), ("gpu1", "sm_clock")} <= quantities


def test_nvml_counter_and_integral_agree_on_one_counter_gpu() -> None:
    measurement = measure(nvml.NvmlMonitor(fake_pynvml, interval_s=0.05, gpus=["0"]), 1.0)
    assert measurement.method == "nvml_counter"
    assert [gpu["index"] for gpu in measurement.details["per_gpu"]] == ["0"]
    crosscheck = measurement.fields["gpu_energy_crosscheck_pct"]
    assert isinstance(crosscheck, float) and abs(crosscheck) < 2  # integral of the samples vs the counter


def test_nvml_selects_gpus_by_uuid() -> None:
    uuid = "GPU-55555555-6666-7777-8888-999999999999"
    measurement = measure(nvml.NvmlMonitor(fake_pynvml, interval_s=0.05, gpus=[uuid]), 0.3)
    assert [(g["index"], g["uuid"]) for g in measurement.details["per_gpu"]] == [("1", uuid)]


def test_nvml_missing_library_is_an_empty_value_with_a_reason() -> None:
    def missing() -> ModuleType:
        module = fake_pynvml()

        class Broken(ModuleType):
            NVMLError = module.NVMLError

            def nvmlInit(self) -> None:
                raise module.NVMLError(module.NVML_ERROR_LIBRARY_NOT_FOUND)

        return Broken("pynvml")

    assert nvml.probe(missing).reason == "NVML did not start: NVML Shared Library Not Found"
    measurement = measure(nvml.NvmlMonitor(missing, interval_s=0.05, gpus=None), 0.1)
    assert (measurement.method, measurement.energy_j) == ("none", None)
    assert measurement.reason == "NVML did not start: NVML Shared Library Not Found"


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
    monitor = nvidia_smi.NvidiaSmiMonitor(FAKE_SMI, interval_s=0.05, gpus=None)
    assert monitor.executable == FAKE_SMI
    measurement = measure(monitor, 1.5)
    assert measurement.method == "nvidia_smi"
    gpu0, gpu1 = measurement.details["per_gpu"]
    # Energy over the window: 150 W and 60 W for 1.5 s (edges hold the nearest reading).
    assert gpu0["energy_j"] == pytest.approx(225, rel=0.03)
    assert gpu1["energy_j"] == pytest.approx(90, rel=0.03)
    # Coverage is what the readings span of the window: less the fake's own start-up (longer under load).
    assert 0.6 < gpu0["coverage"] <= 1 and gpu0["interval_achieved_s"] == pytest.approx(0.05, rel=0.4)
    assert measurement.fields["gpu_power_avg_w"] == pytest.approx(210)
    assert measurement.details["command"][-2:] == ["-lms", "50"]


def test_nvidia_smi_without_power_readings_is_not_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_SMI_POWER_W", "[N/A],[N/A]")
    measurement = measure(nvidia_smi.NvidiaSmiMonitor(FAKE_SMI, interval_s=0.05, gpus=None), 0.4)
    assert (measurement.method, measurement.energy_j) == ("none", None)
    assert measurement.reason == "nvidia-smi gave no power.draw for GPU 0 ([N/A])"


def test_nvidia_smi_selected_gpus_and_facts() -> None:
    measurement = measure(nvidia_smi.NvidiaSmiMonitor(FAKE_SMI, interval_s=0.05, gpus=["1"]), 0.4)
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
    measurement = measure(nvidia_smi.NvidiaSmiMonitor(str(broken), interval_s=0.05, gpus=None), 0.3)
    assert (measurement.method, measurement.energy_j) == ("none", None)
    assert measurement.reason == ("nvidia-smi failed: NVIDIA-SMI has failed because it couldn't communicate "
                                  "with the NVIDIA driver.")
