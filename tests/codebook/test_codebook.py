"""The codebook: parsing with line-numbered errors, values, schema, versioned storage."""

from __future__ import annotations

import textwrap

import pytest
import sqlalchemy as sa

from itagger_lib.codebook import (
    default_codebook,
    get_codebook,
    load_codebook_file,
    parse_codebook,
    store_codebook,
)
from itagger_lib.db.models import Codebook as CodebookRow
from itagger_lib.errors import CodebookError, RatingError

GOOD = textwrap.dedent(
    """\
    name: mini
    version: "1"
    attributes:
      - key: calm
        question: How calm?
        type: ordinal
        points: 5
        anchors: {1: Not calm, 5: Very calm}
      - key: kind
        question: Which kind?
        type: categorical
        levels:
          - {value: a, label: A}
          - {value: b, label: B}
      - key: tags
        question: Which tags?
        type: multi_label
        levels: [{value: tree}, {value: water}]
      - key: depth
        question: How deep (m)?
        type: continuous
        min: 0
        max: 100
      - key: door
        question: A door?
        type: binary
    """
)


def test_default_codebook_is_rich_and_valid() -> None:
    codebook = default_codebook()
    assert 12 <= len(codebook.attributes) <= 15
    types = {a.type for a in codebook.attributes}
    assert {"ordinal", "binary", "categorical"} <= types
    for attribute in codebook.attributes:
        if attribute.type == "ordinal":
            assert len(attribute.levels) in (5, 7)
            assert attribute.levels[0].label and attribute.levels[-1].label
    assert codebook.attribute("coherence").level_of_measurement == "ordinal"
    assert codebook.attribute("setting").level_of_measurement == "nominal"


def test_values_are_validated_and_encoded() -> None:
    codebook = parse_codebook(GOOD)
    assert codebook.validate_value("calm", "4") == 4
    assert codebook.validate_value("calm", 5.0) == 5
    with pytest.raises(RatingError, match=r"'calm'.*one of 1, 2, 3, 4, 5"):
        codebook.validate_value("calm", 6)
    with pytest.raises(RatingError, match=r"'depth'.*from 0 to 100"):
        codebook.validate_value("depth", 101)
    assert codebook.validate_value("tags", ["water", "tree"]) == ["tree", "water"]
    with pytest.raises(RatingError, match="no attribute 'nope'"):
        codebook.validate_value("nope", 1)
    kind = codebook.attribute("kind")
    assert kind.to_columns("b") == (1.0, "b")
    assert kind.from_columns(1.0, "b") == "b"
    tags = codebook.attribute("tags")
    assert tags.from_columns(*tags.to_columns(["water"])) == ["water"]
    assert codebook.attribute("door").hotkeys == {"0": 0, "1": 1}
    assert codebook.attribute("calm").level_of_measurement == "ordinal"
    assert codebook.attribute("depth").level_of_measurement == "interval"


def test_json_schema_lists_the_allowed_values() -> None:
    schema = parse_codebook(GOOD).json_schema(["calm", "kind"], rationale=True)
    assert schema["required"] == ["calm", "kind", "rationale"]
    assert schema["properties"]["calm"]["enum"] == [1, 2, 3, 4, 5]
    assert schema["properties"]["kind"]["enum"] == ["a", "b"]
    assert schema["additionalProperties"] is False


BAD = [
    ("duplicate attribute key", GOOD.replace("key: kind", "key: calm"), 9, "defined twice"),
    ("unknown type", GOOD.replace("type: categorical", "type: slider"), 11, "unknown type 'slider'"),
    ("missing question", GOOD.replace("    question: Which kind?\n", ""), 9, "no 'question'"),
    ("likert without anchors", GOOD.replace("    anchors: {1: Not calm, 5: Very calm}\n", ""), 7, "anchors"),
    (
        "likert one anchor",
        GOOD.replace("anchors: {1: Not calm, 5: Very calm}", "anchors: {1: Not calm}"),
        8,
        "both end points",
    ),
    ("four points", GOOD.replace("points: 5", "points: 4").replace(", 5: Very calm", ""), 7, "5 or 7 points"),
    (
        "hotkey clash",
        GOOD.replace("{value: b, label: B}", "{value: b, label: B, hotkey: '1'}"),
        12,
        "hotkey '1'",
    ),
    (
        "reserved hotkey",
        GOOD.replace("{value: b, label: B}", "{value: b, label: B, hotkey: s}"),
        12,
        "reserved",
    ),
    (
        "duplicate mapping key",
        GOOD.replace("    type: binary\n", "    type: binary\n    type: binary\n"),
        27,
        "twice",
    ),
]


@pytest.mark.parametrize(("text", "line", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_invalid_codebooks_name_the_line(text: str, line: int, message: str) -> None:
    with pytest.raises(CodebookError, match=message) as info:
        parse_codebook(text, source="mine.yaml")
    assert info.value.line == line
    assert str(info.value).startswith(f"mine.yaml:{line}: ")


def test_load_file_names_the_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "cb.yaml"
    path.write_text(GOOD.replace("type: binary", "type: bool"))
    with pytest.raises(CodebookError, match=rf"{path}:\d+: attribute 'door': unknown type"):
        load_codebook_file(path)


def test_store_is_versioned_and_never_edited_in_place(workspace, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CodebookError, match="load_codebook"):
        get_codebook(workspace)
    first = store_codebook(workspace, GOOD)
    assert first.id is not None
    again = store_codebook(workspace, GOOD + "# a comment changes nothing\n")
    assert again.id == first.id
    changed = GOOD.replace("How calm?", "How calm is it?")
    with pytest.raises(CodebookError, match="bump `version:`"):
        store_codebook(workspace, changed)
    path = tmp_path / "v2.yaml"
    path.write_text(changed.replace('version: "1"', 'version: "2"'))
    second = workspace.load_codebook(path)
    assert second.id != first.id and second.version == "2"
    assert workspace.codebook().id == second.id
    assert get_codebook(workspace, name="mini", version="1") == first
    default = workspace.load_codebook()
    assert workspace.codebook("architecture").id == default.id
    with workspace.engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(CodebookRow)).scalar() == 3
