"""The notify service's own configuration, from the environment, validated at start.

| variable | meaning | default |
| --- | --- | --- |
| ``NOTIFY_PROVIDERS`` | JSON list of providers (below) | ``[]``: in-app only |
| ``NOTIFY_RETENTION_DAYS`` | days after which content and address are purged | 7 |
| ``NOTIFY_CLOCK`` | ``system``, or ``file:<path>``: the time is read from the file | system |
| ``NOTIFY_MAX_ATTEMPTS`` | attempts before a temporary failure becomes permanent | 6 |
| ``NOTIFY_BACKOFF_SECONDS`` | first retry delay, doubled per attempt, at most an hour | 30 |
| ``NOTIFY_LEASE_SECONDS`` | a ``sending`` notification whose process died is retried after | 60 |
| ``NOTIFY_COOLDOWN_SECONDS`` | a failing provider is skipped this long, then tried again | 30 |
| ``NOTIFY_CONCURRENCY`` | messages in flight at once per process | 16 |
| ``NOTIFY_POLL_SECONDS`` | how often an idle dispatcher looks for due messages (new ones wake it at once) | 0.2 |
| ``NOTIFY_DIGEST_SECONDS`` | city node: how long a group of forwarded or accepted proposals must be quiet before the camat or bappeda hears of it | 300 |

A provider is an object with ``name``, ``channel`` (``sms``, ``whatsapp``,
``email``), ``kind`` (``http`` or ``smtp``), ``priority`` (lower first,
default 1: the order of fallback) and ``rate`` (messages per second, default
50). ``http``: ``url``, ``token`` (sent as a bearer token), ``sender`` (the SMS
sender id, at most 11 characters), ``timeout`` (seconds, default 10).
An HTTP provider that calls back (delivery reports, inbound SMS) gets
``callback_token``: its calls to ``POST /notify/providers/<name>/reports`` and
``/inbound`` must carry it as a bearer token.
``smtp``: ``host``, ``port``, ``sender`` (the From address), ``username``,
``password``, ``starttls`` (default false), ``timeout``. Tokens and passwords
are never logged or shown.

``NOTIFY_CLOCK=file:<path>`` is for tests and drills: the file holds an ISO
8601 time with its offset to jump to, from which the clock runs on (an empty
or missing file means the system clock), so a running process can be moved to
21:00 WIB and back without patching.
"""

import json
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shared.errors import ConfigError

OUTWARD_CHANNELS = ("sms", "whatsapp", "email")
KINDS = {"http": ("url",), "smtp": ("host", "port", "sender")}


@dataclass(frozen=True)
class ProviderSettings:
    name: str
    channel: str
    kind: str
    priority: int = 1
    rate: float = 50.0
    options: dict = field(default_factory=dict, repr=False)  # may hold secrets


@dataclass(frozen=True)
class Settings:
    providers: tuple
    retention_days: int = 7
    clock: str = "system"
    max_attempts: int = 6
    backoff_seconds: float = 30.0
    lease_seconds: float = 60.0
    cooldown_seconds: float = 30.0
    concurrency: int = 16
    poll_seconds: float = 0.2
    digest_seconds: float = 300.0

    @property
    def channels(self):
        """Channels this node can send on: those with a provider, and in-app."""
        return {p.channel for p in self.providers} | {"in_app"}


NUMBERS = {
    "NOTIFY_RETENTION_DAYS": ("retention_days", int, 1),
    "NOTIFY_MAX_ATTEMPTS": ("max_attempts", int, 1),
    "NOTIFY_BACKOFF_SECONDS": ("backoff_seconds", float, 0.01),
    "NOTIFY_LEASE_SECONDS": ("lease_seconds", float, 0.1),
    "NOTIFY_COOLDOWN_SECONDS": ("cooldown_seconds", float, 0.0),
    "NOTIFY_CONCURRENCY": ("concurrency", int, 1),
    "NOTIFY_POLL_SECONDS": ("poll_seconds", float, 0.01),
    "NOTIFY_DIGEST_SECONDS": ("digest_seconds", float, 0.0),
}


def load(environ=None):
    """Read and validate the settings; one ConfigError lists every problem."""
    env = os.environ if environ is None else environ
    problems, values = [], {}
    for var, (name, kind, minimum) in NUMBERS.items():
        if env.get(var, "").strip():
            try:
                value = kind(env[var])
                if value < minimum:
                    raise ValueError
                values[name] = value
            except ValueError:
                problems.append(f"{var} must be a {kind.__name__} of at least {minimum}")
    clock = env.get("NOTIFY_CLOCK", "system").strip() or "system"
    if clock != "system" and not clock.startswith("file:"):
        problems.append("NOTIFY_CLOCK must be 'system' or 'file:<path>'")
    providers = _providers(env.get("NOTIFY_PROVIDERS", "").strip() or "[]", problems)
    if problems:
        raise ConfigError("notify: bad configuration:\n- " + "\n- ".join(problems))
    return Settings(providers=providers, clock=clock, **values)


def _providers(text, problems):
    try:
        items = json.loads(text)
    except ValueError:
        problems.append("NOTIFY_PROVIDERS must be a JSON list of provider objects")
        return ()
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        problems.append("NOTIFY_PROVIDERS must be a JSON list of provider objects")
        return ()
    providers, names = [], set()
    for n, item in enumerate(items):
        where = f"NOTIFY_PROVIDERS[{n}]"
        name, channel, kind = item.get("name"), item.get("channel"), item.get("kind")
        bad = []
        if not isinstance(name, str) or not name or name in names:
            bad.append("a unique 'name'")
        if channel not in OUTWARD_CHANNELS:
            bad.append(f"'channel' one of {', '.join(OUTWARD_CHANNELS)}")
        if kind not in KINDS:
            bad.append("'kind' http or smtp")
        else:
            bad += [f"'{key}'" for key in KINDS[kind] if not item.get(key)]
        if kind == "smtp" and channel != "email":
            bad.append("channel 'email' for an smtp provider")
        if kind == "http" and channel == "email":
            bad.append("kind 'smtp' for email")
        sender = item.get("sender")
        if channel == "sms" and sender is not None and (not str(sender) or len(str(sender)) > 11):
            bad.append("an SMS 'sender' of at most 11 characters")
        try:
            priority, rate = int(item.get("priority", 1)), float(item.get("rate", 50))
            if rate <= 0:
                raise ValueError
        except (TypeError, ValueError):
            bad.append("an integer 'priority' and a positive 'rate'")
            priority, rate = 1, 1.0
        if bad:
            problems.append(f"{where} needs " + ", ".join(bad))
            continue
        names.add(name)
        options = {
            k: v
            for k, v in item.items()
            if k not in ("name", "channel", "kind", "priority", "rate")
        }
        providers.append(ProviderSettings(name, channel, kind, priority, rate, options))
    return tuple(sorted(providers, key=lambda p: (p.channel, p.priority)))


class Clock:
    """The time notify decides by: the system's, or one set from a file (``file:<path>``).

    The file holds the time to jump to; from then on the clock runs on at the
    normal pace (so backoffs and leases still pass) until the file changes.
    """

    def __init__(self, spec="system", monotonic=time.monotonic):
        self.path = Path(spec[5:]) if spec.startswith("file:") else None
        self.monotonic = monotonic
        self._text, self._base, self._since = None, None, 0.0

    def now(self):
        if self.path is not None:
            try:
                text = self.path.read_text().strip()
            except FileNotFoundError:
                text = ""
            if text != self._text:
                self._text, self._since = text, self.monotonic()
                self._base = _moment(text) if text else None
            if self._base is not None:
                return self._base + timedelta(seconds=self.monotonic() - self._since)
        return datetime.now(UTC)


def _moment(text):
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError("the NOTIFY_CLOCK file must hold an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise ConfigError("the NOTIFY_CLOCK file must hold a time with its offset")
    return moment.astimezone(UTC)
