"""YAML for ct.yaml: safe_load semantics, but a key given twice is an error.

YAML requires keys to be unique; PyYAML silently keeps the last one, so in
``training: {window_days: 7}`` followed later by another ``training:`` block, half the
settings would vanish without a word. The error names the dotted key and both lines.
"""

from __future__ import annotations

import yaml


class DuplicateKeyError(yaml.YAMLError):
    """A mapping in ct.yaml gives the same key twice."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping: YAML requires unique keys,
    and PyYAML would silently keep the last one, so half a setting would vanish."""

    def get_single_node(self):
        node = super().get_single_node()
        if node is not None:
            _refuse_duplicate_keys(node, "", set())
        return node


def _refuse_duplicate_keys(node: yaml.Node, prefix: str, seen: set[int]) -> None:
    if id(node) in seen:  # an alias points back at a node already walked (or at itself)
        return
    seen.add(id(node))
    children: list[tuple[str, yaml.Node]] = []
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            # `<<` merge keys may repeat and are overridden by explicit keys, as YAML says.
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                dotted = f"{prefix}.{key_node.value}" if prefix else key_node.value
                line = key_node.start_mark.line + 1
                if key_node.value in first:
                    raise DuplicateKeyError(
                        f"duplicate key {dotted!r} on line {line} (first on line {first[key_node.value]})")
                first[key_node.value] = line
                children.append((dotted, value_node))
    elif isinstance(node, yaml.SequenceNode):
        children = [(f"{prefix}.{i}", item) for i, item in enumerate(node.value)]
    for dotted, child in children:
        _refuse_duplicate_keys(child, dotted, seen)


def read_yaml(text: str) -> object:
    """``yaml.safe_load`` that raises DuplicateKeyError (a yaml.YAMLError) on a repeated key."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass: no arbitrary objects
