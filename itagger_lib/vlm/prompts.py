"""Prompts built from the codebook, their hash, and validation of the answers.

The template is versioned (:data:`PROMPT_VERSION`); the hash covers the template version,
the rendered text and the answer schema, so any change to the codebook's wording, scales or
anchors, or to the template, is a new prompt (and a cache miss).

The codebook is in the system text, so that everything the same for every image — the
answer schema, the instructions, the codebook — comes first and the image and the short
request after it: that prefix is what the providers' prompt caches reuse (Anthropic's
``cache_control`` breakpoint is put after it; OpenAI caches a repeated prefix by itself),
and a repair request changes only the text after the image. Template 1 had the codebook
in the user message after the image.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from itagger_lib.codebook import Attribute, Codebook
from itagger_lib.errors import RatingError, VLMResponseError

PROMPT_VERSION = "2"
SYSTEM = (
    "You are a careful rater in an environmental-psychology study of architectural scenes. "
    "Rate the image on each attribute exactly as the codebook defines it. Answer only with the "
    "requested structured output; use only the allowed values."
)
ASK = "Rate this image on every attribute of the codebook."
REPAIR = (
    "Your previous answer was not valid: {problems}. Previous answer: {answer}\n"
    "Answer again with every attribute and only the allowed values."
)


@dataclass(frozen=True)
class Prompt:
    """System text (instructions and codebook: the cacheable prefix), user text (sent after
    the image) and answer schema of one codebook selection, with its hash."""

    system: str
    text: str
    schema: dict[str, Any]
    attributes: tuple[str, ...]
    version: str = PROMPT_VERSION

    @functools.cached_property  # asked for every call's cache key and ledger row
    def hash(self) -> str:
        payload = json.dumps(
            {"v": self.version, "system": self.system, "text": self.text, "schema": self.schema},
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(payload.encode()).hexdigest()


def describe(attribute: Attribute) -> str:
    """One attribute as the model reads it: question, definition, scale with anchors."""
    lines = [f"- {attribute.key} ({attribute.label}; {attribute.type}): {attribute.question}"]
    if attribute.definition:
        lines.append(f"  Definition: {attribute.definition}")
    if attribute.type == "continuous":
        lines.append(f"  Answer a number from {attribute.min:g} to {attribute.max:g}.")
    else:
        for level in attribute.levels:
            label = f" = {level.label}" if level.label else ""
            definition = f" ({level.definition})" if level.definition else ""
            lines.append(f"  {json.dumps(level.value)}{label}{definition}")
        if attribute.type == "multi_label":
            lines.append("  Answer a list of all that apply (possibly empty).")
        elif attribute.type == "ordinal":
            lines.append("  Use the whole scale; unlabelled points lie between their neighbours.")
    return "\n".join(lines)


def build_prompt(codebook: Codebook, keys: Sequence[str] | None = None, *, rationale: bool = False) -> Prompt:
    """The prompt asking for ``keys`` (all attributes by default) of ``codebook``."""
    attributes = codebook.select(keys)
    system = "\n".join(
        [
            SYSTEM,
            "",
            f"Codebook {codebook.name} (version {codebook.version}). Rate the image on these attributes:",
            *(describe(a) for a in attributes),
        ]
    )
    text = ASK + (" Add a short rationale." if rationale else "")
    schema = codebook.json_schema([a.key for a in attributes], rationale=rationale)
    return Prompt(system, text, schema, tuple(a.key for a in attributes))


def repair_prompt(prompt: Prompt, answer: str | None, problems: Sequence[str]) -> str:
    return prompt.text + "\n\n" + REPAIR.format(problems="; ".join(problems), answer=(answer or "")[:2000])


_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


def parse_answer(
    text: str | None, codebook: Codebook, keys: Sequence[str]
) -> tuple[dict[str, Any], str | None]:
    """``({attribute: canonical value}, rationale)``, or :class:`VLMResponseError` listing problems."""
    if not text:
        raise VLMResponseError("empty answer")
    match = _FENCE.match(text)
    try:
        answer = json.loads(match.group(1) if match else text)
    except json.JSONDecodeError as exc:
        raise VLMResponseError(f"answer is not JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(answer, dict):
        raise VLMResponseError("answer is not a JSON object")
    values: dict[str, Any] = {}
    problems = []
    for key in keys:
        if key not in answer or answer[key] is None:
            problems.append(f"{key} is missing")
            continue
        try:
            values[key] = codebook.validate_value(key, answer[key])
        except RatingError as exc:
            problems.append(str(exc))
    if problems:
        raise VLMResponseError("; ".join(problems))
    rationale = answer.get("rationale")
    return values, None if rationale is None else str(rationale)
