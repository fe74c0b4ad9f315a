"""The RPC entrypoint every service uses: nameko's, with errors made safe.

A typed error (:mod:`shared.errors`) reaches the caller as it is. Any other
exception is logged with its call id and replaced by ``InternalError`` with that
reference: a caller never sees a stack trace, a SQL statement or the data in it.
"""

import logging

from nameko.exceptions import IncorrectSignature, MalformedRequest, MethodNotFound
from nameko.rpc import Rpc as NamekoRpc

from shared.errors import RembugError

log = logging.getLogger(__name__)

PASSED_THROUGH = (RembugError, IncorrectSignature, MalformedRequest, MethodNotFound)


class InternalError(Exception):
    """Something failed inside the service; the message carries a reference for the logs."""


class Rpc(NamekoRpc):
    def __init__(self, **kwargs):
        # nameko logs an expected error as a warning, anything else as a crash
        kwargs.setdefault("expected_exceptions", RembugError)
        super().__init__(**kwargs)

    def handle_result(self, message, worker_ctx, result, exc_info):
        if exc_info is not None and not isinstance(exc_info[1], PASSED_THROUGH):
            log.error(
                "internal error in %s (call %s): %s",
                worker_ctx.entrypoint.method_name,
                worker_ctx.call_id,
                type(exc_info[1]).__name__,
            )
            error = InternalError(f"internal error; reference {worker_ctx.call_id}")
            exc_info = (InternalError, error, None)
        return super().handle_result(message, worker_ctx, result, exc_info)


rpc = Rpc.decorator
