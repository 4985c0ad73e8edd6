"""The report of a VLM run: calls, cache hits, requests, failures, spend."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from itagger_lib.runs import see_failures

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class VLMReport:
    """What a VLM run did (or, with ``dry_run``, would do) and what it cost."""

    provider: str
    model: str
    rater: str
    prompt_hash: str
    planned: int
    cache_hits: int = 0
    requests: int = 0
    succeeded: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: int = 0
    spend_usd: float = 0.0
    max_cost_usd: float | None = None
    expected_cost_usd: float | None = None
    run_id: int | None = None
    dry_run: bool = False
    stopped: str | None = None
    sample_seed: int | None = None
    seconds: float = 0.0
    price_note: str | None = None
    image_ids: list[int] = field(default_factory=list, repr=False)

    @property
    def to_send(self) -> int:
        return self.planned - self.cache_hits

    def summary(self) -> str:
        if self.dry_run:
            cost = (
                f"estimated ${self.expected_cost_usd:.4f} (at most ${self.max_cost_usd:.4f})"
                if self.max_cost_usd is not None
                else f"cost unknown: {self.price_note}"
            )
            return (
                f"dry run {self.rater}: {self.planned} calls planned, {self.cache_hits} cached, "
                f"{self.to_send} requests to send, {cost}; nothing was sent"
            )
        text = (
            f"{self.rater}: {self.planned} calls, {self.cache_hits} cache hits, {self.requests} requests, "
            f"{self.succeeded} rated, {len(self.failed)} failed, {self.skipped} skipped, "
            f"spend ${self.spend_usd:.4f} in {self.seconds:.1f} s (run {self.run_id})"
        )
        if self.stopped:
            text += f"\nstopped: {self.stopped}"
        return text

    def __str__(self) -> str:
        lines = [self.summary()]
        lines += [f"  failed: {item}: {reason}" for item, reason in self.failed[:10]]
        if len(self.failed) > 10:
            lines.append(f"  ... and {len(self.failed) - 10} more ({see_failures(self.run_id)})")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(item)}</td><td>{html.escape(reason)}</td></tr>"
            for item, reason in self.failed[:20]
        )
        table = f"<table><tr><th>call</th><th>reason</th></tr>{rows}</table>" if rows else ""
        return f"<div><b>VLM run</b><pre>{html.escape(self.summary())}</pre>{table}</div>"

    @property
    def failures(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.failed, columns=["call", "reason"])
