"""A fake SMS/WhatsApp provider: a real HTTP server on loopback that can be told to fail.

Run it as its own process (``python -m tests.notify.fake_provider --port P --log F``):
the tests and the benchmark stop it (SIGKILL) to make a real outage and start it
again on the same port to end it. Every message it accepts is appended to the
JSON-lines file ``--log`` (so its receipts survive its restarts), keyed by the
``Idempotency-Key`` header: a message sent again with a key it has accepted
before gets the same provider id and is counted as a repeat, not a second
receipt (as gateways with idempotency keys do).

Control (JSON): ``POST /_mode {"mode": "ok"|"fail"|"reject", "delay": seconds}``;
``GET /_stats`` gives ``{"received", "repeats", "requests"}``; ``GET
/_receipts`` every accepted message; ``POST /_reset`` forgets them.
"""

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class State:
    def __init__(self, log_path):
        self.lock = threading.Lock()
        self.log_path = Path(log_path)
        self.mode, self.delay = "ok", 0.0
        self.receipts = {}  # idempotency key -> receipt
        self.repeats = 0
        self.requests = 0
        if self.log_path.exists():
            for line in self.log_path.read_text().splitlines():
                if line.strip():
                    receipt = json.loads(line)
                    self.receipts[receipt["key"]] = receipt
        self.log = self.log_path.open("a")

    def accept(self, key, body):
        with self.lock:
            if key in self.receipts:
                self.repeats += 1
                return self.receipts[key]["id"]
            receipt = {
                "key": key,
                "id": f"fp-{len(self.receipts) + 1}",
                "body": body,
                "at": time.time(),
            }
            self.receipts[key] = receipt
            self.log.write(json.dumps(receipt) + "\n")
            self.log.flush()
            return receipt["id"]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # a reply in two writes would wait for a delayed ACK
    state = None

    def log_message(self, *args):
        pass

    def _reply(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw else {}

    def do_GET(self):
        state = self.state
        if self.path == "/_stats":
            with state.lock:
                stats = {
                    "received": len(state.receipts),
                    "repeats": state.repeats,
                    "requests": state.requests,
                }
            return self._reply(200, stats)
        if self.path == "/_receipts":
            with state.lock:
                return self._reply(200, list(state.receipts.values()))
        return self._reply(404, {"error": "not found"})

    def do_POST(self):
        state = self.state
        body = self._body()
        if self.path == "/_mode":
            state.mode = body.get("mode", "ok")
            state.delay = float(body.get("delay", 0))
            return self._reply(200, {"mode": state.mode})
        if self.path == "/_reset":
            with state.lock:
                state.receipts.clear()
                state.repeats = state.requests = 0
                state.log.truncate(0)
            return self._reply(200, {})
        with state.lock:
            state.requests += 1
        if state.delay:
            time.sleep(state.delay)
        if state.mode == "fail":
            return self._reply(503, {"error": "unavailable"})
        if state.mode == "reject":
            return self._reply(400, {"error": "invalid destination"})
        key = self.headers.get("Idempotency-Key") or f"no-key-{time.time_ns()}"
        return self._reply(200, {"id": state.accept(key, body)})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the listen backlog: many clients connect at once


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", required=True)
    args = parser.parse_args(argv)
    Handler.state = State(args.log)
    server = Server(("127.0.0.1", args.port), Handler)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
