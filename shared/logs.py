"""Logging that cannot carry a NIK.

:class:`RedactPersonalData` is a filter for every handler (``deploy/nameko.yaml``
installs it): it renders each record, exception traceback included, and
replaces every NIK-shaped number (16 digits standing alone, the shape of a NIK
and of a No. KK) with ``[redacted]``. Code never logs personal data on purpose;
this catches what a library puts in an exception message.
"""

import logging
import re

NIK_SHAPED = re.compile(r"(?<!\d)\d{16}(?!\d)")
REDACTED = "[redacted]"


def redact(text):
    """``text`` with every NIK-shaped number replaced."""
    return NIK_SHAPED.sub(REDACTED, text)


class RedactPersonalData(logging.Filter):
    """Rewrites each record's message and traceback with NIK-shaped numbers redacted."""

    _formatter = logging.Formatter()

    def filter(self, record):
        record.msg = redact(record.getMessage())
        record.args = ()
        if record.exc_info:
            record.exc_text = redact(self._formatter.formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
