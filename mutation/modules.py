"""The modules whose bugs give wrong numbers, each with the tests that should catch its mutants
(pytest's arguments, run from the root of a copy of the checkout); and the mutants known to be
equivalent (no behaviour changes, so no test can kill them), each with the reason."""

MODULES = {
    "experiments/tune_search.py": {
        "tests": ["tests/experiments/test_tune_honesty.py", "tests/experiments/test_tune.py", "-m", "not system"]
    },
    "experiments/tune_results.py": {
        "tests": ["tests/experiments/test_tune_honesty.py", "tests/experiments/test_tune.py", "-m", "not system"]
    },
    "experiments/tune.py": {
        "tests": ["tests/experiments/test_tune_honesty.py", "tests/experiments/test_tune.py", "-m", "not system"]
    },
    "experiments/tune_stored.py": {"tests": ["tests/experiments/test_tune.py", "-m", "not system"]},
    "uncertainty/calibration.py": {
        "tests": [
            "tests/uncertainty/test_uncertainty.py",
            "tests/uncertainty/test_uncertainty_study.py",
            "-m",
            "not system",
            "-k",
            "hand or reference or ece or weights or replicate or interval or threshold or auroc or aupr",
        ]
    },
    "uncertainty/bootstrap.py": {
        "tests": [
            "tests/uncertainty/test_uncertainty_study.py",
            "tests/uncertainty/test_composite_rows.py",
            "-k",
            "weights or replicate or interval",
        ]
    },
    "uncertainty/ood.py": {"tests": ["tests/uncertainty/test_uncertainty_study.py", "-k", "auroc or aupr or ood"]},
    "uncertainty/lineup.py": {
        "tests": [
            "tests/uncertainty/test_composite_rows.py",
            "tests/uncertainty/test_uncertainty_study.py",
            "-k",
            "not interval_is and not level",
        ]
    },
    "uncertainty/methods.py": {
        "tests": [
            "tests/uncertainty/test_uncertainty.py",
            "tests/uncertainty/test_uncertainty_study.py",
            "tests/uncertainty/test_composite_rows.py",
            "-k",
            "temperature or mc_ or sweep or last_layer or plus",
        ]
    },
    "uncertainty/ensembles.py": {"tests": ["tests/uncertainty/test_uncertainty.py", "-m", "not system"]},
    "uncertainty/study.py": {
        "tests": [
            "tests/uncertainty/test_uncertainty.py",
            "tests/uncertainty/test_uncertainty_study.py",
            "tests/uncertainty/test_composite_rows.py",
            "-m",
            "not system",
        ]
    },
    "model/dropout.py": {"tests": ["tests/model/test_dropout.py", "-m", "not system"]},
    "training/fused.py": {"tests": ["tests/training/test_fused.py", "-m", "not system"]},
    "training/epoch.py": {"tests": ["tests/training/test_train.py", "tests/training/test_fused.py", "-m", "not system"]},
    "training/schedules.py": {"tests": ["tests/training/test_recipe.py", "-m", "not system"]},
    "runs/resume.py": {
        "tests": ["tests/runs/test_runs.py", "tests/runs/test_compat.py", "tests/runs/test_best_epoch.py", "-m", "not system"]
    },
    "runs/checkpoints.py": {
        "tests": ["tests/runs/test_runs.py", "tests/runs/test_compat.py", "tests/runs/test_best_epoch.py", "-m", "not system"]
    },
}

# Matched by module and by the line the mutant removes and the line it adds (stripped), so that
# an entry survives edits elsewhere in the module.
EQUIVALENT: list[dict[str, str]] = [
    # {"module": "uncertainty/bootstrap.py", "removed": "...", "added": "...", "reason": "..."},
]
