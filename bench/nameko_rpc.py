"""nameko RPC throughput, and the no-op baseline other RPC benchmarks compare against.

Needs eventlet monkey patched before anything else is imported: register
benchmarks that use it with ``@benchmark(name, eventlet=True)``. To compare an
RPC of your own with the no-op in the same run::

    from bench.nameko_rpc import noop_rpc_rate, rpc_call_rate, rabbit_vhost

    with rabbit_vhost("submit") as amqp_uri:
        baseline = noop_rpc_rate(amqp_uri)
        value = rpc_call_rate(ProposalsService, "submit", make_args, {"AMQP_URI": amqp_uri, ...})
"""

import os
import time
import urllib.parse
import urllib.request
from contextlib import contextmanager

import eventlet
from nameko.rpc import rpc
from nameko.runners import ServiceRunner
from nameko.standalone.rpc import ServiceRpcProxy

from bench import benchmark, in_turns, log, report

DEFAULT_AMQP_URI = "pyamqp://guest:guest@127.0.0.1:5672/"
DEFAULT_RABBIT_API_URI = "http://guest:guest@127.0.0.1:15672"
CALLERS = 10
SECONDS = 3.0
WARM_UP_CALLS = 20  # per caller


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
    with opener.open(request, timeout=10):
        pass


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


def rpc_call_rate(
    service_cls, method, make_args, config, callers=CALLERS, seconds=SECONDS, context_data=None
):
    """Calls/s of ``service_cls.method(*make_args(caller, i))`` over ``seconds``.

    ``make_args`` may return a dict instead of a tuple: it is then passed as
    keyword arguments. ``context_data`` goes with every call (an auth token).

    The service runs in this process (a nameko ServiceRunner with ``config``);
    ``callers`` green threads call it as fast as they can, each through its own
    standalone ServiceRpcProxy (one is not safe to share between green threads),
    after ``WARM_UP_CALLS`` each. Only calls that complete inside the window count.
    """
    runner = ServiceRunner(config)
    runner.add_service(service_cls)
    runner.start()
    go, stop = eventlet.event.Event(), False
    counts = [0] * callers

    def caller(index):
        with ServiceRpcProxy(service_cls.name, config, context_data=context_data) as proxy:
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

    try:
        ready = []
        threads = [eventlet.spawn(caller, n) for n in range(callers)]
        while len(ready) < callers:
            eventlet.sleep(0.01)
        started = time.perf_counter()
        go.send()
        eventlet.sleep(seconds)
        stop = True
        elapsed = time.perf_counter() - started
        for thread in threads:
            thread.wait()
    finally:
        runner.stop()
    return sum(counts) / elapsed


def noop_rpc_rate(amqp_uri, callers=CALLERS, seconds=SECONDS):
    """Calls/s of a no-op nameko RPC: the baseline for RPC benchmarks in the same run."""
    config = {"AMQP_URI": amqp_uri}
    return rpc_call_rate(NoopService, "noop", lambda caller, i: (), config, callers, seconds)


def alternating_rates(service_cls, method, make_args, amqp_uri, rounds, seconds, context_data):
    """``(calls/s of service_cls.method, calls/s of the no-op)``, each the mean of
    ``rounds`` rounds of ``seconds`` taken in turns (ABBA order), so both see the same
    load and neither always goes first."""
    config = {"AMQP_URI": amqp_uri}

    def subject():
        return rpc_call_rate(
            service_cls, method, make_args, config, seconds=seconds, context_data=context_data
        )

    def noop():
        return noop_rpc_rate(amqp_uri, seconds=seconds)

    rates = {subject: 0.0, noop: 0.0}
    for measure in in_turns(rounds, noop, subject):
        rates[measure] += measure() / rounds
    return rates[subject], rates[noop]


@benchmark("nameko_rpc_noop", eventlet=True)
def nameko_rpc_noop(quick):
    """Baseline figure: a no-op @rpc, 10 concurrent callers with a proxy each, for ~3 s."""
    seconds = 1.0 if quick else SECONDS
    with rabbit_vhost("nameko_rpc_noop") as amqp_uri:
        value = noop_rpc_rate(amqp_uri, seconds=seconds)
    log(f"nameko_rpc_noop: {CALLERS} callers for {seconds:.0f} s")
    report("nameko_rpc_noop", value, "calls/s")
