"""No log line carries a NIK, and the leak watch would see one if it did."""

import logging

from shared.logs import RedactPersonalData
from tests import leakwatch


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
