"""A loopback HTTP server speaking OpenAI Chat Completions and Anthropic Messages.

Used with the real ``openai`` and ``anthropic`` SDKs (``base_url``). Each request takes the
next action from ``script`` (default ``"ok"``), or asks ``decide(body)``:

- ``"ok"``: a valid answer to the request's JSON schema, with usage fields
- ``("429", seconds)``: rate limited with ``Retry-After``
- ``"500"``: server error
- ``"hang"``: no answer for ``hang_s`` seconds (the client times out first)
- ``"malformed"``: an answer that is not JSON
- ``"out_of_range"``: every integer answer set to 99
- ``"refusal"``: the model refuses
- ``"401"``: authentication error echoing the credentials it received (as careless servers do)
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

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
    def __init__(
        self,
        *,
        latency: float = 0.0,
        script: list[Any] | None = None,
        hang_s: float = 3.0,
        decide: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        self.latency = latency
        self.script: deque[Any] = deque(script or [])
        self.hang_s = hang_s
        self.decide = decide
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                data = json.dumps({"requests": len(server.requests)}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length))
                with server.lock:
                    server.requests.append(
                        {
                            "path": self.path,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": body,
                        }
                    )
                    action = server.script.popleft() if server.script else "ok"
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    if server.decide is not None:
                        action = server.decide(body) or action
                    if server.latency:
                        time.sleep(server.latency)
                    status, headers, payload = server.respond(
                        self.path, {k.lower(): v for k, v in self.headers.items()}, body, action
                    )
                    data = json.dumps(payload).encode() if not isinstance(payload, bytes) else payload
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with server.lock:
                        server.in_flight -= 1

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def openai_url(self) -> str:
        return self.url + "/v1"

    def __enter__(self) -> FakeVLMServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def respond(
        self, path: str, headers: dict[str, str], body: dict[str, Any], action: Any
    ) -> tuple[int, dict[str, str], Any]:
        anthropic = path.endswith("/messages")
        if isinstance(action, tuple) and action[0] == "429":
            return 429, {"retry-after": str(action[1])}, _error(anthropic, "rate_limit_error", "slow down")
        if action == "500":
            return 500, {}, _error(anthropic, "api_error", "internal error")
        if action == "401":
            seen = headers.get("authorization") or headers.get("x-api-key")
            return 401, {}, _error(anthropic, "authentication_error", f"invalid credentials: {seen}")
        if action == "hang":
            time.sleep(self.hang_s)
        schema = (
            body["tools"][0]["input_schema"]
            if anthropic
            else body["response_format"]["json_schema"]["schema"]
        )
        answer: Any = valid_answer(schema)
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
                    "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": OUTPUT_TOKENS},
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
                "usage": {
                    "prompt_tokens": INPUT_TOKENS,
                    "completion_tokens": OUTPUT_TOKENS,
                    "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS,
                },
            },
        )

    def images(self) -> list[tuple[int, int]]:
        """Sizes of the JPEGs received, in order."""
        from PIL import Image

        sizes = []
        for request in self.requests:
            body = request["body"]
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


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # many clients connect at once
    daemon_threads = True


def _error(anthropic: bool, kind: str, message: str) -> dict[str, Any]:
    if anthropic:
        return {"type": "error", "error": {"type": kind, "message": message}}
    return {"error": {"message": message, "type": kind, "code": None}}


if __name__ == "__main__":
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="serve the fake VLM API until stdin closes")
    parser.add_argument("--latency", type=float, default=0.0)
    options = parser.parse_args()
    with FakeVLMServer(latency=options.latency) as fake:
        print(fake.url, flush=True)
        sys.stdin.read()
