"""CPU energy: RAPL through a fake powercap tree, perf's real output format, the estimate."""

from __future__ import annotations

import csv
import json
import os
import pwd
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from energy_profiler.energy import cpu_tdp, perf, rapl
from energy_profiler.energy.base import Availability, Window
from energy_profiler.energy.estimate import EstimateMonitor, Tdp, find_tdp
from energy_profiler.energy.samples import SampleSink, null_sink
from test.conftest import measure
from test.fake_powercap import FakePowercap, world_readable_root

FIXTURES = Path(__file__).parent / "fixtures"


def sample_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


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
    sink = SampleSink(tmp_path / "energy" / "cpu_samples.csv")
    with two_socket_tree(tmp_path / "powercap"):
        measurement = measure(rapl.RaplMonitor(tmp_path / "powercap", interval_s=0.05, sink=sink), 1.0)
    sink.close()
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
    # Every reading went to the trial's file as it was taken, none is kept in the measurement.
    rows = sample_rows(tmp_path / "energy" / "cpu_samples.csv")
    assert {row["source"] for row in rows} >= {"package-0", "dram-1", "psys"}
    assert len(rows) == sink.rows == details["readings"] * 6 and rows[0]["unit"] == "uJ"


def test_a_counter_that_wraps_mid_trial_is_corrected(tmp_path: Path) -> None:
    fake = FakePowercap(tmp_path)
    # A 10 J counter range starting 2 J below its wrap, at 20 W: it wraps about twice in 1 s.
    fake.zone("intel-rapl:0", "package-0", watts=20.0, start_uj=8_000_000, range_uj=10_000_000)
    with fake:
        measurement = measure(rapl.RaplMonitor(tmp_path, interval_s=0.05, sink=null_sink()), 1.0)
    assert measurement.details["zones"]["package-0"]["wraps"] >= 2
    assert measurement.energy_j == pytest.approx(20, rel=0.05)


def test_an_interval_too_long_for_the_counter_range_is_refused(tmp_path: Path) -> None:
    fake = FakePowercap(tmp_path).zone("intel-rapl:0", "package-0", 10.0, range_uj=10_000_000_000)  # 10 kJ
    with fake:
        assert rapl.probe(tmp_path, interval_s=1.0).available
        availability = rapl.probe(tmp_path, interval_s=10.0)  # it wraps every 20 s at 500 W
    assert not availability.available
    assert "can wrap every 20 s at 500 W" in availability.reason and availability.fix == "use interval_s <= 5"


def test_a_counter_without_a_range_that_goes_backwards_is_a_reset_not_a_negative(tmp_path: Path) -> None:
    fake = FakePowercap(tmp_path).zone("intel-rapl:0", "package-0", watts=20.0, start_uj=50_000_000, range_uj=None)
    with fake:
        monitor = rapl.RaplMonitor(tmp_path, interval_s=0.05, sink=null_sink())
        monitor.start()
        time.sleep(0.5)
        fake.reset("intel-rapl:0")  # 50 J + 10 J back to 0: unwrapped with no range, it would be hugely negative
        time.sleep(0.5)
        monitor.stop()
        measurement = monitor.result(Window(duration_s=1.0))
        monitor.close()
    zone = measurement.details["zones"]["package-0"]
    assert (zone["resets"], zone["wraps"], zone["max_energy_range_uj"]) == (1, 0, 0)
    # At most one 50 ms interval (1 J at 20 W) is lost at the reset; the reason says so.
    assert 18.5 < (measurement.energy_j or 0) <= 20.5
    assert measurement.reason is not None and "taken as a reset" in measurement.reason


def test_counters_that_do_not_advance_are_not_available(tmp_path: Path) -> None:
    FakePowercap(tmp_path).zone("intel-rapl:0", "package-0", watts=0.0)  # as some hypervisors show RAPL
    availability = rapl.probe(tmp_path, 1.0)
    assert not availability.available
    assert availability.reason == "The RAPL counter of package-0 does not advance (no change in 0.2 s)."
    assert availability.fix is not None and "estimate" in availability.fix
    assert availability.brief == "RAPL counters do not advance"


def as_nobody(function: Callable[[], Any]) -> Any:
    """`function()` run by a user who is not root: in a forked child that drops to `nobody` if we are root.

    Its JSON-able result comes back through a pipe.
    """
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # the child: no root, then the real code
        try:
            if os.geteuid() == 0:
                nobody = pwd.getpwnam("nobody")
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
            os.write(write_end, json.dumps(function()).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as answer:
        text = answer.read()
    os.waitpid(child, 0)
    return json.loads(text)


def test_a_root_only_counter_gives_the_reason_and_a_fix_that_keeps_the_side_channel_closed() -> None:
    root = world_readable_root()  # not under pytest's 0700 folder: nobody must enter it
    try:
        FakePowercap(root).zone("intel-rapl:0", "package-0", watts=10.0, root_only=True, limit_w=28.0)

        def probe() -> list[Any]:
            availability = rapl.probe(root, 1.0)
            return [availability.available, availability.reason, availability.fix,
                    rapl.package_power_limits_w(root)]

        available, reason, fix, limits = as_nobody(probe)
        assert not available
        assert reason.endswith("energy_uj is readable by root only (Linux 5.10+, since CVE-2020-8694).")
        assert "sudo" in fix and "udev" in fix and "RAPL without sudo" in fix
        assert "not chmod o+r" in fix  # the fix warns against it rather than recommending it
        assert limits == [28.0]  # the limit stays readable: the estimate's TDP source
    finally:
        shutil.rmtree(root)


def test_no_powercap_tree_is_reported(tmp_path: Path) -> None:
    availability = rapl.probe(tmp_path / "absent", 1.0)
    assert not availability.available
    assert availability.reason == f"There is no powercap interface at {tmp_path / 'absent'}."


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


def power_events_folder(folder: Path, *names: str) -> Path:
    """A sysfs power/events folder offering `names` (with their .scale and .unit files, as the kernel's)."""
    folder.mkdir()
    for name in names:
        (folder / name).write_text("event=0x02\n")
        (folder / f"{name}.scale").write_text("2.3283064365386962890625e-10\n")
        (folder / f"{name}.unit").write_text("Joules\n")
    return folder


@pytest.fixture
def power_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """energy-pkg and energy-ram, offered to this tool and to the fake perf alike."""
    events = power_events_folder(tmp_path / "events", "energy-pkg", "energy-ram")
    monkeypatch.setenv(perf.PERF_EVENTS_ENV, str(events))
    return events


FAKE_PERF = str(FIXTURES / "fake_perf.py")


def test_perf_counts_exactly_the_window_however_slowly_it_starts(power_events: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # A perf that takes 0.3 s to start and counts 20 W from then on, whether or not anyone waits.
    monkeypatch.setenv("FAKE_PERF_STARTUP_S", "0.3")
    monkeypatch.setenv("FAKE_PERF_W", "energy-pkg=20,energy-ram=0")
    monitor = perf.PerfMonitor(FAKE_PERF, power_events)
    assert monitor.command(3, 4, 5)[:9] == [FAKE_PERF, "stat", "-a", "-x,", "--log-fd", "5", "-D", "-1",
                                            "--control"]
    try:
        monitor.start()
        opened = time.monotonic()
        time.sleep(0.3)
        monitor.stop()
        held_s = time.monotonic() - opened
        measurement = monitor.result(Window(duration_s=held_s))
    finally:
        monitor.close()
    window_s = measurement.window_s
    # Within 50 ms of the time it was held (one that counted perf's start-up would be 300 ms off): the
    # fake perf, like a real one, acts on `enable` when the scheduler lets it, tens of ms late on a
    # machine as loaded as the parallel suite leaves it.
    assert window_s is not None and abs(window_s - held_s) < 0.05
    assert measurement.fields["cpu_energy_pkg_j"] == pytest.approx(20 * window_s, abs=20 * 0.05)
    assert measurement.details["raw_output"].count("Joules") == 2
    assert "Events enabled" in measurement.details["stderr"]


def test_perf_on_a_platform_with_only_psys_is_labelled_platform(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    events = power_events_folder(tmp_path / "events", "energy-psys")
    monkeypatch.setenv(perf.PERF_EVENTS_ENV, str(events))
    monkeypatch.setenv("FAKE_PERF_W", "energy-psys=50")
    assert perf.probe(FAKE_PERF, events, euid=0) == Availability(
        True, "events: energy-psys (platform scope: the whole machine, recorded as perf_psys)")
    measurement = measure(perf.PerfMonitor(FAKE_PERF, events), 0.3)
    assert (measurement.method, measurement.fields["cpu_energy_scope"]) == ("perf_psys", "platform")
    assert measurement.energy_j == pytest.approx(50 * (measurement.window_s or 0), abs=50 * 0.05)  # within 50 ms
    assert measurement.fields["cpu_energy_pkg_j"] is None


def test_perf_whose_counter_reads_zero_is_not_available(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events = power_events_folder(tmp_path / "events", "energy-psys")  # this VM: psys only, always 0.00 J
    monkeypatch.setenv(perf.PERF_EVENTS_ENV, str(events))
    monkeypatch.setenv("FAKE_PERF_W", "energy-psys=0")
    availability = perf.probe(FAKE_PERF, events, euid=0)
    assert not availability.available
    assert availability.reason == "The energy-psys counter does not advance (perf read 0.00 J over 0.1 s)."
    assert availability.fix is not None and "estimate" in availability.fix


def test_perf_probe_names_what_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cores_only = power_events_folder(tmp_path / "events", "energy-cores")
    monkeypatch.setenv(perf.PERF_EVENTS_ENV, str(cores_only))
    assert perf.probe(FAKE_PERF, cores_only, euid=0).reason == (
        "The kernel offers no energy-pkg or energy-psys power event (it offers energy-cores).")
    assert perf.probe(FAKE_PERF, tmp_path / "absent", euid=0).reason == (
        f"The kernel offers no energy-pkg or energy-psys power event ({tmp_path / 'absent'} is missing, empty or "
        "unreadable).")
    assert perf.probe(str(tmp_path / "no-perf"), cores_only).reason == f"'{tmp_path / 'no-perf'}' was not found."


def test_perf_probe_explains_paranoid_to_a_user_who_is_not_root(power_events: Path, tmp_path: Path) -> None:
    paranoid = tmp_path / "paranoid"
    paranoid.write_text("2\n")
    availability = perf.probe(FAKE_PERF, power_events, paranoid, euid=1000)
    assert availability.reason == "kernel.perf_event_paranoid is 2: system-wide events need <= 0 or root."
    assert availability.fix is not None and "sysctl kernel.perf_event_paranoid=0" in availability.fix
    assert perf.probe(FAKE_PERF, power_events, paranoid, euid=0).available  # root is not bound by it
    paranoid.write_text("0\n")
    assert perf.probe(FAKE_PERF, power_events, paranoid, euid=1000).available


def test_perf_without_dram_support_reports_packages_only(power_events: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_PERF_UNSUPPORTED", "energy-ram")
    measurement = measure(perf.PerfMonitor(FAKE_PERF, power_events), 0.3)
    assert measurement.fields["cpu_energy_dram_j"] is None
    assert measurement.energy_j == measurement.fields["cpu_energy_pkg_j"] == pytest.approx(
        40 * (measurement.window_s or 0), abs=40 * 0.05)  # the window, within 50 ms (the test above says why)
    assert measurement.reason == "There is no energy-ram count: cpu_energy_j is the packages only."


def test_a_failing_perf_gives_a_sentence_and_keeps_its_output(power_events: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monitor = perf.PerfMonitor(FAKE_PERF, power_events)
    # The kernel that perf itself reads offers no power PMU (the driver was unloaded): perf exits 129.
    monkeypatch.setenv(perf.PERF_EVENTS_ENV, str(tmp_path / "gone"))
    measurement = measure(monitor, 0.1)
    assert (measurement.method, measurement.energy_j) == ("none", None)
    assert measurement.reason == ("perf exited instead of acknowledging 'enable' (exit code 129): event syntax "
                                  "error: 'power/energy-pkg/'.")
    assert "Cannot find PMU" in measurement.details["stderr"]


def test_perf_leaves_no_file_descriptor_or_process_behind(power_events: Path, tmp_path: Path) -> None:
    descriptors_before = sorted(path.name for path in Path("/proc/self/fd").iterdir())
    temporary_before = set(Path(tempfile.gettempdir()).glob("mutation-perf-*"))
    for executable in (FAKE_PERF, str(tmp_path / "no-such-perf")):
        for _ in range(3):
            monitor = perf.PerfMonitor(executable, power_events)
            measure(monitor, 0.05)
            assert monitor._process is None or monitor._process.returncode is not None
    assert sorted(path.name for path in Path("/proc/self/fd").iterdir()) == descriptors_before
    assert set(Path(tempfile.gettempdir()).glob("mutation-perf-*")) == temporary_before


def test_estimate_is_cpu_time_times_the_per_core_tdp_and_names_its_source() -> None:
    monitor = EstimateMonitor(Tdp(64, "the package power limit"), logical_cores=16)
    measurement = monitor.result(Window(duration_s=10, cpu_time_s=3.0))
    assert measurement.method == "estimate" and measurement.energy_j == pytest.approx(12.0)
    assert measurement.fields["cpu_energy_scope"] == "process_tree"
    assert measurement.reason == ("Estimate, not a measurement: CPU time x TDP per core (TDP 64 W from the "
                                  "package power limit).")
    assert monitor.result(Window(duration_s=1)).energy_j is None


def cpuinfo(tmp_path: Path, model: str, sockets: int = 1) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text("".join(f"processor\t: {n}\nmodel name\t: {model}\nphysical id\t: {n % sockets}\n\n"
                            for n in range(4 * sockets)))
    return path


def test_the_tdp_comes_from_settings_then_the_power_limit_then_the_table(tmp_path: Path) -> None:
    info = cpuinfo(tmp_path, "Intel(R) Xeon(R) Gold 6248R CPU @ 3.00GHz", sockets=2)
    powercap = tmp_path / "powercap"
    FakePowercap(powercap).zone("intel-rapl:0", "package-0", limit_w=205).zone(
        "intel-rapl:1", "package-1", limit_w=205).zone("intel-rapl:0:0", "dram", limit_w=30)
    assert find_tdp(100, powercap, info) == Tdp(100, "energy.cpu_tdp_w")
    assert find_tdp(None, powercap, info) == Tdp(410, "the power limits of 2 packages")  # DRAM's is not a TDP
    # 6248R is 205 W, not the 150 W of the 6248 that its name starts with.
    assert find_tdp(None, tmp_path / "absent", info) == Tdp(
        410, "the datasheet of Intel(R) Xeon(R) Gold 6248R CPU @ 3.00GHz, x 2 sockets")
    unknown = find_tdp(None, tmp_path / "absent", cpuinfo(tmp_path, "QEMU Virtual CPU version 2.5+"))
    assert unknown == ("No TDP is known for 'QEMU Virtual CPU version 2.5+': there is no readable package power "
                       "limit and the model is not in the table.")


def test_the_table_matches_whole_model_numbers_only() -> None:
    assert cpu_tdp.lookup("Intel(R) Core(TM) i7-8550U CPU @ 1.80GHz") == 15
    assert cpu_tdp.lookup("AMD EPYC 7763 64-Core Processor") == 280
    assert cpu_tdp.lookup("AMD EPYC 77630 64-Core Processor") is None
    assert cpu_tdp.lookup("Intel(R) Xeon(R) Platinum 8480+") == 350
    assert cpu_tdp.lookup("Intel(R) Xeon(R) Platinum 8480") is None
