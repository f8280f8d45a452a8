"""Whether each crashed mutant of model/dropout.py in a report can ever return a wrong number.

Each crashed mutant is applied to the module's source and the op run with the packed and int16
masks on every size from 1 to 129 and a few large ones, at two rates. On each input the mutant
either raises, or gives the output and gradient of the unmutated op exactly ("right"), or
neither ("wrong"). A mutant that is never wrong cannot give a wrong number, only fail loudly:

    python -m mutation.raise_or_right docs/studies/mutation-run9-retest/report.json
"""

import argparse
import json
import types
from pathlib import Path

import torch

SOURCE = Path(__file__).resolve().parent.parent / "src" / "dropcli" / "model" / "dropout.py"
SIZES = [*range(1, 130), 1000, 4096, 256 * 7]


def _module(text: str) -> types.ModuleType:
    module = types.ModuleType("mutated_dropout")
    exec(compile(text, str(SOURCE), "exec"), module.__dict__)
    return module


def _mutated(source: str, mutant: dict) -> types.ModuleType:
    lines = source.splitlines(keepends=True)
    line = lines[mutant["line"] - 1]
    removed, added = mutant["removed"].strip(), mutant["added"].strip()
    if removed not in line:
        raise SystemExit(f"line {mutant['line']} of {SOURCE} no longer holds {removed!r}: the report is of other code")
    lines[mutant["line"] - 1] = line.replace(removed, added)
    return _module("".join(lines))


def _run(module, x: torch.Tensor, p: float, mode: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    y = module.dropout(x, p, mask_mode=mode)
    (grad,) = torch.autograd.grad(y.sum(), x)
    return y, grad


def tally(original, mutated) -> dict[str, int]:
    counts = {"raised": 0, "right": 0, "wrong": 0}
    for mode in ("bits", "int16"):
        for n in SIZES:
            for p in (0.1, 0.5):
                x = torch.randn(n, requires_grad=True)
                expected = _run(original, x, p, mode, seed=n)
                try:
                    got = _run(mutated, x, p, mode, seed=n)
                except Exception:  # any exception: the mutant failed loudly on this input
                    counts["raised"] += 1
                    continue
                same = all(torch.equal(a, b) for a, b in zip(expected, got))
                counts["right" if same else "wrong"] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="a report.json of `make mutate` holding model/dropout.py")
    args = parser.parse_args()
    mutants = json.loads(args.report.read_text())["model/dropout.py"]["mutants"]
    source = SOURCE.read_text()
    original = _module(source)
    for mutant in (m for m in mutants if m["kind"] == "crashed"):
        counts = tally(original, _mutated(source, mutant))
        print(f"line {mutant['line']}: {mutant['added'].strip()}\n    {counts}")


if __name__ == "__main__":
    main()
