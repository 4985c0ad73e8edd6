"""The codebook as data: attributes, their answers, validation and the answer schema.

A :class:`Codebook` is a named, versioned, frozen list of :class:`Attribute` (one question
each, with its type and :class:`Level` answers); :meth:`Attribute.validate` is the one place
an answer is checked, for people, imports and VLMs alike. Reading YAML lives in
:mod:`.parsing`, the database in :mod:`.storage`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from itagger_lib.errors import RatingError

__all__ = [
    "LIKERT_POINTS",
    "RESERVED_HOTKEYS",
    "TYPES",
    "Answer",
    "Attribute",
    "Codebook",
    "CodebookRef",
    "CodebookSource",
    "Level",
]

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


@dataclass(frozen=True)
class Level:
    """One answer of an attribute: the stored value, its label, hotkey and definition."""

    value: int | str
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
    def hotkeys(self) -> dict[str, int | str]:
        """Hotkey → value."""
        return {level.hotkey: level.value for level in self.levels if level.hotkey}

    @property
    def values(self) -> list[int | str]:
        return [level.value for level in self.levels]

    def level(self, value: object) -> Level:
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

    def validate(self, value: Any) -> Answer:
        """The value in canonical form (int, str, float or sorted list), or :class:`RatingError`.

        ``value`` may be anything a caller was given (a table cell, a key press, a model's
        JSON); that is what is checked.
        """
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
            return [str(v) for v in self.values if v in chosen]  # multi-label values are text
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

    def to_columns(self, value: object) -> tuple[float | None, str | None]:
        """``(value, value_text)`` as stored in the ``ratings`` table."""
        answer = self.validate(value)
        if isinstance(answer, str):
            return float(self.values.index(answer)), answer
        if isinstance(answer, int | float):
            return float(answer), None
        return None, ";".join(str(v) for v in answer)  # multi-label: the labels chosen

    def from_columns(self, value: float | None, value_text: str | None) -> Answer | None:
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

    def validate_value(self, key: str, value: object) -> Answer:
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


#: One answer to an attribute: a level's value (a whole number or a label), a number for a
#: continuous attribute, or labels for a multi-label one (also as one ``;``-separated text).
Answer: TypeAlias = "int | float | str | Sequence[str]"
#: A codebook to store: a :class:`Codebook`, YAML (a path or text), a mapping, or ``None``
#: for the shipped default.
CodebookSource: TypeAlias = "Codebook | str | os.PathLike[str] | Mapping[str, Any] | None"
#: A codebook to use: a stored one (its id, or a :class:`Codebook` with its ``id``), one to
#: store (a :data:`CodebookSource`), or ``None`` for the newest stored one.
CodebookRef: TypeAlias = "int | CodebookSource"
