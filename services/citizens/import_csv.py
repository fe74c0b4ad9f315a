"""Import residents from a CSV file into a local node, in batches, resumable.

    python -m services.citizens.import_csv residents.csv [--batch 500] [--import-id ID]

The columns are those of :mod:`services.citizens.importer`. Each batch goes to
``citizens.import_residents`` (one transaction, command id ``<import id>:<first
line>``). Progress goes to stderr; rejected rows (line, reason) to
``FILE.rejected.csv``; ``FILE.import-state`` records the import id, the batch size
and the last acknowledged line, so running the command again resumes after the
last acknowledged batch (the batch in flight is sent again, which stores nothing
twice). The token is signed with the node's secret (``run/<code>/auth_secret``,
made by ``make run``), as :mod:`deploy.local.call` does.
"""

import argparse
import bisect
import csv
import json
import os
import sys
import time
import uuid
import warnings
from pathlib import Path

from services.citizens.importer import read

# nameko imports eventlet, whose deprecation notice would start the command's output
warnings.filterwarnings("ignore", r"\s*Eventlet is deprecated")


def state_path(path):
    return Path(f"{path}.import-state")


def report_path(path):
    return Path(f"{path}.rejected.csv")


def _load_state(path):
    try:
        return json.loads(state_path(path).read_text())
    except FileNotFoundError:
        return None


def _save_state(path, state):
    tmp = state_path(path).with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, state_path(path))


class UnreadableFile(Exception):
    """The file cannot be imported at all: missing, not UTF-8, or a header not ours."""


def load(path):
    """The file's records, ``(line_number, payload | reason)``; :class:`UnreadableFile`
    says why there are none."""
    try:
        with open(path, newline="", encoding="utf-8") as lines:
            return list(read(lines))
    except OSError as exc:
        raise UnreadableFile(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UnreadableFile(f"{path} is not UTF-8 text: save it as CSV UTF-8") from None
    except ValueError as exc:  # the header
        raise UnreadableFile(f"{path}: {exc}") from None


def run(path, send, batch=500, import_id=None, err=sys.stderr, records=None):
    """Import ``path`` with ``send(import_id, rows) -> reply``; returns the final state.

    Resumes from ``FILE.import-state`` when it exists (``import_id`` and ``batch``
    must then agree with it, or be None). ``records``: the file as :func:`load` read
    it, if it already did; a file that cannot be read leaves no state behind.
    """
    records = load(path) if records is None else records
    state = _load_state(path)
    if state is None:
        state = {"import_id": import_id or str(uuid.uuid4()), "batch": batch, "last_line": 0}
        state.update(accepted=0, rejected=0, finished=False)
        report_path(path).write_text("line,reason\n")
        _save_state(path, state)
    elif import_id not in (None, state["import_id"]) or state["batch"] != batch:
        raise SystemExit(
            f"{state_path(path)} belongs to import {state['import_id']} with batches of "
            f"{state['batch']}: resume with those, or delete it to start again"
        )
    if state["finished"]:
        print(f"import {state['import_id']} was already finished", file=err)
        return state
    reported = _reported_lines(path)
    todo = [(line, item) for line, item in records if line > state["last_line"]]
    rows = [{"line": line, "payload": item} for line, item in todo if isinstance(item, dict)]
    unreadable = [(line, item) for line, item in todo if isinstance(item, str)]
    numbers = [line for line, _ in records]
    done_before, start = len(records) - len(todo), time.monotonic()
    for first in range(0, len(rows) + (not rows), batch):
        chunk = rows[first : first + batch]
        last = chunk[-1]["line"] if first + batch < len(rows) else records[-1][0] if records else 0
        reply = (
            send(state["import_id"], chunk)
            if chunk
            else {"accepted": 0, "rejected": [], "duplicate_batch": False}
        )
        rejected = [(r["line"], r["reason"]) for r in reply["rejected"]]
        rejected += [(line, reason) for line, reason in unreadable if line <= last]
        rejected = sorted(r for r in rejected if r[0] not in reported)
        with open(report_path(path), "a", newline="", encoding="utf-8") as out:
            csv.writer(out, lineterminator="\n").writerows(rejected)
        reported.update(line for line, _ in rejected)
        state.update(
            last_line=last,
            accepted=state["accepted"] + reply["accepted"],
            rejected=state["rejected"] + len(rejected),
        )
        _save_state(path, state)
        done = bisect.bisect_right(numbers, last)
        rate = (done - done_before) / max(time.monotonic() - start, 1e-6)
        print(
            f"\r{done}/{len(records)} rows, {rate:,.0f} rows/s, "
            f"{state['accepted']} accepted, {state['rejected']} rejected",
            end="",
            file=err,
            flush=True,
        )
    state["finished"] = True
    _save_state(path, state)
    print(f"\nrejected rows: {report_path(path)}", file=err)
    return state


def _reported_lines(path):
    try:
        with open(report_path(path), newline="", encoding="utf-8") as report:
            return {int(row[0]) for row in list(csv.reader(report))[1:] if row}
    except FileNotFoundError:
        return set()


def batch_size(text):
    """argparse type: rows per batch, at least one."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def main(argv=None):
    from nameko.exceptions import RemoteError
    from nameko.standalone.rpc import ClusterRpcProxy

    from deploy.local.call import add_identity_arguments, explained, token_for

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_identity_arguments(parser)
    parser.add_argument("file")
    parser.add_argument("--batch", type=batch_size, default=500)
    parser.add_argument("--import-id")
    args = parser.parse_args(argv)
    try:
        records = load(args.file)
    except UnreadableFile as exc:
        sys.exit(str(exc))
    env, token = token_for(args.kelurahan, args.role, args.user, args.rw, args.rt, args.scope)
    config, timeout = {"AMQP_URI": env["AMQP_URI"]}, 300
    with (
        explained(env["AMQP_URI"], "citizens", args.kelurahan, timeout),
        ClusterRpcProxy(config, context_data={"authorization": token}, timeout=timeout) as rpc,
    ):
        try:
            state = run(
                args.file,
                rpc.citizens.import_residents,
                args.batch,
                args.import_id,
                records=records,
            )
        except RemoteError as error:
            done = _load_state(args.file)
            sys.exit(
                f"\n{error.exc_type}: {error.value}\n"
                f"the import stopped after line {done['last_line']}; "
                "the same command resumes it from there"
            )
    print(json.dumps(state))


if __name__ == "__main__":
    main()
