"""Load YAML into plain Python values while remembering the line of every key (for error messages)."""

from __future__ import annotations

from typing import Any

import yaml


def load_with_lines(text: str) -> tuple[Any, dict[tuple, int]]:
    """Parse `text`; return the data and {path: line}, a path being a tuple of keys and list indices."""
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    scalars = yaml.SafeLoader("")  # only used to turn scalar nodes into Python values
    lines: dict[tuple, int] = {}

    def walk(n: yaml.Node | None, path: tuple) -> Any:
        if n is None:
            return None
        lines.setdefault(path, n.start_mark.line + 1)
        if isinstance(n, yaml.MappingNode):
            out = {}
            for key_node, value_node in n.value:
                key = scalars.construct_object(key_node)
                lines[path + (key,)] = key_node.start_mark.line + 1
                out[key] = walk(value_node, path + (key,))
            return out
        if isinstance(n, yaml.SequenceNode):
            return [walk(v, path + (i,)) for i, v in enumerate(n.value)]
        return scalars.construct_object(n, deep=True)

    return walk(node, ()), lines
