"""YAML → :class:`~itagger_lib.codebook.model.Codebook`, with errors that name the line at fault.

The format is in ``docs/codebook.md``. The YAML is composed into nodes (not loaded) so that
every mapping remembers the line of each key, and every :class:`CodebookError` can say
``file:line: what is wrong; what to do``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import yaml

from itagger_lib.codebook.model import LIKERT_POINTS, RESERVED_HOTKEYS, TYPES, Attribute, Codebook, Level
from itagger_lib.errors import CodebookError

__all__ = [
    "DEFAULT_CODEBOOK",
    "default_codebook",
    "default_codebook_text",
    "load_codebook_file",
    "parse_codebook",
]

DEFAULT_CODEBOOK = "codebook_architecture.yaml"


class _Map(dict[str, Any]):
    """A YAML mapping that remembers its line and the line of each key (1-based)."""

    line: int
    key_lines: dict[str, int]


# Plain data only: text, numbers, booleans, null, dates, mappings and lists. Any other tag
# (``!!python/name:...``, ``!!binary``, ``!!set``, a local ``!tag``) is refused.
_YAML = "tag:yaml.org,2002:"
_SCALAR_TAGS = {f"{_YAML}{t}" for t in ("str", "int", "float", "bool", "null", "timestamp")}
_MAX_DEPTH = 32  # a codebook nests five levels deep; anything far deeper is not a codebook


def _scalar(node: yaml.ScalarNode, source: str | None) -> Any:
    if node.tag not in _SCALAR_TAGS:
        raise CodebookError(
            f"YAML tag {node.tag!r} is not allowed; a codebook holds plain text, numbers and lists",
            source=source,
            line=node.start_mark.line + 1,
        )
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, OverflowError) as exc:
        raise CodebookError(
            f"value {node.value!r} cannot be read ({exc}); write it as plain text or a number",
            source=source,
            line=node.start_mark.line + 1,
        ) from None


def _to_python(node: yaml.Node, source: str | None, seen: set[int] | None = None, depth: int = 0) -> Any:
    """Plain Python of a composed YAML tree; aliases (``*name``) are refused, so a small file
    cannot expand into a huge or endless structure (docs/codebook.md, "What YAML is allowed")."""
    seen = set() if seen is None else seen
    line = node.start_mark.line + 1
    if id(node) in seen:
        raise CodebookError(
            "YAML aliases (*name) are not allowed in a codebook; write the value out in full",
            source=source,
            line=line,
        )
    seen.add(id(node))
    if depth > _MAX_DEPTH:
        raise CodebookError(f"nested more than {_MAX_DEPTH} levels deep", source=source, line=line)
    if isinstance(node, yaml.ScalarNode):
        return _scalar(node, source)
    if node.tag not in (f"{_YAML}map", f"{_YAML}seq"):
        raise CodebookError(
            f"YAML tag {node.tag!r} is not allowed; a codebook holds plain text, numbers and lists",
            source=source,
            line=line,
        )
    if isinstance(node, yaml.MappingNode):
        out = _Map()
        out.line = line
        out.key_lines = {}
        for key_node, value_node in node.value:
            key = str(_to_python(key_node, source, seen, depth + 1))
            if key in out:
                raise CodebookError(
                    f"key {key!r} appears twice in this mapping; keep one",
                    source=source,
                    line=key_node.start_mark.line + 1,
                )
            out[key] = _to_python(value_node, source, seen, depth + 1)
            out.key_lines[key] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, source, seen, depth + 1) for item in node.value]
    raise CodebookError("unsupported YAML node", source=source, line=line)


def _line(mapping: Any, key: str | None = None) -> int | None:
    if not isinstance(mapping, _Map):
        return None
    if key is not None and key in mapping.key_lines:
        return mapping.key_lines[key]
    return mapping.line


def _text(mapping: _Map, key: str, source: str | None, *, required: bool, where: str) -> str | None:
    value = mapping.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise CodebookError(f"{where} has no {key!r}; add one", source=source, line=_line(mapping))
        return None
    if isinstance(value, dict | list):
        raise CodebookError(f"{where}: {key!r} must be text", source=source, line=_line(mapping, key))
    return str(value).strip()


def _default_hotkey(value: Any, position: int) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 9:
        return str(value)
    return str(position) if position <= 9 else None


def _levels(raw: _Map, kind: str, key: str, source: str | None) -> tuple[Level, ...]:
    where = f"attribute {key!r}"
    if kind == "binary" and "levels" not in raw:
        return (Level(0, "No", "0"), Level(1, "Yes", "1"))
    if kind == "ordinal" and "levels" not in raw and "points" in raw:
        points = raw["points"]
        if not isinstance(points, int) or isinstance(points, bool):
            raise CodebookError(f"{where}: points must be 5 or 7", source=source, line=_line(raw, "points"))
        anchors = raw.get("anchors") or {}
        if not isinstance(anchors, dict):
            raise CodebookError(
                f"{where}: anchors must map scale points to labels, e.g. {{1: Very low, 7: Very high}}",
                source=source,
                line=_line(raw, "anchors"),
            )
        labels = {int(k): str(v) for k, v in anchors.items()}
        extra = sorted(set(labels) - set(range(1, points + 1)))
        if extra:
            raise CodebookError(
                f"{where}: anchors {extra} lie outside the scale 1..{points}",
                source=source,
                line=_line(raw, "anchors"),
            )
        return tuple(Level(v, labels.get(v), str(v)) for v in range(1, points + 1))
    items = raw.get("levels")
    if not isinstance(items, list) or not items:
        hint = "add `levels:`"
        if kind == "ordinal":
            hint = "add `points: 7` and `anchors:`, or a list of `levels:`"
        raise CodebookError(f"{where} ({kind}) has no levels; {hint}", source=source, line=_line(raw))
    levels = []
    for position, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            item_map = _Map(value=item)
            item_map.line, item_map.key_lines = _line(raw, "levels") or 0, {}
            item = item_map
        if "value" not in item:
            raise CodebookError(f"{where}: a level has no 'value'", source=source, line=_line(item))
        value = item["value"]
        if kind == "ordinal" and (not isinstance(value, int) or isinstance(value, bool)):
            raise CodebookError(
                f"{where}: ordinal level values must be whole numbers, got {value!r}",
                source=source,
                line=_line(item, "value"),
            )
        if kind in ("categorical", "multi_label"):
            value = str(value)
        hotkey = item.get("hotkey")
        hotkey = _default_hotkey(value, position) if hotkey is None else str(hotkey)
        levels.append(
            Level(
                value,
                _text(item, "label", source, required=False, where=where),
                hotkey,
                _text(item, "definition", source, required=False, where=where),
            )
        )
    return tuple(levels)


def _check_levels(attribute: Attribute, raw: _Map, source: str | None) -> None:
    where = f"attribute {attribute.key!r}"
    named = [raw.key_lines[k] for k in ("levels", "points") if k in raw.key_lines]
    line = named[0] if named else _line(raw)
    values = attribute.values
    dupes = sorted({str(v) for v in values if values.count(v) > 1})
    if dupes:
        raise CodebookError(f"{where}: level values {dupes} appear twice", source=source, line=line)
    if attribute.type == "binary" and len(values) != 2:
        raise CodebookError(f"{where}: a binary attribute has exactly 2 levels", source=source, line=line)
    if attribute.type == "ordinal":
        if len(values) not in LIKERT_POINTS:
            raise CodebookError(
                f"{where}: an ordinal (Likert) scale has 5 or 7 points, this one has {len(values)}",
                source=source,
                line=line,
            )
        ordered = sorted(attribute.levels, key=lambda level: level.value)
        if not (ordered[0].label and ordered[-1].label):
            raise CodebookError(
                f"{where}: a Likert scale needs labelled anchors at least on both end points "
                f"({ordered[0].value} and {ordered[-1].value}); add `anchors:` or level labels",
                source=source,
                line=raw.key_lines.get("anchors", line),
            )
    seen: dict[str, Any] = {}
    for level in attribute.levels:
        if level.hotkey is None:
            continue
        if len(level.hotkey) != 1 or not level.hotkey.isprintable() or level.hotkey.isspace():
            raise CodebookError(
                f"{where}: hotkey {level.hotkey!r} of level {level.value!r} must be exactly one "
                "printable character (a letter, digit or sign); leave it out for no hotkey",
                source=source,
                line=line,
            )
        hotkey = level.hotkey.lower()
        if hotkey in RESERVED_HOTKEYS:
            raise CodebookError(
                f"{where}: hotkey {level.hotkey!r} is reserved by the workbench "
                f"({', '.join(sorted(RESERVED_HOTKEYS))}); choose another",
                source=source,
                line=line,
            )
        if hotkey in seen:
            raise CodebookError(
                f"{where}: hotkey {level.hotkey!r} is used by both {seen[hotkey]!r} and "
                f"{level.value!r}; give each level its own hotkey",
                source=source,
                line=line,
            )
        seen[hotkey] = level.value


def _attribute(raw: Any, source: str | None) -> Attribute:
    if not isinstance(raw, _Map):
        raise CodebookError("each attribute must be a mapping with key, question and type", source=source)
    key = _text(raw, "key", source, required=True, where="an attribute")
    assert key is not None
    if not key.replace("_", "").isalnum() or not key[0].isalpha():
        raise CodebookError(
            f"attribute key {key!r} must be letters, digits and underscores, starting with a letter",
            source=source,
            line=_line(raw, "key"),
        )
    where = f"attribute {key!r}"
    kind = _text(raw, "type", source, required=True, where=where)
    if kind == "likert":
        kind = "ordinal"
    if kind not in TYPES:
        raise CodebookError(
            f"{where}: unknown type {kind!r}; use one of {', '.join(TYPES)}",
            source=source,
            line=_line(raw, "type"),
        )
    question = _text(raw, "question", source, required=True, where=where)
    assert question is not None
    label = _text(raw, "label", source, required=False, where=where) or key.replace("_", " ").capitalize()
    definition = _text(raw, "definition", source, required=False, where=where)
    if kind == "continuous":
        bounds = []
        for name in ("min", "max"):
            value = raw.get(name)
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise CodebookError(
                    f"{where}: a continuous attribute needs a numeric {name!r}",
                    source=source,
                    line=_line(raw, name),
                )
            try:
                number = float(value)
            except OverflowError:
                number = math.inf
            if not math.isfinite(number):
                raise CodebookError(
                    f"{where}: {name!r} must be a finite number, got {value!r}",
                    source=source,
                    line=_line(raw, name),
                )
            bounds.append(number)
        if bounds[0] >= bounds[1]:
            raise CodebookError(f"{where}: min must be below max", source=source, line=_line(raw, "min"))
        return Attribute(key, label, question, kind, (), bounds[0], bounds[1], definition, _line(raw))
    attribute = Attribute(
        key, label, question, kind, _levels(raw, kind, key, source), None, None, definition, _line(raw)
    )
    _check_levels(attribute, raw, source)
    return attribute


def parse_codebook(text: str, source: str | None = None) -> Codebook:
    """Parse and validate a YAML codebook.

    Raises
    ------
    CodebookError
        With ``source`` and the 1-based ``line`` at fault: YAML syntax, duplicate keys,
        unknown types, a missing question, hotkey clashes, a Likert scale that is not 5 or 7
        points or lacks labelled end points.
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise CodebookError("the YAML is nested too deeply to be a codebook", source=source) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise CodebookError(
            f"not valid YAML ({getattr(exc, 'problem', exc)})",
            source=source,
            line=None if mark is None else mark.line + 1,
        ) from None
    if node is None:
        raise CodebookError("the codebook is empty", source=source)
    raw = _to_python(node, source)
    if not isinstance(raw, _Map):
        raise CodebookError(
            "a codebook is a mapping with name, version and attributes", source=source, line=1
        )
    name = _text(raw, "name", source, required=True, where="the codebook")
    version = _text(raw, "version", source, required=True, where="the codebook")
    assert name is not None and version is not None
    items = raw.get("attributes")
    if not isinstance(items, list) or not items:
        raise CodebookError(
            "the codebook has no `attributes:` list", source=source, line=_line(raw, "attributes")
        )
    attributes: list[Attribute] = []
    seen: dict[str, int | None] = {}
    for item in items:
        attribute = _attribute(item, source)
        if attribute.key in seen:
            raise CodebookError(
                f"attribute key {attribute.key!r} is defined twice (first on line {seen[attribute.key]}); "
                "keys must be unique",
                source=source,
                line=_line(item, "key"),
            )
        seen[attribute.key] = _line(item, "key")
        attributes.append(attribute)
    description = _text(raw, "description", source, required=False, where="the codebook")
    return Codebook(name, version, tuple(attributes), description)


def load_codebook_file(path: str | os.PathLike[str]) -> Codebook:
    """Parse a codebook file; errors name the file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CodebookError(f"cannot read the codebook ({exc.strerror})", source=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise CodebookError(not_utf8(exc), source=str(path)) from None
    return parse_codebook(text, source=str(path))


def not_utf8(exc: UnicodeDecodeError) -> str:
    """The message for a codebook file that is not UTF-8 text."""
    return f"not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); save the file as UTF-8"


def default_codebook_text() -> str:
    return (Path(__file__).parent.parent / "data" / DEFAULT_CODEBOOK).read_text(encoding="utf-8")


def default_codebook() -> Codebook:
    """The shipped architecture codebook (``itagger_lib/data/codebook_architecture.yaml``)."""
    return parse_codebook(default_codebook_text(), source=DEFAULT_CODEBOOK)
