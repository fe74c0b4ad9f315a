"""A fake SMS/WhatsApp gateway for development and tests: it sends nothing to any phone.

It is a real HTTP server on loopback that speaks the API notify's HTTP adapter
uses (``services/notify/providers.py``): it accepts a message, keeps it in a
JSON-lines file and answers with an id of its own (``fp-<n>``). No SMS or
WhatsApp message ever leaves this machine. ``make run`` starts one per channel
(``deploy/local/node.py``); the tests and the benchmark start their own.

Run it as its own process (``python -m deploy.local.fake_provider --port P --log
F``): the tests and the benchmark stop it (SIGKILL) to make a real outage and
start it again on the same port to end it. Every message it accepts is
appended to ``--log`` (so its receipts survive its restarts), keyed by the
``Idempotency-Key`` header: a message sent again with a key it has accepted
before gets the same id and is counted as a repeat, not a second receipt (as
gateways with idempotency keys do).

Delivery reports: with ``--report-to URL`` (notify's
``/notify/providers/<name>/reports``) and the provider's callback token (env
``FAKE_PROVIDER_REPORT_TOKEN``, which ``ps`` does not show, or ``--report-token
T``) it reports every accepted message ``delivered`` as a gateway does, naming
the message by its own id only (``{"message_id": "fp-7", "status":
"delivered"}``), in a thread of its own, retried with backoff while notify
answers 404 (the report may arrive before notify has recorded the id the
gateway returned) or is down.

Control (JSON): ``POST /_mode {"mode": "ok"|"fail"|"reject", "delay": seconds}``;
``GET /_stats`` gives ``{"received", "repeats", "requests", "reported"}``, and
``GET /_stats?received=N`` gives them once N messages are received (or after
``timeout`` seconds, default 60), so a client waits without polling;
``GET /_receipts`` every accepted message; ``POST /_reset`` forgets them.
"""

import argparse
import json
import os
import queue
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPORT_ATTEMPTS = 8
TOKEN_VARIABLE = "FAKE_PROVIDER_REPORT_TOKEN"
REPORT_FIRST_DELAY = 0.2  # seconds, doubled per attempt


class State:
    def __init__(self, log_path, reports=None):
        self.lock = threading.Lock()
        self.accepted = threading.Condition(self.lock)
        self.log_path = Path(log_path)
        self.mode, self.delay = "ok", 0.0
        self.receipts = {}  # idempotency key -> receipt
        self.repeats = 0
        self.requests = 0
        self.reports = reports
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
            self.accepted.notify_all()
        if self.reports is not None:
            self.reports.put(receipt["id"])
        return receipt["id"]


class Reporter:
    """Reports each accepted message delivered to notify by the gateway's own id."""

    def __init__(self, url, token):
        self.url, self.token = url, token
        self.pending = queue.Queue()
        self.reported = 0
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback
        threading.Thread(target=self._run, daemon=True).start()

    def put(self, message_id):
        self.pending.put((message_id, 0, 0.0))

    def _run(self):
        while True:
            message_id, attempt, due = self.pending.get()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(min(wait, 0.05))
                self.pending.put((message_id, attempt, due))  # others may be due first
                continue
            if self._report(message_id):
                self.reported += 1
            elif attempt + 1 < REPORT_ATTEMPTS:
                delay = REPORT_FIRST_DELAY * 2**attempt
                self.pending.put((message_id, attempt + 1, time.monotonic() + delay))

    def _report(self, message_id):
        body = json.dumps({"message_id": message_id, "status": "delivered"}).encode()
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"},
        )
        try:
            with self.opener.open(request, timeout=5) as reply:
                return reply.status == 200
        except (urllib.error.URLError, OSError):
            return False  # 404 (not recorded yet), notify down: later


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
        """The request's JSON object; None if it is missing or cut short (a client killed
        mid-request): such a request is never accepted."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if len(raw) < length:
            return None
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def do_GET(self):
        state = self.state
        path, _, query = self.path.partition("?")
        if path == "/_stats":
            wait = urllib.parse.parse_qs(query)
            at_least = int(wait.get("received", ["0"])[0])
            timeout = float(wait.get("timeout", ["60"])[0])
            with state.lock:
                state.accepted.wait_for(lambda: len(state.receipts) >= at_least, timeout)
                stats = {
                    "received": len(state.receipts),
                    "repeats": state.repeats,
                    "requests": state.requests,
                    "reported": state.reports.reported if state.reports else 0,
                }
            return self._reply(200, stats)
        if path == "/_receipts":
            with state.lock:
                return self._reply(200, list(state.receipts.values()))
        return self._reply(404, {"error": "not found"})

    def do_POST(self):
        state = self.state
        body = self._body()
        if body is None:
            return self._reply(400, {"error": "incomplete request"})
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
        if not body.get("to") or not ("text" in body or "template" in body):
            return self._reply(400, {"error": "a message needs to and text or template"})
        key = self.headers.get("Idempotency-Key") or f"no-key-{time.time_ns()}"
        return self._reply(200, {"id": state.accept(key, body)})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the listen backlog: many clients connect at once


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--report-to", help="notify's delivery-report URL for this provider")
    parser.add_argument(
        "--report-token",
        default=os.environ.get(TOKEN_VARIABLE, ""),
        help=f"the provider's callback token (default: env {TOKEN_VARIABLE}, which ps does not show)",
    )
    args = parser.parse_args(argv)
    reports = Reporter(args.report_to, args.report_token) if args.report_to else None
    Handler.state = State(args.log, reports)
    server = Server(("127.0.0.1", args.port), Handler)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
