"""Anthropic's Message Batches API for the ``anthropic`` provider: Messages requests answered
within 24 hours at half the price.

Each entry is ``{"custom_id", "params"}`` with the Messages body the interactive request
would have (its ``cache_control`` breakpoint included: batches use the prompt cache too).
The batch is created in one POST whose JSON is assembled here (the SDK's ``create`` would
walk every image through its TypedDict transform), polled, and its results read from the
``results_url`` as JSONL: ``succeeded`` is parsed as an interactive response; ``errored``,
``canceled`` and ``expired`` are per-request errors, which Anthropic does not bill.

Message batches carry no metadata, so a submission interrupted by a crash is found again by
its creation time and request count, and only when exactly one batch matches that the
workspace does not already know.

References
----------
Anthropic, "Batch processing", docs.anthropic.com/en/docs/build-with-claude/batch-processing
(50 % of standard prices; up to 100,000 requests or 256 MB a batch; results for 29 days).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from itagger_lib.vlm.base import BatchItem, BatchState, VLMRequest
from itagger_lib.vlm.sdk import SDKBatchAPI

__all__ = ["AnthropicBatchAPI"]

PATH = "/v1/messages/batches"
TRANSFER_TIMEOUT_S = 600.0
STATUS = {"in_progress": "in_progress", "canceling": "cancelling", "ended": "ended"}


class AnthropicBatchAPI(SDKBatchAPI):
    """The :class:`~itagger_lib.vlm.base.BatchAPI` of the ``anthropic`` provider."""

    max_requests = 100_000
    max_bytes = 240 * 2**20  # a batch may hold 256 MB

    def entry(self, custom_id: str, request: VLMRequest) -> bytes:
        params = self.provider.body.encode(self.provider.model, request)
        return json.dumps({"custom_id": custom_id})[:-1].encode() + b',"params":' + params + b"}"

    async def submit(self, entries: list[bytes], tag: str) -> BatchState:
        content = b'{"requests":[' + b",".join(entries) + b"]}"
        try:
            text = await self.client.post(
                PATH, cast_to=str, content=content, options={"timeout": TRANSFER_TIMEOUT_S}
            )
        except Exception as exc:  # translated: set-up, retryable or provider errors
            raise self._error(exc) from None
        return self._state(json.loads(text))

    async def state(self, batch_id: str) -> BatchState:
        try:
            batch = await self.client.messages.batches.retrieve(batch_id)
        except Exception as exc:
            raise self._error(exc) from None
        return self._state(batch.model_dump(mode="json"))

    async def cancel(self, batch_id: str) -> BatchState:
        try:
            batch = await self.client.messages.batches.cancel(batch_id)
        except Exception as exc:
            raise self._error(exc) from None
        return self._state(batch.model_dump(mode="json"))

    async def find(self, tag: str, created_after: datetime, n_requests: int) -> list[BatchState]:
        """The recent batches created since ``created_after`` (less 5 minutes of clock
        difference) with ``n_requests`` requests: message batches carry no metadata."""
        try:
            page = await self.client.messages.batches.list(limit=100)
        except Exception as exc:
            raise self._error(exc) from None
        if created_after.tzinfo is None:  # SQLite gives back naive UTC times
            created_after = created_after.replace(tzinfo=UTC)
        since = created_after - timedelta(minutes=5)  # clocks differ
        found = [
            b
            for b in (x.model_dump(mode="json") for x in page.data)
            if _when(b["created_at"]) is not None
            and _when(b["created_at"]) >= since  # type: ignore[operator]
            and sum((b.get("request_counts") or {}).values()) == n_requests
        ]
        return [self._state(b) for b in found]

    def _state(self, batch: dict[str, Any]) -> BatchState:
        counts = {k: int(v) for k, v in (batch.get("request_counts") or {}).items()}
        status = batch.get("processing_status") or "in_progress"
        return BatchState(
            id=batch["id"],
            status=STATUS.get(status, "in_progress"),
            provider_status=status,
            counts=counts,
            expires_at=_when(batch.get("expires_at")),
            ended_at=_when(batch.get("ended_at")),
            details={"results_url": batch.get("results_url")},
        )

    async def results(self, state: BatchState) -> list[BatchItem]:
        url = state.details.get("results_url") or f"{PATH}/{state.id}/results"
        try:
            text = await self.client.get(
                url,
                cast_to=str,
                options={"timeout": TRANSFER_TIMEOUT_S, "headers": {"Accept": "application/binary"}},
            )
        except Exception as exc:
            raise self._error(exc) from None
        return [self._item(json.loads(line)) for line in str(text).splitlines() if line.strip()]

    def _item(self, line: dict[str, Any]) -> BatchItem:
        custom_id = str(line.get("custom_id"))
        result = line.get("result") or {}
        kind = result.get("type")
        if kind == "succeeded":
            return BatchItem(custom_id, response=self.provider.parse(json.dumps(result.get("message"))))
        if kind == "errored":
            error = (result.get("error") or {}).get("error") or {}
            return BatchItem(custom_id, error=f"errored: {error.get('type')}: {error.get('message')}")
        if kind == "canceled":
            return BatchItem(custom_id, error="canceled: the batch was cancelled before this request ran")
        return BatchItem(custom_id, error=f"{kind}: the request did not run within the batch's 24 hours")


def _when(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
