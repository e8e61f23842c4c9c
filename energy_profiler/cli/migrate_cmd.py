"""`migrate registry FILE -o OUT`: the older tool's models_config.json as a registry of this tool.

The older project is left as it is: only OUT is written (atomically), and only once the converted
registry has passed the same checks `mutation.py --registry OUT` will make.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from energy_profiler.cli.context import fail_config
from energy_profiler.config.errors import ConfigError, ConfigIssue
from energy_profiler.config.json_file import read_json
from energy_profiler.config.registry import load_registry
from energy_profiler.fs import atomic_write_bytes, make_dirs
from energy_profiler.migrate.registry import OLDER_FILE, convert_registry, is_older_registry


@click.group("migrate")
def migrate_command() -> None:
    """Convert the older tool's files (Green-deep-learning's mutation/ and settings/)."""


@migrate_command.command("registry")
@click.argument("older_file", type=click.Path(path_type=Path, readable=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The registry to write, e.g. repos/models.json.")
@click.option("--project", "older_project", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The older project folder its repository paths are relative to "
                   f"[default: the folder above {OLDER_FILE.split('/')[0]}/].")
def migrate_registry_command(older_file: Path, output: Path, older_project: Path | None) -> None:
    """Convert OLDER_FILE (the older tool's mutation/models_config.json) into a registry at OUTPUT."""
    document = read_json_or_exit(older_file)
    if not is_older_registry(document):
        fail_config(ConfigError([ConfigIssue(str(older_file), (), "is not the older tool's registry (a top-level "
                                             "'models' whose repositories have 'supported_hyperparams')",
                                             whole_file=True)]))
    project = (older_project or older_file.resolve().parent.parent).resolve()
    converted = convert_registry(document, project)
    if output.resolve() == older_file.resolve():
        raise click.UsageError("the output would overwrite the older file; migrate never changes the older project")
    text = (json.dumps(converted.document, indent=2, ensure_ascii=False) + "\n").encode()
    make_dirs(output.parent)
    staged = output.with_name(f".{output.name}.migrating")
    atomic_write_bytes(staged, text)
    try:
        load_registry(staged, project)  # the checks every command will make: fail here, not later
    except ConfigError as error:
        staged.unlink()
        fail_config(error)
    staged.replace(output)
    repositories = len(converted.document["repositories"])
    click.echo(f"{output}: {repositories} repositories from {older_file}")
    for note in converted.notes:
        click.echo(f"  note: {note}")


def read_json_or_exit(path: Path) -> object:
    try:
        return read_json(path)
    except ConfigError as error:
        fail_config(error)
