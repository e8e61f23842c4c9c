"""Whether a training command can be started at all, checked before the first trial.

A typo in a script name, or an interpreter the training's user may not execute, fails every trial
and every retry in a fraction of a second: a night's campaign of nothing. These checks look at
the files only (nothing is run): the program must be found (a path, or a name on the PATH the
training gets) and be executable by the user who will run it (under sudo the invoking user, not
root); when it is an interpreter (python, sh, bash) its script, the first argument that is not
an option, must exist.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path

from energy_profiler.planning.plan import Trial

INTERPRETERS = ("python", "sh", "bash", "dash", "zsh")
"""Programs whose first non-option argument is a script file (python3.11 counts as python)."""


def executable_by(path: Path, uid: int, gids: Sequence[int]) -> bool:
    """Whether `path` is a file that user `uid` (with groups `gids`) may execute, by its mode bits."""
    try:
        info = path.stat()
    except OSError:
        return False
    if not stat.S_ISREG(info.st_mode):
        return False
    if uid == 0:
        return bool(info.st_mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH))
    if info.st_uid == uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid in gids:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def start_problem(argv: Sequence[str], cwd: Path, env: Mapping[str, str], uid: int | None = None,
                  gids: Sequence[int] = ()) -> str | None:
    """Why `argv` could not be started in `cwd` by user `uid` (default: this process's), or None."""
    if uid is None:
        uid, gids = os.geteuid(), os.getgroups()
    program = argv[0]
    if "/" in program:
        path = (cwd / program) if not Path(program).is_absolute() else Path(program)
        try:
            exists = path.exists()
        except OSError as error:  # a folder on the way this user may not enter
            return f"{program!r} cannot be reached: {error.strerror}"
        if not exists:
            return f"{program!r} does not exist" + (f" (in {cwd})" if not Path(program).is_absolute() else "")
    else:
        found = shutil.which(program, path=env.get("PATH", os.defpath))
        if found is None:
            return f"{program!r} is not on the training's PATH"
        path = Path(found)
    if path.is_dir():
        return f"{program!r} is a folder, not a program"
    if not executable_by(path, uid, gids):
        return f"{path} is not executable by {'root' if uid == 0 else f'uid {uid}'} (who runs the training)"
    name = path.name
    script = _script_argument(argv[1:]) if name.startswith(INTERPRETERS) else None
    if script is not None and not (cwd / script).exists():
        return f"{name} would be given the script {script!r}, which does not exist in {cwd}"
    return None


def _script_argument(arguments: Sequence[str]) -> str | None:
    """The script an interpreter runs: its first argument that is not an option, when it names a file
    (`train.py`, `scripts/train`); None for `-c CODE`, `-m MODULE` or a placeholder filled in later."""
    for argument in arguments:
        if argument in ("-c", "-m"):
            return None
        if not argument.startswith("-"):
            filled_later = "{" in argument
            named = "/" in argument or Path(argument).suffix in (".py", ".sh", ".bash")
            return argument if named and not filled_later else None
    return None


def plan_problems(trials: Sequence[Trial], uid: int | None = None,
                  gids: Sequence[int] = ()) -> list[tuple[str, str, str]]:
    """(repository, model, why) for each distinct workload of the plan (foregrounds and backgrounds)
    that could not be started."""
    problems: dict[tuple[str, str], str] = {}
    for trial in trials:
        workloads = [(trial.repo, trial.model, trial.argv, trial.cwd, trial.env)]
        workloads += [(run.repo, run.model, run.argv, run.cwd, run.env) for run in trial.background]
        for repo, model, argv, cwd, env in workloads:
            if (repo, model) in problems:
                continue
            environment = {**os.environ, **dict(env)}
            if (problem := start_problem(argv, Path(cwd), environment, uid, gids)) is not None:
                problems[(repo, model)] = problem
    return [(repo, model, problem) for (repo, model), problem in problems.items()]
