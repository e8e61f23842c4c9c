"""Configuration errors that name the file and the JSON path of what is wrong."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from energy_profiler.errors import ToolExit

JsonPath = Sequence[str | int]


PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def format_path(path: JsonPath) -> str:
    """`("experiments", 2, "mutate", 0)` -> `experiments[2].mutate[0]`; the root is `(root)`.

    A key that is not a plain name is shown as a JSON string, `env["A B;\\n"]`, so that what the
    user wrote can be told apart and no newline or control character reaches the terminal raw.
    """
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not PLAIN_KEY.fullmatch(part):
            text += f"[{json.dumps(part)}]"
        else:
            text += f".{part}" if text else part
    return text or "(root)"


def quoted(key: str) -> str:
    """`'key'` for a plain name; a JSON string otherwise, so no newline or escape reaches a terminal raw."""
    return f"'{key}'" if PLAIN_KEY.fullmatch(key) else json.dumps(key)


NEGATIONS = ("non", "no", "not", "un", "dis")


def _negates(word: str, other: str) -> bool:
    """Whether one of the two is the other with a negating prefix: `nonparallel` and `parallel`."""
    first, second = (text.lower().replace("-", "").replace("_", "") for text in (word, other))
    return any(first == prefix + second or second == prefix + first for prefix in NEGATIONS)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """` (did you mean 'x'?)` when a choice is close to `word`, else ``; never its opposite."""
    candidates = [choice for choice in choices if not _negates(word, choice)]
    matches = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f" (did you mean '{matches[0]}'?)" if matches else ""


def suggest_name(word: str, aliases: dict[str, list[str]]) -> str:
    """` (did you mean 'x'?)` for a name that is an alias of `x` (a flag, initials) or close to it.

    `aliases` maps each real name to other spellings a person may type for it: `lr` is not close
    to `learning_rate` as text, but it is that hyperparameter's flag and its initials.
    """
    typed = word.strip("-").replace("-", "_").lower()
    for name, spellings in aliases.items():
        if typed in (spelling.strip("-").replace("-", "_").lower() for spelling in spellings):
            return f" (did you mean '{name}'?)"
    return did_you_mean(word, aliases)


@dataclass(frozen=True)
class ConfigIssue:
    """One thing wrong in one configuration file."""

    file: str
    path: tuple[str | int, ...]
    message: str
    whole_file: bool = False
    """About the file itself (cannot be read, not JSON, not a regular file): no JSON path is shown."""
    harmless: bool = field(default=False, compare=False)
    """An unknown key: the object around it still means what its other keys say, so the checks
    that read it run as well (a `distribtion` typo must not hide a default outside its range)."""

    def __str__(self) -> str:
        if self.whole_file:
            return f"{self.file}: {self.message}"
        return f"{self.file}: {format_path(self.path)}: {self.message}"


class ConfigError(ToolExit):
    """A settings file or registry that cannot be used; carries every issue found (exit 2)."""

    def __init__(self, issues: Sequence[ConfigIssue]):
        if not issues:
            raise ValueError("ConfigError needs at least one issue")
        self.issues = list(issues)
        super().__init__(*(str(issue) for issue in self.issues))

    def lines(self) -> list[str]:
        count = len(self.issues)
        return [f"error: {count} problem{'s' if count != 1 else ''} found:", *(f"  {issue}" for issue in self.issues)]


def file_error(file: str, message: str) -> ConfigError:
    """A ConfigError about a file as a whole (unreadable, the wrong format): no JSON path is shown."""
    return ConfigError([ConfigIssue(file, (), message, whole_file=True)])


def broken_under(issues: Iterable[ConfigIssue], path: JsonPath) -> bool:
    """Whether an issue that changes what the document means lies at `path` or inside it: the
    checks that read that part are skipped (they would only repeat it, or fail on its shape)."""
    size = len(path)
    return any(not issue.harmless and tuple(issue.path[:size]) == tuple(path) for issue in issues)
