"""A real Slurm on this machine for the Slurm tests: munged, slurmctld and two slurmd "nodes".

Debian's slurm-wlm and munge (installed by `make test`'s set-up where apt can; ../shared/notes/
slurm.md has the measured facts this follows). No systemd: every daemon is started here with its
config, PID and log files under a temporary root, and stopped by the PID in its PID file (never by
name). The nodes n1 and n2 listen on their own loopback addresses and ports; one CPU each, so an
exclusive job has a node to itself. No accounting: job states come from squeue and `scontrol show
job` (MinJobAge keeps finished jobs known for 10 minutes). Each node has two fake GPUs through GRES:
character devices with NVIDIA's major number 195 (no driver behind them), which is all Slurm needs
to hand them out and set CUDA_VISIBLE_DEVICES.
"""

from __future__ import annotations

import csv
import os
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from test.conftest import PROJECT_ROOT

GPUS_PER_NODE = 2
DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "scontrol", "sinfo")
NODE_NAMES = ("n1", "n2")


def missing_programs() -> list[str]:
    return [name for name in DAEMONS if shutil.which(name) is None]


MISSING = missing_programs()
if MISSING and os.environ.get("CI") == "true":
    raise RuntimeError(f"CI must run the Slurm tests, but {', '.join(MISSING)} are not installed")
needs_slurm = pytest.mark.skipif(bool(MISSING), reason=f"Slurm is not installed here ({', '.join(MISSING)} missing)")
"""Every Slurm test's mark: skipped with the reason where Slurm is not installed (under CI, an error)."""


class SlurmCluster:
    """One cluster; `instance` picks its ports, node addresses and munge socket, so that test files
    on different pytest-xdist workers each run their own cluster at the same time."""

    def __init__(self, root: Path, instance: int = 0):
        self.root = root
        self.config = root / "slurm.conf"
        # Its own munge socket, which slurm.conf names (AuthInfo): every client and daemon of this cluster finds it.
        self.socket = root / "run" / "munge.socket"
        self.controller_port = 6817 + 100 * instance
        self.nodes = [(name, f"127.0.{instance + 1}.{index + 2}", self.controller_port + 1 + 10 * index)
                      for index, name in enumerate(NODE_NAMES)]
        self.pid_files: list[Path] = []

    @property
    def environment(self) -> dict[str, str]:
        """What every Slurm client needs (and jobs inherit)."""
        return {**os.environ, "SLURM_CONF": str(self.config)}

    def start(self) -> None:
        for folder in ("state", "spool", "log", "run"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        self._start_munge()
        self._fake_gpus()
        self.config.write_text(self._slurm_conf())
        self._daemon(["slurmctld", "-f", str(self.config)], self.root / "run" / "slurmctld.pid")
        for name, _address, _port in self.nodes:
            self._daemon(["slurmd", "-f", str(self.config), "-N", name], self.root / "run" / f"slurmd-{name}.pid")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            states = subprocess.run(["sinfo", "--noheader", "--format=%n %t", "--Node"], env=self.environment,
                                    capture_output=True, text=True, check=False).stdout.split()
            if states.count("idle") == len(self.nodes):
                return
            time.sleep(0.3)
        raise RuntimeError(f"the Slurm nodes did not come up: sinfo says {states}; logs in {self.root / 'log'}")

    def kill_node(self, name: str) -> None:
        """SIGKILL the node's slurmd (its jobs' slurmstepd go on): a node that stops answering."""
        os.kill(int((self.root / "run" / f"slurmd-{name}.pid").read_text().strip()), signal.SIGKILL)

    def restart_node(self, name: str) -> None:
        """Start the node's slurmd again and wait until Slurm has it back (ReturnToService=2)."""
        pid_file = self.root / "run" / f"slurmd-{name}.pid"
        pid_file.unlink(missing_ok=True)
        self._daemon(["slurmd", "-f", str(self.config), "-N", name], pid_file)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = subprocess.run(["sinfo", "--noheader", "--Node", "--format=%t", f"--nodes={name}"],
                                   env=self.environment, capture_output=True, text=True, check=False).stdout.strip()
            if state in ("idle", "alloc", "mix"):
                return
            time.sleep(0.3)
        raise RuntimeError(f"slurmd of {name} did not come back")

    def _start_munge(self) -> None:
        self.socket.parent.mkdir(parents=True, exist_ok=True)
        key = self.root / "munge.key"
        key.write_bytes(secrets.token_bytes(1024))
        key.chmod(0o400)
        pid_file = self.root / "run" / "munged.pid"
        self._daemon(["munged", "--force", f"--key-file={key}", f"--socket={self.socket}",
                      f"--pid-file={pid_file}", f"--log-file={self.root / 'log' / 'munged.log'}",
                      f"--seed-file={self.root / 'munge.seed'}"], pid_file)

    def _fake_gpus(self) -> None:
        """Device files like /dev/nvidia0 and 1 (char 195:N) and a gres.conf beside slurm.conf naming them."""
        devices = self.root / "dev"
        devices.mkdir(exist_ok=True)
        for index in range(GPUS_PER_NODE):
            device = devices / f"nvidia{index}"
            if not device.exists():
                os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(195, index))
        files = f"{devices}/nvidia[0-{GPUS_PER_NODE - 1}]"
        (self.root / "gres.conf").write_text("AutoDetect=off\n" + "".join(
            f"NodeName={name} Name=gpu Type=fake File={files}\n" for name, _address, _port in self.nodes))

    def _daemon(self, argv: list[str], pid_file: Path) -> None:
        """Start a daemon that detaches itself; wait for its PID file."""
        subprocess.run(argv, env=self.environment, check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        deadline = time.monotonic() + 15
        while not (pid_file.exists() and pid_file.read_text().strip()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{argv[0]} wrote no PID file {pid_file}")
            time.sleep(0.05)
        self.pid_files.append(pid_file)

    def _slurm_conf(self) -> str:
        root = self.root
        nodes = "\n".join(f"NodeName={name} NodeHostname=localhost NodeAddr={address} Port={port} CPUs=1 "
                          f"RealMemory=1000 Gres=gpu:fake:{GPUS_PER_NODE} State=UNKNOWN"
                          for name, address, port in self.nodes)
        return f"""ClusterName=mutationtest
SlurmctldHost=localhost
SlurmctldPort={self.controller_port}
SlurmUser=root
GresTypes=gpu
AuthType=auth/munge
AuthInfo=socket={self.socket}
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
KillWait=5
SchedulerParameters=batch_sched_delay=0
MinJobAge=600
SlurmdParameters=config_overrides
StateSaveLocation={root / 'state'}
SlurmdSpoolDir={root / 'spool'}/%n
SlurmctldPidFile={root / 'run' / 'slurmctld.pid'}
SlurmdPidFile={root / 'run'}/slurmd-%n.pid
SlurmctldLogFile={root / 'log' / 'slurmctld.log'}
SlurmdLogFile={root / 'log'}/slurmd-%n.log
JobCompType=jobcomp/filetxt
JobCompLoc={root / 'log' / 'jobcomp.txt'}
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
{nodes}
PartitionName=test Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP
"""

    def stop(self) -> None:
        subprocess.run(["scancel", "--user=root"], env=self.environment, check=False, capture_output=True, timeout=30)
        for pid_file in reversed(self.pid_files):  # the nodes, the controller, then munge
            try:
                pid = int(pid_file.read_text().strip())
            except (OSError, ValueError):
                continue
            _end(pid)


def _end(pid: int, deadline_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after the deadline; a zombie waiting for PID 1 counts as gone."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if not _running(pid):
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cluster_fixtures(instance: int) -> tuple[Any, Any]:
    """A test file's two fixtures: `cluster` (its own cluster, for the whole file) and `slurm` (that
    cluster, ready for one test). In the file: `cluster, slurm = cluster_fixtures(instance=N)`."""

    @pytest.fixture(scope="module")
    def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
        yield from running_cluster(tmp_path_factory, instance)

    @pytest.fixture
    def slurm(cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch) -> SlurmCluster:
        return ready(cluster, monkeypatch)

    return cluster, slurm


def running_cluster(tmp_path_factory: pytest.TempPathFactory, instance: int) -> Iterator[SlurmCluster]:
    """A test file's cluster (its module fixture), stopped whatever happens."""
    running = SlurmCluster(tmp_path_factory.mktemp("slurm"), instance)
    try:
        running.start()
        yield running
    finally:
        running.stop()


def ready(cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch) -> SlurmCluster:
    """The cluster for one test: its clients find it (SLURM_CONF), no job of an earlier test left."""
    monkeypatch.setenv("SLURM_CONF", str(cluster.config))
    subprocess.run(["scancel", "--user=root"], env=cluster.environment, check=False)
    return cluster


def rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "summary.csv", newline="") as table:
        return list(csv.DictReader(table))


def job_info(cluster: SlurmCluster, job_id: str) -> dict[str, str]:
    shown = subprocess.run(["scontrol", "show", "job", "--oneliner", job_id], env=cluster.environment,
                           capture_output=True, text=True, check=True).stdout
    return dict(item.split("=", 1) for item in shown.split() if "=" in item)


def jobs_gone(cluster: SlurmCluster, jobs: list[str]) -> bool:
    """Slurm is done with every one of `jobs` (none pending, running or completing)."""
    return not subprocess.run(["squeue", "--noheader", "--array", "--format=%i", f"--jobs={','.join(jobs)}"],
                              env=cluster.environment, capture_output=True, text=True, check=False).stdout.strip()


def settings_for(write_json: Callable[[str, Any], Path], runs: int, **slurm: Any) -> Path:
    return write_json("s.json", {"experiment_name": "cluster", "seed": 1,
                                 "executor": {"slurm": {"max_parallel": 2, **slurm}},
                                 "experiments": [{"mode": "mutation", "repo": "fake", "model": "tiny",
                                                  "mutate": ["learning_rate"], "runs_per_config": runs}]})


def submitter(cluster: SlurmCluster, registry: Path, results: Path, settings: Path) -> subprocess.Popen[str]:
    """`run SETTINGS` as a user starts it, in a process of its own (for signals), its output captured."""
    return subprocess.Popen([sys.executable, str(PROJECT_ROOT / "mutation.py"), "--registry", str(registry),
                             "--results-dir", str(results), "run", str(settings)], env=cluster.environment,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
