"""Reading a YAML file a user gives us (a batch, a limits file) as plain data.

The safe loader builds only mappings, lists, strings, numbers, booleans, dates and nulls: no tag can
construct an object or run code.  A key given twice in one mapping is an error (a second ``seed:``
would otherwise silently win), and every error names the file and the line.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from .errors import ConfigError

__all__ = ["read_yaml"]


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping."""


def _mapping_without_duplicates(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            first = seen.get(key)
        except TypeError:  # an unhashable key: the constructor below reports it
            continue
        if first is not None:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {first.line + 1})", key_node.start_mark)
        seen[key] = key_node.start_mark
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def _checked_timestamp(loader: _UniqueKeyLoader, node: yaml.ScalarNode):
    """A date or time as YAML reads it, with an impossible one (``2018-02-30``) an error at its line
    rather than the calendar's ``ValueError``."""
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except ValueError as exc:
        raise yaml.constructor.ConstructorError(
            None, None, f"invalid date {node.value!r}: {exc}", node.start_mark) from None


_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:timestamp", _checked_timestamp)


def read_yaml(path: str | Path, what: str):
    """The YAML file ``path`` as plain data; ``what`` names it in errors (``batch file``, ``limits file``)."""
    p = Path(path)
    try:
        return yaml.load(p.read_bytes(), Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = str(getattr(exc, "problem", None) or str(exc).splitlines()[0])
        if problem.startswith(("duplicate key ", "invalid date ")):
            raise ConfigError(f"{what} {p}{where}: {problem}") from None
        raise ConfigError(f"{what} {p}{where}: malformed YAML ({problem})") from None
