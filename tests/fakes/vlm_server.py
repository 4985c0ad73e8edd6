"""A loopback HTTP server speaking OpenAI Chat Completions and Anthropic Messages, and both
providers' batch APIs (``tests/fakes/vlm_batches.py``).

Used with the real ``openai`` and ``anthropic`` SDKs (``base_url``). Each request (one sent
on its own, or one of a batch when the batch runs) takes the next action from ``script``
(default ``"ok"``), or asks ``decide(body)``:

- ``"ok"``: a valid answer to the request's JSON schema, with usage fields: ``usage`` as
  ``(input_tokens, output_tokens)``, or ``usage(path, body, raw_body)`` giving them
- ``("usage", input_tokens, output_tokens)``: a valid answer reporting that usage
- ``"no_usage"``: a valid answer without a ``usage`` object (some compatible servers)
- ``("429", seconds)``: rate limited with ``Retry-After``
- ``"500"``: server error
- ``"hang"``: no answer for ``hang_s`` seconds (the client times out first)
- ``"malformed"``: an answer that is not JSON
- ``"out_of_range"``: every integer answer set to 99
- ``("answer", {...})``: this answer, as it is
- ``"refusal"``: the model refuses
- ``"401"``: authentication error echoing the credentials it received (as careless servers do)
- ``"403"``, ``"404"``: permission error; unknown model

``prompt_cache=N`` plays the providers' prompt caches: a request whose cacheable prefix
(OpenAI: the system message and the schema; Anthropic: tools and a system block marked
``cache_control``) was seen before reports N of its input tokens as cache reads
(``prompt_tokens_details.cached_tokens``; ``cache_read_input_tokens``), the first one as an
Anthropic cache write (``cache_creation_input_tokens``). Batches run when first read
``batch_delay_s`` after creation; ``batch_expire_after=N`` expires all but N requests.

``reasoning=True`` checks Chat Completions bodies as OpenAI does for its reasoning models
(o-series, gpt-5): a 400 ``invalid_request_error`` for ``max_tokens`` ("use
'max_completion_tokens' instead") or for a ``temperature`` other than 1.

The server is one asyncio event loop in a background thread (HTTP/1.1 keep-alive, each
response written in one piece, ``TCP_NODELAY`` as asyncio sets it). It must cost the client
under test next to nothing: a thread per connection and a response written as headers and
body in two ``send`` calls (``http.server``) meet the client's delayed ACK (Nagle), which on
Linux adds about 40 ms to every request.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import socket
import threading
from collections import deque
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

try:
    from tests.fakes.vlm_batches import FakeBatches
except ImportError:  # run as a script from its own folder (the stack test's container)
    from vlm_batches import FakeBatches  # type: ignore[no-redef]

INPUT_TOKENS = 1000
OUTPUT_TOKENS = 50


def valid_answer(schema: dict[str, Any]) -> dict[str, Any]:
    """The middle allowed value of every property (an independent, simple rater)."""
    answer: dict[str, Any] = {}
    for key, spec in schema["properties"].items():
        if "enum" in spec:
            answer[key] = spec["enum"][len(spec["enum"]) // 2]
        elif spec.get("type") == "array":
            answer[key] = spec["items"]["enum"][:1]
        elif spec.get("type") == "number":
            answer[key] = (spec["minimum"] + spec["maximum"]) / 2
        else:
            answer[key] = "fake rationale"
    return answer


class FakeVLMServer:
    """The fake provider; ``with FakeVLMServer(...) as server:`` serves on ``server.url``.

    ``requests`` holds every request sent on its own (path, lower-cased headers, parsed
    body) unless ``record=False`` (the benchmark), when only ``count`` is kept; ``batch``
    the batch endpoints' state (``batch.batches``, ``batch.submitted``).
    """

    def __init__(
        self,
        *,
        latency: float = 0.0,
        script: list[Any] | None = None,
        hang_s: float = 3.0,
        decide: Callable[[dict[str, Any]], Any] | None = None,
        usage: tuple[int, int] | Callable[[str, dict[str, Any], bytes], tuple[int, int]] = (
            INPUT_TOKENS,
            OUTPUT_TOKENS,
        ),
        record: bool = True,
        reasoning: bool = False,
        prompt_cache: int = 0,
        batch_delay_s: float = 0.0,
        batch_expire_after: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.reasoning = reasoning
        self.prompt_cache = prompt_cache
        self.cached_prefixes: set[str] = set()
        self.batch = FakeBatches(
            self._answer, lambda: self.url, delay_s=batch_delay_s, expire_after=batch_expire_after
        )
        self.latency = latency
        self.script: deque[Any] = deque(script or [])
        self.hang_s = hang_s
        self.decide = decide
        self.usage = usage
        self.record = record
        self.requests: list[dict[str, Any]] = []
        self.count = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._socket = socket.create_server((host, port), backlog=256)
        self._loop = asyncio.new_event_loop()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._socket.getsockname()[1]}"

    @property
    def openai_url(self) -> str:
        return self.url + "/v1"

    def __enter__(self) -> FakeVLMServer:
        self.thread.start()
        start = asyncio.start_server(self._connection, sock=self._socket, limit=1 << 20)
        self._server = asyncio.run_coroutine_threadsafe(start, self._loop).result()
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self.thread.join()
        self._loop.close()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *lines = head.decode("latin-1").split("\r\n")
                method, path, _ = request_line.split(" ", 2)
                headers = {}
                for line in lines:
                    if line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                if headers.get("transfer-encoding", "").lower() == "chunked":
                    body = await _read_chunked(reader)
                else:
                    body = await reader.readexactly(int(headers.get("content-length", 0)))
                routed = self.batch.route(method, path, headers, body)
                if routed is not None:
                    status, extra, payload = routed
                elif method == "GET":
                    status, extra, payload = 200, {}, {"requests": self.count}
                else:
                    status, extra, payload = await self._post(path, headers, body)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                extra = {"content-type": "application/json", **extra}
                lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", f"content-length: {len(data)}"]
                lines += [f"{name}: {value}" for name, value in extra.items()]
                writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _post(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, str], Any]:
        body = json.loads(raw)
        self.count += 1
        if self.record:
            self.requests.append({"path": path, "headers": headers, "body": body})
        action = self.script.popleft() if self.script else "ok"
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.decide is not None:  # it may block (it writes to a database): not on the loop
                action = await asyncio.to_thread(self.decide, body) or action
            if self.latency:
                await asyncio.sleep(self.latency)
            if action == "hang":
                await asyncio.sleep(self.hang_s)
            return self.respond(path, headers, body, action, raw)
        finally:
            self.in_flight -= 1

    def _answer(
        self, path: str, headers: dict[str, str], body: dict[str, Any]
    ) -> tuple[int, dict[str, str], Any]:
        """One request of a batch, answered as if sent on its own (script, decide, usage)."""
        action = self.script.popleft() if self.script else "ok"
        if self.decide is not None:
            action = self.decide(body) or action
        return self.respond(path, headers, body, action, json.dumps(body).encode())

    def _cache(self, anthropic: bool, body: dict[str, Any]) -> tuple[int, int]:
        """``(cache reads, cache writes)`` of a request under ``prompt_cache``."""
        if not self.prompt_cache:
            return 0, 0
        if anthropic:
            system = body.get("system")
            marked = isinstance(system, list) and any("cache_control" in block for block in system)
            if not marked:
                return 0, 0
            prefix: Any = [body.get("tools"), system]
        else:
            messages = body.get("messages") or []
            prefix = [messages[0] if messages else None, body.get("response_format")]
        key = hashlib.sha256(json.dumps([body.get("model"), prefix], sort_keys=True).encode()).hexdigest()
        if key in self.cached_prefixes:
            return self.prompt_cache, 0
        self.cached_prefixes.add(key)
        return 0, (self.prompt_cache if anthropic else 0)

    def respond(
        self, path: str, headers: dict[str, str], body: dict[str, Any], action: Any, raw: bytes = b""
    ) -> tuple[int, dict[str, str], Any]:
        anthropic = path.endswith("/messages")
        if isinstance(action, tuple) and action[0] == "429":
            return 429, {"retry-after": str(action[1])}, _error(anthropic, "rate_limit_error", "slow down")
        if action == "500":
            return 500, {}, _error(anthropic, "api_error", "internal error")
        if action == "401":
            seen = headers.get("authorization") or headers.get("x-api-key")
            return 401, {}, _error(anthropic, "authentication_error", f"invalid credentials: {seen}")
        if action == "403":
            return 403, {}, _error(anthropic, "permission_error", "this key may not use this model")
        if action == "404":
            return 404, {}, _error(anthropic, "not_found_error", f"model: {body.get('model')} not found")
        if self.reasoning and not anthropic:
            if "max_tokens" in body:
                message = (
                    "Unsupported parameter: 'max_tokens' is not supported with this model. "
                    "Use 'max_completion_tokens' instead."
                )
                return 400, {}, _error(False, "invalid_request_error", message)
            if body.get("temperature", 1) != 1:
                message = (
                    f"Unsupported value: 'temperature' does not support {body['temperature']} with this "
                    "model. Only the default (1) value is supported."
                )
                return 400, {}, _error(False, "invalid_request_error", message)
        input_tokens, output_tokens = self.usage(path, body, raw) if callable(self.usage) else self.usage
        if isinstance(action, tuple) and action[0] == "usage":
            input_tokens, output_tokens = action[1], action[2]
        reads, writes = self._cache(anthropic, body)
        schema = (
            body["tools"][0]["input_schema"]
            if anthropic
            else body["response_format"]["json_schema"]["schema"]
        )
        answer: Any = valid_answer(schema)
        if isinstance(action, tuple) and action[0] == "answer":
            answer = dict(action[1])
        if action == "out_of_range":
            answer = {k: (99 if isinstance(v, int) else v) for k, v in answer.items()}
        model = body["model"]
        if anthropic:
            if action == "refusal":
                content: list[Any] = [{"type": "text", "text": "I can't rate this image."}]
                stop = "refusal"
            elif action == "malformed":
                content, stop = [{"type": "text", "text": "coherence: high, {not json"}], "end_turn"
            else:
                content = [
                    {"type": "tool_use", "id": "toolu_1", "name": body["tools"][0]["name"], "input": answer}
                ]
                stop = "tool_use"
            return (
                200,
                {},
                {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": content,
                    "stop_reason": stop,
                    "stop_sequence": None,
                    **(
                        {}
                        if action == "no_usage"
                        else {
                            "usage": {
                                "input_tokens": input_tokens - reads - writes,
                                "output_tokens": output_tokens,
                                **(
                                    {"cache_read_input_tokens": reads, "cache_creation_input_tokens": writes}
                                    if self.prompt_cache
                                    else {}
                                ),
                            }
                        }
                    ),
                },
            )
        message: dict[str, Any] = {"role": "assistant", "content": json.dumps(answer), "refusal": None}
        if action == "refusal":
            message = {"role": "assistant", "content": None, "refusal": "I can't rate this image."}
        elif action == "malformed":
            message["content"] = "coherence: high, {not json"
        return (
            200,
            {},
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}],
                **(
                    {}
                    if action == "no_usage"
                    else {
                        "usage": {
                            "prompt_tokens": input_tokens,
                            "completion_tokens": output_tokens,
                            "total_tokens": input_tokens + output_tokens,
                            **(
                                {"prompt_tokens_details": {"cached_tokens": reads}}
                                if self.prompt_cache
                                else {}
                            ),
                        }
                    }
                ),
            },
        )

    def images(self) -> list[tuple[int, int]]:
        """Sizes of the JPEGs received on their own, then in batches, in order."""
        from PIL import Image

        sizes = []
        bodies = [r["body"] for r in self.requests if "messages" in r["body"]]
        bodies += [body for batch in self.batch.batches.values() for _, _, body in batch["entries"]]
        for body in bodies:
            for message in body["messages"]:
                for part in message["content"] if isinstance(message["content"], list) else []:
                    data = None
                    if part.get("type") == "image_url":
                        data = part["image_url"]["url"].split(",", 1)[1]
                    elif part.get("type") == "image":
                        data = part["source"]["data"]
                    if data:
                        with Image.open(io.BytesIO(base64.b64decode(data))) as image:
                            assert image.format == "JPEG" and image.mode == "RGB"
                            sizes.append(image.size)
        return sizes


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


def _error(anthropic: bool, kind: str, message: str) -> dict[str, Any]:
    if anthropic:
        return {"type": "error", "error": {"type": kind, "message": message}}
    return {"error": {"message": message, "type": kind, "code": None}}


if __name__ == "__main__":
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="serve the fake VLM API until stdin closes")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a container)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--forever", action="store_true", help="serve until killed, not until stdin closes")
    options = parser.parse_args()
    with FakeVLMServer(latency=options.latency, record=False, host=options.host, port=options.port) as fake:
        print(fake.url, flush=True)
        if options.forever:
            threading.Event().wait()
        sys.stdin.read()
