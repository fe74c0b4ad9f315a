"""nameko RPC throughput, and the no-op baseline other RPC benchmarks compare against.

Every service measured here runs as a node runs it: ``nameko run`` in a
process of its own (:func:`service_process`), with the environment of this
process. The callers are green threads in this process, which must be monkey
patched by eventlet before anything else is imported: register benchmarks that
use them with ``@benchmark(name, eventlet=True)``. To compare an RPC of your own
with the no-op in the same run::

    from bench.nameko_rpc import alternating_rates, rabbit_vhost

    with rabbit_vhost("submit") as amqp_uri:
        os.environ.update(AMQP_URI=amqp_uri, DATABASE_URL=...)  # the service's config
        submit, noop = alternating_rates(ProposalsService, "submit", make_args, amqp_uri, 4, 3.0)
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import eventlet
from nameko.rpc import rpc
from nameko.standalone.rpc import ServiceRpcProxy

from bench import benchmark, in_turns, log, report

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_AMQP_URI = "pyamqp://guest:guest@127.0.0.1:5672/"
DEFAULT_RABBIT_API_URI = "http://guest:guest@127.0.0.1:15672"
CALLERS = 10
SECONDS = 3.0
WARM_UP_CALLS = 20  # per caller
START_TIMEOUT = 60  # seconds for a service process to consume its RPC queue
STOP_TIMEOUT = 30  # seconds for it to stop after SIGTERM


class NoopService:
    """Does nothing: what RPC itself costs (AMQP round trip, nameko worker, JSON)."""

    name = "bench_noop"

    @rpc
    def noop(self):
        return None


def _rabbit_api(method, path, body=None):
    parts = urllib.parse.urlsplit(os.environ.get("RABBIT_API_URI", DEFAULT_RABBIT_API_URI))
    url = f"{parts.scheme}://{parts.hostname}:{parts.port}/api/{path}"
    request = urllib.request.Request(url, method=method, data=body)
    request.add_header("content-type", "application/json")
    passwords = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    passwords.add_password(None, url, parts.username, parts.password)
    opener = urllib.request.build_opener(urllib.request.HTTPBasicAuthHandler(passwords))
    with opener.open(request, timeout=10) as response:
        body = response.read()
    return json.loads(body) if body else None


@contextmanager
def rabbit_vhost(name):
    """Yield an AMQP URI for the vhost ``rembug_bench_<name>``, created now, deleted after.

    Uses the management API (env ``RABBIT_API_URI``) and the user of env ``AMQP_URI``.
    """
    amqp = urllib.parse.urlsplit(os.environ.get("AMQP_URI", DEFAULT_AMQP_URI))
    vhost = f"rembug_bench_{name}"
    quoted = urllib.parse.quote(vhost, safe="")
    permissions = b'{"configure": ".*", "write": ".*", "read": ".*"}'
    _rabbit_api("PUT", f"vhosts/{quoted}")
    try:
        _rabbit_api("PUT", f"permissions/{quoted}/{amqp.username}", permissions)
        yield urllib.parse.urlunsplit(amqp._replace(path=f"/{quoted}"))
    finally:
        _rabbit_api("DELETE", f"vhosts/{quoted}")


@contextmanager
def service_process(service_cls, amqp_uri):
    """Run ``service_cls`` with ``nameko run`` in a process of its own, as a node runs it
    (the rest of its configuration from this process's environment); yield once it
    consumes its RPC queue; stop it gracefully (SIGTERM) after. Its output goes to
    stderr if it fails to start."""
    target = f"{service_cls.__module__}:{service_cls.__qualname__}"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "nameko", "run", "--broker", amqp_uri, target],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_for_consumer(process, amqp_uri, f"rpc-{service_cls.name}")
        except BaseException:
            process.kill()
            process.wait()
            output.seek(0)
            sys.stderr.write(output.read().decode(errors="replace"))
            raise
        try:
            yield
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for_consumer(process, amqp_uri, queue):
    vhost = urllib.parse.unquote(urllib.parse.urlsplit(amqp_uri).path[1:])
    path = f"queues/{urllib.parse.quote(vhost, safe='')}/{queue}"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{queue}: the service exited with status {process.returncode}")
        try:
            if _rabbit_api("GET", path).get("consumers", 0) > 0:
                return
        except urllib.error.HTTPError as exc:
            if exc.code != 404:  # 404: the queue is not declared yet
                raise
        eventlet.sleep(0.2)
    raise RuntimeError(f"{queue}: no consumer after {START_TIMEOUT} s")


def call_rate(service_name, method, make_args, amqp_uri, seconds=SECONDS, context_data=None):
    """Calls/s of ``service_name.method(*make_args(caller, i))`` over ``seconds``.

    ``make_args`` may return a dict instead of a tuple: it is then passed as
    keyword arguments. ``context_data`` goes with every call (an auth token).

    ``CALLERS`` green threads call the running service as fast as they can,
    each through its own standalone ServiceRpcProxy (one is not safe to share
    between green threads), after ``WARM_UP_CALLS`` each. Only calls that
    complete inside the window count.
    """
    config = {"AMQP_URI": amqp_uri}
    go, stop = eventlet.event.Event(), False
    counts = [0] * CALLERS
    ready = []

    def caller(index):
        with ServiceRpcProxy(service_name, config, context_data=context_data) as proxy:
            method_proxy = getattr(proxy, method)

            def call(args):
                return method_proxy(**args) if isinstance(args, dict) else method_proxy(*args)

            for i in range(WARM_UP_CALLS):
                call(make_args(index, -1 - i))
            ready.append(index)
            go.wait()
            i = 0
            while not stop:
                call(make_args(index, i))
                if not stop:
                    counts[index] += 1
                i += 1

    threads = [eventlet.spawn(caller, n) for n in range(CALLERS)]
    while len(ready) < CALLERS:
        eventlet.sleep(0.01)
    started = time.perf_counter()
    go.send()
    eventlet.sleep(seconds)
    stop = True
    elapsed = time.perf_counter() - started
    for thread in threads:
        thread.wait()
    return sum(counts) / elapsed


def noop_call_rate(amqp_uri, seconds=SECONDS):
    """Calls/s of the running no-op service (see :func:`call_rate`)."""
    return call_rate(NoopService.name, "noop", lambda caller, i: (), amqp_uri, seconds)


def alternating_rates(service_cls, method, make_args, amqp_uri, rounds, seconds, context_data):
    """``(calls/s of service_cls.method, calls/s of the no-op)``, each the mean of
    ``rounds`` rounds of ``seconds`` taken in turns (ABBA order), so both see the same
    load and neither always goes first. Both services run throughout, each in its own
    process; the one not being called idles."""

    def subject():
        return call_rate(service_cls.name, method, make_args, amqp_uri, seconds, context_data)

    def noop():
        return noop_call_rate(amqp_uri, seconds)

    rates = {subject: 0.0, noop: 0.0}
    with service_process(service_cls, amqp_uri), service_process(NoopService, amqp_uri):
        for measure in in_turns(rounds, noop, subject):
            rates[measure] += measure() / rounds
    return rates[subject], rates[noop]


@benchmark("nameko_rpc_noop", eventlet=True)
def nameko_rpc_noop(quick):
    """Baseline figure: a no-op @rpc, 10 concurrent callers with a proxy each, for ~3 s."""
    seconds = 1.0 if quick else SECONDS
    with rabbit_vhost("nameko_rpc_noop") as amqp_uri, service_process(NoopService, amqp_uri):
        value = noop_call_rate(amqp_uri, seconds)
    log(f"nameko_rpc_noop: {CALLERS} callers for {seconds:.0f} s")
    report("nameko_rpc_noop", value, "calls/s")
