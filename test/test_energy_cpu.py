"""CPU energy: RAPL through a fake powercap tree, perf's real output format, the estimate."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from energy_profiler.energy import perf, rapl
from energy_profiler.energy.base import Availability, Measurement, Monitor, Window
from energy_profiler.energy.estimate import EstimateMonitor
from test.fake_powercap import FakePowercap

FIXTURES = Path(__file__).parent / "fixtures"


def measure(monitor: Monitor, seconds: float) -> Measurement:
    monitor.start()
    time.sleep(seconds)
    monitor.stop()
    return monitor.result(Window(duration_s=seconds))


def two_socket_tree(root: Path, **watts: float) -> FakePowercap:
    fake = FakePowercap(root)
    fake.zone("intel-rapl:0", "package-0", watts.get("pkg0", 30.0))
    fake.zone("intel-rapl:0:0", "core", watts.get("core0", 20.0))
    fake.zone("intel-rapl:0:1", "dram", watts.get("dram0", 5.0))
    fake.zone("intel-rapl:1", "package-1", watts.get("pkg1", 25.0))
    fake.zone("intel-rapl:1:0", "dram", watts.get("dram1", 4.0))
    fake.zone("intel-rapl:2", "psys", watts.get("psys", 90.0))
    fake.zone("intel-rapl-mmio:0", "package-0", watts.get("pkg0", 30.0))
    return fake


def test_zones_are_found_with_roles_and_sockets_and_mmio_duplicates_dropped(tmp_path: Path) -> None:
    two_socket_tree(tmp_path)
    zones = rapl.discover_zones(tmp_path)
    assert [(z.zone_id, z.label, z.role, z.socket) for z in zones] == [
        ("intel-rapl:0", "package-0", "package", 0),
        ("intel-rapl:0:0", "core-0", "core", 0),
        ("intel-rapl:0:1", "dram-0", "dram", 0),
        ("intel-rapl:1", "package-1", "package", 1),
        ("intel-rapl:1:0", "dram-1", "dram", 1),
        ("intel-rapl:2", "psys", "psys", None),
    ]


def test_packages_and_dram_are_added_psys_and_core_only_recorded(tmp_path: Path) -> None:
    with two_socket_tree(tmp_path):
        measurement = measure(rapl.RaplMonitor(tmp_path, interval_s=0.05), 1.0)
    fields: dict[str, Any] = measurement.fields
    details = measurement.details
    assert measurement.method == "rapl" and fields["cpu_energy_scope"] == "system"
    # 55 W of packages and 9 W of DRAM for ~1 s; psys (90 W) and core (20 W) are not in the total.
    assert fields["cpu_energy_pkg_j"] == pytest.approx(55, rel=0.05)
    assert fields["cpu_energy_dram_j"] == pytest.approx(9, rel=0.05)
    assert measurement.energy_j == pytest.approx(fields["cpu_energy_pkg_j"] + fields["cpu_energy_dram_j"])
    assert details["psys_j"] == pytest.approx(90, rel=0.05)
    assert details["zones"]["core-0"]["energy_j"] == pytest.approx(20, rel=0.05)
    assert details["per_socket"]["1"]["package_j"] == pytest.approx(25, rel=0.05)
    assert details["readings"] >= 15  # sampled at 50 ms, not only start and end
    assert {sample.source for sample in measurement.samples} >= {"package-0", "dram-1", "psys"}


def test_a_counter_that_wraps_mid_trial_is_corrected(tmp_path: Path) -> None:
    fake = FakePowercap(tmp_path)
    # A 10 J counter range starting 2 J below its wrap, at 20 W: it wraps about twice in 1 s.
    fake.zone("intel-rapl:0", "package-0", watts=20.0, start_uj=8_000_000, range_uj=10_000_000)
    with fake:
        measurement = measure(rapl.RaplMonitor(tmp_path, interval_s=0.05), 1.0)
    assert measurement.details["zones"]["package-0"]["wraps"] >= 2
    assert measurement.energy_j == pytest.approx(20, rel=0.05)


def test_an_interval_too_long_for_the_counter_range_is_refused(tmp_path: Path) -> None:
    FakePowercap(tmp_path).zone("intel-rapl:0", "package-0", range_uj=10_000_000_000)  # 10 kJ: 20 s at 500 W
    assert rapl.probe(tmp_path, interval_s=1.0).available
    availability = rapl.probe(tmp_path, interval_s=10.0)
    assert not availability.available
    assert "can wrap every 20 s at 500 W" in availability.reason and availability.fix == "use interval_s <= 5"


def probe_as_unprivileged_user(root: Path) -> Availability:
    """rapl.probe run by a user who is not root: in a forked child that drops to `nobody` if we are root."""
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # the child: no root, then the real probe code
        try:
            if os.geteuid() == 0:
                nobody = pwd.getpwnam("nobody")
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
            availability = rapl.probe(root, 1.0)
            os.write(write_end, json.dumps([availability.available, availability.reason, availability.fix]).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as answer:
        available, reason, fix = json.loads(answer.read())
    os.waitpid(child, 0)
    return Availability(available, reason, fix)


def test_a_root_only_counter_gives_the_reason_and_the_fix() -> None:
    root = Path(tempfile.mkdtemp(prefix="powercap-"))  # not under pytest's 0700 folder: nobody must enter it
    try:
        root.chmod(0o755)
        FakePowercap(root).zone("intel-rapl:0", "package-0")
        (root / "intel-rapl:0" / "energy_uj").chmod(0o400)  # as the kernel does since 5.10
        availability = probe_as_unprivileged_user(root)
        assert not availability.available
        assert availability.reason.endswith("energy_uj is readable by root only (Linux 5.10+, since CVE-2020-8694)")
        assert availability.fix is not None and "sudo" in availability.fix and "chmod o+r" in availability.fix
    finally:
        shutil.rmtree(root)


def test_no_powercap_tree_is_reported(tmp_path: Path) -> None:
    availability = rapl.probe(tmp_path / "absent", 1.0)
    assert not availability.available and "no powercap interface" in availability.reason


RECORDED_PERF = """# started on Tue Nov 24 05:06:43 2026

123.45,Joules,power/energy-pkg/,10001234567,100.00,,
<not supported>,Joules,power/energy-ram/,0,100.00,,
<not counted>,Joules,power/energy-gpu/,0,0.00,,
7.50,Joules,power/energy-psys/,10001234567,100.00,,
"""


def test_perf_csv_is_parsed_with_unsupported_and_uncounted_events() -> None:
    totals, notes = perf.parse_perf_csv(RECORDED_PERF)
    assert totals == {"energy-pkg": 123.45, "energy-ram": None, "energy-gpu": None, "energy-psys": 7.5}
    assert notes == ["energy-ram: <not supported>", "energy-gpu: <not counted>"]


def test_perf_lines_per_socket_are_added_up() -> None:
    text = "10.0,Joules,power/energy-pkg/,1,100.00,,\n12.5,Joules,power/energy-pkg/,1,100.00,,\n"
    totals, _ = perf.parse_perf_csv(text)
    assert totals == {"energy-pkg": 22.5}


@pytest.fixture
def power_events(tmp_path: Path) -> Path:
    events = tmp_path / "events"
    events.mkdir()
    for name in ("energy-pkg", "energy-ram"):
        (events / name).write_text("event=0x02\n")
        (events / f"{name}.scale").write_text("2.3283064365386962890625e-10\n")
        (events / f"{name}.unit").write_text("Joules\n")
    return events


def test_perf_runs_for_the_window_and_stops_on_sigint(power_events: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_PERF_STARTUP_S", "0.3")  # a slow perf: start() must wait until it counts
    assert perf.energy_events(power_events) == ["energy-pkg", "energy-ram"]
    monitor = perf.PerfMonitor(str(FIXTURES / "fake_perf.py"), power_events)
    assert monitor.command()[-4:] == ["-e", "power/energy-pkg/", "-e", "power/energy-ram/"]
    measurement = measure(monitor, 1.0)
    assert measurement.method == "perf" and measurement.fields["cpu_energy_scope"] == "system"
    assert measurement.fields["cpu_energy_pkg_j"] == pytest.approx(40, rel=0.1)
    assert measurement.fields["cpu_energy_dram_j"] == pytest.approx(6, rel=0.1)
    assert measurement.details["raw_output"].startswith("# started on")


def test_perf_without_dram_support_reports_packages_only(power_events: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_PERF_MODE", "unsupported")
    measurement = measure(perf.PerfMonitor(str(FIXTURES / "fake_perf.py"), power_events), 0.3)
    assert measurement.fields["cpu_energy_dram_j"] is None
    assert measurement.energy_j == measurement.fields["cpu_energy_pkg_j"]
    assert measurement.reason == "no energy-ram event: cpu_energy_j is the packages only"


def test_a_failing_perf_gives_an_empty_value_and_its_message(power_events: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_PERF_MODE", "fail")
    measurement = measure(perf.PerfMonitor(str(FIXTURES / "fake_perf.py"), power_events), 0.3)
    assert (measurement.method, measurement.energy_j) == ("none", None)
    assert measurement.reason == "perf failed: event syntax error: 'power/energy-pkg/'"


def test_perf_probe_explains_paranoid_and_missing_pmu(power_events: Path, tmp_path: Path) -> None:
    fake_perf = str(FIXTURES / "fake_perf.py")
    assert "no power events" in perf.probe(fake_perf, tmp_path / "absent").reason
    assert "not found" in perf.probe(str(tmp_path / "no-perf"), power_events).reason
    paranoid = tmp_path / "paranoid"
    paranoid.write_text("2\n")
    availability = perf.probe(fake_perf, power_events, paranoid)
    if os.geteuid() == 0:
        assert availability.available  # root is not bound by perf_event_paranoid
    else:
        assert "perf_event_paranoid is 2" in availability.reason
        assert availability.fix is not None and "sysctl kernel.perf_event_paranoid=0" in availability.fix


def test_estimate_is_cpu_time_times_the_per_core_tdp() -> None:
    measurement = EstimateMonitor(cpu_tdp_w=64, logical_cores=16).result(Window(duration_s=10, cpu_time_s=3.0))
    assert measurement.method == "estimate" and measurement.energy_j == pytest.approx(12.0)
    assert measurement.fields["cpu_energy_scope"] == "process_tree"
    assert measurement.reason is not None and "not a measurement" in measurement.reason
    assert EstimateMonitor(cpu_tdp_w=64).result(Window(duration_s=1)).energy_j is None


def test_perf_leaves_no_file_or_descriptor_behind(power_events: Path, tmp_path: Path) -> None:
    descriptors_before = len(list(Path("/proc/self/fd").iterdir()))
    for executable in (str(FIXTURES / "fake_perf.py"), str(tmp_path / "no-such-perf")):
        monitor = perf.PerfMonitor(executable, power_events)
        measure(monitor, 0.1)
        assert not monitor._output.exists()
    assert len(list(Path("/proc/self/fd").iterdir())) == descriptors_before
