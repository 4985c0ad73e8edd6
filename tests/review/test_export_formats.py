"""Export formats plug in through a registry (as papermill's I/O handlers)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from itagger_lib import Workspace
from itagger_lib.errors import ArgumentError, ConfigError
from itagger_lib.export import available_formats, get_format, read_provenance, register_format
from itagger_lib.export import formats as registry


class MetricsOnly:
    """A format of our own: the metrics frame as JSON lines."""

    def write(self, ctx: object, folder: Path, metrics: pd.DataFrame) -> list[Path]:
        path = folder / "metrics.jsonl"
        metrics.reset_index().to_json(path, orient="records", lines=True)
        return [path]


def test_built_in_formats_and_a_plugged_in_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert available_formats()[:3] == ("parquet", "csv", "bn")
    with pytest.raises(ArgumentError, match="unknown export format 'xlsx'; use one of parquet, csv, bn"):
        get_format("xlsx")
    assert issubclass(ArgumentError, ConfigError) and issubclass(ArgumentError, ValueError)
    monkeypatch.setattr(registry, "_FORMATS", dict(registry._FORMATS))
    register_format("jsonl", MetricsOnly())
    with Workspace(database_url=f"sqlite:///{tmp_path / 'db'}", store=tmp_path / "s", home=tmp_path) as ws:
        assert [p.name for p in ws.export(tmp_path / "out", format="jsonl")] == ["metrics.jsonl"]
        written = ws.export(tmp_path / "csv", format="csv")
    assert [p.name for p in written] == ["ratings.csv", "table.csv"]
    assert read_provenance(written[0])["package"] == "image-tagger"
