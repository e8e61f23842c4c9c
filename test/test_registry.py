"""Registry checks beyond the schema, each reported with its JSON path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from energy_profiler.config.errors import ConfigError
from energy_profiler.config.registry import load_registry
from test.conftest import PROJECT_ROOT, REAL_REGISTRY, fake_repo, invoke


def registry_issues(write_json: Callable[[str, Any], Path], document: dict[str, Any]) -> list[str]:
    file = write_json("models.json", document)
    with pytest.raises(ConfigError) as caught:
        load_registry(file)
    return [str(issue).split(": ", 1)[1] for issue in caught.value.issues]


def with_hp(**fields: Any) -> dict[str, Any]:
    repo = fake_repo()
    repo["hyperparameters"]["learning_rate"].update(fields)
    return {"repositories": {"fake": repo}}


@pytest.mark.parametrize(("document", "expected"), [
    (with_hp(default=0.9), "repositories.fake.hyperparameters.learning_rate.default: "
                           "default 0.9 is outside the range [0.001, 0.4]"),
    (with_hp(range=[0.0, 0.4]), "repositories.fake.hyperparameters.learning_rate.range: "
                                "log_uniform needs a range above 0 (use zero_probability to draw 0)"),
    (with_hp(range=[0.5, 0.4]), "repositories.fake.hyperparameters.learning_rate.range: "
                                "low end 0.5 is above high end 0.4"),
    (with_hp(limits=[0.01, 1.0]), "repositories.fake.hyperparameters.learning_rate.limits: limits [0.01, 1] do "
                                  "not contain the range [0.001, 0.4]: mutation could draw what a fixed value "
                                  "may not take"),
    (with_hp(default=0.9, limits=[0.001, 0.5]), "repositories.fake.hyperparameters.learning_rate.default: default 0.9 "
                                                "is outside the limits [0.001, 0.5] (mutation range [0.001, 0.4])"),
    (with_hp(distribution="normal"), "repositories.fake.hyperparameters.learning_rate.distribution: "
                                     "'normal' is not one of 'uniform', 'log_uniform'"),
    (with_hp(flg="--x"), "repositories.fake.hyperparameters.learning_rate.flg: unknown key 'flg' "
                         "(did you mean 'flag'?)"),
    ({"repositories": {"fake": fake_repo(metrics={"acc": {"pattern": "acc: [0-9.]+"}})}},
     "repositories.fake.metrics.acc.pattern: needs exactly one capture group, has 0"),
    ({"repositories": {"fake": fake_repo(metrics={"acc": {"pattern": "(acc): ([0-9.]+)"}})}},
     "repositories.fake.metrics.acc.pattern: needs exactly one capture group, has 2"),
    ({"repositories": {"fake": fake_repo(metrics={"acc": {"pattern": "acc: ([0-9.]+"}})}},
     "repositories.fake.metrics.acc.pattern: not a valid regular expression"),
    ({"repositories": {"fake": fake_repo(models={"tiny": {"hyperparameters": {"lr": {"default": 0.2}}}})}},
     "repositories.fake.models.tiny.hyperparameters.lr: overrides unknown hyperparameter 'lr'"),
    ({"repositories": {"fake": fake_repo(models={"tiny": {"hyperparameters": {"epochs": {"default": 9}}}})}},
     "repositories.fake.models.tiny.hyperparameters.epochs.default: default 9 is outside the range [1, 5]"),
    ({"repositories": {"fake": fake_repo(models={"tiny": {"metrics": {"top5": {"required": True}}}})}},
     "repositories.fake.models.tiny.metrics.top5: metric 'top5' is not the repository's, so it needs a pattern"),
    ({"repositories": {"fake": fake_repo(failure_patterns=["ok", "(unclosed"])}},
     "repositories.fake.failure_patterns[1]: not a valid regular expression: missing ), unterminated subpattern "
     "at position 0"),
    ({"repositories": {"fake": fake_repo(models={"tiny": {"success_marker": "["}})}},
     "repositories.fake.models.tiny.success_marker: not a valid regular expression: unterminated character set "
     "at position 0"),
    ({"repositories": {"fake": fake_repo(python="python3")}},
     "repositories.fake.python: 'python' is set but command does not start with '{python}'"),
    ({"repositories": {"fake": fake_repo(command="python3 train.py")}},
     "repositories.fake.command: expected a list, got the string 'python3 train.py'"),
    ({"repositories": {"fake": {**fake_repo(models={"a": {}, "b": {}}), "model_flag": None}}},
     "repositories.fake.model_flag: expected a string, got null"),
    ({"repositories": {"fake": fake_repo(env={"X=1;touch pwned;Y": "v"})}},
     'repositories.fake.env["X=1;touch pwned;Y"]: \'X=1;touch pwned;Y\' is not an environment variable name'),
    ({"repositories": {"fake": fake_repo(env={"A\nB": "v"})}},
     'repositories.fake.env["A\\nB"]: \'A\\nB\' is not an environment variable name'),
])
def test_registry_errors_name_the_path(write_json: Callable[[str, Any], Path], document: dict[str, Any],
                                       expected: str) -> None:
    issues = registry_issues(write_json, document)
    assert any(issue.startswith(expected) for issue in issues), issues


def test_a_typo_in_a_registry_hides_none_of_its_other_problems(write_json: Callable[[str, Any], Path]) -> None:
    # Seen by a user: a `distribtion` typo hid `default 50 is outside the range [1, 20]`.
    repo = fake_repo(models={"tiny": {"hyperparameters": {"learning_rate": {"default": 0.9}, "batch": {}}},
                             "small": {"timeout_s": -1}}, model_flag="--model")
    repo["hyperparameters"]["epochs"] = {"flag": "--epochs", "type": "int", "default": 50, "range": [1, 20],
                                         "distribtion": "uniform"}
    repo["hyperparameters"]["momentum"] = {"flag": "--momentum", "type": "float", "default": "high", "range": [0, 1]}
    repo["metrics"]["acc"] = {"pattern": "acc: [0-9.]+", "requried": True}
    issues = registry_issues(write_json, {"repositories": {"fake": repo, "other": {**fake_repo(), "path": 3}}})
    expected = [
        "repositories.fake.hyperparameters.epochs.distribtion: unknown key 'distribtion' (did you mean "
        "'distribution'?)",
        "repositories.fake.hyperparameters.epochs.default: default 50 is outside the range [1, 20]",
        "repositories.fake.hyperparameters.momentum.default: the default of a float must be a number, not 'high'",
        "repositories.fake.metrics.acc.requried: unknown key 'requried' (did you mean 'required'?)",
        "repositories.fake.metrics.acc.pattern: needs exactly one capture group, has 0",
        "repositories.fake.models.tiny.hyperparameters.learning_rate.default: default 0.9 is outside the range",
        "repositories.fake.models.tiny.hyperparameters.batch: overrides unknown hyperparameter 'batch'",
        "repositories.fake.models.small.timeout_s: -1 is less than or equal to the minimum of 0",
        "repositories.other.path: expected a string, got 3",
    ]
    for fragment in expected:
        assert sum(issue.startswith(fragment) for issue in issues) == 1, (fragment, issues)
    assert len(issues) == len(expected), issues


def test_a_broken_hyperparameter_hides_neither_the_overrides_of_the_others(
        write_json: Callable[[str, Any], Path]) -> None:
    overrides = {"learning_rate": {"default": 0.9}, "epochs": {"default": 3}}
    repo = fake_repo(models={"tiny": {"hyperparameters": overrides}})
    repo["hyperparameters"]["epochs"]["type"] = "integer"  # not a type the schema knows: epochs is broken
    issues = registry_issues(write_json, {"repositories": {"fake": repo}})
    assert any(issue.startswith("repositories.fake.hyperparameters.epochs.type: 'integer' is not one of")
               for issue in issues), issues
    # learning_rate is sound: its model override is still checked; epochs' override is not reported again.
    assert any(issue.startswith("repositories.fake.models.tiny.hyperparameters.learning_rate.default: default 0.9")
               for issue in issues), issues
    assert not any("models.tiny.hyperparameters.epochs" in issue for issue in issues), issues


def test_several_models_need_a_model_flag(write_json: Callable[[str, Any], Path]) -> None:
    repo = fake_repo(models={"a": {}, "b": {}})
    del repo["model_flag"]
    issues = registry_issues(write_json, {"repositories": {"fake": repo}})
    assert issues == ["repositories.fake.model_flag: several models but no model_flag: "
                      "the training could not tell them apart"]


def test_relative_paths_are_the_registry_folders_and_stay_inside_it(
        write_json: Callable[[str, Any], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ok").mkdir()
    issues = registry_issues(write_json, {"repositories": {
        "escape": fake_repo(path="../elsewhere"), "fine": fake_repo(path="ok")}})
    assert len(issues) == 1
    assert issues[0].startswith("repositories.escape.path: '../elsewhere' leads outside the registry's folder")
    registry_file = write_json("models.json", {"repositories": {"fine": fake_repo(path="ok")}})
    monkeypatch.chdir(tmp_path.parent)  # from any working folder, the same repository
    assert load_registry(registry_file.relative_to(tmp_path.parent)).repositories["fine"].path == tmp_path / "ok"


def test_model_overrides_merge_into_the_repository_spec() -> None:
    registry = load_registry(REAL_REGISTRY)
    repo = registry.repositories["examples"]
    assert repo.path == PROJECT_ROOT / "repos" / "examples"
    deep = repo.models["deep_mlp"].hyperparameters["learning_rate"]
    plain = repo.models["mlp"].hyperparameters["learning_rate"]
    assert (deep.default, plain.default) == (0.02, 0.05)
    assert (deep.low, deep.high, deep.distribution) == (plain.low, plain.high, "log_uniform")
    # The registry's system knobs follow each model's own hyperparameters, flagless and without a default.
    assert list(repo.models["mlp"].hyperparameters) == ["epochs", "learning_rate", "batch_size", "dropout",
                                                        "weight_decay", "seed", "gpu_power_limit_w",
                                                        "gpu_sm_clock_mhz", "cpu_max_freq_khz", "cpu_governor"]
    knob = repo.models["mlp"].hyperparameters["gpu_power_limit_w"]
    assert (knob.knob, knob.flag, knob.default, knob.default_text) == (True, "", None, "")


def test_a_broken_registry_stops_every_command(write_json: Callable[[str, Any], Path]) -> None:
    file = write_json("models.json", with_hp(default=0.9))
    for args in (["list"], ["plan", PROJECT_ROOT / "settings" / "quickstart.json"]):
        result = invoke("--registry", file, *args)
        assert result.exit_code == 2
        assert "learning_rate.default: default 0.9 is outside the range" in result.stderr


def test_a_model_changes_which_repository_metrics_are_required_and_adds_its_own(
        write_json: Callable[[str, Any], Path]) -> None:
    repo = fake_repo(models={"tiny": {}, "big": {"metrics": {"loss": {"required": True},
                                                             "top5": {"pattern": "top5: ([0-9.]+)"}}}},
                     failure_patterns=["Traceback"])
    repo["models"]["big"]["failure_patterns"] = ["NaN loss"]
    registry = load_registry(write_json("models.json", {"repositories": {"fake": repo}}))
    tiny, big = registry.repositories["fake"].models["tiny"], registry.repositories["fake"].models["big"]
    assert {name: m.required for name, m in tiny.metrics.items()} == {"accuracy": True, "loss": False}
    assert {name: m.required for name, m in big.metrics.items()} == {"accuracy": True, "loss": True, "top5": False}
    assert big.metrics["loss"].pattern.pattern == tiny.metrics["loss"].pattern.pattern  # inherited
    assert [p.pattern for p in big.failure_patterns] == ["Traceback", "NaN loss"]
    assert [p.pattern for p in tiny.failure_patterns] == ["Traceback"] and tiny.success_marker is None
