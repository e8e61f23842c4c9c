"""Bad settings files: every error names the file and the JSON path, exit 2, nothing written."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from energy_profiler.config.errors import ConfigError
from energy_profiler.config.registry import load_registry
from energy_profiler.config.settings import load_settings
from test.conftest import PROJECT_ROOT, REAL_REGISTRY, invoke

GOOD_EXPERIMENT = {"mode": "default", "repo": "examples", "model": "mlp"}


def settings(*experiments: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"experiment_name": "t", "experiments": list(experiments) or [GOOD_EXPERIMENT], **top}


def mutation(**fields: Any) -> dict[str, Any]:
    return {"mode": "mutation", "repo": "examples", "model": "mlp", "mutate": ["learning_rate"], **fields}


# (settings document, expected "path: message" fragments, each of which must appear)
BAD_FILES: list[tuple[dict[str, Any], list[str]]] = [
    (settings(runs_per_confg=2), ["runs_per_confg: unknown key 'runs_per_confg' (did you mean 'runs_per_config'?)"]),
    ({"experiments": [GOOD_EXPERIMENT]}, ["(root): missing required key 'experiment_name'"]),
    (settings(seed="7"), ["seed: expected an integer, got the string '7'"]),
    (settings(max_retries=-1), ["max_retries: -1 is less than the minimum of 0"]),
    (settings(experiment_name="has space"), ["experiment_name: 'has space' does not match"]),
    (settings({"mode": "paralel", "repo": "examples", "model": "mlp"}),
     ["experiments[0].mode: 'paralel' is not one of 'default', 'mutation', 'parallel' (did you mean 'parallel'?)"]),
    (settings({"mode": "mutaton", "repo": "examples", "model": "mlp", "mutate": ["epochs"]}),
     ["experiments[0].mode: 'mutaton' is not one of 'default', 'mutation', 'parallel' (did you mean 'mutation'?)"]),
    (settings(GOOD_EXPERIMENT, {"mode": "default", "repo": "exmaples", "model": "mlp"}),
     ["experiments[1].repo: unknown repository 'exmaples' (did you mean 'examples'?)"]),
    (settings({"mode": "default", "repo": "examples", "model": "mpl"}),
     ["experiments[0].model: unknown model 'mpl' for repository 'examples' (did you mean 'mlp'?)"]),
    (settings(GOOD_EXPERIMENT, GOOD_EXPERIMENT, mutation(mutate=["lr"])),
     ["experiments[2].mutate[0]: unknown hyperparameter 'lr' for examples/mlp (did you mean 'learning_rate'?)"]),
    (settings(mutation(mutate=["learning_rate", "epochz"])),
     ["experiments[0].mutate[1]: unknown hyperparameter 'epochz' for examples/mlp (did you mean 'epochs'?)"]),
    (settings(mutation(mutate=[])), ["experiments[0].mutate: [] should be non-empty"]),
    (settings({"mode": "mutation", "repo": "examples", "model": "mlp"}),
     ["experiments[0]: missing required key 'mutate'"]),
    (settings({**GOOD_EXPERIMENT, "mutate": ["epochs"]}),
     ["experiments[0].mutate: 'mutate' is only allowed with mode 'mutation' (mode is 'default')"]),
    (settings({**GOOD_EXPERIMENT, "hyperparameters": {"epochs": 2.5}}),
     ["experiments[0].hyperparameters.epochs: 2.5 is not a valid int for 'epochs'"]),
    (settings({**GOOD_EXPERIMENT, "hyperparameters": {"epochs": "3"}}),
     ["experiments[0].hyperparameters.epochs: expected a number, got the string '3'"]),
    (settings({**GOOD_EXPERIMENT, "hyperparameters": {"epochs": 500}}),
     ["experiments[0].hyperparameters.epochs: 500 is outside the range [1, 20] of 'epochs'"]),
    (settings({**GOOD_EXPERIMENT, "hyperparameters": {"learnin_rate": 0.1}}),
     ["experiments[0].hyperparameters.learnin_rate: unknown hyperparameter 'learnin_rate' for examples/mlp "
      "(did you mean 'learning_rate'?)"]),
    (settings(mutation(hyperparameters={"learning_rate": 0.01})),
     ["experiments[0].mutate[0]: 'learning_rate' is both mutated and fixed in hyperparameters"]),
    (settings(mutation(mutate=["all", "epochs"])), ["experiments[0].mutate[0]: 'all' already draws 'epochs': beside "
                                                    "'all', name only what it leaves out (seeds and system knobs)"]),
    (settings(mutation(mutate=["epochs"], hyperparameters={"learning_rate": 0.01}, runs_per_config=25)),
     ["experiments[0].runs_per_config: asks for 25 unique combinations of epochs, but only 19 exist"]),
    (settings({"mode": "parallel", "foreground": {"repo": "examples", "model": "mlp"},
               "background": [{"repo": "examples", "model": "mlp"}, {"repo": "examples", "model": "cnn"}]}),
     ["experiments[0].background[1].model: unknown model 'cnn' for repository 'examples'"]),
    (settings({"mode": "parallel", "background": {"repo": "examples", "model": "mlp"},
               "foreground": {"repo": "examples", "model": "mlp", "mode": "mutation", "mutate": ["lr"]}}),
     ["experiments[0].foreground.mutate[0]: unknown hyperparameter 'lr' for examples/mlp "
      "(did you mean 'learning_rate'?)"]),
    (settings({"mode": "parallel", "foreground": {"repo": "examples", "model": "mlp"}}),
     ["experiments[0]: missing required key 'background'"]),
    (settings({"mode": "parallel", "repo": "examples", "foreground": {"repo": "examples", "model": "mlp"},
               "background": {"repo": "examples", "model": "mlp", "mutate": ["epochs"]}}),
     ["experiments[0].repo: 'repo' is not allowed with mode 'parallel'",
      "experiments[0].background.mutate: unknown key 'mutate' ('mutate' is a key of other parts of a settings "
      "file, not of this one)"]),
    (settings({**GOOD_EXPERIMENT, "warmup_s": 5}),
     ["experiments[0].warmup_s: 'warmup_s' is not allowed with mode 'default'"]),
    (settings({"mode": "parallel", "foreground": {"repo": "examples", "model": "mlp", "gpus": []},
               "background": {"repo": "examples", "model": "mlp", "restart_delay_s": -1}}),
     ["experiments[0].foreground.gpus: [] should be non-empty",
      "experiments[0].background.restart_delay_s: -1 is less than the minimum of 0"]),
    (settings({**GOOD_EXPERIMENT, "env": {"OK_1": "$(x)", "X=1;touch pwned;Y": "v", "9LIVES": "v"}}),
     ['experiments[0].env["X=1;touch pwned;Y"]: \'X=1;touch pwned;Y\' is not an environment variable name: use '
      "letters, digits and _, not starting with a digit",
      'experiments[0].env["9LIVES"]: \'9LIVES\' is not an environment']),
    (settings({**GOOD_EXPERIMENT, "timeout": 5}),
     ["experiments[0].timeout: unknown key 'timeout' (did you mean 'timeout_s'?)"]),
    # Never the opposite meaning: the older tool's `nonparallel` is not `parallel`, and a background's
    # `mode` is not a misspelt `model`.
    (settings({**GOOD_EXPERIMENT, "mode": "nonparallel"}),
     ["experiments[0].mode: 'nonparallel' is not one of 'default', 'mutation', 'parallel' (the older tool's "
      "'nonparallel' is mode 'mutation' here: one training at a time)"]),
    (settings({**GOOD_EXPERIMENT, "mode": "non-default"}),
     ["experiments[0].mode: 'non-default' is not one of 'default', 'mutation', 'parallel'"]),
    (settings({"mode": "parallel", "foreground": {"repo": "examples", "model": "mlp"},
               "background": {"repo": "examples", "model": "mlp", "mode": "default"}}),
     ["experiments[0].background.mode: unknown key 'mode' ('mode' is a key of other parts of a settings file, "
      "not of this one)"]),
    (settings({**GOOD_EXPERIMENT, "time\nout": 5}),
     ['experiments[0]["time\\nout"]: unknown key "time\\nout"']),
    # `limits`: only for this experiment's fixed numbers, and only [low, high].
    (settings({**GOOD_EXPERIMENT, "limits": {"epochs": [1, 30]}}),
     ["experiments[0].limits.epochs: 'epochs' has no fixed value in this experiment: limits only let a fixed value "
      "(in hyperparameters) lie outside the registry's"]),
    (settings({**GOOD_EXPERIMENT, "hyperparameters": {"epochs": 30}, "limits": {"epochs": [40, 30]}}),
     ["experiments[0].limits.epochs: expected [low, high], two numbers with low <= high",
      "experiments[0].hyperparameters.epochs: 30 is outside the range [1, 20] of 'epochs'"]),
    (settings({**GOOD_EXPERIMENT, "hyperparameters": {"epochs": 30}, "limits": {"epoch": [1, 30]}}),
     ["experiments[0].limits.epoch: unknown hyperparameter 'epoch' for examples/mlp (did you mean 'epochs'?)"]),
    (settings({**GOOD_EXPERIMENT, "hyperparameters": {"epochs": 30}, "limits": {"epochs": [1, 25]}}),
     ["experiments[0].hyperparameters.epochs: 30 is outside the limits [1, 25] (mutation range [1, 20]) of 'epochs'"]),
]


@pytest.mark.parametrize(("document", "expected"), BAD_FILES)
def test_bad_settings_exit_2_with_paths_and_write_nothing(
    document: dict[str, Any], expected: list[str], write_json: Callable[[str, Any], Path], tmp_path: Path
) -> None:
    file = write_json("bad.json", document)
    results = tmp_path / "results"
    result = invoke("--results-dir", results, "run", file)
    assert result.exit_code == 2, result.output
    for fragment in expected:
        assert f"{file}: {fragment}" in result.stderr, result.stderr
    assert not results.exists()  # nothing started, nothing written


def test_every_error_of_a_file_is_reported_not_only_the_first(write_json: Callable[[str, Any], Path]) -> None:
    file = write_json("many.json", settings(
        {"mode": "default", "repo": "examples", "model": "mpl"},
        mutation(mutate=["lr"]),
        {**GOOD_EXPERIMENT, "colour": "red"},
        cooldown=3,
    ))
    result = invoke("validate", file)
    assert result.exit_code == 2
    # Unknown keys and the registry's cross-checks, all in one pass.
    for fragment in ["cooldown: unknown key 'cooldown' (did you mean 'cooldown_s'?)",
                     "experiments[2].colour: unknown key 'colour'",
                     "experiments[0].model: unknown model 'mpl'",
                     "experiments[1].mutate[0]: unknown hyperparameter 'lr'"]:
        assert fragment in result.stderr
    assert result.stderr.startswith("error: 4 problems found")


def test_a_schema_error_in_an_experiment_hides_none_of_its_other_problems(
        write_json: Callable[[str, Any], Path]) -> None:
    # Seen by a user: `runs_per_config: 0` hid `dropout: 1` outside its range, an unknown repo and model.
    file = write_json("hidden.json", settings(
        {**mutation(), "runs_per_config": 0, "hyperparameters": {"dropout": 1}},
        {"mode": "default", "repo": "exmaples", "model": "mlp", "runs_per_config": 0},
        {"mode": "default", "repo": "examples", "model": "mpl", "timeout_s": "long"},
        {"mode": "parallel", "runs_per_config": -1,
         "foreground": {"repo": "examples", "model": "mlp", "mode": "mutation", "mutate": ["lr"]},
         "background": {"repo": "examples", "model": "deep", "hyperparameters": {"epochs": 500}}},
        runs_per_config="two"))
    result = invoke("validate", file)
    assert result.exit_code == 2
    problems = [line.strip() for line in result.stderr.splitlines()[1:]]
    expected = [
        "experiments[0].runs_per_config: 0 is less than the minimum of 1",
        "experiments[0].hyperparameters.dropout: 1.0 is outside the range [0, 0.5] of 'dropout'",
        "experiments[1].runs_per_config: 0 is less than the minimum of 1",
        "experiments[1].repo: unknown repository 'exmaples' (did you mean 'examples'?)",
        "experiments[2].timeout_s: expected a number, got the string 'long'",
        "experiments[2].model: unknown model 'mpl' for repository 'examples' (did you mean 'mlp'?)",
        "experiments[3].runs_per_config: -1 is less than the minimum of 1",
        "experiments[3].foreground.mutate[0]: unknown hyperparameter 'lr' for examples/mlp",
        "experiments[3].background.model: unknown model 'deep' for repository 'examples' (did you mean 'deep_mlp'?)",
        "runs_per_config: expected an integer, got the string 'two'",
    ]
    for fragment in expected:
        assert sum(f"{file}: {fragment}" in line for line in problems) == 1, (fragment, problems)  # once each
    assert len(problems) == len(expected), problems
    assert result.stderr.startswith(f"error: {len(expected)} problems found:")


def test_an_experiments_limits_let_its_fixed_values_lie_outside_the_registrys_for_it_alone(
        write_json: Callable[[str, Any], Path]) -> None:
    quick = {**GOOD_EXPERIMENT, "hyperparameters": {"epochs": 30}, "limits": {"epochs": [1, 30]}}
    ok = invoke("validate", write_json("quick.json", settings(quick)))
    assert ok.exit_code == 0, ok.output
    other = invoke("validate", write_json("other.json", settings(quick, {**GOOD_EXPERIMENT,
                                                                        "hyperparameters": {"epochs": 30}})))
    assert other.exit_code == 2 and "experiments[1].hyperparameters.epochs: 30 is outside" in other.stderr


def test_an_older_tools_settings_file_gets_one_line_that_names_the_command_converting_it(
        write_json: Callable[[str, Any], Path]) -> None:
    older = write_json("stage.json", {"use_deduplication": True, "historical_csvs": ["data/raw_data.csv"],
                                      "experiments": [{"repo": "examples", "model": "mlp", "mode": "nonparallel",
                                                       "mutate_params": ["epochs"]}]})
    result = invoke("validate", older)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: 1 problem found:",
        f"  {older}: is the older tool's settings format (use_deduplication, historical_csvs, no experiment_name, "
        f"mutate_params, mode nonparallel); convert it with `mutation.py migrate settings {older} -o settings/`"]
    listed = write_json("list.json", [GOOD_EXPERIMENT])
    assert "is the older tool's settings format (a JSON list of experiments)" in invoke("validate", listed).stderr


def test_annotations_are_allowed(write_json: Callable[[str, Any], Path]) -> None:
    file = write_json("annotated.json", settings(
        {**GOOD_EXPERIMENT, "comment": "baseline", "_todo": "more epochs"},
        description="x", notes=["a"], _private={"any": 1}))
    result = invoke("validate", file)
    assert result.exit_code == 0, result.stderr
    assert f"ok: {file} (1 trial)" in result.stdout


def test_invalid_json_names_line_and_column(tmp_path: Path) -> None:
    file = tmp_path / "broken.json"
    file.write_text('{\n  "experiment_name": "x",\n  "experiments": [,]\n}')
    result = invoke("run", file)
    assert result.exit_code == 2
    assert f"{file}: not valid JSON: Expecting value at line 3, column 19" in result.stderr


@pytest.mark.parametrize(("text", "hint"), [
    ('{"experiment_name": "t",}', "(a trailing comma at line 1, column 24, before '}': JSON allows none after the "
                                  "last item)"),
    ('{"experiments": [1,\n 2,\n]}', "at line 3, column 1 (a trailing comma at line 2, column 3, before ']'"),
    ('{\n  // my campaign\n  "experiment_name": "t"}', "(a comment: JSON has none; write a note as a key starting "
                                                      "with '_', or as \"comment\": \"...\")"),
    ("{'experiment_name': 't'}", "(single quotes: JSON strings and keys take double quotes)"),
    ('{"run_as_root": True}', "(True is Python: JSON writes true, false and null)"),
])
def test_a_json_syntax_error_names_its_usual_cause(tmp_path: Path, text: str, hint: str) -> None:
    file = tmp_path / "s.json"
    file.write_text(text)
    result = invoke("validate", file)
    assert result.exit_code == 2
    assert hint in result.stderr and f"{file}: not valid JSON: " in result.stderr


def test_missing_settings_file_exits_2(tmp_path: Path) -> None:
    result = invoke("--results-dir", tmp_path / "r", "-ec", tmp_path / "nope.json")
    assert result.exit_code == 2
    assert "nope.json: file not found" in result.stderr
    assert not (tmp_path / "r").exists()


def test_missing_repository_folder_is_a_settings_error(
    write_json: Callable[[str, Any], Path], fake_registry: Callable[..., Path], tmp_path: Path
) -> None:
    from test.conftest import fake_repo

    registry = fake_registry(gone=fake_repo(path=str(tmp_path / "not-cloned")))
    file = write_json("s.json", settings({"mode": "default", "repo": "gone", "model": "tiny"}))
    result = invoke("--registry", registry, "validate", file)
    assert result.exit_code == 2
    assert "experiments[0].repo: folder" in result.stderr and "does not exist" in result.stderr


def test_shipped_settings_files_are_valid_and_reference_the_schema() -> None:
    registry = load_registry(REAL_REGISTRY)
    files = sorted((PROJECT_ROOT / "settings").glob("*.json"))
    assert files
    for file in files:
        document = json.loads(file.read_text())
        assert document["$schema"] == "../energy_profiler/config/settings.schema.json"
        assert (file.parent / document["$schema"]).is_file()
        load_settings(file, registry)  # raises on any problem


def test_config_error_lists_file_and_path() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(PROJECT_ROOT / "does-not-exist.json", load_registry(REAL_REGISTRY))
    assert str(caught.value).endswith("does-not-exist.json: file not found")


def test_one_validate_reports_schema_cross_check_and_plan_problems_together(
        write_json: Callable[[str, Any], Path]) -> None:
    # The older tool's files came back in waves (2, 43, 2): top-level errors hid the experiments',
    # schema errors hid the registry's, and space checks ran only once all else was fixed.
    file = write_json("waves.json", settings(
        {"mode": "default", "repo": "examples", "model": "mpl"},          # registry cross-check
        {**GOOD_EXPERIMENT, "colour": "red"},                             # schema
        mutation(mutate=["epochs"], runs_per_config=25),                   # plan: the space is too small
        {**GOOD_EXPERIMENT, "hyperparameters": {"epochs": 500}},          # range
        use_deduplication=True,                                           # top level
    ))
    result = invoke("validate", file)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == "error: 5 problems found:"
    problems = [line.removeprefix(f"  {file}: ") for line in result.stderr.splitlines()[1:]]
    assert problems == [
        "experiments[0].model: unknown model 'mpl' for repository 'examples' (did you mean 'mlp'?); "
        "it has: softmax, mlp, deep_mlp",
        "experiments[1].colour: unknown key 'colour'",
        "experiments[2].runs_per_config: asks for 25 unique combinations of epochs, but only 19 exist besides "
        "the defaults, earlier trials and the history; widen the ranges, mutate more hyperparameters or lower "
        "runs_per_config",
        "experiments[3].hyperparameters.epochs: 500 is outside the range [1, 20] of 'epochs'",
        "use_deduplication: unknown key 'use_deduplication'",
    ]
    # A top-level value that is wrong (not merely unknown) may change what the plan would be: its
    # experiments are still checked against the registry, but not planned.
    wrong_top = write_json("waves2.json", settings(mutation(mutate=["epochs"], runs_per_config=25), seed="x"))
    result = invoke("validate", wrong_top)
    problems = [line.removeprefix(f"  {wrong_top}: ") for line in result.stderr.splitlines()[1:]]
    assert problems == ["seed: expected an integer, got the string 'x'"]
