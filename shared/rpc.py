"""The RPC entrypoint every service uses: nameko's, with errors made safe and replies made once.

A typed error (:mod:`shared.errors`) reaches the caller as it is. Any other
exception is logged with its call id and replaced by ``InternalError`` with that
reference: a caller never sees a stack trace, a SQL statement or the data in it.

A reply is nameko's own message (to the RPC exchange, routed to the request's
``reply_to``, with its correlation id, in the serializer of the request,
persistent, confirmed by the broker, and published again on a fresh connection
after a lost one, before the request is acknowledged), with its body encoded
once. Each reply borrows a broker connection of its own from the entrypoint's
idle ones and publishes on its channel directly: nameko's ``Responder`` builds a
connection, an exchange and a producer for every reply and encodes the result
twice, the first time only to check that it can; kombu's producer pool and
``ensure`` add about a third to the publish's own CPU. The broker lists the
connections as ``rembug-rpc-replies <service>``. A result that cannot be encoded
still reaches the caller as nameko's ``UnserializableValueError``.

A call whose arguments do not fit the method is refused with nameko's
``IncorrectSignature``, checked against the method's signature taken once at
setup (nameko's own check, ``inspect.getcallargs``, rebuilds it on every call).
"""

import inspect
import logging
import queue
import sys
import time

from kombu import Connection
from kombu.serialization import dumps, registry
from nameko.constants import (
    AMQP_SSL_CONFIG_KEY,
    AMQP_URI_CONFIG_KEY,
    DEFAULT_RETRY_POLICY,
    DEFAULT_TRANSPORT_OPTIONS,
    LOGIN_METHOD_CONFIG_KEY,
    PERSISTENT,
)
from nameko.exceptions import (
    IncorrectSignature,
    MalformedRequest,
    MethodNotFound,
    UnserializableValueError,
    serialize,
)
from nameko.rpc import Rpc as NamekoRpc
from nameko.rpc import get_rpc_exchange

from shared.errors import RembugError

log = logging.getLogger(__name__)

PASSED_THROUGH = (RembugError, IncorrectSignature, MalformedRequest, MethodNotFound)
RETRY_INTERVAL = 1.0  # seconds between attempts to publish a reply after a lost connection


class InternalError(Exception):
    """Something failed inside the service; the message carries a reference for the logs."""


class Rpc(NamekoRpc):
    def __init__(self, **kwargs):
        # nameko logs an expected error as a warning, anything else as a crash
        kwargs.setdefault("expected_exceptions", RembugError)
        super().__init__(**kwargs)

    def setup(self):
        super().setup()
        config = self.container.config
        self._exchange = get_rpc_exchange(config)
        name = f"rembug-rpc-replies {self.container.service_name}"
        self._connection = Connection(
            config[AMQP_URI_CONFIG_KEY],
            transport_options={
                **DEFAULT_TRANSPORT_OPTIONS,
                "confirm_publish": True,
                "client_properties": {"connection_name": name},
            },
            ssl=config.get(AMQP_SSL_CONFIG_KEY),
            login_method=config.get(LOGIN_METHOD_CONFIG_KEY),
        )
        self._idle = queue.LifoQueue()  # reply connections no reply is using
        self._stopping = False
        self._signature = inspect.signature(getattr(self.container.service_cls, self.method_name))

    def check_signature(self, args, kwargs):
        try:
            self._signature.bind(None, *args, **kwargs)  # None: the unbound method's self
        except TypeError as exc:
            raise IncorrectSignature(str(exc)) from None

    def stop(self):
        super().stop()
        self._close_idle()

    def kill(self):
        super().kill()
        self._close_idle()

    def _close_idle(self):
        """Close the idle reply connections; a reply still being sent (workers outlive the
        entrypoint's stop) closes its own when done."""
        self._stopping = True
        while True:
            try:
                self._idle.get_nowait().release()
            except queue.Empty:
                return

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
        result, exc_info = self._reply(message, result, exc_info)
        self.rpc_consumer.queue_consumer.ack_message(message)
        return result, exc_info

    def _reply(self, message, result, exc_info):
        """Publish the reply to ``message``; returns ``(result, exc_info)`` as sent."""
        serializer = registry.type_to_name[message.properties["content_type"]]
        error = None if exc_info is None else serialize(exc_info[1])
        try:
            content_type, encoding, body = dumps({"result": result, "error": error}, serializer)
        except Exception:
            exc_info = sys.exc_info()
            result, error = None, serialize(UnserializableValueError(result))
            content_type, encoding, body = dumps({"result": None, "error": error}, serializer)
        properties = {
            "correlation_id": message.properties.get("correlation_id"),
            "delivery_mode": PERSISTENT,
        }
        self._publish(body, content_type, encoding, properties, message.properties["reply_to"])
        return result, exc_info

    def _publish(self, body, content_type, encoding, properties, routing_key):
        """Publish one reply and wait for the broker's confirm, on an idle connection or a
        new one; after a lost connection, on a new one, up to ``max_retries`` more times."""
        for attempt in range(DEFAULT_RETRY_POLICY["max_retries"] + 1):
            try:
                connection = self._idle.get_nowait()
            except queue.Empty:
                connection = self._connection.clone()
            try:
                channel = connection.default_channel  # in confirm mode: publishing waits
                reply = channel.prepare_message(
                    body, None, content_type, encoding, None, properties
                )
                channel.basic_publish(reply, exchange=self._exchange.name, routing_key=routing_key)
            except connection.recoverable_connection_errors:
                connection.collect()
                if attempt == DEFAULT_RETRY_POLICY["max_retries"]:
                    raise
                time.sleep(RETRY_INTERVAL)
            except Exception:
                connection.collect()
                raise
            else:
                if self._stopping:
                    connection.release()
                else:
                    self._idle.put(connection)
                return


rpc = Rpc.decorator
