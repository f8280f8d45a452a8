"""The search a study in storage was run with (experiments/tune_stored.py: what `tune --summary`
reads when given only the storage), checked in process against what the study keeps."""

import pytest

from conftest import TUNE_NOTHING_GIVEN, refusal
from dropcli.errors import DropcliError
from dropcli.experiments import tune, tune_stored
from dropcli.experiments.tune_pruning import Pruning

optuna = pytest.importorskip("optuna")


def storage_with(tmp_path, *names: str):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    for name in names:
        optuna.create_study(storage=url, study_name=name)
    return url, optuna.storages.RDBStorage(url)


def test_the_study_is_the_one_named_or_the_only_one(tmp_path):
    url, storage = storage_with(tmp_path, "a")
    assert tune_stored._study_name(optuna, storage, url, None) == "a"
    assert tune_stored._study_name(optuna, storage, url, "a") == "a"
    with pytest.raises(DropcliError, match="--study b: no such study in .* it holds a"):
        tune_stored._study_name(optuna, storage, url, "b")


def test_a_storage_with_no_study_or_several_asks_for_one(tmp_path):
    url, empty = storage_with(tmp_path)
    # a refusal, not an IndexError of the empty list
    assert "holds no study; name one with --study NAME" in refusal(tune_stored._study_name, optuna, empty, url, None)
    optuna.create_study(storage=url, study_name="a")
    optuna.create_study(storage=url, study_name="b")
    with pytest.raises(DropcliError, match="holds studies a, b"):
        tune_stored._study_name(optuna, optuna.storages.RDBStorage(url), url, None)


def test_a_stored_space_reads_back_ranges_and_lists():
    ranged = tune_stored._grid("optim.lr", [0.01, 0.3, True])
    assert (ranged.values, ranged.span) == ((), (0.01, 0.3, True))
    listed = tune_stored._grid("model.hidden", ["32x32", "64", "128"])  # three values, not a range
    assert (listed.values, listed.span) == (("32x32", "64", "128"), None)
    flags = tune_stored._grid("data.augment.flip", [True, False, True])
    assert flags.span is None


def test_the_pruners_stored_settings_read_back_and_an_old_studys_judged_from_epoch_1():
    assert tune_stored._pruning({}) == Pruning(grace=1)
    assert tune_stored._pruning({"grace": 5, "reduction": 2}) == Pruning(grace=5, reduction=2, bootstrap=0)


def test_a_study_from_before_its_settings_were_kept_reads_with_no_trials_asked(tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text("space:\n  optim.lr: '0.01:1:log'\ntrials: 2\n")
    search = tune.resolve(plan, None, ["data.val_split=0.2"], {}, TUNE_NOTHING_GIVEN)
    url, _ = storage_with(tmp_path, "old")
    study = optuna.load_study(study_name="old", storage=url)
    study.set_user_attr(tune.SPEC_ATTR, tune.spec_of(search))  # the spec, and no HOW_ATTR
    stored = tune_stored.stored_search([], {}, {**TUNE_NOTHING_GIVEN, "storage": url}, print)
    assert (stored.study, stored.trials, stored.pruning) == ("old", 0, Pruning(grace=1))
    assert [(g.key, g.span) for g in stored.space] == [("optim.lr", (0.01, 1.0, True))]


@pytest.mark.parametrize("spec", [None, {"config": {}}])  # an Optuna study of one's own; a spec without a space
def test_a_study_not_made_by_tune_is_named_so(tmp_path, spec):
    url, _ = storage_with(tmp_path, "theirs")
    if spec is not None:
        optuna.load_study(study_name="theirs", storage=url).set_user_attr(tune.SPEC_ATTR, spec)
    # one line for the user, never a KeyError from deeper in
    line = refusal(tune_stored.stored_search, [], {}, {**TUNE_NOTHING_GIVEN, "storage": url}, print)
    assert "study 'theirs' in" in line and "was not made by dropcli tune; give its --plan" in line
