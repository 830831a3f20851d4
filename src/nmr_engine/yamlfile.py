"""YAML reading that remembers line numbers, so errors can name them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import InputError, Problem


class LocatedDict(dict):
    """A mapping read from YAML that knows the line of each key (1-based)."""

    line: int = 0
    key_lines: dict

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


class LocatedList(list):
    line: int = 0
    item_lines: list


class _Loader(yaml.SafeLoader):
    pass


# libyaml parses ~20× faster (thousands of contract files at national scale); the pure-Python
# loader stays the reference: it re-reads a file that fails so the error message is unchanged.
class _FastLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LocatedDict:
    loader.flatten_mapping(node)
    out = LocatedDict()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):  # dates as keys (parameter values) stay dates
            key = key if not isinstance(key, (int, float)) else str(key)
        if key in out:
            raise yaml.constructor.ConstructorError(None, None, f"clé en double « {key} »", key_node.start_mark)
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LocatedList:
    out = LocatedList(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    out.item_lines = [child.start_mark.line + 1 for child in node.value]
    return out


def _keep_decimal_text(loader: _Loader, node: yaml.ScalarNode) -> str:
    # Never let YAML turn "1000.50" into a binary float: keep the text, the schema decides.
    return loader.construct_scalar(node)


def _construct_timestamp(loader, node: yaml.ScalarNode):
    # "2011-13-01" looks like a date but is none: keep the text so the schema reports it with its line.
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except ValueError:
        return loader.construct_scalar(node)


for _cls in (_Loader, _FastLoader):
    _cls.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)
    _cls.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
    _cls.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)
    _cls.add_constructor("tag:yaml.org,2002:float", _keep_decimal_text)


def read_text(path: Path) -> str:
    """Read a file as strict UTF-8; a bad byte is reported with its line."""
    raw = Path(path).read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(
            [Problem(str(path), f"le fichier n'est pas encodé en UTF-8 (octet {raw[exc.start]:#04x} illisible)", line)]
        ) from None


def load_yaml(path: Path) -> Any:
    """Load a YAML file; syntax errors become an :class:`InputError` with the line."""
    text = read_text(path)
    try:
        return yaml.load(text, Loader=_FastLoader)
    except yaml.YAMLError:
        pass  # report with the reference loader's wording and line
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise InputError([Problem(str(path), f"YAML invalide : {problem}", line)]) from None
