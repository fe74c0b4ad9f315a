"""``python -m bench [--only NAME] [--quick]``: run the benchmarks, one subprocess each.

Each benchmark runs in a fresh interpreter, monkey patched by eventlet first if
it was registered with ``eventlet=True``, so patching never leaks into the
psycopg benchmarks and a crash shows as an ``{"name", "error"}`` line while
the others still run. Only JSON lines reach stdout.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from bench import BENCHMARKS, discover, log

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 900  # seconds per benchmark


def run_one(name, quick):
    """Run one benchmark in this process (the subprocess side)."""
    discover()
    BENCHMARKS[name].fn(quick)


def child_command(spec, quick):
    code = 'import warnings; warnings.filterwarnings("ignore", r"\\s*Eventlet is deprecated")\n'
    code += "import eventlet; eventlet.monkey_patch()\n" if spec.eventlet else ""
    code += f"from bench.__main__ import run_one; run_one({spec.name!r}, quick={quick!r})"
    return [sys.executable, "-c", code]


def run_in_subprocess(spec, quick):
    """Run ``spec`` in its own interpreter, pass its JSON lines through; True if it succeeded."""
    log(f"{spec.name}: starting{' (eventlet)' if spec.eventlet else ''}")
    started = time.perf_counter()
    error = None
    try:
        done = subprocess.run(
            child_command(spec, quick),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            timeout=TIMEOUT,
        )
        output = done.stdout
        if done.returncode != 0:
            error = f"exited with status {done.returncode} (traceback on stderr)"
    except subprocess.TimeoutExpired as exc:
        output = exc.stdout or ""
        output = output.decode() if isinstance(output, bytes) else output
        error = f"timed out after {TIMEOUT} s"
    for line in output.splitlines():
        try:
            json.loads(line)
        except ValueError:
            log(f"{spec.name}: stray stdout: {line}")
            continue
        print(line, flush=True)
    if error:
        print(json.dumps({"name": spec.name, "error": error}), flush=True)
    log(f"{spec.name}: {'FAILED' if error else 'done'} in {time.perf_counter() - started:.1f} s")
    return error is None


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", metavar="NAME", help="run only this benchmark")
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    benchmarks = discover()
    if args.list:
        print("\n".join(benchmarks), file=sys.stderr)
        return 0
    if args.only and args.only not in benchmarks:
        parser.error(f"no benchmark {args.only!r}; there are: {', '.join(benchmarks)}")
    chosen = [benchmarks[args.only]] if args.only else list(benchmarks.values())
    results = [run_in_subprocess(spec, args.quick) for spec in chosen]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
