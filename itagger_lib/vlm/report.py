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
    """What a VLM run did (or, with ``dry_run``, would do) and what it cost.

    In ``mode="batch"``: ``submitted`` requests went to the provider's batch API in
    ``batches`` (their ids in ``vlm_batches``), ``in_flight`` of the run's calls are waiting
    there (never sent twice), and ``collected`` results of ended batches were written.
    """

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
    expected_cached_cost_usd: float | None = None
    run_id: int | None = None
    dry_run: bool = False
    stopped: str | None = None
    sample_seed: int | None = None
    seconds: float = 0.0
    price_note: str | None = None
    notes: list[str] = field(default_factory=list)
    mode: str = "interactive"
    submitted: int = 0
    in_flight: int = 0
    collected: int = 0
    batches: list[int] = field(default_factory=list)
    image_ids: list[int] = field(default_factory=list, repr=False)

    @property
    def to_send(self) -> int:
        return self.planned - self.cache_hits

    def _estimate(self) -> str:
        if self.max_cost_usd is None:
            return f"cost unknown: {self.price_note}"
        text = f"estimated ${self.expected_cost_usd:.4f}"
        if self.expected_cached_cost_usd is not None:
            text += f" (${self.expected_cached_cost_usd:.4f} with prompt caching)"
        return text + f", at most ${self.max_cost_usd:.4f}"

    def summary(self) -> str:
        mode = " (batch API)" if self.mode == "batch" else ""
        if self.dry_run:
            text = (
                f"dry run {self.rater}{mode}: {self.planned} calls planned, {self.cache_hits} cached, "
                f"{self.to_send} requests to send, {self._estimate()}; nothing was sent"
            )
        elif self.mode == "batch":
            text = (
                f"{self.rater} (batch API): {self.planned} calls, {self.cache_hits} cache hits, "
                f"{self.collected} collected, {self.submitted} submitted in batch(es) "
                f"{', '.join(map(str, self.batches)) or '-'}, {self.in_flight} waiting at the provider, "
                f"{len(self.failed)} failed, {self.skipped} skipped, spend ${self.spend_usd:.4f} "
                f"in {self.seconds:.1f} s (run {self.run_id})"
            )
            if self.in_flight:
                text += "\nanswers come within 24 h: rerun, or ws.vlm_batches() (itagger vlm batches)"
        else:
            text = (
                f"{self.rater}: {self.planned} calls, {self.cache_hits} cache hits, "
                f"{self.requests} requests, {self.succeeded} rated, {len(self.failed)} failed, "
                f"{self.skipped} skipped, "
                f"spend ${self.spend_usd:.4f} in {self.seconds:.1f} s (run {self.run_id})"
            )
        text += "".join(f"\nnote: {note}" for note in self.notes)
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
