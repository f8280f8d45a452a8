"""Mutants left out before any is drawn, because they cannot give a wrong number, only raise or
change nothing: no assertion could ever catch them, so they would only count as crashed.

- arithmetic made bitwise (`a / b` -> `a >> b`, `a * b` -> `a ^ b`, `-x` -> `~x`): the modules
  mutated here compute with floats and tensors, on which these operators raise a TypeError;
- a change inside a type annotation (`Tensor | None` -> `Tensor + None`), or inside a module's
  type alias (`Part = tuple[Tensor, Tensor | None]`): it raises at import, or changes nothing
  where annotations are not evaluated.
"""

import ast

GENERICS = ("tuple", "list", "dict", "set", "frozenset", "type")  # a module-level X = tuple[...] is a type alias
ARITHMETIC = ("Add", "Sub", "Mul", "Div", "FloorDiv", "Mod", "Pow")
BITWISE = ("RShift", "LShift", "BitOr", "BitAnd", "BitXor")


def reason_left_out(operator: str, line: int, column: int, annotations: list[tuple[int, int, int, int]]) -> str | None:
    """Why the mutant `operator` at (line, column) is left out, or None to keep it."""
    name = operator.split("/")[-1]
    if name.startswith("ReplaceBinaryOperator_"):
        source, target = name.split("_")[1:]
        if source in ARITHMETIC and target in BITWISE:
            return "arithmetic made bitwise: raises on floats and tensors"
    if name.startswith("ReplaceUnaryOperator_") and name.endswith("_Invert"):
        return "arithmetic made bitwise: raises on floats and tensors"
    if any(
        (start_line, start_column) <= (line, column) < (end_line, end_column)
        for start_line, start_column, end_line, end_column in annotations
    ):
        return "inside a type annotation"
    return None


def annotation_spans(source: str) -> list[tuple[int, int, int, int]]:
    """(line, column, end line, end column) of every annotation in `source` (columns 0-based)."""
    spans = []
    for node in ast.walk(ast.parse(source)):
        found = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
            found.append(node.returns)
        if isinstance(node, ast.arg) and node.annotation is not None:
            found.append(node.annotation)
        if isinstance(node, ast.AnnAssign):
            found.append(node.annotation)
        if isinstance(node, ast.Module):
            found += [statement.value for statement in node.body if _is_type_alias(statement)]
        spans += [(a.lineno, a.col_offset, a.end_lineno, a.end_col_offset) for a in found]
    return spans


def _is_type_alias(statement: ast.stmt) -> bool:
    value = getattr(statement, "value", None)
    return (
        isinstance(statement, ast.Assign)
        and isinstance(value, ast.Subscript)
        and isinstance(value.value, ast.Name)
        and value.value.id in GENERICS
    )
