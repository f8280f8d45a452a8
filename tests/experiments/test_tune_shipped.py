"""The shipped config the search found is what its committed study says it found.

configs/best-any.yaml claims to be the best trial of study best-any-2 (docs/studies/best-any),
chosen on validation accuracy. Reading that study back as `tune --summary` does must give the
same settings (only the name differs, and val_seed, which means nothing without a split), so a
hand edit of the config, or a study changed after it, fails here.
"""

import shutil
from pathlib import Path

import pytest
import yaml

from dropcli.config import load_config, to_dict

pytest.importorskip("optuna")

ROOT = Path(__file__).resolve().parents[2]
STUDY = ROOT / "docs/studies/best-any"


def test_best_any_yaml_is_the_best_trial_of_its_committed_study(in_tmp, invoke):
    copy = in_tmp / "study"  # --summary writes nothing to the journal, but it is the record: read a copy
    shutil.copytree(STUDY, copy, ignore=shutil.ignore_patterns("*.png", "README.md"))
    result = invoke("tune", "--plan", str(copy / "plan.yaml"), "--summary")
    assert result.exit_code == 0, result.stderr
    assert "best: trial 16, val acc 0.9115" in result.stdout
    found = yaml.safe_load((in_tmp / "runs/tune-best-any-2/best.yaml").read_text())
    shipped = to_dict(load_config(ROOT / "configs/best-any.yaml"))
    for config in (found, shipped):
        config.pop("name")
        config["data"].pop("val_seed")
    assert found["data"]["val_split"] == 0.0  # the final runs train on every training image
    assert shipped == found
