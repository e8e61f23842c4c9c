"""`migrate registry FILE -o OUT`: the older tool's models_config.json as a registry of this tool.

The older project is left as it is: only OUT is written (atomically), and only once the converted
registry has passed the same checks `mutation.py --registry OUT` will make.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from energy_profiler.cli.context import AppContext, checked_plan, global_options, invocation
from energy_profiler.cli.tables import fitted, terminal_width
from energy_profiler.config.errors import ConfigError, ConfigIssue, file_error
from energy_profiler.config.json_file import read_json
from energy_profiler.config.registry import Registry, load_registry
from energy_profiler.fs import atomic_write_bytes, atomic_write_json, make_dirs
from energy_profiler.migrate.history import convert_table, table_notes
from energy_profiler.migrate.migration_text import migration_text, summary_lines
from energy_profiler.migrate.project import GLOBAL_TABLE, REGISTRY, migrate_project, read_as_the_older_tool
from energy_profiler.migrate.registry import OLDER_FILE, convert_registry, is_older_registry
from energy_profiler.migrate.settings import convert_settings
from energy_profiler.planning.plan import Plan


class _ProjectByDefault(click.Group):
    """`migrate OLD_PROJECT --to DIR` without a subcommand name means `migrate project ...`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["project", *args]
        return super().parse_args(ctx, args)


@click.group("migrate", cls=_ProjectByDefault)
def migrate_command() -> None:
    """Convert the older tool's project: `migrate OLD_PROJECT --to DIR`, or one registry.

    \b
    mutation.py migrate ../Green-deep-learning --to migrated
    mutation.py migrate registry ../Green-deep-learning/mutation/models_config.json -o repos/models.json
    """


@migrate_command.command("project")
@click.argument("older_project", type=click.Path(file_okay=False, path_type=Path, readable=False))
@click.option("--to", "target", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="An empty or new folder: it becomes a project (repos/models.json, settings/, history/).")
def migrate_project_command(older_project: Path, target: Path) -> None:
    """Convert OLDER_PROJECT into a project at TARGET that runs from there, with MIGRATION.md."""
    if not older_project.is_dir():
        raise file_error(str(older_project), "does not exist: give the folder of the older project (the one "
                                             "that holds mutation/ and settings/)")
    if not (older_project / OLDER_FILE).is_file():
        raise file_error(str(older_project), f"has no {OLDER_FILE}: give the folder of "
                                             "the older project (the one that holds mutation/ and settings/)")
    if target.exists() and any(target.iterdir()):
        raise file_error(str(target), "is not empty: give a new or empty folder, e.g. --to "
                                      f"{shlex.quote(str(target) + '-2')} (migrate never overwrites)")
    if target.resolve().is_relative_to(older_project.resolve()):
        raise click.UsageError("the target lies inside the older project; migrate never writes there")
    target = target.resolve()
    # Each converted file is checked as `validate` run from TARGET checks it: TARGET's registry and results.
    app = AppContext(results_dir=target / GLOBAL_TABLE.parent, registry_file=target / REGISTRY)
    registries: list[Registry] = []

    def check(settings_file: Path) -> tuple[Plan | None, list[ConfigIssue]]:
        if not registries:
            registries.append(app.registry())
        return checked_plan(app, registries[0], settings_file)

    report = migrate_project(older_project, target, check)
    tool = [word for word in invocation() if word != "sudo"]
    atomic_write_bytes(target / "MIGRATION.md", migration_text(older_project, report, tool).encode())
    width = terminal_width()  # sentences folded in a narrow terminal; whole lines in a pipe, for grep
    click.echo(fitted(f"{target}: {REGISTRY}, {len(report.files)} settings files, "
                      f"{len(report.tables)} history table(s), MIGRATION.md", width))
    for line in summary_lines(report):
        click.echo(fitted(f"  {line}", width, "    "))
    attention = sum(1 for file in report.files if file.needs_attention)
    click.echo(fitted(f"  {attention} file(s) need attention: see {target / 'MIGRATION.md'}", width, "    "))
    click.echo(f"next: cd {shlex.quote(str(target))}, then run the commands under 'Next' in its MIGRATION.md")


@migrate_command.command("registry")
@click.argument("older_file", type=click.Path(path_type=Path, readable=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The registry to write, e.g. repos/models.json.")
@click.option("--project", "older_project", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The older project folder its repository paths are relative to "
                   f"[default: the folder above {OLDER_FILE.split('/')[0]}/].")
def migrate_registry_command(older_file: Path, output: Path, older_project: Path | None) -> None:
    """Convert OLDER_FILE (the older tool's mutation/models_config.json) into a registry at OUTPUT."""
    document = read_json(older_file)
    if not is_older_registry(document):
        raise file_error(str(older_file), "is not the older tool's registry (a top-level "
                                          "'models' whose repositories have 'supported_hyperparams')")
    project = (older_project or older_file.resolve().parent.parent).resolve()
    converted = convert_registry(document, project)
    if output.resolve() == older_file.resolve():
        raise click.UsageError("the output would overwrite the older file; migrate never changes the older project")
    make_dirs(output.parent)
    staged = output.with_name(f".{output.name}.migrating")
    atomic_write_json(staged, converted.document)
    try:
        load_registry(staged)  # the checks every command will make: fail here, not later
    except ConfigError:
        staged.unlink()
        raise
    staged.replace(output)
    repositories = len(converted.document["repositories"])
    click.echo(f"{output}: {repositories} repositories from {older_file}")
    for note in converted.notes:
        click.echo(f"  note: {note}")


@migrate_command.command("settings")
@click.argument("older_files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path,
                                                                        readable=False))
@click.option("-o", "--output", "folder", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The folder to write the converted files into (same names).")
@click.option("--older-registry", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help=f"The older project's {OLDER_FILE} the files ran against [default: found above each file].")
def migrate_settings_command(older_files: tuple[Path, ...], folder: Path, older_registry: Path | None) -> None:
    """Convert OLDER_FILES (older settings) into FOLDER, each meaning what the older runner did with it."""
    taken = [folder / older_file.name for older_file in older_files if (folder / older_file.name).exists()]
    if taken:  # a converted project's file holds its dedup history and lowered runs: never replaced
        raise ConfigError([ConfigIssue(str(path), (), "exists already: migrate never overwrites; give another "
                                                      "-o folder", whole_file=True) for path in taken])
    registries: dict[Path, object] = {}  # files of one older project share its registry: read it once
    for older_file in older_files:
        registry_file = older_registry or _older_registry_above(older_file)
        if registry_file not in registries:
            registries[registry_file] = read_json(registry_file)
        registry_document = registries[registry_file]
        if not is_older_registry(registry_document):
            raise file_error(str(registry_file), "is not the older tool's registry")
        try:
            document, repeated = read_as_the_older_tool(older_file)
        except (OSError, ValueError) as error:
            raise file_error(str(older_file), f"cannot be read as the older runner read it: {error}") from None
        if not isinstance(document, dict | list):
            raise file_error(str(older_file), "is not a settings object")
        converted = convert_settings(document, registry_document, older_file.name)
        if converted.document.get("_use_deduplication"):
            converted.warn("use_deduplication: dedup is off here; convert the tables with `migrate history` and set "
                           "\"dedup\": {\"history\": [...]}", "dedup off")
        destination = folder / older_file.name
        make_dirs(folder)
        atomic_write_json(destination, converted.document)
        click.echo(f"{destination}: from {older_file}; the older runner would start {converted.older_trials} "
                   "training(s)")
        for note in [*(["keys given twice: the last of each kept, as the older runner did"] if repeated else []),
                     *converted.notes]:
            click.echo(f"  note: {note}")


@migrate_command.command("history")
@click.argument("older_tables", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path,
                                                                         readable=False))
@click.option("-o", "--output", "folder", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The folder to write the converted tables into (same names).")
@global_options
def migrate_history_command(older_tables: tuple[Path, ...], folder: Path) -> None:
    """Convert OLDER_TABLES (the older raw_data.csv, summary.csv) into tables this tool's dedup reads.

    The registry (--registry, a converted one) says each model's hyperparameters and defaults.
    """
    app = click.get_current_context().ensure_object(AppContext)
    registry = app.registry()
    for table_file in older_tables:
        try:
            table = convert_table(table_file, registry)
        except ValueError as error:
            raise file_error(str(table_file), f"is {error}") from None
        destination = folder / table_file.name
        make_dirs(folder)
        atomic_write_bytes(destination, table.text().encode())
        click.echo(f"{destination}: from {table_file}")
        for note in table_notes(table_file.name, table, len(table.rows) + sum(table.skipped.values())):
            click.echo(f"  note: {note}")


def _older_registry_above(path: Path) -> Path:
    for folder in path.resolve().parents:
        if (folder / OLDER_FILE).is_file():
            return folder / OLDER_FILE
    raise file_error(str(path), f"no {OLDER_FILE} in any folder above it: give "
                                "--older-registry")
