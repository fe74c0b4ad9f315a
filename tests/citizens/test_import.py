"""Bulk import of residents from CSV: good rows in, bad rows reported, resumable."""

import csv
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.residents import generate, write_csv
from services.citizens import import_csv
from services.citizens.importer import read
from shared.errors import Forbidden
from tests import factories as f
from tests import leakwatch
from tests.citizens.conftest import raises

ROOT = Path(__file__).resolve().parents[2]
SIZE = 300
BATCH = 40


class Interrupted(Exception):
    pass


def residents(seed=11):
    rows = list(generate(SIZE, seed))
    for row in rows:
        leakwatch.remember_name(row["name"])
    return rows


def line_of(index):
    return index + 2  # the header is line 1


def spoil(rows):
    """Bad rows at known places: ``{line: field the reason names}``."""
    born = rows[10]["birth_date"]
    rows[10]["birth_date"] = born[:8] + ("11" if born[8:] != "11" else "12")  # NIK disagrees
    rows[31] = {**rows[30], "name": "Intan Permana"}  # the NIK of line 32 again
    leakwatch.remember_name("Intan Permana")
    rows[40]["name"] = ""  # missing
    rows[50]["religion"] = "jedi"  # not a known value
    rows[60]["rt"] = "x"
    rows[70]["welfare_decile"], rows[70]["welfare_as_of"] = 11, "2025-12-31"
    return {
        line_of(10): "nik",
        line_of(31): "nik",
        line_of(40): "name",
        line_of(50): "religion",
        line_of(60): "rt",
        line_of(70): "welfare.decile",
        line_of(5): "nik",  # registered before the import
    }


def write(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as out:
        write_csv(rows, out)


def population(citizens):
    with citizens(f.operator()) as op:
        return op.monograph()["population"]


def test_import_reports_bad_rows_resumes_and_registers_each_resident_once(citizens, tmp_path):
    rows = residents()
    expected = spoil(rows)
    with citizens(f.operator()) as op:
        registered = dict(rows[5])
        registered.pop("welfare_decile", None), registered.pop("welfare_as_of", None)
        registered.pop("disability", None), registered.pop("disability_consent", None)
        registered.pop("disability_consent_date", None)
        op.register(**registered)
    path = tmp_path / "residents.csv"
    write(path, rows)

    sent = []
    with citizens(f.operator()) as op:

        def interrupted(import_id, batch):
            if len(sent) == 3:  # the fourth batch is stored, its reply never read
                op.import_residents(import_id=import_id, rows=batch)
                raise Interrupted
            sent.append(batch)
            return op.import_residents(import_id=import_id, rows=batch)

        with pytest.raises(Interrupted):
            import_csv.run(path, interrupted, batch=BATCH, err=io.StringIO())
        state = import_csv._load_state(path)
        assert state["last_line"] == sent[2][-1]["line"] and not state["finished"]

        replies = []

        def resumed(import_id, batch):
            replies.append(op.import_residents(import_id=import_id, rows=batch))
            return replies[-1]

        state = import_csv.run(path, resumed, batch=BATCH, err=io.StringIO())
        assert replies[0]["duplicate_batch"] and not any(r["duplicate_batch"] for r in replies[1:])

        # a batch sent again (same import id, same lines) stores nothing
        again = op.import_residents(import_id=state["import_id"], rows=sent[0])
        assert again["duplicate_batch"] and again["accepted"] == len(sent[0]) - sum(
            1 for line in expected if sent[0][0]["line"] <= line <= sent[0][-1]["line"]
        )

    assert state["finished"] and state["accepted"] == SIZE - len(expected)
    assert state["rejected"] == len(expected)
    with open(import_csv.report_path(path), newline="", encoding="utf-8") as report:
        reported = list(csv.DictReader(report))
    assert sorted(int(r["line"]) for r in reported) == sorted(expected)
    for r in reported:
        assert r["reason"].startswith(expected[int(r["line"])]), r
        assert not re.search(r"\d{16}", r["reason"])
        assert not any(row["name"] and row["name"] in r["reason"] for row in rows)
    assert "line 32" in next(r["reason"] for r in reported if r["line"] == str(line_of(31)))
    assert population(citizens) == state["accepted"] + 1

    # a finished import run again does nothing
    assert import_csv.run(path, None, batch=BATCH, err=io.StringIO())["finished"]
    assert population(citizens) == state["accepted"] + 1


def test_imported_residents_carry_the_same_events_as_single_registrations(citizens, tmp_path):
    rows = residents(seed=12)[:60]
    vulnerable = next(i for i, row in enumerate(rows) if row.get("welfare_decile"))
    rows[vulnerable].update(
        disability="physical", disability_consent="self", disability_consent_date="2025-01-02"
    )
    path = tmp_path / "small.csv"
    write(path, rows)
    with open(path, newline="", encoding="utf-8") as lines:
        payloads = [{"line": line, "payload": p} for line, p in read(lines)]
    with citizens(f.operator()) as op:
        reply = op.import_residents(import_id="imp-1", rows=payloads)
        assert reply == {"accepted": 60, "rejected": [], "duplicate_batch": False}
        found = op.find_resident_by_nik(nik=rows[vulnerable]["nik"])
        now = op.monograph()
        scanned = op.monograph(as_of=now["as_of"])  # the spans themselves, not the counters
    assert now["population"] == 60 and {**scanned, "current": True} == now
    assert [h["type"] for h in found["history"]] == [
        "resident.registered",
        "resident.disability_recorded",
        "resident.welfare_recorded",
    ]
    assert "disability.physical" in found["public"]["categories"]
    assert found["vulnerability"]["welfare"]["decile"] == rows[vulnerable]["welfare_decile"]
    assert found["personal"]["name"] == rows[vulnerable]["name"]
    assert population(citizens) == 60


def test_import_is_for_kelurahan_staff_only(citizens):
    rows = [{"line": 2, "payload": residents(seed=13)[0]}]
    with citizens(f.actor("pamor", "u-pamor", rw=7)) as pamor, raises(Forbidden):
        pamor.import_residents(import_id="imp-2", rows=rows)
    assert population(citizens) == 0


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "cannot read {path}: No such file or directory"),
        ("name,nik\n".encode("cp1252") + "Andé,1\n".encode("cp1252"), "{path} is not UTF-8 text"),
        (b"nama,nik\n", "{path}: unknown column(s) in the header: nama"),
    ],
    ids=["missing", "not-utf8", "header"],
)
def test_a_file_that_cannot_be_imported_is_refused_before_any_call_and_leaves_no_state(
    tmp_path, content, says
):
    path = tmp_path / "warga.csv"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SystemExit) as exit_:
        import_csv.main([str(path), "--kelurahan", "32.75.99.9999"])  # no node: never reached
    assert str(exit_.value.code).startswith(says.format(path=path))
    assert not import_csv.state_path(path).exists()
    assert not import_csv.report_path(path).exists()


def test_a_batch_of_no_rows_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        import_csv.main([str(tmp_path / "warga.csv"), "--batch", "0"])
    assert exit_.value.code == 2
    assert "--batch: must be at least 1" in capsys.readouterr().err


def test_the_command_says_only_what_is_wrong(tmp_path):
    path = tmp_path / "warga.csv"
    done = subprocess.run(
        [sys.executable, "-m", "services.citizens.import_csv", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (1, f"cannot read {path}: No such file or directory\n")
