"""The package's layers only look down (docs/architecture.md, "Layers"), and no modules import each other.

cli -> execution -> (energy, process, results, report, metrics) -> planning -> config -> model,
with system/, fs.py and errors.py usable from anywhere and importing nothing of the package above them. The
imports are read from the source with ast (those inside functions too), so a new upward import
fails here, naming the file; so does a cycle, even inside one layer, which the layer rule cannot
see (cli/run.py and cli/slurm_run.py once imported each other, one of them lazily).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

from test.conftest import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "energy_profiler"
RANK = {"model": 0, "config": 1, "planning": 2, "energy": 3, "process": 3, "results": 3, "report": 3,
        "metrics": 3, "migrate": 3, "execution": 4, "cli": 5, "__main__": 6}
"""`python -m energy_profiler` (__main__) is an entry point above the command line it calls."""
UTILITIES = {"system", "fs", "missing", "errors", ""}
"""Usable from every layer; "" is the package itself (its __version__)."""
SIBLINGS = {("energy", "process"), ("process", "metrics")}
"""Imports between layers of one rank that are allowed, in this direction only: the energy
backends start perf and nvidia-smi with process.spawn; a background loop counts OOM runs with
metrics.log_contains."""


def layer(module: str) -> str:
    """`energy_profiler.energy.perf` -> `energy`; `energy_profiler.fs` -> `fs`; the root -> ``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("energy_profiler"):
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names if alias.name.startswith("energy_profiler"))
    return found


def module_name(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def upward_imports(package: Path) -> list[str]:
    """One line per import of `package` that goes up or sideways."""
    wrong = []
    for path in sorted(package.rglob("*.py")):
        name = module_name(path, package)
        importer = layer(name)
        for module in imports(path):
            imported = layer(module)
            if imported == importer:
                continue
            if importer in UTILITIES:
                if imported not in UTILITIES:
                    wrong.append(f"{name}: a utility, imports {module}")
                continue
            if imported in UTILITIES or RANK[imported] < RANK[importer] or (importer, imported) in SIBLINGS:
                continue
            wrong.append(f"{name} ({importer}) imports {module} ({imported})")
    return wrong


def test_every_import_in_the_package_looks_down() -> None:
    assert len(list(PACKAGE.rglob("*.py"))) > 50
    assert upward_imports(PACKAGE) == []


def test_the_check_finds_imports_that_go_up_or_sideways(tmp_path: Path) -> None:
    package = tmp_path / "energy_profiler"
    for relative, text in {
        "model/record.py": "from energy_profiler.execution.session import run_session\n",
        "process/training.py": "import energy_profiler.energy.perf\n",  # a sibling, the wrong way
        "fs.py": "from energy_profiler.model.record import Record\n",  # a utility looking up
        "execution/trial.py": "from energy_profiler.fs import own\nfrom energy_profiler.model import values\n",
    }.items():
        (package / relative).parent.mkdir(parents=True, exist_ok=True)
        (package / relative).write_text(text)
    assert upward_imports(package) == [
        "energy_profiler.fs: a utility, imports energy_profiler.model.record",
        "energy_profiler.model.record (model) imports energy_profiler.execution.session (execution)",
        "energy_profiler.process.training (process) imports energy_profiler.energy.perf (energy)",
    ]


def import_graph(package: Path) -> dict[str, set[str]]:
    """Each module of `package` -> the modules of `package` it imports."""
    graph = {module_name(path, package): set(imports(path)) for path in sorted(package.rglob("*.py"))}
    return {module: {other for other in imported if other in graph and other != module}
            for module, imported in graph.items()}


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other, directly or through others (Tarjan's strongly
    connected components of more than one module), each sorted."""
    index: dict[str, int] = {}
    lowest: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(module: str) -> None:
        index[module] = lowest[module] = len(index)
        stack.append(module)
        for other in sorted(graph[module]):
            if other not in index:
                visit(other)
                lowest[module] = min(lowest[module], lowest[other])
            elif other in stack:
                lowest[module] = min(lowest[module], index[other])
        if lowest[module] == index[module]:
            group = stack[stack.index(module):]
            del stack[stack.index(module):]
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return sorted(found)


def test_no_modules_import_each_other() -> None:
    assert cycles(import_graph(PACKAGE)) == []


def test_the_check_finds_a_cycle_inside_one_layer_also_through_a_lazy_import(tmp_path: Path) -> None:
    package = tmp_path / "energy_profiler"
    for relative, text in {
        "cli/run.py": "def f():\n    from energy_profiler.cli.slurm_run import g\n",  # lazily, as it was
        "cli/slurm_run.py": "from energy_profiler.cli.signals import stop\n",
        "cli/signals.py": "from energy_profiler.cli.run import f\n",
        "cli/closing.py": "from energy_profiler.cli.signals import stop\n",  # imports into the cycle: not in it
    }.items():
        (package / relative).parent.mkdir(parents=True, exist_ok=True)
        (package / relative).write_text(text)
    assert upward_imports(package) == []  # one layer: the layer rule alone sees nothing
    assert cycles(import_graph(package)) == [["energy_profiler.cli.run", "energy_profiler.cli.signals",
                                              "energy_profiler.cli.slurm_run"]]
