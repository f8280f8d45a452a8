"""The modules whose bugs give wrong numbers, each with the tests that should catch its mutants
(pytest's arguments, run from the root of a copy of the checkout); and the mutants known to be
equivalent (no behaviour changes, so no test can kill them), each with the reason."""

MODULES: dict[str, list[str]] = {
    "experiments/tune_search.py": [
        "tests/experiments/test_tune_honesty.py",
        "tests/experiments/test_tune.py",
        "tests/experiments/test_tune_pruning.py",
        "tests/experiments/test_tune_objectives.py",
        "-m",
        "not system",
    ],
    "experiments/tune_results.py": [
        "tests/experiments/test_tune_honesty.py",
        "tests/experiments/test_tune.py",
        "tests/experiments/test_tune_objectives.py",
        "tests/experiments/test_tune_results.py",
        "-m",
        "not system",
    ],
    "experiments/tune.py": ["tests/experiments/test_tune_honesty.py", "tests/experiments/test_tune.py", "-m", "not system"],
    "experiments/tune_stored.py": [
        "tests/experiments/test_tune.py",
        "tests/experiments/test_tune_pruning.py",
        "-m",
        "not system",
    ],
    "experiments/tune_pruning.py": [
        "tests/experiments/test_tune_honesty.py",
        "tests/experiments/test_tune_pruning.py",
        "-m",
        "not system",
    ],
    "experiments/tune_sampling.py": [
        "tests/experiments/test_tune_pruning.py",
        "tests/experiments/test_tune_honesty.py",
        "tests/experiments/test_tune.py",
        "-m",
        "not system",
    ],
    "experiments/tune_objectives.py": [
        "tests/experiments/test_tune_objectives.py",
        "tests/experiments/test_tune_honesty.py",
        "-m",
        "not system",
    ],
    "experiments/tune_enqueue.py": [
        "tests/experiments/test_tune_enqueue.py",
        "tests/experiments/test_tune_honesty.py",
        "-m",
        "not system",
    ],
    "experiments/tune_journal.py": ["tests/experiments/test_tune_journal.py", "-m", "not system"],
    "experiments/tune_storage.py": ["tests/experiments/test_tune_storage.py", "-m", "not system"],
    "uncertainty/calibration.py": [
        "tests/uncertainty/test_calibration_mean.py",
        "tests/uncertainty/test_estimators.py",
        "tests/uncertainty/test_uncertainty.py",
        "tests/uncertainty/test_uncertainty_study.py",
        "-m",
        "not system",
        "-k",
        "mean_of or hand or reference or ece or weights or replicate or interval or threshold or auroc or aupr or aurc",
    ],
    "uncertainty/bootstrap.py": [
        "tests/uncertainty/test_estimators.py",
        "tests/uncertainty/test_seeds.py",
        "tests/uncertainty/test_uncertainty_study.py",
        "tests/uncertainty/test_composite_rows.py",
        "-k",
        "weights or replicate or interval or aurc or debiased or unit or grouped",
    ],
    "uncertainty/ood.py": [
        "tests/uncertainty/test_ood_sets.py",
        "tests/uncertainty/test_uncertainty_study.py",
        "-k",
        "auroc or aupr or ood or fpr or made_up or held_out",
    ],
    "uncertainty/lineup.py": [
        "tests/uncertainty/test_composite_rows.py",
        "tests/uncertainty/test_uncertainty_study.py",
        "-k",
        "not interval_is and not level",
    ],
    "uncertainty/methods.py": [
        "tests/uncertainty/test_uncertainty.py",
        "tests/uncertainty/test_uncertainty_study.py",
        "tests/uncertainty/test_composite_rows.py",
        "-k",
        "temperature or mc_ or sweep or last_layer or plus",
    ],
    "uncertainty/ensembles.py": ["tests/uncertainty/test_uncertainty.py", "-m", "not system"],
    "uncertainty/study.py": [
        "tests/uncertainty/test_uncertainty.py",
        "tests/uncertainty/test_uncertainty_study.py",
        "tests/uncertainty/test_composite_rows.py",
        "-m",
        "not system",
    ],
    "model/dropout.py": ["tests/model/test_dropout.py", "-m", "not system"],
    "training/fused.py": ["tests/training/test_fused.py", "-m", "not system"],
    "training/epoch.py": ["tests/training/test_train.py", "tests/training/test_fused.py", "-m", "not system"],
    "training/schedules.py": ["tests/training/test_recipe.py", "-m", "not system"],
    "runs/resume.py": [
        "tests/runs/test_runs.py",
        "tests/runs/test_compat.py",
        "tests/runs/test_best_epoch.py",
        "-m",
        "not system",
    ],
    "runs/checkpoints.py": [
        "tests/runs/test_runs.py",
        "tests/runs/test_compat.py",
        "tests/runs/test_best_epoch.py",
        "-m",
        "not system",
    ],
}

# Matched by module and by the line the mutant removes and the line it adds (stripped), so that
# an entry survives edits elsewhere in the module.
EQUIVALENT: list[dict[str, str]] = [
    {
        "module": "uncertainty/lineup.py",
        "removed": "out.setdefault(name, []).append((p, inner if m > 1 else None))",
        "added": "out.setdefault(name, []).append((p, inner if m != 1 else None))",
        "reason": "an ensemble's size m is at least 1 (evaluate refuses --ensemble-sizes below 1), so m > 1 is m != 1",
    },
    {
        "module": "experiments/tune_results.py",
        "removed": "target = (lambda trial: sign * trial.values[0]) if len(study.directions) > 1 else None",
        "added": "target = (lambda trial: sign * trial.values[0]) if len(study.directions) != 1 else None",
        "reason": "a study has at least one direction, so > 1 is != 1",
    },
    {
        "module": "experiments/tune_results.py",
        "removed": 'sign = 1 if tune_objectives.DIRECTIONS[objectives[0]] == "maximize" else -1',
        "added": 'sign = 1 if tune_objectives.DIRECTIONS[objectives[0]] == "maximize" else - 2',
        "reason": "sign only orders trials (max by sign * value): any negative number orders them alike",
    },
    {
        "module": "experiments/tune_results.py",
        "removed": "@dataclass(frozen=True)",
        "added": "@dataclass(frozen=False)",
        "reason": "no code assigns to a TrialRow or hashes one; frozen only guards against a future mistake",
    },
    {
        "module": "experiments/tune_search.py",
        "removed": 'return trial.state.name == "FAIL" and bool(trial.user_attrs.get("interrupted"))',
        "added": 'return trial.state.name is "FAIL" and bool(trial.user_attrs.get("interrupted"))',
        "reason": "an enum member's name is an interned string, so CPython's `is` agrees with `==` here",
    },
    {
        "module": "experiments/tune_search.py",
        "removed": "if self.reported is not None and metrics.epoch < self.epochs and self.trial.should_prune():",
        "added": "if self.reported is not None and metrics.epoch != self.epochs and self.trial.should_prune():",
        "reason": "an epoch is never past the last (1 <= epoch <= epochs), so < is !=",
    },
    {
        "module": "experiments/tune_results.py",
        "removed": 'sign = 1 if tune_objectives.DIRECTIONS[objectives[0]] == "maximize" else -1',
        "added": 'sign = 1 if tune_objectives.DIRECTIONS[objectives[ -1]] == "maximize" else -1',
        "reason": "this branch has one objective, so objectives[-1] is objectives[0]",
    },
    {
        "module": "experiments/tune_results.py",
        "removed": 'sign = -1 if study.directions[0].name == "MAXIMIZE" else 1',
        "added": 'sign = -1 if study.directions[0].name == "MAXIMIZE" else 2',
        "reason": "sign * value only ranks trials for PED-ANOVA: a positive factor ranks them alike",
    },
    {
        "module": "experiments/tune_stored.py",
        "removed": "return name or names[0]",
        "added": "return name or names[ -1]",
        "reason": "without --study the storage holds exactly one study (else refused above), so names[-1] is names[0]",
    },
    {
        "module": "experiments/tune_pruning.py",
        "removed": "@functools.cache",
        "added": "",
        "reason": "the cache keeps one subclass per pruner class; without it each call makes an identical one, and nothing compares them",
    },
]
