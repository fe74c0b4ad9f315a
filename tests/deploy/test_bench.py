"""``make bench`` runs: a quick run of an RPC benchmark prints its comparison line.

Not a timed test: the figures of a quick run mean nothing. What is checked is
that the harness starts each service under ``nameko run``, measures in turns,
prints one JSON object per line on stdout, and leaves no service behind.
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def service_processes():
    found = subprocess.run(
        ["pgrep", "-f", "nameko run --broker .*rembug_bench_submit_proposal"],
        capture_output=True,
        text=True,
    )
    return found.stdout.split()


def test_a_quick_rpc_benchmark_prints_its_comparison_and_stops_its_services():
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "submit_proposal"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    (line,) = [json.loads(text) for text in done.stdout.splitlines()]
    assert line["name"] == "submit_proposal"
    assert line["baseline_name"] == "nameko_rpc_noop"
    assert line["value"] > 0 and line["baseline"] > 0
    assert line["target"] == 0.6
    assert service_processes() == []
