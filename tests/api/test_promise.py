"""The API's promise: the names in dropcli.__all__ keep their signatures, or CHANGELOG.md says so.

public_api.txt records each public name's signature (parameter names, kinds and defaults; a
class's constructor and public members). A change fails the test until the snapshot is
updated, and `python tests/api/test_promise.py --update` updates it only when CHANGELOG.md's
"## Unreleased" section names every name that changed, appeared or disappeared.
"""

import dataclasses
import inspect
import re
import sys
from pathlib import Path

SNAPSHOT = Path(__file__).with_name("public_api.txt")
CHANGELOG = Path(__file__).parents[2] / "CHANGELOG.md"


def _signature(obj) -> str:
    """The call signature without annotations, which render differently across Python versions."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return "(...)"
    bare = [parameter.replace(annotation=inspect.Parameter.empty) for parameter in signature.parameters.values()]
    return str(signature.replace(parameters=bare, return_annotation=inspect.Signature.empty))


def describe(name: str, obj) -> list[str]:
    """The lines that record `obj`'s promise: its signature; for a class, also its public members."""
    if not inspect.isclass(obj):
        return [f"{name}{_signature(obj)}"]
    lines = [f"class {name}{_signature(obj)}"]
    fields = {field.name for field in dataclasses.fields(obj)} if dataclasses.is_dataclass(obj) else set()
    for attribute, member in sorted(vars(obj).items()):
        if attribute.startswith("_") or attribute in fields:
            continue
        if isinstance(member, property):
            lines.append(f"{name}.{attribute} (property)")
        elif callable(member):
            lines.append(f"{name}.{attribute}{_signature(member)}")
    return lines


def current() -> list[str]:
    import dropcli

    return [line for name in dropcli.__all__ for line in describe(name, getattr(dropcli, name))]


def _name_of(line: str) -> str:
    return re.match(r"(?:class )?([A-Za-z_]\w*)", line).group(1)


def changed_names(recorded: list[str], now: list[str]) -> list[str]:
    """The public names whose lines differ between two snapshots, in order."""
    differing = set(recorded) ^ set(now)
    return list(dict.fromkeys(_name_of(line) for line in [*recorded, *now] if line in differing))


def unmentioned(names: list[str], changelog: str) -> list[str]:
    """The names that CHANGELOG.md's "## Unreleased" section does not name (as `name` or `name(`)."""
    match = re.search(r"^## Unreleased\s*$(.*?)(?=^## |\Z)", changelog, flags=re.MULTILINE | re.DOTALL)
    section = match.group(1) if match else ""
    return [name for name in names if not re.search(rf"`(dropcli\.)?{re.escape(name)}[`(.]", section)]


def test_public_names_keep_their_signatures():
    recorded = SNAPSHOT.read_text().splitlines()
    changed = changed_names(recorded, current())
    assert not changed, (
        f"the public API changed: {', '.join(changed)}. A change to dropcli.__all__ is a promise broken or made: name each "
        "in CHANGELOG.md under '## Unreleased', then run `python tests/api/test_promise.py --update` to record the new signatures"
    )


def test_the_snapshot_changes_only_with_the_changelog_naming_the_change():
    recorded = ["train(config, run_dir=None, *, progress=True)", "class Run(directory, config)", "Run.frame()"]
    now = ["train(config, run_dir=None, *, progress=True, seed=0)", "class Run(directory, config)"]
    assert changed_names(recorded, now) == ["train", "Run"]
    log = "# Changelog\n\n## Unreleased\n\n- `train(seed=...)`: a seed.\n\n## 0.1.0\n\n- `Run.frame()` removed\n"
    assert unmentioned(["train", "Run"], log) == ["Run"]  # the 0.1.0 section does not count
    assert unmentioned(["train", "Run"], log.replace("a seed.", "a seed; `Run.frame` is gone.")) == []


def test_docs_api_shows_every_public_name():
    import dropcli

    reference = (Path(__file__).parents[2] / "docs" / "api.md").read_text()
    assert [name for name in dropcli.__all__ if f"`{name}" not in reference] == []


if __name__ == "__main__" and sys.argv[1:] == ["--update"]:
    sys.path.insert(0, str(Path(__file__).parents[2] / "src"))
    recorded, now = SNAPSHOT.read_text().splitlines() if SNAPSHOT.exists() else [], current()
    missing = unmentioned(changed_names(recorded, now), CHANGELOG.read_text())
    if missing:
        sys.exit(
            f"CHANGELOG.md's '## Unreleased' section does not name {', '.join(missing)}; say what changed, then run this again"
        )
    SNAPSHOT.write_text("".join(f"{line}\n" for line in now))
    print(f"wrote {SNAPSHOT} ({len(now)} lines)")
