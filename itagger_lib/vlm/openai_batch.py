"""OpenAI's Batch API for the ``openai`` provider: a JSONL file of Chat Completions requests,
answered within 24 hours at half the price.

Each entry is ``{"custom_id", "method": "POST", "url": "/v1/chat/completions", "body"}``
with the body the interactive request would have (serialised once per prompt, the image
spliced in). The file is uploaded (``purpose="batch"``), the batch created with the run's
tag in its ``metadata`` (so a submission interrupted by a crash is found again), polled,
and its output and error files read: an answer line is parsed as an interactive response,
a line with a non-200 status or an ``error`` (``batch_expired``, ``batch_cancelled``) is a
per-request error, which OpenAI does not bill. A batch that fails validation has no lines;
its ``errors`` say why.

References
----------
OpenAI, "Batch API", developers.openai.com/api/docs/guides/batch; "Batch API FAQ",
help.openai.com/en/articles/9197833 (50 % of the synchronous price; an expired batch
returns the completed work, and only that is billed).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from itagger_lib.vlm.base import BatchItem, BatchState, VLMRequest
from itagger_lib.vlm.sdk import SDKBatchAPI

__all__ = ["OpenAIBatchAPI"]

ENDPOINT = "/v1/chat/completions"
OPEN = {"validating": "in_progress", "in_progress": "in_progress", "finalizing": "in_progress"}
TRANSFER_TIMEOUT_S = 600.0  # an upload or download of up to 200 MB


def _time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(int(value), UTC)


class OpenAIBatchAPI(SDKBatchAPI):
    """The :class:`~itagger_lib.vlm.base.BatchAPI` of the ``openai`` provider."""

    max_requests = 50_000
    max_bytes = 190 * 2**20  # the input file may hold 200 MB

    def entry(self, custom_id: str, request: VLMRequest) -> bytes:
        body = self.provider.body.encode(self.provider.model, request)
        head = json.dumps({"custom_id": custom_id, "method": "POST", "url": ENDPOINT})
        return head[:-1].encode() + b',"body":' + body + b"}"

    async def submit(self, entries: list[bytes], tag: str) -> BatchState:
        data = b"\n".join(entries) + b"\n"
        try:
            file = await self.client.files.create(
                file=(f"itagger-{tag}.jsonl", data, "application/jsonl"),
                purpose="batch",
                timeout=TRANSFER_TIMEOUT_S,
            )
            batch = await self.client.batches.create(
                input_file_id=file.id,
                endpoint=ENDPOINT,
                completion_window="24h",
                metadata={"itagger_tag": tag},
            )
        except Exception as exc:  # translated: set-up, retryable or provider errors
            raise self._error(exc) from None
        return self._state(batch)

    async def state(self, batch_id: str) -> BatchState:
        try:
            batch = await self.client.batches.retrieve(batch_id)
        except Exception as exc:
            raise self._error(exc) from None
        return self._state(batch)

    async def cancel(self, batch_id: str) -> BatchState:
        try:
            batch = await self.client.batches.cancel(batch_id)
        except Exception as exc:
            raise self._error(exc) from None
        return self._state(batch)

    async def find(self, tag: str, created_after: datetime, n_requests: int) -> list[BatchState]:
        """The recent batches whose metadata carries ``tag``."""
        try:
            page = await self.client.batches.list(limit=100)
        except Exception as exc:
            raise self._error(exc) from None
        return [self._state(b) for b in page.data if (b.metadata or {}).get("itagger_tag") == tag]

    def _state(self, batch: Any) -> BatchState:
        status = OPEN.get(batch.status) or ("cancelling" if batch.status == "cancelling" else "ended")
        counts = batch.request_counts.model_dump() if batch.request_counts is not None else {}
        ended = batch.completed_at or batch.expired_at or batch.cancelled_at or batch.failed_at
        error = None
        if batch.status == "failed":
            found = batch.errors.data if batch.errors is not None and batch.errors.data else []
            error = "; ".join(f"{e.code}: {e.message} (line {e.line})" for e in found) or "failed"
        return BatchState(
            id=batch.id,
            status=status,
            provider_status=batch.status,
            counts={k: int(v) for k, v in counts.items() if v is not None},
            expires_at=_time(batch.expires_at),
            ended_at=_time(ended),
            details={"output_file_id": batch.output_file_id, "error_file_id": batch.error_file_id},
            error=error,
        )

    async def results(self, state: BatchState) -> list[BatchItem]:
        items = []
        for key in ("output_file_id", "error_file_id"):
            file_id = state.details.get(key)
            if not file_id:
                continue
            try:
                content = await self.client.files.content(file_id, timeout=TRANSFER_TIMEOUT_S)
            except Exception as exc:
                raise self._error(exc) from None
            items += [self._item(json.loads(line)) for line in content.text.splitlines() if line.strip()]
        return items

    def _item(self, line: dict[str, Any]) -> BatchItem:
        custom_id = str(line.get("custom_id"))
        response = line.get("response") or {}
        error = line.get("error")
        if error:
            return BatchItem(custom_id, error=f"{error.get('code')}: {error.get('message')}")
        body = response.get("body")
        if response.get("status_code") != 200:
            detail = (body or {}).get("error", {}) if isinstance(body, dict) else {}
            message = detail.get("message") if isinstance(detail, dict) else None
            return BatchItem(custom_id, error=f"HTTP {response.get('status_code')}: {message or body}")
        return BatchItem(custom_id, response=self.provider.parse(json.dumps(body)))
