"""The loopback server's batch endpoints against the real SDKs' own methods and models.

The engine builds some requests itself (the JSONL lines, the Anthropic create body); these
tests drive the same endpoints with the SDKs' typed methods, so the fake answers what the
SDKs send and its objects parse into the SDKs' models — and it refuses what the providers
document they refuse.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import anthropic
import openai
import pytest

from tests.fakes.vlm_server import FakeVLMServer

SCHEMA = {"type": "object", "properties": {"x": {"type": "integer", "enum": [1, 2, 3]}}, "required": ["x"]}


def _chat(model: str = "m") -> dict[str, object]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": "rate"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": SCHEMA}},
        "max_tokens": 10,
    }


def _line(custom_id: str, body: dict[str, object]) -> str:
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body})


def test_openai_files_and_batches_through_the_sdk() -> None:
    with FakeVLMServer(script=["ok", "500"], batch_expire_after=2) as server:
        client = openai.OpenAI(api_key="sk-test", base_url=server.openai_url, max_retries=0)
        data = "\n".join(_line(f"r{i}", _chat()) for i in range(3)).encode()
        file = client.files.create(file=("in.jsonl", data, "application/jsonl"), purpose="batch")
        assert file.purpose == "batch" and file.bytes == len(data)
        batch = client.batches.create(
            input_file_id=file.id,
            endpoint="/v1/chat/completions",
            completion_window="24h",
            metadata={"itagger_tag": "t1"},
        )
        assert isinstance(batch, openai.types.Batch) and batch.status == "in_progress"
        assert [b.id for b in client.batches.list().data] == [batch.id]
        ended = client.batches.retrieve(batch.id)
        # two requests ran (one answered, one a server error), the third expired with the window
        assert ended.status == "expired" and ended.request_counts is not None
        assert (ended.request_counts.total, ended.request_counts.completed, ended.request_counts.failed) == (
            3,
            1,
            2,
        )
        assert ended.output_file_id and ended.error_file_id and ended.metadata == {"itagger_tag": "t1"}
        output = [json.loads(x) for x in client.files.content(ended.output_file_id).text.splitlines()]
        errors = [json.loads(x) for x in client.files.content(ended.error_file_id).text.splitlines()]
    assert [x["custom_id"] for x in output] == ["r0"] and output[0]["response"]["status_code"] == 200
    assert output[0]["response"]["body"]["object"] == "chat.completion"
    assert [(x["custom_id"], x["response"] and x["response"]["status_code"]) for x in errors] == [
        ("r1", 500),
        ("r2", None),
    ]
    assert errors[1]["error"]["code"] == "batch_expired"


def test_openai_refuses_what_openai_refuses() -> None:
    with FakeVLMServer() as server:
        client = openai.OpenAI(api_key="sk-test", base_url=server.openai_url, max_retries=0)
        with pytest.raises(openai.BadRequestError, match="purpose"):
            client.files.create(file=("in.jsonl", b"{}", "application/jsonl"), purpose="assistants")
        with pytest.raises(openai.BadRequestError, match="input_file_id"):
            client.batches.create(
                input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h"
            )
        bad = "\n".join([_line("a", _chat()), _line("a", _chat()), "not json", _line("b", _chat("other"))])
        file = client.files.create(file=("in.jsonl", bad.encode(), "application/jsonl"), purpose="batch")
        batch = client.batches.create(
            input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert batch.status == "failed" and batch.errors is not None
    codes = {e.code for e in batch.errors.data or []}
    assert codes == {"invalid_request", "duplicate_custom_id", "mismatched_model"}


def _params() -> dict[str, object]:
    return {
        "model": "c",
        "max_tokens": 10,
        "tools": [{"name": "record_ratings", "description": "d", "input_schema": SCHEMA}],
        "tool_choice": {"type": "tool", "name": "record_ratings"},
        "messages": [{"role": "user", "content": "rate"}],
    }


def test_anthropic_message_batches_through_the_sdk() -> None:
    with FakeVLMServer(script=["ok", "refusal", "500"], batch_delay_s=0.0) as server:
        client = anthropic.Anthropic(api_key="sk-ant-test", base_url=server.url, max_retries=0)
        batch = client.messages.batches.create(
            requests=[{"custom_id": f"r{i}", "params": _params()} for i in range(3)]  # type: ignore[misc]
        )
        assert batch.processing_status == "in_progress" and batch.request_counts.processing == 3
        ended = client.messages.batches.retrieve(batch.id)
        assert ended.processing_status == "ended" and ended.results_url
        assert (ended.request_counts.succeeded, ended.request_counts.errored) == (2, 1)
        results = {r.custom_id: r.result for r in client.messages.batches.results(batch.id)}
        assert [b.id for b in client.messages.batches.list().data] == [batch.id]
    assert results["r0"].type == "succeeded" and results["r0"].message.content[0].type == "tool_use"
    assert results["r1"].type == "succeeded" and results["r1"].message.stop_reason == "refusal"
    assert results["r2"].type == "errored" and results["r2"].error.error.type == "api_error"


def test_anthropic_refuses_bad_custom_ids_and_cancels() -> None:
    with FakeVLMServer(batch_delay_s=3600) as server:
        client = anthropic.Anthropic(api_key="sk-ant-test", base_url=server.url, max_retries=0)
        with pytest.raises(anthropic.BadRequestError, match="custom_id"):
            client.messages.batches.create(requests=[{"custom_id": "has space", "params": _params()}])  # type: ignore[list-item]
        with pytest.raises(anthropic.BadRequestError, match="unique"):
            client.messages.batches.create(
                requests=[{"custom_id": "a", "params": _params()}, {"custom_id": "a", "params": _params()}]  # type: ignore[list-item]
            )
        batch = client.messages.batches.create(requests=[{"custom_id": "a", "params": _params()}])  # type: ignore[list-item]
        assert client.messages.batches.cancel(batch.id).processing_status == "canceling"
        ended = client.messages.batches.retrieve(batch.id)
        results = list(client.messages.batches.results(batch.id))
    assert ended.processing_status == "ended" and ended.request_counts.canceled == 1
    assert [r.result.type for r in results] == ["canceled"]


def test_prompt_cache_usage_fields() -> None:
    with FakeVLMServer(prompt_cache=600) as server:
        client = openai.OpenAI(api_key="sk-test", base_url=server.openai_url, max_retries=0)
        first, second = (client.chat.completions.create(**_chat()) for _ in range(2))  # type: ignore[call-overload]
        claude = anthropic.Anthropic(api_key="sk-ant-test", base_url=server.url, max_retries=0)
        params = {
            **_params(),
            "system": [{"type": "text", "text": "codebook", "cache_control": {"type": "ephemeral"}}],
        }
        write, read = (claude.messages.create(**params) for _ in range(2))  # type: ignore[call-overload]
    assert first.usage is not None and first.usage.prompt_tokens_details is not None
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    assert second.usage is not None and second.usage.prompt_tokens_details is not None
    assert second.usage.prompt_tokens_details.cached_tokens == 600 and second.usage.prompt_tokens == 1000
    assert (write.usage.cache_creation_input_tokens, write.usage.cache_read_input_tokens) == (600, 0)
    assert (read.usage.cache_creation_input_tokens, read.usage.cache_read_input_tokens) == (0, 600)
    assert read.usage.input_tokens == 400


def test_the_server_runs_as_a_script_from_its_own_folder(tmp_path: Path) -> None:
    """As the stack test's container runs it: ``python3 /fakes/vlm_server.py``, no package."""
    script = Path(__file__).resolve().parents[1] / "fakes" / "vlm_server.py"
    process = subprocess.Popen(
        [sys.executable, str(script), "--port", "0"],
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert process.stdout is not None and process.stdin is not None
    url = process.stdout.readline().strip()
    try:
        client = openai.OpenAI(api_key="sk-test", base_url=url + "/v1", max_retries=0)
        file = client.files.create(
            file=("in.jsonl", _line("a", _chat()).encode(), "application/jsonl"), purpose="batch"
        )
        assert file.id.startswith("file-")
    finally:
        process.stdin.close()
        assert process.wait(timeout=60) == 0
