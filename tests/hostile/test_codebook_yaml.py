"""Hostile codebook YAML: one clear CodebookError, quickly, for each; nothing stored."""

from __future__ import annotations

import time

import pytest

from itagger_lib.codebook import parse_codebook
from itagger_lib.errors import CodebookError

HEAD = 'name: h\nversion: "1"\n'


def _binary(levels: str) -> str:
    return HEAD + f"attributes:\n  - key: x\n    question: q\n    type: binary\n    levels: {levels}\n"


def _continuous(bounds: str) -> str:
    return HEAD + f"attributes:\n  - key: x\n    question: q\n    type: continuous\n    {bounds}\n"


# the "billion laughs": 9 levels of 9 aliases each; 561 bytes that expand to 9**9 strings
LAUGHS = (
    HEAD
    + "a0: &a0 [lol]\n"
    + "".join(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10))
    + "attributes: *a9\n"
)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (LAUGHS, r"aliases \(\*name\) are not allowed"),
        (HEAD + "attributes: &x [*x]\n", r"aliases \(\*name\) are not allowed"),  # recursive
        (HEAD + "x: &k {q: 1}\ny: *k\nattributes: []\n", "aliases"),
        (HEAD + "attributes: " + "[" * 5000 + "]" * 5000 + "\n", "nested"),
        (HEAD + "attributes: !!python/name:os.system\n", "tag 'tag:yaml.org,2002:python/name:os.system'"),
        (HEAD + "attributes: !!python/object/apply:os.system [ls]\n", "is not allowed"),
        (HEAD + "attributes: !!set {a, b}\n", "is not allowed"),
        (HEAD + "attributes: !local [a]\n", "is not allowed"),
        (_binary('[{value: 0, hotkey: "12"}, {value: 1}]'), "'12' of level 0 must be exactly one printable"),
        (_binary('[{value: 0, hotkey: ""}, {value: 1}]'), "hotkey '' of level 0"),
        (_binary('[{value: 0, hotkey: " "}, {value: 1}]'), "must be exactly one printable"),
        (_binary('[{value: 0, hotkey: "\\t"}, {value: 1}]'), "must be exactly one printable"),
        (_binary('[{value: 0, hotkey: "a"}, {value: 1, hotkey: "A"}]'), "used by both"),
        (_continuous("min: .nan\n    max: .inf"), "'min' must be a finite number, got nan"),
        (_continuous("min: 0\n    max: .inf"), "'max' must be a finite number"),
        (_continuous("min: 0\n    max: 1" + "0" * 400), "'max' must be a finite number"),
        (_continuous("min: 0\n    max: 1.0e+400"), "'max' must be a finite number"),
        (_continuous("min: 2.0\n    max: 1.0"), "min must be below max"),
    ],
    ids=[
        "billion-laughs",
        "recursive-alias",
        "any-alias",
        "deep-nesting",
        "python-name",
        "python-apply",
        "set",
        "local-tag",
        "two-char-hotkey",
        "empty-hotkey",
        "space-hotkey",
        "tab-hotkey",
        "hotkeys-differ-by-case-only",
        "nan-inf",
        "inf",
        "huge-int",
        "overflow-float",
        "min-above-max",
    ],
)
def test_hostile_codebooks_are_refused_quickly_and_clearly(text, match):
    started = time.perf_counter()
    with pytest.raises(CodebookError, match=match):
        parse_codebook(text, source="evil.yaml")
    assert time.perf_counter() - started < 2.0


def test_non_utf8_and_nul_codebook_files_are_one_line_errors(workspace, tmp_path):
    latin = tmp_path / "latin1.yaml"
    latin.write_bytes(_binary("[{value: 0, label: caf\xe9}, {value: 1}]").encode("latin-1"))
    with pytest.raises(
        CodebookError, match=r"latin1.yaml.*not UTF-8 text \(byte 0xe9.*save the file as UTF-8"
    ):
        workspace.load_codebook(latin)
    nul = tmp_path / "nul.yaml"
    nul.write_bytes(b"name: a\x00\n")
    with pytest.raises(CodebookError, match=r"nul\.yaml"):
        workspace.load_codebook(nul)
    with pytest.raises(CodebookError):
        workspace.codebook()  # nothing was stored


def test_plain_codebooks_still_parse():
    book = parse_codebook(_binary('[{value: 0, hotkey: "n"}, {value: 1, hotkey: "y"}]'))
    assert book.attribute("x").hotkeys == {"n": 0, "y": 1}
    dated = HEAD.replace('"1"', "2024-05-01") + _continuous("min: -1.5\n    max: 1.0e+3")[len(HEAD) :]
    assert parse_codebook(dated).attribute("x").max == 1000.0
