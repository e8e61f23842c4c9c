"""The installed command: a wheel built from the project, installed into a fresh virtual
environment, run from a folder that is not the project. Its registry and results are that
folder's (or MUTATION_REGISTRY / MUTATION_RESULTS), a relative repository path is the registry
folder's, and nothing is written inside the installed package.

The fresh environment gets only the wheel; the dependencies (pandas, matplotlib...) come from the
test environment through a .pth line, so the test needs no download, and the package imported is
the wheel's (checked), never the checkout's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import anyio
import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from test.conftest import FAKE_TRAIN, PROJECT_ROOT, fake_repo


def files_under(folder: Path) -> set[Path]:
    return {path for path in folder.rglob("*") if "__pycache__" not in path.parts}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv holding only the wheel of this project; its `bin/` folder."""
    base = tmp_path_factory.mktemp("installed")
    source = base / "source"  # a copy: building in the checkout would leave build/ and egg-info behind
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(PROJECT_ROOT / name, source / name)
    shutil.copytree(PROJECT_ROOT / "energy_profiler", source / "energy_profiler",
                    ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(base / "wheel"), str(source)], check=True)
    wheel = next((base / "wheel").glob("energy_profiler-*.whl"))
    environment = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(environment)], check=True)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(environment / "bin" / "python"), "install",
                    "--quiet", "--no-deps", str(wheel)], check=True)
    site_packages = Path(subprocess.run(
        [str(environment / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True, capture_output=True, text=True).stdout.strip())
    (site_packages / "test_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return environment / "bin"


def run_installed(bin_dir: Path, args: list[str], cwd: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    environment.update(variables)
    return subprocess.run([str(bin_dir / "mutation"), *args], cwd=cwd, env=environment, capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.fixture
def project_folder(tmp_path: Path) -> Path:
    """A user's folder: repos/models.json with a relative repository path, and a settings file."""
    folder = tmp_path / "my project"
    (folder / "repos" / "fake").mkdir(parents=True)
    shutil.copy(FAKE_TRAIN, folder / "repos" / "fake" / FAKE_TRAIN.name)
    (folder / "repos" / "models.json").write_text(json.dumps({"repositories": {"fake": fake_repo(path="fake")}}))
    (folder / "settings.json").write_text(json.dumps({"experiment_name": "installed", "experiments": [
        {"mode": "default", "repo": "fake", "model": "tiny"}]}))
    return folder


def test_the_installed_command_works_in_any_folder_and_writes_only_there(installed: Path,
                                                                         project_folder: Path) -> None:
    where = "import energy_profiler; print(energy_profiler.__file__)"
    package = subprocess.run([str(installed / "python"), "-c", where], capture_output=True, text=True, check=True,
                             cwd=project_folder).stdout.strip()
    site_packages = Path(package).parents[1]
    assert site_packages.is_relative_to(installed.parent)  # the wheel's package, not the checkout's
    before = files_under(site_packages)

    listing = run_installed(installed, ["list"], project_folder)
    assert listing.returncode == 0, listing.stderr
    assert f"registry: {project_folder / 'repos' / 'models.json'}" in listing.stdout
    assert f"fake  ({project_folder / 'repos' / 'fake'})" in listing.stdout  # relative to the registry's folder

    campaign = run_installed(installed, ["run", "settings.json"], project_folder)
    assert campaign.returncode == 0, campaign.stdout + campaign.stderr
    runs = list((project_folder / "results").glob("run_*"))
    assert len(runs) == 1 and (runs[0] / "summary.csv").read_text().count("\n") == 2
    assert files_under(site_packages) == before  # nothing written inside the installed package


def test_the_environment_names_the_registry_and_the_results(installed: Path, project_folder: Path,
                                                            tmp_path: Path) -> None:
    elsewhere = tmp_path / "shared results"
    campaign = run_installed(installed, ["run", str(project_folder / "settings.json")], tmp_path,
                             MUTATION_REGISTRY=str(project_folder / "repos" / "models.json"),
                             MUTATION_RESULTS=str(elsewhere))
    assert campaign.returncode == 0, campaign.stdout + campaign.stderr
    assert len(list(elsewhere.glob("run_*"))) == 1 and not (tmp_path / "results").exists()


def test_without_a_registry_the_command_says_where_it_looked(installed: Path, tmp_path: Path) -> None:
    result = run_installed(installed, ["list"], tmp_path)
    assert result.returncode == 2
    assert str(tmp_path / "repos" / "models.json") in result.stderr and "Traceback" not in result.stderr


def test_mutation_py_without_its_dependencies_says_how_to_run_it_in_one_line() -> None:
    # `python3 mutation.py` (or `sudo python3 ...`) with an interpreter that lacks the packages:
    # -S leaves out every site-packages folder, as a bare system Python has none of them.
    result = subprocess.run([sys.executable, "-S", str(PROJECT_ROOT / "mutation.py"), "list"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2 and result.stdout == ""
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "lacks its dependencies (no module 'click')" in result.stderr
    assert f"{PROJECT_ROOT / '.venv' / 'bin' / 'python'}" in result.stderr


def test_a_python_with_only_some_dependencies_gets_one_line_from_any_command(tmp_path: Path) -> None:
    # Seen: a system python3 with click (and jsonschema) but not psutil ran `list`, then `runs` and
    # `doctor` ended in a 30-line traceback.
    site = Path(sysconfig.get_paths()["purelib"])
    partial = tmp_path / "partial-site"
    partial.mkdir()
    for entry in site.iterdir():  # every installed package but psutil
        if not entry.name.startswith("psutil"):
            (partial / entry.name).symlink_to(entry)
    environment = {**os.environ, "PYTHONPATH": str(partial)}
    listed = subprocess.run([sys.executable, "-S", str(PROJECT_ROOT / "mutation.py"), "list"], env=environment,
                            capture_output=True, text=True, timeout=60, check=False)
    assert listed.returncode == 0, listed.stderr  # what needs no psutil works
    for command in (["runs"], ["doctor"]):
        result = subprocess.run([sys.executable, "-S", str(PROJECT_ROOT / "mutation.py"), *command], env=environment,
                                capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert "lacks its dependencies (no module 'psutil')" in result.stderr


def test_the_installed_command_serves_mcp_from_the_users_folder(installed: Path, project_folder: Path) -> None:
    # The client starts `mutation mcp` by its full path, with the SDK's own minimal environment (no
    # PATH to the venv): the commands the server runs must be found all the same.
    parameters = StdioServerParameters(command=str(installed / "mutation"), args=["mcp"], cwd=str(project_folder))
    said: list[str] = []

    async def main() -> None:
        async with stdio_client(parameters) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            for tool, arguments in (("list_registry", {}), ("validate_settings", {"settings_file": "settings.json"})):
                result = await session.call_tool(tool, arguments)
                assert not result.is_error, result.content
                said.append("".join(getattr(part, "text", "") for part in result.content))

    anyio.run(main)
    assert f"registry: {project_folder / 'repos' / 'models.json'}" in said[0]
    assert said[1] == "ok: settings.json (1 trial)"
