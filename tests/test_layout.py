"""The house's shape: no import cycle, small modules, few of them at the top.

The layers themselves are import-linter's contracts in pyproject.toml (`make lint`).
"""

from pathlib import Path

import grimp

import dropcli

PACKAGE = Path(dropcli.__file__).parent


def import_cycle(graph) -> list[str] | None:
    """One cycle of module imports, or None."""
    state: dict[str, str] = {}  # module -> "open" while on the path, "done" after

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = "open"
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if state.get(imported) == "open":
                return [*path[path.index(imported) :], imported]
            if imported in graph.modules and imported not in state:
                found = visit(imported, [*path, imported])
                if found:
                    return found
        state[module] = "done"
        return None

    for module in sorted(graph.modules):
        if module not in state:
            found = visit(module, [module])
            if found:
                return found
    return None


def test_no_module_imports_itself_through_others():
    graph = grimp.build_graph("dropcli")
    assert import_cycle(graph) is None


def test_the_cycle_finder_finds_a_cycle():
    graph = grimp.ImportGraph()
    for module in ("a", "b", "c"):
        graph.add_module(module)
    graph.add_import(importer="a", imported="b")
    graph.add_import(importer="b", imported="c")
    assert import_cycle(graph) is None
    graph.add_import(importer="c", imported="a")
    assert import_cycle(graph) == ["a", "b", "c", "a"]


def test_modules_stay_small():
    sizes = {path.relative_to(PACKAGE): len(path.read_text().splitlines()) for path in PACKAGE.rglob("*.py")}
    assert {path: lines for path, lines in sizes.items() if lines > 400} == {}


def test_the_top_of_the_package_holds_few_modules():
    assert len(list(PACKAGE.glob("*.py"))) <= 8
