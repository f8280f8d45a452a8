"""tune's plan file read into a search (experiments/tune.py's resolve), and what a study keeps in
its storage: each checked against what the plan says, in process (no training)."""

from pathlib import Path

import pytest

from conftest import TUNE_NOTHING_GIVEN, accepted
from dropcli.errors import DropcliError
from dropcli.experiments import tune

optuna = pytest.importorskip("optuna")


def resolved(tmp_path: Path, plan_text: str, space: str = "  optim.lr: '0.01:1:log'\n") -> tune.Search:
    """The search a valid plan makes: its refusal fails the test (a check gone wrong)."""
    return accepted("a valid plan", refused_or_resolved, tmp_path, plan_text, space)


def refused_or_resolved(tmp_path: Path, plan_text: str, space: str = "  optim.lr: '0.01:1:log'\n") -> tune.Search:
    plan = tmp_path / "study" / "plan.yaml"
    plan.parent.mkdir(exist_ok=True)
    plan.write_text(f"space:\n{space}trials: 2\n{plan_text}")
    return tune.resolve(plan, None, ["data.val_split=0.2"], {}, TUNE_NOTHING_GIVEN)


def test_a_plans_storage_file_lies_beside_the_plan_and_a_url_is_kept(tmp_path):
    assert resolved(tmp_path, "storage: s.journal\n").storage == str(tmp_path / "study" / "s.journal")
    url = "postgresql://me@db.example/studies"
    assert resolved(tmp_path, f"storage: '{url}'\n").storage == url


@pytest.mark.parametrize("timeout", ["0", "-5", "true", "soon"])
def test_a_plans_timeout_must_be_seconds_above_zero(tmp_path, timeout):
    with pytest.raises(DropcliError, match="timeout must be a number of seconds above 0"):
        refused_or_resolved(tmp_path, f"timeout: {timeout}\n")


def test_a_plans_timeout_and_final_seeds_are_read_and_final_seeds_default_to_none(tmp_path):
    search = resolved(tmp_path, "timeout: 90\nfinal_seeds: 3\n")
    assert (search.timeout, search.final_seeds) == (90.0, 3)
    assert resolved(tmp_path, "").final_seeds == 0  # best.yaml only, no final runs


def test_a_plans_space_cannot_search_the_validation_split(tmp_path):
    with pytest.raises(DropcliError, match="space data.val_split"):
        refused_or_resolved(tmp_path, "", space="  optim.lr: '0.01:1:log'\n  data.val_split: [0.1, 0.2]\n")


def test_a_studys_directions_are_read_from_its_storage_by_name(tmp_path):
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 's.db'}")
    optuna.create_study(storage=storage, study_name="first", direction="maximize")
    optuna.create_study(storage=storage, study_name="".join(["sec", "ond"]), directions=["maximize", "minimize"])
    assert tune._stored_directions(optuna, storage, "".join(["sec", "ond"])) == ["maximize", "minimize"]
    assert tune._stored_directions(optuna, storage, "first") == ["maximize"]
    assert tune._stored_directions(optuna, storage, "third") is None


def test_a_study_keeps_how_it_was_last_searched_and_a_summary_alone_writes_nothing(tmp_path):
    """The pruner, sampler and trials a study last ran with are what --summary shows of it; a
    summary opens the study without a sampler and must not write them (nor with stale values)."""
    search = resolved(tmp_path, "storage: s.journal\npruner: none\nsampler: random\n")
    summary = tune.open_study(search, None, None)
    assert tune.HOW_ATTR not in summary.user_attrs
    study = tune.open_study(search, optuna.samplers.RandomSampler(seed=0), optuna.pruners.NopPruner())
    assert study.user_attrs[tune.HOW_ATTR] == {"pruner": "none", "sampler": "random", "trials": 2, **search.pruning.stored()}


def test_a_study_of_accuracy_alone_keeps_no_objectives_in_its_spec_as_before_objectives_existed(tmp_path):
    assert "objectives" not in tune.spec_of(resolved(tmp_path, ""))
    assert tune.spec_of(resolved(tmp_path, "objective: [accuracy, ece]\n")).get("objectives") == ["accuracy", "ece"]


def test_a_study_is_named_by_the_plan_or_else_after_its_config(tmp_path):
    search = resolved(tmp_path, "")
    assert search.study == search.config.name and search.directory == Path("runs") / f"tune-{search.config.name}"
    assert resolved(tmp_path, "study: lr-search\n").study == "lr-search"


@pytest.mark.parametrize("trials, refused", [(1, False), (2, False), (3, True)])
def test_a_grid_plan_may_ask_for_up_to_as_many_trials_as_points(tmp_path, trials, refused):
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"space:\n  optim.lr: [0.01, 0.1]\ntrials: {trials}\nsampler: grid\n")
    if refused:  # a plan's "grid" is a string YAML made: a check that compared it with `is` skipped plans
        with pytest.raises(DropcliError, match="the grid has only 2 points"):
            tune.resolve(plan, None, ["data.val_split=0.2"], {}, TUNE_NOTHING_GIVEN)
    else:
        search = accepted(
            f"{trials} trials of a 2-point grid", tune.resolve, plan, None, ["data.val_split=0.2"], {}, TUNE_NOTHING_GIVEN
        )
        assert search.trials == trials
