"""No log line carries a NIK, and the leak watch would see one if it did."""

import json
import logging
from pathlib import Path

import yaml

from shared import logs
from shared.logs import JsonFormatter, RedactPersonalData
from tests import leakwatch

ROOT = Path(__file__).resolve().parents[2]


def test_nik_shaped_numbers_are_redacted_from_messages_and_tracebacks():
    handler_output = []

    class Keep(logging.Handler):
        def emit(self, record):
            handler_output.append(self.format(record))

    handler = Keep()
    handler.addFilter(RedactPersonalData())
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    try:
        logger.warning("lookup of %s failed", "3275054101900001")
        try:
            raise ValueError("duplicate key (nik)=(3275056507850002)")
        except ValueError:
            logger.exception("insert failed")
    finally:
        logger.removeHandler(handler)
    text = "\n".join(handler_output)
    assert "3275054101900001" not in text and "3275056507850002" not in text
    assert text.count("[redacted]") >= 2
    assert "ValueError" in text  # the traceback is kept, only the number goes


def test_the_watch_finds_niks_and_generated_names_but_not_other_numbers():
    seen = [
        ("log a", "resident 3275054101900001 moved"),
        ("cloudevent b", '{"name": "Siti Rahayu"}'),
        ("log c", "sequence 12345678901234567 and 42"),
    ]
    found = leakwatch.findings(seen, {"siti rahayu"})
    assert found == [
        ("log a", "a NIK-shaped number"),
        ("cloudevent b", "a generated resident's name"),
    ]


def json_lines(monkeypatch, log):
    """The lines ``log(logger)`` writes through the deployed handler: redaction, then JSON."""
    monkeypatch.setenv("KELURAHAN_CODE", "32.75.05.1002")
    monkeypatch.delenv("REMBUG_SERVICE", raising=False)
    monkeypatch.setitem(logs._process, "service", "budget")
    output = []

    class Keep(logging.Handler):
        def emit(self, record):
            output.append(self.format(record))

    handler = Keep()
    handler.addFilter(RedactPersonalData())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.jsonlines")
    logger.addHandler(handler)
    try:
        log(logger)
    finally:
        logger.removeHandler(handler)
    return output


def test_json_lines_carry_kelurahan_service_and_the_call_id_inside_a_worker(monkeypatch):
    def log(logger):
        logger.info("outside any worker")
        logs.bind_worker("budget", "budget.pay_expense.abc")
        try:
            logger.warning("inside a worker, %d", 7)
        finally:
            logs.unbind_worker()
        logger.info("after the worker")

    outside, inside, after = [json.loads(line) for line in json_lines(monkeypatch, log)]
    assert outside["kelurahan"] == inside["kelurahan"] == "32.75.05.1002"
    assert outside["service"] == inside["service"] == "budget"
    assert "call_id" not in outside and "call_id" not in after
    assert inside["call_id"] == "budget.pay_expense.abc"
    assert inside["message"] == "inside a worker, 7" and inside["level"] == "WARNING"
    assert inside["logger"] == "test.jsonlines" and inside["time"].endswith("+00:00")


def test_json_lines_redact_nik_shaped_numbers_in_messages_and_tracebacks(monkeypatch):
    def log(logger):
        logger.warning("lookup of %s failed", "3275054101900001")
        try:
            raise ValueError("duplicate key (nik)=(3275056507850002)")
        except ValueError:
            logger.exception("insert of %s failed", "3275056507850003")

    lines = json_lines(monkeypatch, log)
    text = "\n".join(lines)
    for nik in ("3275054101900001", "3275056507850002", "3275056507850003"):
        assert nik not in text
    first, second = map(json.loads, lines)
    assert first["message"] == "lookup of [redacted] failed"
    assert "ValueError: duplicate key (nik)=([redacted])" in second["exception"]


def test_the_deployed_logging_config_writes_redacted_json():
    config = yaml.safe_load((ROOT / "deploy" / "nameko.yaml").read_text())["LOGGING"]
    console = config["handlers"]["console"]
    assert console["filters"] == ["redact"]
    assert config["filters"]["redact"]["()"] == "shared.logs.RedactPersonalData"
    assert console["formatter"] == "${LOG_FORMAT:json}"
    assert config["formatters"]["json"]["()"] == "shared.logs.JsonFormatter"
    assert config["root"]["handlers"] == ["console"]
