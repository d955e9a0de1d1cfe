"""JSON and YAML parsing that refuses a key given twice in one object.

Both formats let a later key silently replace an earlier one, so a file edited by hand (or
damaged) can mean something other than what its reader sees first. Every file this project
loads goes through these two functions instead. YAML is read with the safe loader only: no
tag can construct a Python object.
"""

from __future__ import annotations

import json
from typing import Any

import yaml


class DuplicateKeyError(ValueError):
    """A JSON or YAML object that gives the same key twice."""


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise DuplicateKeyError(f"duplicate key {key!r} (given more than once in one object)")
        result[key] = value
    return result


def loads_json(text: str | bytes) -> Any:
    """``json.loads`` that raises DuplicateKeyError for a repeated key (JSONDecodeError, a
    ValueError too, for text that is not JSON)."""
    return json.loads(text, object_pairs_hook=_unique_object)


class _UniqueKeyLoader(yaml.SafeLoader):
    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:  # an unhashable key: SafeLoader itself refuses it below
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark,
                        f"found duplicate key {key!r} (given more than once)", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str | bytes) -> Any:
    """``yaml.safe_load`` that also refuses a repeated key (a yaml.YAMLError naming the key and
    its line)."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
