"""The providers' batch APIs, played by the loopback server (``tests/fakes/vlm_server.py``).

OpenAI (Files + Batch API): ``POST /v1/files`` (multipart, ``purpose=batch``, a JSONL file
of ``{"custom_id", "method": "POST", "url": "/v1/chat/completions", "body"}`` lines),
``POST /v1/batches``, ``GET /v1/batches[/{id}]``, ``POST /v1/batches/{id}/cancel`` and
``GET /v1/files/{id}/content`` (the output and error files).

Anthropic (Message Batches): ``POST /v1/messages/batches`` (``{"requests": [{"custom_id",
"params"}]}``), ``GET /v1/messages/batches[/{id}]``, ``POST .../{id}/cancel`` and
``GET .../{id}/results`` (JSONL).

Requests are checked as the providers document them: a ``purpose`` other than ``batch``, a
file that is not JSONL of well-formed lines, an unknown ``input_file_id``, a custom id used
twice or (Anthropic) not matching ``^[a-zA-Z0-9_-]{1,64}$``, or mixed models are refused the
way the provider does (an OpenAI batch goes to ``failed`` with its ``errors``; Anthropic
answers 400). Objects are shaped so the real SDKs' models parse them (the tests check that).

A batch runs when it is first read ``delay_s`` seconds after its creation: each request is
answered as the server answers a single request (the same script, ``decide`` and usage), so
its result may be an answer, a refusal or a per-request error. ``expire_after=N`` runs only
the first N requests and expires the rest (``batch_expired`` / ``expired``); a cancelled
batch that has not run yet cancels every request.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

Answer = Callable[[str, dict[str, str], dict[str, Any]], tuple[int, dict[str, str], Any]]
Response = tuple[int, dict[str, str], Any]

CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
WINDOW_S = 24 * 3600


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def _openai_error(message: str, kind: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": None, "param": None}}


def _anthropic_error(message: str, kind: str = "invalid_request_error") -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


class FakeBatches:
    """Batch state of one fake server; ``answer(path, headers, body)`` answers one request.

    ``batches`` holds every batch (its ``entries`` as received); ``submitted`` counts the
    requests submitted in batches.
    """

    def __init__(self, answer: Answer, url: Callable[[], str], *, delay_s: float, expire_after: int | None):
        self.answer, self.url = answer, url
        self.delay_s, self.expire_after = delay_s, expire_after
        self.files: dict[str, dict[str, Any]] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.submitted = 0
        self._ids = itertools.count(1)

    def route(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> Response | None:
        """The answer to a batch endpoint, or ``None`` for any other path."""
        parts = path.split("?", 1)[0].rstrip("/").split("/")[1:]  # "/v1/x/y" -> ["v1", "x", "y"]
        if parts[:2] == ["v1", "files"]:
            if method == "POST" and len(parts) == 2:
                return self._upload(headers, raw)
            if method == "GET" and len(parts) == 4 and parts[3] == "content":
                return self._content(parts[2])
        if parts[:2] == ["v1", "batches"]:
            return self._openai(method, parts[2:], raw)
        if parts[:3] == ["v1", "messages", "batches"]:
            return self._anthropic(method, parts[3:], raw)
        return None

    # -- OpenAI ---------------------------------------------------------------------------------

    def _upload(self, headers: dict[str, str], raw: bytes) -> Response:
        content_type = headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            return 400, {}, _openai_error(f"expected multipart/form-data, got {content_type!r}")
        message = BytesParser(policy=HTTP).parsebytes(f"content-type: {content_type}\r\n\r\n".encode() + raw)
        fields: dict[str, tuple[str | None, bytes]] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            fields[str(name)] = (part.get_filename(), payload if isinstance(payload, bytes) else b"")
        purpose = fields.get("purpose", (None, b""))[1].decode()
        if purpose != "batch":
            return 400, {}, _openai_error(f"this server only takes purpose 'batch', got {purpose!r}")
        if "file" not in fields:
            return 400, {}, _openai_error("missing the 'file' part")
        filename, data = fields["file"]
        file_id = f"file-{next(self._ids)}"
        self.files[file_id] = {"data": data, "filename": filename or "upload", "created": int(time.time())}
        return 200, {}, self._file_object(file_id)

    def _file_object(self, file_id: str) -> dict[str, Any]:
        file = self.files[file_id]
        return {
            "id": file_id,
            "object": "file",
            "bytes": len(file["data"]),
            "created_at": file["created"],
            "filename": file["filename"],
            "purpose": "batch",
            "status": "processed",
        }

    def _content(self, file_id: str) -> Response:
        if file_id not in self.files:
            return 404, {}, _openai_error(f"no file {file_id}")
        return 200, {"content-type": "application/octet-stream"}, self.files[file_id]["data"]

    def _openai(self, method: str, rest: list[str], raw: bytes) -> Response:
        if method == "POST" and not rest:
            return self._openai_create(json.loads(raw or b"{}"))
        if method == "GET" and not rest:
            data = [self._openai_object(b) for b in self.batches.values() if b["kind"] == "openai"][::-1]
            return 200, {}, {"object": "list", "data": data, "has_more": False}
        batch = self.batches.get(rest[0])
        if batch is None or batch["kind"] != "openai":
            return 404, {}, _openai_error(f"No batch found with id '{rest[0]}'.")
        if method == "POST" and rest[1:] == ["cancel"]:
            if batch["status"] in ("validating", "in_progress"):
                batch["status"], batch["cancelling_at"] = "cancelling", time.time()
            return 200, {}, self._openai_object(batch)
        self._advance(batch)
        return 200, {}, self._openai_object(batch)

    def _openai_create(self, body: dict[str, Any]) -> Response:
        file = self.files.get(str(body.get("input_file_id")))
        if file is None:
            return (
                400,
                {},
                _openai_error(f"input_file_id {body.get('input_file_id')!r} is not an uploaded file"),
            )
        if body.get("endpoint") != "/v1/chat/completions" or body.get("completion_window") != "24h":
            return (
                400,
                {},
                _openai_error("this server batches /v1/chat/completions with completion_window 24h"),
            )
        entries, errors = [], []
        for number, line in enumerate(file["data"].decode().splitlines(), start=1):
            try:
                item = json.loads(line)
                assert isinstance(item, dict) and set(item) == {"custom_id", "method", "url", "body"}
                assert item["method"] == "POST" and item["url"] == "/v1/chat/completions"
                assert isinstance(item["custom_id"], str) and isinstance(item["body"].get("model"), str)
            except (ValueError, AssertionError, AttributeError):
                errors.append({"code": "invalid_request", "message": "malformed line", "line": number})
                continue
            entries.append((item["custom_id"], "/v1/chat/completions", item["body"]))
        if len({cid for cid, _, _ in entries}) != len(entries):
            errors.append({"code": "duplicate_custom_id", "message": "custom_id values must be unique"})
        if len({body["model"] for _, _, body in entries}) > 1:
            errors.append({"code": "mismatched_model", "message": "every request must use the same model"})
        batch = self._new("openai", f"batch_{next(self._ids)}", entries, metadata=body.get("metadata"))
        batch.update(input_file_id=body["input_file_id"], errors=errors)
        if errors:
            batch.update(status="failed", failed_at=time.time())
        return 200, {}, self._openai_object(batch)

    def _openai_object(self, batch: dict[str, Any]) -> dict[str, Any]:
        done = batch["results"] or []
        ok = sum(1 for r in done if r["status_code"] == 200)
        stamp = {key: (int(batch[key]) if batch.get(key) else None) for key in _OPENAI_TIMES}
        return {
            "id": batch["id"],
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "errors": {"object": "list", "data": batch["errors"]} if batch["errors"] else None,
            "input_file_id": batch["input_file_id"],
            "completion_window": "24h",
            "status": batch["status"],
            "output_file_id": batch.get("output_file_id"),
            "error_file_id": batch.get("error_file_id"),
            "created_at": int(batch["created"]),
            "expires_at": int(batch["created"] + WINDOW_S),
            **stamp,
            "request_counts": {"total": len(batch["entries"]), "completed": ok, "failed": len(done) - ok},
            "metadata": batch["metadata"],
        }

    # -- Anthropic ------------------------------------------------------------------------------

    def _anthropic(self, method: str, rest: list[str], raw: bytes) -> Response:
        if method == "POST" and not rest:
            return self._anthropic_create(json.loads(raw or b"{}"))
        if method == "GET" and not rest:
            data = [self._anthropic_object(b) for b in self.batches.values() if b["kind"] == "anthropic"][
                ::-1
            ]
            return 200, {}, {"data": data, "has_more": False, "first_id": None, "last_id": None}
        batch = self.batches.get(rest[0])
        if batch is None or batch["kind"] != "anthropic":
            return 404, {}, _anthropic_error(f"message batch {rest[0]} not found", "not_found_error")
        if method == "POST" and rest[1:] == ["cancel"]:
            if batch["status"] == "in_progress":
                batch["status"], batch["cancelling_at"] = "canceling", time.time()
            return 200, {}, self._anthropic_object(batch)
        self._advance(batch)
        if rest[1:] == ["results"]:
            if batch["status"] != "ended":
                return 400, {}, _anthropic_error("the batch has not ended; its results are not ready")
            lines = [
                json.dumps({"custom_id": r["custom_id"], "result": r["result"]}) for r in batch["results"]
            ]
            return 200, {"content-type": "application/binary"}, ("\n".join(lines) + "\n").encode()
        return 200, {}, self._anthropic_object(batch)

    def _anthropic_create(self, body: dict[str, Any]) -> Response:
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            return 400, {}, _anthropic_error("requests: a non-empty list is required")
        entries = []
        for index, item in enumerate(requests):
            custom_id = item.get("custom_id") if isinstance(item, dict) else None
            params = item.get("params") if isinstance(item, dict) else None
            if not isinstance(custom_id, str) or not CUSTOM_ID.match(custom_id):
                return (
                    400,
                    {},
                    _anthropic_error(f"requests.{index}.custom_id: must match {CUSTOM_ID.pattern}"),
                )
            if not isinstance(params, dict) or not {"model", "max_tokens", "messages"} <= set(params):
                return 400, {}, _anthropic_error(f"requests.{index}.params: model, max_tokens and messages")
            entries.append((custom_id, "/v1/messages", params))
        if len({cid for cid, _, _ in entries}) != len(entries):
            return 400, {}, _anthropic_error("requests: custom_id values must be unique within a batch")
        batch = self._new("anthropic", f"msgbatch_{next(self._ids):024d}", entries)
        return 200, {}, self._anthropic_object(batch)

    def _anthropic_object(self, batch: dict[str, Any]) -> dict[str, Any]:
        done = batch["results"]
        counts = {
            "processing": len(batch["entries"]),
            "succeeded": 0,
            "errored": 0,
            "canceled": 0,
            "expired": 0,
        }
        if done is not None:
            counts["processing"] = 0
            for result in done:
                counts[result["result"]["type"]] += 1
        ended = batch["status"] == "ended"
        return {
            "id": batch["id"],
            "type": "message_batch",
            "processing_status": batch["status"],
            "request_counts": counts,
            "ended_at": _iso(batch.get("ended_at")),
            "created_at": _iso(batch["created"]),
            "expires_at": _iso(batch["created"] + WINDOW_S),
            "archived_at": None,
            "cancel_initiated_at": _iso(batch.get("cancelling_at")),
            "results_url": f"{self.url()}/v1/messages/batches/{batch['id']}/results" if ended else None,
        }

    # -- running a batch ------------------------------------------------------------------------

    def _new(self, kind: str, batch_id: str, entries: list[Any], metadata: Any = None) -> dict[str, Any]:
        self.submitted += len(entries)
        batch = {
            "kind": kind,
            "id": batch_id,
            "entries": entries,
            "created": time.time(),
            "status": "in_progress",
            "metadata": metadata,
            "errors": [],
            "results": None,
        }
        self.batches[batch_id] = batch
        return batch

    def _advance(self, batch: dict[str, Any]) -> None:
        """Run a due batch: answer its requests (or cancel / expire them) and end it."""
        if batch["results"] is not None or batch["status"] in ("failed",):
            return
        cancelled = batch["status"] in ("cancelling", "canceling")
        if not cancelled and time.time() - batch["created"] < self.delay_s:
            return
        limit = 0 if cancelled else len(batch["entries"])
        if self.expire_after is not None and not cancelled:
            limit = min(limit, self.expire_after)
        results = []
        for index, (custom_id, path, body) in enumerate(batch["entries"]):
            if index < limit:
                status, _, payload = self.answer(path, {}, body)
                results.append(self._result(batch, custom_id, status, payload))
            else:
                results.append(self._unrun(batch, custom_id, "cancelled" if cancelled else "expired"))
        batch["results"] = results
        now = time.time()
        if batch["kind"] == "anthropic":
            batch.update(status="ended", ended_at=now)
            return
        final = "cancelled" if cancelled else ("expired" if limit < len(batch["entries"]) else "completed")
        batch.update(status=final, finalizing_at=now, in_progress_at=batch["created"])
        batch[f"{final}_at"] = now
        output = [r["line"] for r in results if r["status_code"] == 200]
        errors = [r["line"] for r in results if r["status_code"] != 200]
        for key, lines in (("output_file_id", output), ("error_file_id", errors)):
            if lines:
                file_id = f"file-{next(self._ids)}"
                data = ("\n".join(json.dumps(line) for line in lines) + "\n").encode()
                self.files[file_id] = {
                    "data": data,
                    "filename": f"{batch['id']}_{key}.jsonl",
                    "created": int(now),
                }
                batch[key] = file_id

    def _result(self, batch: dict[str, Any], custom_id: str, status: int, payload: Any) -> dict[str, Any]:
        if batch["kind"] == "anthropic":
            if status == 200:
                result: dict[str, Any] = {"type": "succeeded", "message": payload}
            else:
                result = {"type": "errored", "error": payload}
            return {"custom_id": custom_id, "result": result, "status_code": status}
        line = {
            "id": f"batch_req_{next(self._ids)}",
            "custom_id": custom_id,
            "response": {"status_code": status, "request_id": f"req_{next(self._ids)}", "body": payload},
            "error": None,
        }
        return {"custom_id": custom_id, "line": line, "status_code": status}

    def _unrun(self, batch: dict[str, Any], custom_id: str, why: str) -> dict[str, Any]:
        if batch["kind"] == "anthropic":
            kind = "canceled" if why == "cancelled" else "expired"
            return {"custom_id": custom_id, "result": {"type": kind}, "status_code": 0}
        message = (
            "This request could not be executed before the completion window expired."
            if why == "expired"
            else "This request was cancelled before it ran."
        )
        line = {
            "id": f"batch_req_{next(self._ids)}",
            "custom_id": custom_id,
            "response": None,
            "error": {"code": f"batch_{why}", "message": message},
        }
        return {"custom_id": custom_id, "line": line, "status_code": 0}


_OPENAI_TIMES = (
    "in_progress_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelling_at",
    "cancelled_at",
)
