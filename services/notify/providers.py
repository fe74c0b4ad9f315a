"""Channels behind one interface: each provider sends one rendered message to one address.

``provider.send(message)`` returns the provider's message id, or raises
:class:`TemporaryFailure` (worth retrying, here or at another provider: the
provider is down, slow, overloaded, or refuses our credentials) or
:class:`PermanentFailure` (this message can never go: a bad address, a
refused template). ``message`` is a :class:`Outgoing`. Error texts name
status codes and exception types, never the address or the content (a
provider's reply may echo them, so reply bodies are never kept).

- :class:`HttpProvider`: a generic JSON-over-HTTP adapter for SMS and WhatsApp
  gateways: ``POST <url>`` with ``{"reference", "channel", "to", "sender",
  "text"}`` (SMS) or ``{"reference", "channel", "to", "template", "language",
  "parameters"}`` (WhatsApp), a bearer token, and the header
  ``Idempotency-Key: <notification id>``: a message sent again after a crash
  (its outcome unknown) carries the same key, so a gateway that honours the
  key accepts it once. A 2xx reply's JSON ``id`` is the provider's message id.
  408, 425, 429, 5xx, 401, 403 and network errors are temporary; other 4xx
  are permanent.
- :class:`SmtpProvider`: email over SMTP (STARTTLS optional), with
  ``Message-ID: <notification id@rembug>`` so a resend after a crash is
  recognisable; 4xx replies and network errors are temporary, 5xx permanent.

:class:`Route` wraps a provider with its rate limit (a token bucket, per
process) and its cooldown after a temporary failure (the next message skips
it until the cooldown ends, then tries it again: recovery).
"""

import logging
import smtplib
import time
from dataclasses import dataclass
from email.message import EmailMessage

import eventlet
import orjson
import urllib3

log = logging.getLogger(__name__)

TEMPORARY_HTTP = {401, 403, 408, 425, 429}


class TemporaryFailure(Exception):
    """The message may go later, or through another provider."""


class PermanentFailure(Exception):
    """The message cannot go to this address on this channel."""


@dataclass(frozen=True)
class Outgoing:
    """One message to send: our notification id, the channel, the address, the rendering."""

    id: str
    channel: str
    address: str
    message: dict


class HttpProvider:
    def __init__(self, name, channel, options, pool_size=16):
        self.name = name
        self.channel = channel
        self.url = options["url"]
        self.sender = options.get("sender")
        self.timeout = float(options.get("timeout", 10))
        self._headers = {"Content-Type": "application/json"}
        if options.get("token"):
            self._headers["Authorization"] = f"Bearer {options['token']}"
        # one pool for the one host: no URL parsing or pool lookup per message
        self._pool = urllib3.connection_from_url(self.url, maxsize=pool_size, block=True)
        self._path = urllib3.util.parse_url(self.url).request_uri
        self._timeout = urllib3.Timeout(total=self.timeout)

    def body(self, outgoing):
        base = {"reference": outgoing.id, "channel": self.channel, "to": outgoing.address}
        message = outgoing.message
        if self.channel == "sms":
            return {**base, "sender": self.sender, "text": message["text"]}
        return {
            **base,
            "template": message["template"],
            "language": message["language"],
            "parameters": message["parameters"],
        }

    def send(self, outgoing):
        headers = {**self._headers, "Idempotency-Key": outgoing.id}
        try:
            response = self._pool.urlopen(
                "POST",
                self._path,
                body=orjson.dumps(self.body(outgoing)),
                headers=headers,
                retries=False,
                timeout=self._timeout,
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise TemporaryFailure(f"{self.name}: {type(exc).__name__}") from None
        status = response.status
        if 200 <= status < 300:
            try:
                return str(orjson.loads(response.data)["id"])
            except (ValueError, KeyError, TypeError):  # orjson.JSONDecodeError is a ValueError
                return None
        if status >= 500 or status in TEMPORARY_HTTP:
            raise TemporaryFailure(f"{self.name}: HTTP {status}")
        raise PermanentFailure(f"{self.name}: HTTP {status}")

    def close(self):
        self._pool.close()


class SmtpProvider:
    def __init__(self, name, channel, options):
        self.name = name
        self.channel = channel
        self.host = options["host"]
        self.port = int(options["port"])
        self.sender = options["sender"]
        self.username = options.get("username")
        self._password = options.get("password")
        self.starttls = bool(options.get("starttls", False))
        self.timeout = float(options.get("timeout", 10))

    def send(self, outgoing):
        email = EmailMessage()
        email["From"] = self.sender
        email["To"] = outgoing.address
        email["Subject"] = outgoing.message["subject"]
        email["Message-ID"] = f"<{outgoing.id}@rembug>"
        email.set_content(outgoing.message["body"])
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls()
                if self.username:
                    smtp.login(self.username, self._password or "")
                smtp.send_message(email)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = {code for code, _ in exc.recipients.values()}
            if all(400 <= code < 500 for code in codes):
                raise TemporaryFailure(f"{self.name}: SMTP {sorted(codes)}") from None
            raise PermanentFailure(f"{self.name}: SMTP {sorted(codes)}") from None
        except smtplib.SMTPResponseException as exc:
            kind = TemporaryFailure if 400 <= exc.smtp_code < 500 else PermanentFailure
            raise kind(f"{self.name}: SMTP {exc.smtp_code}") from None
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            raise TemporaryFailure(f"{self.name}: {type(exc).__name__}") from None
        return email["Message-ID"]

    def close(self):
        pass


def build(settings, pool_size=16):
    """A provider for one :class:`~services.notify.settings.ProviderSettings`."""
    if settings.kind == "smtp":
        return SmtpProvider(settings.name, settings.channel, settings.options)
    return HttpProvider(settings.name, settings.channel, settings.options, pool_size)


class TokenBucket:
    """At most ``rate`` messages per second on average, bursts up to ``rate`` (at least 1)."""

    def __init__(self, rate, clock=time.monotonic, sleep=eventlet.sleep):
        self.rate = float(rate)
        self.capacity = max(1.0, self.rate)
        self.tokens = self.capacity
        self.clock, self.sleep = clock, sleep
        self.updated = clock()

    def acquire(self):
        """Take one token, waiting (cooperatively) until one is there."""
        while True:
            now = self.clock()
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens >= 1:
                self.tokens -= 1
                return
            self.sleep((1 - self.tokens) / self.rate)


class Route:
    """A provider with its priority, rate limit and cooldown."""

    def __init__(self, provider, priority, rate, cooldown, clock=time.monotonic):
        self.provider = provider
        self.name = provider.name
        self.channel = provider.channel
        self.priority = priority
        self.bucket = TokenBucket(rate)
        self.cooldown = cooldown
        self.clock = clock
        self.down_until = 0.0

    @property
    def available(self):
        return self.clock() >= self.down_until

    def send(self, outgoing):
        self.bucket.acquire()
        try:
            result = self.provider.send(outgoing)
        except TemporaryFailure:
            if self.available:
                log.warning("provider %s failing; skipped for %.1f s", self.name, self.cooldown)
            self.down_until = self.clock() + self.cooldown
            raise
        return result


class Switchboard:
    """Every configured route, by channel in priority order: send with fallback."""

    def __init__(self, routes):
        self.routes = {}
        for route in sorted(routes, key=lambda r: r.priority):
            self.routes.setdefault(route.channel, []).append(route)

    def send(self, outgoing):
        """``(provider name, provider message id)`` from the first route that takes it.

        Routes in cooldown are tried only when every route of the channel is;
        a temporary failure moves on to the next route; a permanent failure
        ends it (another provider would refuse the same address too).
        """
        routes = self.routes.get(outgoing.channel, [])
        if not routes:
            raise PermanentFailure(f"no provider for channel {outgoing.channel}")
        ordered = [r for r in routes if r.available] or routes
        failures = []
        for route in ordered:
            try:
                return route.name, route.send(outgoing)
            except TemporaryFailure as exc:
                failures.append(str(exc))
        raise TemporaryFailure("; ".join(failures))

    def close(self):
        for routes in self.routes.values():
            for route in routes:
                route.provider.close()
