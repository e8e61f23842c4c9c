"""Per-workload folders in a training's arguments and environment: `{run_dir}`, `{trial_dir}`, `{attempt_dir}`.

A script that writes a checkpoint into its own folder (pytorch/examples' word_language_model
writes `model.pt` and reloads it for its test loss) collides with a background of the same
repository doing the same. With `--save {attempt_dir}/model.pt` in `required_args` each workload
writes into a folder of its own: the foreground into its attempt folder, background k into
`attempt_N/bg<k>/`. Every training also gets the folders as MUTATION_RUN_DIR, MUTATION_TRIAL_DIR
and MUTATION_ATTEMPT_DIR.

Only these three exact placeholders are replaced, by plain text substitution (never str.format),
so any other brace in a user's string reaches the training unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class WorkloadDirs:
    run_dir: Path
    trial_dir: Path
    attempt_dir: Path
    """The foreground's attempt folder, or a background's own folder inside it."""

    def fill(self, text: str) -> str:
        for name, path in (("run_dir", self.run_dir), ("trial_dir", self.trial_dir),
                           ("attempt_dir", self.attempt_dir)):
            text = text.replace("{" + name + "}", str(path))
        return text

    def argv(self, argv: Iterable[str]) -> tuple[str, ...]:
        return tuple(self.fill(arg) for arg in argv)

    def env(self, env: Mapping[str, str]) -> dict[str, str]:
        """`env` with its values filled, and the MUTATION_*_DIR variables every training gets."""
        return {**{name: self.fill(value) for name, value in env.items()},
                "MUTATION_RUN_DIR": str(self.run_dir), "MUTATION_TRIAL_DIR": str(self.trial_dir),
                "MUTATION_ATTEMPT_DIR": str(self.attempt_dir)}
