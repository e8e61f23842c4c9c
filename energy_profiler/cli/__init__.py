"""The `mutation.py` command line: a click group whose commands parse, call and print."""

from __future__ import annotations

import importlib
import shlex
from pathlib import Path
from typing import Any

import click

from energy_profiler import __version__
from energy_profiler.cli.context import (
    AppContext,
    default_registry,
    default_results,
    energy_options,
    global_options,
    invocation,
)
from energy_profiler.errors import ExitCode, ToolExit
from energy_profiler.fs import give_files_to
from energy_profiler.missing import is_missing_dependency, missing_dependency_message
from energy_profiler.system.sudo import invoking_user

COMMANDS = {  # name -> module of energy_profiler.cli, attribute
    "run": ("run", "run_command"), "list": ("list_cmd", "list_command"), "validate": ("validate", "validate_command"),
    "plan": ("plan_cmd", "plan_command"), "doctor": ("doctor", "doctor_command"),
    "cleanup": ("cleanup", "cleanup_command"), "merge": ("merge_cmd", "merge_command"),
    "report": ("report_cmd", "report_command"), "migrate": ("migrate_cmd", "migrate_command"),
    "status": ("status_cmd", "status_command"), "runs": ("runs_cmd", "runs_command"),
    "stop": ("stop_cmd", "stop_command"), "mcp": ("mcp_cmd", "mcp_command"),
    "run-trial": ("run_trial", "run_trial_command"),
}


class LazyGroup(click.Group):
    """Imports a command's module only when that command runs: `report` does not load the campaign
    runner and `list` does not load pandas (each module costs tenths of a second to import)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def invoke(self, ctx: click.Context) -> Any:
        """The one exit of every command: a ToolExit raised anywhere below ends the command here,
        its lines on stderr and its exit code; so does a dependency this Python lacks."""
        try:
            return super().invoke(ctx)
        except ToolExit as end:
            tool = shlex.join(invocation())
            for line in end.lines():
                # A command in a message (`mutation.py migrate ...`) is pasted as printed: spelt as this
                # tool was started.
                click.echo(line.replace("`mutation.py ", f"`{tool} "), err=True)
            ctx.exit(end.exit_code)
        except ModuleNotFoundError as error:  # a command imports what it needs when it runs: psutil, pandas...
            if not is_missing_dependency(error):
                raise
            click.echo(missing_dependency_message(error, ctx.ensure_object(AppContext).project), err=True)
            ctx.exit(ExitCode.REFUSED)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attribute = COMMANDS[cmd_name]
        command: click.Command = getattr(importlib.import_module(f"energy_profiler.cli.{module}"), attribute)
        return command


CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(cls=LazyGroup, invoke_without_command=True, context_settings=CONTEXT_SETTINGS)
@click.option("-ec", "--experiment-config", type=click.Path(path_type=Path, readable=False),
              help="Run a settings file (the same as `run FILE`).")
@click.option("-r", "--repo", help="Ad-hoc mutation run: the repository.")
@click.option("-m", "--model", help="Ad-hoc mutation run: the model.")
@click.option("-mt", "--mutate", help="Ad-hoc: hyperparameters to mutate, comma-separated, or `all`.")
@click.option("-n", "--runs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Ad-hoc: number of unique mutated configurations.")
@click.option("-mr", "--max-retries", type=click.IntRange(min=0), default=0, show_default=True,
              help="Ad-hoc: extra attempts after a failed run.")
@click.option("-s", "--seed", type=click.IntRange(min=0), help="Ad-hoc: seed of the draws.")
@click.option("-l", "--list", "list_registry", is_flag=True, help="List the registry (the same as `list`).")
@click.option("-g", "--governor", help="CPU frequency governor for this campaign (e.g. performance), over the "
                                      "settings file's `governor`; restored afterwards.")
@click.option("-S", "--enable-summary-append", "summary_append", is_flag=True,
              help="Accepted for the older tool's command lines: every campaign appends to results/summary_all.csv.")
@click.version_option(__version__, "-V", "--version", prog_name="mutation.py")
@global_options
@energy_options
@click.pass_context
def cli(ctx: click.Context, *, experiment_config: Path | None, repo: str | None, model: str | None,
        mutate: str | None, runs: int, max_retries: int, seed: int | None, list_registry: bool,
        governor: str | None, summary_append: bool) -> None:
    """Measure the energy of training runs while mutating their hyperparameters.

    \b
    Examples:
      mutation.py -ec settings/quickstart.json      run a settings file
      mutation.py -r examples -m mlp -mt learning_rate,epochs -n 3
      mutation.py list                              what the registry offers
      mutation.py plan settings/quickstart.json     the trials, without running them
    """
    app = ctx.ensure_object(AppContext)
    app.governor = governor
    if summary_append:
        click.echo("note: -S is not needed: every campaign appends its rows to results/summary_all.csv", err=True)
    user = invoking_user()
    if user is not None:  # under sudo: what we write belongs to the user who asked for it
        give_files_to(user.uid, user.gid)
    ad_hoc = repo is not None or model is not None or mutate is not None
    chosen = [name for name, used in (("-ec", experiment_config is not None), ("-r/-m/-mt", ad_hoc),
                                      ("-l", list_registry), ("a command", ctx.invoked_subcommand is not None))
              if used]
    if len(chosen) > 1:
        raise click.UsageError(f"use only one of: {', '.join(chosen)}")
    if ctx.invoked_subcommand is not None:
        return
    from energy_profiler.cli.list_cmd import print_registry  # noqa: PLC0415 - see LazyGroup
    from energy_profiler.cli.run import run_ad_hoc, run_settings_file  # noqa: PLC0415

    if list_registry:
        print_registry(app)
    elif experiment_config is not None:
        run_settings_file(app, experiment_config)
    elif ad_hoc:
        missing = [flag for flag, value in (("-r", repo), ("-m", model), ("-mt", mutate)) if value is None]
        if missing:
            raise click.UsageError(f"an ad-hoc run needs -r, -m and -mt; missing {', '.join(missing)}")
        assert repo is not None and model is not None and mutate is not None
        run_ad_hoc(app, repo=repo, model=model, mutate=mutate, runs=runs, max_retries=max_retries, seed=seed)
    else:
        click.echo(ctx.get_help())


def is_project(folder: Path) -> bool:
    """A project folder: it has its own registry, `repos/models.json` (a migrated project has one)."""
    return (folder / "repos" / "models.json").is_file()


def main(project: Path | None = None) -> None:
    """Entry point of the `mutation` console script (defaults in the working folder) and of a
    checkout's mutation.py (`project`: the checkout, used unless the working folder is a project
    of its own, such as one `migrate` wrote)."""
    project = None if project is None or is_project(Path.cwd()) else project
    app = AppContext(results_dir=default_results(project), registry_file=default_registry(project), project=project)
    cli(prog_name="mutation.py", obj=app)
