"""Reading a YAML config file strictly: UTF-8, no aliases, no key written twice in one mapping.

PyYAML keeps the last of two equal keys without a word; a config whose `epochs:` appears twice
would silently train the second value, so such a file is refused with both line numbers.
"""

from pathlib import Path
from typing import Any

import yaml

from dropcli.errors import DropcliError


class _RepeatedKey(yaml.YAMLError):
    def __init__(self, key: Any, first_line: int, second_line: int):
        super().__init__(f"key {key!r} is written twice")
        self.key, self.first_line, self.second_line = key, first_line, second_line


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping with the same key twice."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node.start_mark.line + 1)
                except TypeError:  # an unhashable key: SafeLoader's own error says so below
                    continue
                if first != key_node.start_mark.line + 1:
                    raise _RepeatedKey(key, first, key_node.start_mark.line + 1)
        return super().construct_mapping(node, deep=deep)


def load(text: str, path: Path | str) -> Any:
    """The YAML document in `text` (read from `path`, named in errors); DropcliError if malformed,
    if it uses aliases, or if a mapping holds a key twice."""
    try:
        if any(isinstance(event, yaml.AliasEvent) for event in yaml.parse(text, Loader=yaml.SafeLoader)):
            # A config needs no aliases, and they allow self-reference and exponential blow-up.
            raise DropcliError(f"{path}: YAML anchors and aliases (*name) are not supported in configs; write the values out")
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except _RepeatedKey as error:
        raise DropcliError(
            f"{path}: key {error.key!r} is written twice in one mapping (lines {error.first_line} and {error.second_line}); "
            "keep one"
        ) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise DropcliError(f"{path}: malformed YAML{where}: {problem}") from None


def read(path: Path) -> Any:
    """The YAML document in the file `path`, read strictly (see `load`)."""
    if not path.is_file():
        if path.is_dir():
            what = "is a directory, not a file"
        elif path.exists():
            what = "is not a regular file (a device, pipe or socket)"
        else:
            what = "not found"
        raise DropcliError(f"config file {path} {what} (pass an existing YAML file, e.g. configs/default.yaml)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DropcliError(f"{path}: not UTF-8 text (byte {error.start}); save the config as UTF-8") from None
    except OSError as error:
        raise DropcliError(f"{path}: cannot be read ({error.strerror})") from None
    return load(text, path)
