"""Generated hostile inputs through the public API, for a bounded time.

Images (truncated, zero bytes, bit flips, a header claiming a huge size, the wrong
extension), codebooks (aliases, tags, deep nesting, odd numbers and hotkeys, broken bytes),
rating tables (values out of range, NaN, unknown attributes and images, NUL bytes, formulas)
and backup manifests (escaping names, wrong shapes, forged hashes) are fed to ``ingest``,
``run_science``, ``load_codebook``, ``add_ratings``, ``export`` and ``restore``. Every call
must return or raise an :class:`~itagger_lib.errors.ItaggerError` within a few seconds; no
file may appear outside the test's folders; every stored rating must be valid under its
codebook.

``ITAGGER_FUZZ_SEED`` (default 16) picks the inputs and ``ITAGGER_FUZZ_SECONDS`` (default 20,
shared by the SQLite and the PostgreSQL run) bounds the time; a failure names the seed and
the case, so ``ITAGGER_FUZZ_SEED=<seed>`` replays it.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from itagger_lib.errors import ItaggerError
from itagger_lib.ops.backup import backup, restore

SEED = int(os.environ.get("ITAGGER_FUZZ_SEED", "16"))
SECONDS = float(os.environ.get("ITAGGER_FUZZ_SECONDS", "20")) / 2  # two databases
CALL_LIMIT = 15  # seconds one call may take before it counts as a hang


class Hang(Exception):
    pass


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    def expire(_signum, _frame):  # type: ignore[no-untyped-def]
        raise Hang(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _call(case: str, fn: Callable[..., object], *args: object, **kwargs: object) -> object:
    """``fn(*args, **kwargs)``; fails the test on a hang or on an exception that is not ours."""
    try:
        with _time_limit(CALL_LIMIT):
            return fn(*args, **kwargs)
    except ItaggerError:
        return None
    except Hang as exc:
        pytest.fail(f"seed {SEED}, {case}: hung ({exc})")
    except Exception as exc:
        pytest.fail(f"seed {SEED}, {case}: {type(exc).__name__} escaped the public API: {exc}")


# ---- generators ------------------------------------------------------------------------------
def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _huge_png(rng: random.Random) -> bytes:
    width, height = rng.choice([(2**31 - 1, 2**31 - 1), (100_000, 100_000), (1, 2**30), (0, 5)])
    header = struct.pack(">IIBBBBB", width, height, 8, rng.choice([0, 2, 6]), 0, 0, 0)
    body = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", body)
        + _png_chunk(b"IEND", b"")
    )


def _image(rng: random.Random, seeds: list[bytes]) -> tuple[str, bytes]:
    base = rng.choice(seeds)
    kind = rng.randrange(7)
    ext = rng.choice([".jpg", ".png", ".webp", ".tif", ".bmp", ".gif"])
    if kind == 0:
        return ext, b""
    if kind == 1:
        return ext, base[: rng.randrange(1, max(2, len(base)))]
    if kind == 2:
        data = bytearray(base)
        for _ in range(rng.randrange(1, 20)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return ext, bytes(data)
    if kind == 3:
        return ".png", _huge_png(rng)
    if kind == 4:
        return ext, rng.randbytes(rng.randrange(1, 4096))
    if kind == 5:
        return ext, base  # the wrong extension, most of the time
    return ext, base[:64] + rng.randbytes(256) + base[-32:]


BOOK = """\
name: fuzz
version: "1"
attributes:
  - key: people
    question: People?
    type: binary
  - key: warmth
    question: How warm?
    type: continuous
    min: -5.0
    max: 5.0
  - key: setting
    question: Which setting?
    type: categorical
    levels:
      - {value: interior, label: Interior, hotkey: "1"}
      - {value: exterior, label: Exterior, hotkey: "2"}
"""
FRAGMENTS = [
    "&a [*a]", "*nope", "!!python/name:os.system", "!!python/object/apply:os.system [ls]", "!!set {a}",
    "[" * 200, "1" + "0" * 400, ".nan", ".inf", "-.inf", '"\\0"', '""', '"12"', "{value: 1}", "~", "[]",
    "!!binary aGVsbG8=", "2024-01-01", "0x1F", "1e400", "&x {a: 1}",
]  # fmt: skip


def _codebook(rng: random.Random) -> bytes:
    lines = BOOK.splitlines()
    for _ in range(rng.randrange(1, 4)):
        i = rng.randrange(len(lines))
        head, sep, _ = lines[i].partition(": ")
        lines[i] = f"{head}: {rng.choice(FRAGMENTS)}" if sep else lines[i] + " " + rng.choice(FRAGMENTS)
    text = "\n".join(lines) + "\n"
    data = text.encode()
    if rng.random() < 0.15:
        data = data[: rng.randrange(len(data))]
    if rng.random() < 0.1:
        data += b"\xff\xfe\x00"
    return data


HOSTILE_TEXT = ["=1+1", "+cmd|' /C calc'!A0", "@SUM(A1)", "a\x00b", "", " ", "\t", "é" * 300, "-", "NaN"]
HOSTILE_VALUES = [0, 1, 2, 999, -1, 0.5, -5.0, 5.0, 5.1, float("nan"), float("inf"), -1e308, "interior",
                  "exterior", "INTERIOR", "", None, True, "1", "=1", "x\x00"]  # fmt: skip


def _ratings(rng: random.Random, ids: list[int]) -> pd.DataFrame:
    rows = []
    for _ in range(rng.randrange(1, 8)):
        rows.append(
            {
                "image": rng.choice([*ids, 0, -1, 10**12, "deadbeef00", "nope.jpg"]),
                "rater": rng.choice(["r1", "r2", *HOSTILE_TEXT]),
                "attribute": rng.choice(["people", "warmth", "setting", "nope", *HOSTILE_TEXT[:3]]),
                "value": rng.choice(HOSTILE_VALUES),
                "note": rng.choice([None, *HOSTILE_TEXT]),
            }
        )
    frame = pd.DataFrame(rows)
    if rng.random() < 0.1:
        frame = frame.drop(columns=[rng.choice(list(frame.columns))])
    return frame


def _manifest(rng: random.Random, good: dict, outside: Path) -> object:
    kind = rng.randrange(8)
    if kind == 0:
        return rng.choice([[], "files", 7, None, {"files": []}, {"files": {}, "dialect": good["dialect"]}])
    manifest = json.loads(json.dumps(good))
    files = manifest["files"]
    name = rng.choice(sorted(files))
    if kind == 1:
        files[
            rng.choice(["store/../x", f"store//{outside}/x", str(outside / "x"), "store/ab/cd/x.jpg", "../x"])
        ] = files[name]
    elif kind == 2:
        files[name] = "0" * 64
    elif kind == 3:
        del files[name]
    elif kind == 4:
        manifest["row_counts"] = {
            k: rng.choice([v, v + 1, -1, "x", None]) for k, v in manifest["row_counts"].items()
        }
    elif kind == 5:
        manifest["dialect"] = rng.choice(["oracle", None, 3])
    elif kind == 6:
        manifest["homes"] = rng.choice([["../x"], "x", [1]])
    else:
        files[f"store/{'0' * 2}/{'0' * 2}/{'0' * 64}.jpg"] = "0" * 64
    return manifest


# ---- the test --------------------------------------------------------------------------------
def _listing(folder: Path) -> set[str]:
    """The names at the top of ``folder`` (an escape lands there: ``store/../x``, ``/abs/x``)."""
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


def _stored_ratings_are_valid(ws) -> None:  # type: ignore[no-untyped-def]
    book = ws.codebook("fuzz")
    for row in ws.ratings().itertuples():
        value = row.value_text if isinstance(getattr(row, "value_text", None), str) else row.value
        book.validate_value(row.attribute, value)  # raises RatingError for anything forbidden


def test_fuzz_the_public_api(workspace, sample_dir, tmp_path):
    rng = random.Random(f"{SEED}-{workspace.engine.dialect.name}")
    seeds = [p.read_bytes() for p in sorted(sample_dir.iterdir()) if p.is_file()]
    outside = tmp_path / "outside"
    outside.mkdir()
    watched = {tmp_path.parent: _listing(tmp_path.parent), Path.cwd(): _listing(Path.cwd())}
    workspace.ingest(sample_dir, progress=False)
    workspace.load_codebook(BOOK)
    ids = [int(i) for i in workspace.images().index]
    good_backup = tmp_path / "good-backup"
    backup(workspace, good_backup)
    good = json.loads((good_backup / "manifest.json").read_text())
    inputs = tmp_path / "inputs"
    pool = ThreadPoolExecutor(2)  # science in threads: a process pool per call would eat the budget
    deadline = time.monotonic() + SECONDS
    n = 0
    while time.monotonic() < deadline:
        n += 1
        what = n % 5
        if what == 0:
            folder = inputs / f"img{n}"
            folder.mkdir(parents=True)
            for j in range(rng.randrange(1, 5)):
                ext, data = _image(rng, seeds)
                (folder / f"f{j}{ext}").write_bytes(data)
            _call(f"case {n}: ingest {folder}", workspace.ingest, folder, progress=False)
            if rng.random() < 0.3:
                params = {"families": ["colour"]}
                _call(
                    f"case {n}: science", workspace.run_science, progress=False, params=params, executor=pool
                )
        elif what == 1:
            path = inputs / f"book{n}.yaml"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(_codebook(rng))
            _call(f"case {n}: load_codebook {path.read_bytes()!r}", workspace.load_codebook, path)
        elif what == 2:
            frame = _ratings(rng, ids)
            errors = rng.choice(["raise", "skip"])
            _call(
                f"case {n}: add_ratings(errors={errors!r}) {frame.to_dict('records')}",
                workspace.add_ratings,
                frame,
                codebook="fuzz",
                errors=errors,
                if_imported="append",
            )
        elif what == 3:
            folder = inputs / f"bk{n}"
            shutil.copytree(good_backup, folder)
            manifest = _manifest(rng, good, outside)
            (folder / "manifest.json").write_text(json.dumps(manifest))
            _call(
                f"case {n}: restore of manifest {json.dumps(manifest)[:300]}",
                restore,
                workspace,
                folder,
            )
        else:
            fmt = rng.choice(["csv", "parquet"])
            _call(f"case {n}: export {fmt}", workspace.export, inputs / f"out{n}", format=fmt)
    pool.shutdown()
    assert n >= 10, f"only {n} cases ran in {SECONDS} s"
    assert not any(outside.iterdir()), "a crafted input wrote outside the workspace"
    for folder, before in watched.items():
        new = _listing(folder) - before
        assert not new, f"seed {SEED}: files appeared in {folder}: {sorted(new)[:5]}"
    ours = {
        "store",
        "home",
        "outside",
        "inputs",
        "good-backup",
        "itagger.db",
        "itagger.db-wal",
        "itagger.db-shm",
    }
    assert _listing(tmp_path) <= ours, (
        f"seed {SEED}: files appeared beside the workspace: {_listing(tmp_path) - ours}"
    )
    _stored_ratings_are_valid(workspace)
    numbers = pd.to_numeric(workspace.ratings()["value"], errors="coerce").dropna()
    assert np.isfinite(numbers.to_numpy(dtype=float)).all()
