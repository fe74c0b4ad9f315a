"""Logging that cannot carry a NIK.

:class:`RedactPersonalData` is a filter for every handler (``deploy/nameko.yaml``
installs it): it renders each record, exception traceback included, and
replaces every NIK-shaped number (16 digits standing alone, the shape of a NIK
and of a No. KK) with ``[redacted]``. Code never logs personal data on purpose;
this catches what a library puts in an exception message.

:class:`JsonFormatter` writes each record as one JSON object per line with the
node's kelurahan code, the service, and, inside a nameko worker, the call id
(``deploy/nameko.yaml`` uses it). The service's worker context is bound by
:class:`~shared.service.WorkerLogContext` through :func:`bind_worker`; outside
a worker the service is the process's (``REMBUG_SERVICE``, or the last service
container set up in this process) and there is no call id. The formatter
redacts its whole output again, so no field can carry a NIK-shaped number.
"""

import contextvars
import json
import logging
import os
import re
from datetime import UTC, datetime

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


# -- JSON lines -------------------------------------------------------------------------------

_worker = contextvars.ContextVar("rembug_worker", default=None)
_process = {"service": os.environ.get("REMBUG_SERVICE")}


def set_process_service(name, replace=True):
    """The service named on lines logged outside a worker (one service per process).

    ``REMBUG_SERVICE`` in the environment wins; ``replace=False`` only fills a gap."""
    if not os.environ.get("REMBUG_SERVICE") and (replace or _process["service"] is None):
        _process["service"] = name


def bind_worker(service, call_id):
    """Name ``service`` and ``call_id`` on every line the current worker logs; returns a token."""
    return _worker.set((service, call_id))


def unbind_worker(token=None):
    if token is not None:
        try:
            _worker.reset(token)
            return
        except ValueError:  # set in another context: just clear
            pass
    _worker.set(None)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, kelurahan, service, call_id."""

    def __init__(self, *args, **kwargs):
        super().__init__()
        self.kelurahan = os.environ.get("KELURAHAN_CODE") or (
            "32.75" if os.environ.get("NODE_ROLE") == "city" else None
        )

    def format(self, record):
        worker = _worker.get()
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "kelurahan": self.kelurahan,
            "service": worker[0] if worker else _process["service"],
        }
        if worker:
            line["call_id"] = worker[1]
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return redact(json.dumps(line, ensure_ascii=False, default=str))
