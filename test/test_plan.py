"""Plans: reproducible, unique draws, the default never drawn, the exact strings passed."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from energy_profiler.config.errors import ConfigError
from energy_profiler.config.registry import load_registry
from energy_profiler.config.settings import settings_from_document
from energy_profiler.planning.plan import Plan, build_plan
from test.conftest import PROJECT_ROOT, REAL_REGISTRY, invoke, real_registry_document

REGISTRY = load_registry(REAL_REGISTRY)


def plan_of(*experiments: dict[str, Any], seed: int = 7, **top: Any) -> Plan:
    document = {"experiment_name": "t", "experiments": list(experiments), **top}
    settings = settings_from_document(document, PROJECT_ROOT / "t.json", REGISTRY)
    return build_plan(settings, REGISTRY, seed, python="python-under-test")


def mutation(*names: str, runs: int = 5, **fields: Any) -> dict[str, Any]:
    return {"mode": "mutation", "repo": "examples", "model": "mlp", "mutate": list(names),
            "runs_per_config": runs, **fields}


def test_same_settings_and_seed_give_the_identical_plan() -> None:
    experiments = [mutation("learning_rate", "batch_size", "weight_decay", runs=20),
                   mutation("all", runs=10)]
    first, second = plan_of(*experiments, seed=11), plan_of(*experiments, seed=11)
    assert first.to_json() == second.to_json()
    other = plan_of(*experiments, seed=12)
    assert [t.hyperparameters for t in other.trials] != [t.hyperparameters for t in first.trials]


def test_mutation_draws_are_unique_and_never_the_default() -> None:
    plan = plan_of(mutation("epochs", runs=19))  # epochs 1..20 minus the default 5: exactly 19 left
    values = [dict(trial.hyperparameters)["epochs"] for trial in plan.trials]
    assert sorted(values, key=int) == [str(n) for n in range(1, 21) if n != 5]


def test_one_more_than_the_space_holds_is_refused_before_running() -> None:
    with pytest.raises(ConfigError, match=r"experiments\[0\]\.runs_per_config: asks for 20 unique combinations"):
        plan_of(mutation("epochs", runs=20))


def test_uniqueness_spans_experiments_of_the_same_model() -> None:
    plan = plan_of(mutation("epochs", runs=10), mutation("epochs", runs=9))
    keys = [trial.hyperparameters for trial in plan.trials]
    assert len(set(keys)) == 19
    with pytest.raises(ConfigError, match=r"experiments\[1\]\.runs_per_config: .* only 9 exist"):
        plan_of(mutation("epochs", runs=10), mutation("epochs", runs=10))


def test_default_runs_are_not_drawn_again_by_mutation() -> None:
    fixed = {"mode": "default", "repo": "examples", "model": "mlp", "hyperparameters": {"epochs": 3}}
    plan = plan_of(fixed, mutation("epochs", runs=18))
    drawn = [dict(t.hyperparameters)["epochs"] for t in plan.trials[1:]]
    assert "3" not in drawn and "5" not in drawn and len(set(drawn)) == 18


def test_default_mode_repeats_and_mutation_keeps_fixed_values() -> None:
    plan = plan_of({"mode": "default", "repo": "examples", "model": "softmax", "runs_per_config": 2},
                   mutation("learning_rate", runs=3, hyperparameters={"epochs": 2}))
    assert [t.mode for t in plan.trials] == ["default", "default", "mutation", "mutation", "mutation"]
    assert plan.trials[0].hyperparameters == plan.trials[1].hyperparameters
    assert all(dict(t.hyperparameters)["epochs"] == "2" for t in plan.trials[2:])
    assert all(t.mutated == ("learning_rate",) for t in plan.trials[2:])
    assert [t.run for t in plan.trials] == [1, 2, 1, 2, 3]
    assert [t.index for t in plan.trials] == [1, 2, 3, 4, 5]


def test_mutate_all_draws_every_hyperparameter_not_fixed() -> None:
    plan = plan_of(mutation("all", runs=3, hyperparameters={"seed": 1}))
    assert plan.trials[0].mutated == ("epochs", "learning_rate", "batch_size", "dropout", "weight_decay")


def test_mutate_all_leaves_a_seed_out_says_so_and_draws_it_only_when_named(tmp_path: Path) -> None:
    # The bundled registry marks `seed` with "seed": true.
    plan = plan_of(mutation("all", runs=3))
    assert all("seed" not in trial.mutated for trial in plan.trials)
    assert {dict(trial.hyperparameters)["seed"] for trial in plan.trials} == {"42"}  # the default, every trial
    assert plan.lines()[0] == ("experiments[0]: mutate all leaves seed out (a seed in the registry: drawn, it would "
                               "mix run-to-run noise into every effect); name it in mutate to draw it")
    assert plan.lines()[1].startswith("experiments[0]: mutate all leaves the system knobs gpu_power_limit_w, ")
    assert len(plan.lines()) == 2
    named = plan_of(mutation("seed", "epochs", runs=3))
    assert all("seed" in trial.mutated for trial in named.trials) and named.lines() == []
    assert len({dict(trial.hyperparameters)["seed"] for trial in named.trials}) == 3
    settings = tmp_path / "all.json"
    settings.write_text(json.dumps({"experiment_name": "all", "seed": 1, "experiments": [mutation("all", runs=2)]}))
    result = invoke("plan", settings)
    assert result.exit_code == 0 and "experiments[0]: mutate all leaves seed out" in result.stdout


def test_argv_carries_the_canonical_strings_in_registry_order() -> None:
    plan = plan_of({"mode": "default", "repo": "examples", "model": "mlp",
                    "hyperparameters": {"epochs": 7.0, "learning_rate": 0.00636}})
    trial = plan.trials[0]
    assert trial.argv == ("python-under-test", "train.py", "--model", "mlp", "--epochs", "7",
                          "--lr", "0.00636", "--batch-size", "32", "--dropout", "0.0",
                          "--weight-decay", "0.0001", "--seed", "42")
    assert dict(trial.hyperparameters)["learning_rate"] == "0.00636"
    assert trial.cwd == str(PROJECT_ROOT / "repos" / "examples")


def test_timeouts_come_from_experiment_then_settings_then_registry() -> None:
    base = {"mode": "default", "repo": "examples", "model": "mlp"}
    assert plan_of(base).trials[0].timeout_s == 600
    assert plan_of(base, timeout_s=30).trials[0].timeout_s == 30
    assert plan_of({**base, "timeout_s": 5}, timeout_s=30).trials[0].timeout_s == 5


def test_python_placeholder_defaults_to_the_running_interpreter() -> None:
    document = {"experiment_name": "t", "experiments": [{"mode": "default", "repo": "examples", "model": "mlp"}]}
    settings = settings_from_document(document, PROJECT_ROOT / "t.json", REGISTRY)
    assert build_plan(settings, REGISTRY, 1).trials[0].argv[0] == sys.executable


def test_a_plan_read_back_from_its_json_is_the_same_plan() -> None:
    import json

    from energy_profiler.planning.plan import Plan

    plan = plan_of(mutation("learning_rate", runs=3),
                   {"mode": "parallel", "foreground": {"repo": "examples", "model": "mlp"},
                    "background": [{"repo": "examples", "model": "softmax", "env": {"A": "b c"}},
                                   {"repo": "examples", "model": "deep_mlp", "restart_delay_s": 1}]})
    assert Plan.from_json(json.loads(json.dumps(plan.to_json()))) == plan


def test_a_fixed_value_may_lie_outside_the_range_but_inside_the_limits(tmp_path: Path) -> None:
    # The older tool's users ran 1-epoch quick runs and boundary tests of hyperparameters whose
    # mutation range starts higher: `limits` says what a fixed value may be, `range` what is drawn.
    document = real_registry_document()
    epochs = document["repositories"]["examples"]["hyperparameters"]["epochs"]
    epochs.update(range=[5, 20], limits=[1, 50], default=2)  # a default outside the range takes no draw's place
    registry_file = tmp_path / "models.json"
    registry_file.write_text(json.dumps(document))
    registry = load_registry(registry_file)

    def plan(*experiments: dict[str, Any]) -> Plan:
        settings = settings_from_document({"experiment_name": "t", "experiments": list(experiments)},
                                          tmp_path / "t.json", registry)
        return build_plan(settings, registry, 3, python="python-under-test")

    quick = plan({"mode": "default", "repo": "examples", "model": "mlp", "hyperparameters": {"epochs": 1}})
    argv = quick.trials[0].argv
    assert argv[argv.index("--epochs") + 1] == "1"
    drawn = plan(mutation("epochs", runs=16, hyperparameters={"learning_rate": 0.01}))
    assert sorted(int(dict(trial.hyperparameters)["epochs"]) for trial in drawn.trials) == list(range(5, 21))
    with pytest.raises(ConfigError) as caught:
        plan({"mode": "default", "repo": "examples", "model": "mlp", "hyperparameters": {"epochs": 60}})
    assert [str(issue).split(": ", 1)[1] for issue in caught.value.issues] == [
        "experiments[0].hyperparameters.epochs: 60 is outside the limits [1, 50] (mutation range [5, 20]) of 'epochs'"]


def test_only_the_three_folder_placeholders_are_filled_and_nothing_else_is_interpreted(tmp_path: Path) -> None:
    from energy_profiler.planning.placeholders import WorkloadDirs

    dirs = WorkloadDirs(run_dir=tmp_path / "run", trial_dir=tmp_path / "run" / "t", attempt_dir=tmp_path / "a\n$(x)")
    argv = dirs.argv(["--save", "{attempt_dir}/m.pt", "{run_dir}{trial_dir}", "{0} {name} {{attempt_dir}}", "$(id)"])
    assert argv == ("--save", f"{tmp_path}/a\n$(x)/m.pt", f"{tmp_path}/run{tmp_path}/run/t",
                    "{0} {name} {" + f"{tmp_path}/a\n$(x)" + "}", "$(id)")
    env = dirs.env({"CKPT": "{trial_dir}/ckpt", "RAW": "{attempt}"})
    assert env["CKPT"] == f"{tmp_path}/run/t/ckpt" and env["RAW"] == "{attempt}"
    assert env["MUTATION_ATTEMPT_DIR"] == f"{tmp_path}/a\n$(x)" and env["MUTATION_RUN_DIR"] == f"{tmp_path}/run"


def choice_registry(tmp_path: Path) -> Any:
    document = real_registry_document()
    examples = document["repositories"]["examples"]
    examples["hyperparameters"]["optimizer"] = {"flag": "--optimizer", "type": "choice", "default": "adam",
                                                "values": ["adam", "sgd", 0.5, "a b;$(x)\n"]}
    examples["hyperparameters"]["tied"] = {"flag": "--tied", "type": "switch", "default": False}
    file = tmp_path / "models.json"
    file.write_text(json.dumps(document))
    return load_registry(file)


def test_choices_and_switches_are_drawn_uniquely_passed_as_written_and_recorded_with_their_kind(
        tmp_path: Path) -> None:
    registry = choice_registry(tmp_path)
    settings = settings_from_document({"experiment_name": "c", "experiments": [
        {"mode": "mutation", "repo": "examples", "model": "mlp", "mutate": ["optimizer", "tied"],
         "runs_per_config": 7}]}, tmp_path / "c.json", registry)
    plan = build_plan(settings, registry, 1)
    drawn = {(dict(t.hyperparameters)["optimizer"], dict(t.hyperparameters)["tied"]) for t in plan.trials}
    # 4 values x 2 = 8 combinations, less the base (adam, off): all 7 others, each once
    assert drawn == {(o, s) for o in ("adam", "sgd", "0.5", "a b;$(x)\n") for s in ("false", "true")} - \
        {("adam", "false")}
    for trial in plan.trials:
        values = dict(trial.hyperparameters)
        assert ("--tied" in trial.argv) == (values["tied"] == "true")  # a switch is its flag, or nothing
        assert trial.argv[trial.argv.index("--optimizer") + 1] == values["optimizer"]  # as written, one argv item
    with pytest.raises(ConfigError) as caught:
        plan_again = {"experiment_name": "c", "experiments": [
            {"mode": "mutation", "repo": "examples", "model": "mlp", "mutate": ["optimizer", "tied"],
             "runs_per_config": 8}]}
        build_plan(settings_from_document(plan_again, tmp_path / "c.json", registry), registry, 1)
    assert "asks for 8 unique combinations of optimizer, tied, but only 7 exist" in str(caught.value)


def test_fixed_choices_and_switches_are_checked_by_kind(tmp_path: Path) -> None:
    registry = choice_registry(tmp_path)
    with pytest.raises(ConfigError) as caught:
        settings_from_document({"experiment_name": "c", "experiments": [
            {"mode": "default", "repo": "examples", "model": "mlp",
             "hyperparameters": {"optimizer": "rmsprop", "tied": "yes", "epochs": "3"}}]}, tmp_path / "c.json",
            registry)
    assert [str(issue).split(": ", 1)[1] for issue in caught.value.issues] == [
        "experiments[0].hyperparameters.optimizer: 'rmsprop' is not one of the values 'adam', 'sgd', '0.5', "
        "'a b;$(x)\\n' of 'optimizer'",
        "experiments[0].hyperparameters.tied: expected true or false (a switch), got the string 'yes'",
        "experiments[0].hyperparameters.epochs: expected a number, got the string '3'"]
    fixed = settings_from_document({"experiment_name": "c", "experiments": [
        {"mode": "default", "repo": "examples", "model": "mlp", "hyperparameters": {"optimizer": 0.5, "tied": True}}]},
        tmp_path / "c.json", registry)
    trial = build_plan(fixed, registry, 1).trials[0]
    assert trial.argv[trial.argv.index("--optimizer") + 1] == "0.5" and "--tied" in trial.argv


def test_a_settings_range_narrows_the_draws_without_editing_the_registry(tmp_path: Path) -> None:
    plan = plan_of(mutation("learning_rate", "epochs", runs=30,
                            ranges={"learning_rate": [0.001, 0.01], "epochs": [2, 4]}))
    values = [dict(trial.hyperparameters) for trial in plan.trials]
    assert all(0.001 <= float(v["learning_rate"]) <= 0.01 for v in values), values
    assert {v["epochs"] for v in values} == {"2", "3", "4"}
    with pytest.raises(ConfigError, match=r"only 3 exist"):  # the narrowed space is what is counted
        plan_of(mutation("epochs", runs=4, ranges={"epochs": [2, 4]}))
    registry = choice_registry(tmp_path)
    chosen = settings_from_document({"experiment_name": "c", "experiments": [
        {"mode": "mutation", "repo": "examples", "model": "mlp", "mutate": ["optimizer"], "runs_per_config": 2,
         "ranges": {"optimizer": ["sgd", 0.5]}}]}, tmp_path / "c.json", registry)
    drawn = {dict(trial.hyperparameters)["optimizer"] for trial in build_plan(chosen, registry, 1).trials}
    assert drawn == {"sgd", "0.5"}  # adam is the default: never drawn, and not asked for here


def test_a_range_that_widens_misses_or_names_nothing_drawn_is_refused_at_its_path(
        write_json: Any) -> None:
    file = write_json("r.json", {"experiment_name": "r", "experiments": [
        mutation("learning_rate", "epochs", "batch_size", "dropout",
                 ranges={"learning_rate": [0.001, 0.9], "epochs": [5, 2], "batch_size": [8.5, 16],
                         "dropout": ["a", 1], "weight_decay": [0, 0.001], "lr": [0.1, 0.2]}),
        {"mode": "parallel", "ranges": {"epochs": [1, 2]},
         "foreground": {"repo": "examples", "model": "mlp", "mode": "mutation", "mutate": ["epochs"],
                        "ranges": {"epochs": [1, 99]}},
         "background": {"repo": "examples", "model": "mlp"}}]})
    result = invoke("validate", file)
    assert result.exit_code == 2
    for fragment in [
        "experiments[0].ranges.learning_rate: [0.001, 0.9] is not inside the range [0.001, 0.3] of the registry",
        "experiments[0].ranges.epochs: low end 5 is above high end 2",
        "experiments[0].ranges.batch_size: [8.5, 16] are not integers",
        'experiments[0].ranges.dropout: expected [low, high], two numbers, got ["a", 1]',
        "experiments[0].ranges.weight_decay: 'weight_decay' is not drawn in this experiment",
        "experiments[0].ranges.lr: unknown hyperparameter 'lr' for examples/mlp (did you mean 'learning_rate'?)",
        "experiments[1].ranges: 'ranges' is not allowed with mode 'parallel'",
        "experiments[1].foreground.ranges.epochs: [1, 99] is not inside the range [1, 20]",
    ]:
        assert fragment in result.stderr, (fragment, result.stderr)
