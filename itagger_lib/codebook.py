"""Attribute codebooks: what raters (people and VLMs) are asked, with which answers.

A codebook is a versioned YAML file (format in ``docs/codebook.md``). :func:`parse_codebook`
turns the text into a frozen :class:`Codebook`, with errors that name the line at fault;
:func:`store_codebook` keeps each ``(name, version)`` once in the database and refuses a
changed content under a version that already exists (bump ``version`` instead).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import yaml

from itagger_lib.db.dml import insert_ignore
from itagger_lib.db.models import Codebook as CodebookRow
from itagger_lib.db.models import utcnow
from itagger_lib.errors import CodebookError, RatingError

if TYPE_CHECKING:
    from itagger_lib.workspace import Workspace

TYPES = ("binary", "ordinal", "categorical", "continuous", "multi_label")
LIKERT_POINTS = (5, 7)
# Keys the tagging workbench keeps for itself (skip, back, forward).
RESERVED_HOTKEYS = frozenset({"s", "backspace", "arrowleft", "arrowright"})
_LEVEL_OF_MEASUREMENT = {
    "binary": "nominal",
    "categorical": "nominal",
    "multi_label": "nominal",
    "ordinal": "ordinal",
    "continuous": "interval",
}
DEFAULT_CODEBOOK = "codebook_architecture.yaml"


@dataclass(frozen=True)
class Level:
    """One answer of an attribute: the stored value, its label, hotkey and definition."""

    value: Any
    label: str | None = None
    hotkey: str | None = None
    definition: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class Attribute:
    """One question of the codebook.

    ``levels`` are the allowed answers of binary, ordinal, categorical and multi-label
    attributes; a continuous attribute has ``min`` and ``max`` instead.
    """

    key: str
    label: str
    question: str
    type: str
    levels: tuple[Level, ...] = ()
    min: float | None = None
    max: float | None = None
    definition: str | None = None
    line: int | None = field(default=None, compare=False)

    @property
    def level_of_measurement(self) -> str:
        """``nominal`` (binary, categorical, multi-label), ``ordinal`` or ``interval``."""
        return _LEVEL_OF_MEASUREMENT[self.type]

    @property
    def hotkeys(self) -> dict[str, Any]:
        """Hotkey → value."""
        return {level.hotkey: level.value for level in self.levels if level.hotkey}

    @property
    def values(self) -> list[Any]:
        return [level.value for level in self.levels]

    def level(self, value: Any) -> Level:
        for level in self.levels:
            if level.value == value:
                return level
        raise RatingError(f"attribute {self.key!r}: {value!r} is not one of {self.values}")

    def allowed(self) -> str:
        """The allowed answers, in words, for error messages and prompts."""
        if self.type == "continuous":
            return f"a number from {self.min:g} to {self.max:g}"
        values = ", ".join(repr(v) for v in self.values)
        if self.type == "multi_label":
            return f"a list of zero or more of {values}"
        return f"one of {values}"

    def validate(self, value: Any) -> Any:
        """The value in canonical form (int, str, float or sorted list), or :class:`RatingError`."""
        bad = RatingError(f"attribute {self.key!r}: {value!r} is not allowed; give {self.allowed()}")
        if self.type == "continuous":
            if isinstance(value, bool):
                raise bad
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise bad from None
            assert self.min is not None and self.max is not None
            if not math.isfinite(number) or not self.min <= number <= self.max:
                raise bad
            return number
        if self.type == "multi_label":
            if isinstance(value, str):
                value = [part for part in value.split(";") if part]
            if not isinstance(value, list | tuple | set | frozenset):
                raise bad
            chosen = set(value)
            if not chosen <= set(self.values):
                raise bad
            return [v for v in self.values if v in chosen]
        if self.type in ("ordinal", "binary"):
            if isinstance(value, bool):
                value = int(value)
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                value = int(value)
        if value not in self.values or isinstance(value, bool):
            raise bad
        return next(v for v in self.values if v == value and type(v) is type(value))

    def to_columns(self, value: Any) -> tuple[float | None, str | None]:
        """``(value, value_text)`` as stored in the ``ratings`` table."""
        value = self.validate(value)
        if self.type == "multi_label":
            return None, ";".join(str(v) for v in value)
        if isinstance(value, str):
            return float(self.values.index(value)), value
        return float(value), None

    def from_columns(self, value: float | None, value_text: str | None) -> Any:
        """The inverse of :meth:`to_columns`."""
        if self.type == "multi_label":
            return self.validate(value_text or "")
        if value_text is not None:
            return value_text
        if value is None:
            return None
        return value if self.type == "continuous" else int(value)

    def json_schema(self) -> dict[str, Any]:
        """JSON schema of one answer (for structured VLM output)."""
        description = f"{self.question} {self.allowed()}"
        if self.type == "continuous":
            return {"type": "number", "minimum": self.min, "maximum": self.max, "description": description}
        if self.type == "multi_label":
            return {
                "type": "array",
                "items": {"type": "string", "enum": list(self.values)},
                "description": description,
            }
        if all(isinstance(v, str) for v in self.values):
            return {"type": "string", "enum": list(self.values), "description": description}
        return {"type": "integer", "enum": list(self.values), "description": description}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "key": self.key,
            "label": self.label,
            "question": self.question,
            "type": self.type,
        }
        if self.levels:
            out["levels"] = [level.to_dict() for level in self.levels]
        if self.type == "continuous":
            out["min"], out["max"] = self.min, self.max
        if self.definition:
            out["definition"] = self.definition
        return out


@dataclass(frozen=True)
class Codebook:
    """A named, versioned list of attributes; ``id`` is its database row once stored."""

    name: str
    version: str
    attributes: tuple[Attribute, ...]
    description: str | None = None
    id: int | None = None

    @property
    def keys(self) -> list[str]:
        return [a.key for a in self.attributes]

    @property
    def content_hash(self) -> str:
        """SHA-256 of the canonical definition (comments and layout do not count)."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def attribute(self, key: str) -> Attribute:
        for attribute in self.attributes:
            if attribute.key == key:
                return attribute
        raise RatingError(
            f"codebook {self.name!r} version {self.version!r} has no attribute {key!r}; "
            f"its attributes are {', '.join(self.keys)}"
        )

    def validate_value(self, key: str, value: Any) -> Any:
        """The canonical value of ``key``, or :class:`RatingError` naming the allowed values."""
        return self.attribute(key).validate(value)

    def select(self, keys: Iterable[str] | None) -> list[Attribute]:
        """The attributes named by ``keys`` (all when ``None``), in codebook order."""
        if keys is None:
            return list(self.attributes)
        wanted = list(keys)
        for key in wanted:
            self.attribute(key)
        return [a for a in self.attributes if a.key in wanted]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "version": self.version}
        if self.description:
            out["description"] = self.description
        out["attributes"] = [a.to_dict() for a in self.attributes]
        return out

    def json_schema(self, keys: Iterable[str] | None = None, *, rationale: bool = False) -> dict[str, Any]:
        """JSON schema of one complete answer: every selected attribute, required."""
        attributes = self.select(keys)
        properties = {a.key: a.json_schema() for a in attributes}
        required = [a.key for a in attributes]
        if rationale:
            properties["rationale"] = {"type": "string", "description": "one or two sentences on why"}
            required.append("rationale")
        return {
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": False,
        }

    def __repr__(self) -> str:
        return f"Codebook({self.name!r}, version={self.version!r}, attributes={self.keys}, id={self.id})"


# -- parsing with line numbers --------------------------------------------------------------


class _Map(dict[str, Any]):
    """A YAML mapping that remembers its line and the line of each key (1-based)."""

    line: int
    key_lines: dict[str, int]


def _scalar(node: yaml.ScalarNode) -> Any:
    loader = yaml.SafeLoader("")
    return loader.construct_object(node, deep=True)


def _to_python(node: yaml.Node, source: str | None) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return _scalar(node)
    if isinstance(node, yaml.MappingNode):
        out = _Map()
        out.line = node.start_mark.line + 1
        out.key_lines = {}
        for key_node, value_node in node.value:
            key = str(_to_python(key_node, source))
            if key in out:
                raise CodebookError(
                    f"key {key!r} appears twice in this mapping; keep one",
                    source=source,
                    line=key_node.start_mark.line + 1,
                )
            out[key] = _to_python(value_node, source)
            out.key_lines[key] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, source) for item in node.value]
    raise CodebookError("unsupported YAML node", source=source, line=node.start_mark.line + 1)


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
            bounds.append(float(value))
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
    return parse_codebook(text, source=str(path))


def default_codebook_text() -> str:
    return (Path(__file__).parent / "data" / DEFAULT_CODEBOOK).read_text(encoding="utf-8")


def default_codebook() -> Codebook:
    """The shipped architecture codebook (``itagger_lib/data/codebook_architecture.yaml``)."""
    return parse_codebook(default_codebook_text(), source=DEFAULT_CODEBOOK)


# -- the database ---------------------------------------------------------------------------


def _source_text(source: Any) -> tuple[str, str]:
    """``(yaml_text, name_for_messages)`` of a path, YAML text, mapping or the default."""
    if source is None:
        return default_codebook_text(), DEFAULT_CODEBOOK
    if isinstance(source, Codebook):
        text = yaml.safe_dump(source.to_dict(), sort_keys=False, allow_unicode=True)
        return text, f"codebook {source.name}"
    if isinstance(source, Mapping):
        return yaml.safe_dump(dict(source), sort_keys=False, allow_unicode=True), "<mapping>"
    if isinstance(source, os.PathLike) or (
        isinstance(source, str) and "\n" not in source and source.endswith((".yaml", ".yml"))
    ):
        path = Path(source)
        try:
            return path.read_text(encoding="utf-8"), str(path)
        except OSError as exc:
            raise CodebookError(f"cannot read the codebook ({exc.strerror})", source=str(path)) from exc
    if isinstance(source, str):
        return source, "<text>"
    raise CodebookError(f"cannot load a codebook from {type(source).__name__}; give a path or YAML text")


@functools.lru_cache(maxsize=64)
def _parse_stored(text: str, source: str) -> Codebook:
    # stored versions never change, and a Codebook is immutable: parse each one once per process
    return parse_codebook(text, source=source)


def _from_row(row: Any) -> Codebook:
    codebook = _parse_stored(row["source_text"], f"codebook {row['name']} {row['version']}")
    return replace(codebook, id=int(row["id"]))


def store_codebook(ws: Workspace, source: Any = None) -> Codebook:
    """Store a codebook version; return it with its database ``id``.

    ``source`` is a path, YAML text, a :class:`Codebook`, or ``None`` for the shipped
    default. Storing identical content again returns the existing version; a different
    content under an existing ``name`` + ``version`` raises :class:`CodebookError` (bump
    ``version``: a version that may have ratings is never edited in place).
    """
    text, where = _source_text(source)
    codebook = parse_codebook(text, source=where)
    with ws.engine.begin() as connection:
        insert_ignore(
            connection,
            CodebookRow,
            [
                {
                    "name": codebook.name,
                    "version": codebook.version,
                    "content_hash": codebook.content_hash,
                    "source_text": text,
                    "definition": codebook.to_dict(),
                    "created_at": utcnow(),
                    "created_by": ws.user,
                }
            ],
        )
        row = (
            connection.execute(
                sa.select(CodebookRow.id, CodebookRow.content_hash).where(
                    CodebookRow.name == codebook.name, CodebookRow.version == codebook.version
                )
            )
            .mappings()
            .one()
        )
    if row["content_hash"] != codebook.content_hash:
        raise CodebookError(
            f"codebook {codebook.name!r} version {codebook.version!r} is already stored with a "
            "different content; a stored version is never edited in place — bump `version:` in "
            "the file (e.g. to a new number) and load it again",
            source=where,
        )
    return replace(codebook, id=int(row["id"]))


def get_codebook(ws: Workspace, name: str | None = None, version: str | None = None) -> Codebook:
    """A stored codebook: the newest one, the newest of ``name``, or ``name`` + ``version``."""
    query = sa.select(CodebookRow).order_by(CodebookRow.id.desc()).limit(1)
    if name is not None:
        query = query.where(CodebookRow.name == name)
    if version is not None:
        query = query.where(CodebookRow.version == str(version))
    with ws.engine.connect() as connection:
        row = connection.execute(query).mappings().first()
    if row is None:
        what = "no codebook is stored" if name is None else f"no codebook {name!r}"
        if version is not None:
            what += f" version {version!r}"
        raise CodebookError(
            f"{what} in this workspace; load one with ws.load_codebook(path) or "
            "`itagger codebook load FILE` (ws.load_codebook() loads the default)"
        )
    return _from_row(row)


def get_codebook_by_id(ws: Workspace, codebook_id: int) -> Codebook:
    with ws.engine.connect() as connection:
        query = sa.select(CodebookRow).where(CodebookRow.id == codebook_id)
        row = connection.execute(query).mappings().first()
    if row is None:
        raise CodebookError(f"no codebook with id {codebook_id} in this workspace")
    return _from_row(row)


def list_codebooks(ws: Workspace) -> list[dict[str, Any]]:
    """Stored codebooks (id, name, version, content hash, created), oldest first."""
    columns = [
        CodebookRow.id,
        CodebookRow.name,
        CodebookRow.version,
        CodebookRow.content_hash,
        CodebookRow.created_at,
        CodebookRow.created_by,
    ]
    with ws.engine.connect() as connection:
        return [dict(r) for r in connection.execute(sa.select(*columns).order_by(CodebookRow.id)).mappings()]


def resolve_codebook(ws: Workspace, codebook: Any = None) -> Codebook:
    """A stored codebook from what a caller passed: ``None`` (the newest, or the default
    stored now), a codebook id, a stored :class:`Codebook`, or a YAML path or text to store."""
    if codebook is None:
        try:
            return get_codebook(ws)
        except CodebookError:
            return store_codebook(ws)
    if isinstance(codebook, int):
        return get_codebook_by_id(ws, codebook)
    if isinstance(codebook, Codebook) and codebook.id is not None:
        return codebook
    return store_codebook(ws, codebook)
