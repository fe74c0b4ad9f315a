"""rembug's benchmarks: a registry, JSON-lines reporting and a fresh database per benchmark.

Add a benchmark by dropping a module into this package with a function like::

    from bench import benchmark, compare, fresh_database, report

    @benchmark("relay")                  # eventlet=True: run with eventlet monkey patched
    def relay(quick):                    # quick: use small sizes (smoke test)
        with fresh_database("relay") as url:
            ...
            report("relay", events_per_s, "events/s")

``python -m bench`` finds every module here, runs each benchmark in its own
subprocess and prints what it reports, one JSON object per line, on stdout.
Progress goes to stderr (:func:`log`).
"""

import importlib
import json
import os
import pkgutil
import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg.conninfo import make_conninfo

warnings.filterwarnings("ignore", r"\s*Eventlet is deprecated")  # imported by nameko, shared.db

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class Benchmark:
    name: str
    fn: object
    eventlet: bool


BENCHMARKS = {}


def benchmark(name, *, eventlet=False):
    """Decorator: register ``fn(quick)`` as the benchmark ``name`` (``--only name``).

    ``eventlet=True`` runs it in a subprocess monkey patched before any import.
    """

    def register(fn):
        if name in BENCHMARKS:
            raise ValueError(f"benchmark {name!r} registered twice")
        BENCHMARKS[name] = Benchmark(name, fn, eventlet)
        return fn

    return register


def discover():
    """Import every module of this package so their benchmarks register; return the registry."""
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")
    return BENCHMARKS


def log(message):
    """Progress and explanations: stderr, never stdout."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def report(name, value, unit, **extra):
    """Print one result line: ``{"name", "value", "unit", ...}``."""
    line = {"name": name, "value": round(value, 1), "unit": unit, **extra}
    print(json.dumps(line), flush=True)
    return line


def compare(name, value, unit, baseline, baseline_name, target=None, lower_is_better=False):
    """Print a result measured against a baseline from the same run.

    ``ratio`` is value/baseline (baseline/value when ``lower_is_better``, e.g.
    latencies), so a ratio >= ``target`` always means the target is met. Without
    a target the comparison only informs.
    """
    ratio = baseline / value if lower_is_better else value / baseline
    extra = {} if target is None else {"target": target}
    return report(
        name,
        value,
        unit,
        baseline=round(baseline, 1),
        baseline_name=baseline_name,
        ratio=round(ratio, 2),
        **extra,
    )


def alternate(rounds, *fns):
    """Time each of ``fns`` in turns (ABBA order, ABCCBA for three), ``rounds`` times each.

    Each returns how many operations it did. Returns the ops/s of each, in the
    order given. Taking turns makes all see the same load when the machine or
    the server is shared, so their ratios stay meaningful.
    """
    totals = {fn: [0, 0.0] for fn in fns}
    for fn in in_turns(rounds, *fns):
        start = time.perf_counter()
        count = fn()
        totals[fn][1] += time.perf_counter() - start
        totals[fn][0] += count
    return tuple(count / seconds for count, seconds in totals.values())


def in_turns(rounds, *fns):
    """``fns``, ``rounds`` times each, forwards and backwards in turn (ABBA): none always
    goes first, so all see the same drift of the machine's load."""
    for round_ in range(rounds):
        yield from fns if round_ % 2 == 0 else reversed(fns)


def server_url():
    """The PostgreSQL server to benchmark on (env ``DATABASE_URL``)."""
    return os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)


@contextmanager
def fresh_database(name):
    """Yield the conninfo of ``rembug_bench_<name>``, dropped and created now, dropped after."""
    dbname = f"rembug_bench_{name}"
    with psycopg.connect(server_url(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{dbname}"')
    try:
        yield make_conninfo(server_url(), dbname=dbname)
    finally:
        with psycopg.connect(server_url(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
