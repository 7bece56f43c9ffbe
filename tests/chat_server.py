"""A real HTTP server on 127.0.0.1 speaking the OpenAI chat-completions API, with fault injection.

Tests start it in a thread and talk to it through the official `openai` client, so retries, timeouts, the cache
and redaction are exercised exactly as against OpenAI, vLLM, Ollama or a llama.cpp server.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from instructlf_assets.core.factor_naming import NAMING_SYSTEM_PROMPT

KEY = "sk-canary-123"
MODEL = "fake-model"
DOCUMENT = re.compile(r"<document>\n(.*?)\n</document>", re.DOTALL)

# A fault: None (answer normally) or one of the names handled in _Handler._fault.
FaultPlan = Callable[[str, int], "str | None"]


class FakeChatServer:
    """State and fault plan of the fake endpoint; `fault(document, attempt)` decides each request's fate."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency_s = 0.0
        self.hang_s = 1.5
        self.fault: FaultPlan = lambda document, attempt: None
        self.calls: Counter[str] = Counter()  # every proposal request, per document
        self.named: Counter[str] = Counter()  # every factor-naming request, per first quoted document
        self.answered: Counter[tuple[str, int]] = Counter()  # 200 replies sent, per (document, step)
        self.injected: Counter[str] = Counter()
        self.requests: list[dict] = []  # headers, messages, arrival time
        self.inflight = 0
        self.max_inflight = 0
        self.base_url = ""
        self.dead = False  # set when the server "dies": kept-alive connections are dropped too
        self.finish_reason = "stop"  # "length": every reply says it was cut off by max_tokens

    def name_text(self, document: str) -> str:
        """The reply to a factor-naming request (its prompt quotes the factor's top documents)."""
        return f"Theme {document.split()[0]}"

    def reply_text(self, document: str, step: int) -> str:
        n = re.search(r"review-(\d+)", document).group(1)
        if step == 2:
            return f"1. step two acting of review {n}\n2. step two ending of review {n}"
        return (
            f"The review {n} praises the performances.\n"
            f"1. Acting of review {n}\n2) **Surprising ending of review {n}**: it keeps you guessing\n"
            f"3. Acting of review {n}.\n\nThat is all."
        )


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeChatServer

    def handle_error(self, request, client_address) -> None:  # a client that timed out closed its socket
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: Nagle + delayed ACK would add 40 ms
    server: _HTTPServer

    def log_message(self, format, *args) -> None:
        pass

    def do_POST(self) -> None:
        fake = self.server.fake
        if fake.dead:  # a dead process answers nothing, not even on a connection the client kept alive
            self.close_connection = True
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        messages = body["messages"]
        document = DOCUMENT.search(next(m["content"] for m in messages if m["role"] == "user")).group(1)
        step = 2 if any(m["role"] == "assistant" for m in messages) else 1
        if messages[0]["content"] == NAMING_SYSTEM_PROMPT:  # naming is counted apart from proposals
            with fake.lock:
                fake.named[document] += 1
            self._answer(fake.name_text(document))
            return
        with fake.lock:
            attempt = fake.calls[document]
            fake.calls[document] += 1
            fake.requests.append(
                {
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "messages": messages,
                    "model": body.get("model"),
                    "max_tokens": body.get("max_tokens"),
                    "at": time.perf_counter(),
                }
            )
            fake.inflight += 1
            fake.max_inflight = max(fake.max_inflight, fake.inflight)
            fault = fake.fault(document, attempt)
            if fault:
                fake.injected[fault] += 1
        try:
            time.sleep(fake.latency_s)
            if fault:
                self._fault(fault, fake)
            else:
                with fake.lock:  # counted before the reply leaves, so a client that has it always sees the count
                    fake.answered[(document, step)] += 1
                self._answer(fake.reply_text(document, step))
        finally:
            with fake.lock:
                fake.inflight -= 1

    def _answer(self, text: str) -> None:
        self._send(200, _completion(text, self.server.fake.finish_reason))

    def _fault(self, fault: str, fake: FakeChatServer) -> None:
        error = {"error": {"message": "injected", "type": "server_error"}}
        if fault == "500":
            self._send(500, error)
        elif fault == "429":
            self._send(429, error, {"Retry-After": "0"})
        elif fault == "429-slow":
            self._send(429, error, {"Retry-After": "0.3"})
        elif fault == "hang":
            time.sleep(fake.hang_s)
            self._send(200, _completion("1. too late"))
        elif fault == "malformed":
            self._send_raw(200, b'{"id": "chatcmpl-1", "choices": [{"message": ')
        elif fault == "truncated":
            body = json.dumps(_completion("1. cut")).encode()
            self._send_raw(200, body[: len(body) // 2], length=len(body))
            self.close_connection = True
        elif fault in ("empty", "prose"):
            self._answer("" if fault == "empty" else "I enjoyed reading this review, it is nice.")
        elif fault == "wrong-script":
            self._answer("这篇影评称赞了表演。\n1. 演员的表演非常出色\n2. 结局令人意外")
        elif fault == "400-echo":
            self._send(400, {"error": {"message": f"Invalid request made with key {KEY}", "type": "invalid"}})
        elif fault == "401-echo":
            self._send(401, {"error": {"message": f"Incorrect API key provided: {KEY}.", "type": "auth"}})
        else:
            raise AssertionError(f"unknown fault {fault}")

    def _send(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
        self._send_raw(status, json.dumps(payload).encode(), headers=headers)

    def _send_raw(
        self, status: int, body: bytes, headers: dict[str, str] | None = None, length: int | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()


def _completion(text: str, finish_reason: str = "stop") -> dict:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
    }


@contextmanager
def serve(fake: FakeChatServer) -> Iterator[FakeChatServer]:
    httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
    httpd.fake = fake
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    fake.base_url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    try:
        yield fake
    finally:
        fake.dead = True
        httpd.shutdown()
        httpd.server_close()
