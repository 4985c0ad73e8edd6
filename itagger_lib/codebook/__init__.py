"""Attribute codebooks: what raters (people and VLMs) are asked, with which answers.

The codebook room: :mod:`.model` (attributes, levels, validation, the answer schema),
:mod:`.parsing` (versioned YAML with line-numbered errors; format in ``docs/codebook.md``)
and :mod:`.storage` (each version stored once, never edited; the one resolver from what a
caller passes to a stored codebook).
"""

from __future__ import annotations

from itagger_lib.codebook.model import (
    TYPES,
    Answer,
    Attribute,
    Codebook,
    CodebookRef,
    CodebookSource,
    Level,
)
from itagger_lib.codebook.parsing import (
    DEFAULT_CODEBOOK,
    default_codebook,
    default_codebook_text,
    load_codebook_file,
    parse_codebook,
)
from itagger_lib.codebook.storage import (
    get_codebook,
    get_codebook_by_id,
    list_codebooks,
    resolve_codebook,
    store_codebook,
    stored_attributes,
)

__all__ = [
    "DEFAULT_CODEBOOK",
    "TYPES",
    "Answer",
    "Attribute",
    "Codebook",
    "CodebookRef",
    "CodebookSource",
    "Level",
    "default_codebook",
    "default_codebook_text",
    "get_codebook",
    "get_codebook_by_id",
    "list_codebooks",
    "load_codebook_file",
    "parse_codebook",
    "resolve_codebook",
    "store_codebook",
    "stored_attributes",
]
