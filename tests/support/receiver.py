"""A real webhook receiver on 127.0.0.1 for tests: a tiny HTTP server in a thread that can
answer 200, fail, hang past the sender's time-out, say 410 or 429, or be down altogether."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    msg_id: str
    timestamp: str
    signature: str
    body: bytes

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.body)


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


@dataclass
class Receiver:
    port: int = 0
    mode: str = "ok"  # ok | fail | slow | gone | throttle
    slow_seconds: float = 2.0
    accepted: list[Received] = field(default_factory=list)
    seen: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                item = Received(
                    self.headers.get("webhook-id", ""),
                    self.headers.get("webhook-timestamp", ""),
                    self.headers.get("webhook-signature", ""),
                    body,
                )
                with receiver._lock:
                    receiver.seen.append(item)
                    mode = receiver.mode
                if len(body) < length or not _is_json(body):
                    # A sender killed mid-request leaves a cut-off body; a real receiver's signature check
                    # fails on it, so it is refused, never accepted (the sender retries the whole message).
                    mode = "bad"
                if mode == "slow":
                    time.sleep(receiver.slow_seconds)
                status = {"ok": 200, "fail": 500, "slow": 200, "gone": 410, "throttle": 429, "bad": 400}[mode]
                if status == 200:
                    with receiver._lock:
                        receiver.accepted.append(item)
                try:
                    self.send_response(status)
                    if status == 429:
                        self.send_header("Retry-After", "600")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender gave up waiting

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            allow_reuse_address = True
            request_queue_size = 128  # the stdlib's 5 refuses bursts of connections

        self._server = Server(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Down: connections to the port are refused until ``start`` again (same port)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def ids(self) -> list[int]:
        """Event ids accepted, in the order they arrived."""
        with self._lock:
            return [r.payload["data"]["event_id"] for r in self.accepted]
