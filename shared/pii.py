"""Personal data: sealed per subject in the store, erased by shredding the subject's key.

Convention: an event's ``data`` may hold a key ``"personal"``, a dict of
everything that identifies or describes a person (NIK, No. KK, name, birth
date and place, address, health, disability, welfare details, ...). Nothing
else in ``data`` may identify a person. A *subject* is the person the
personal part is about (a resident), named by a subject id that is not itself
personal data (a resident id or a :meth:`Protector.pseudonym`).

Guarantees, each proven by a test against a real server
(``tests/platform/test_pii.py``):

1. :meth:`Protector.seal` returns a copy of ``data`` whose ``"personal"`` is
   ``{"sealed": <base64>, "subject": <subject id>, "v": 1}``: the orjson
   encoding of the personal dict under AES-256-GCM with the subject's data key,
   a random 96-bit nonce, and associated data binding it to the subject id.
   Data without a personal dict is returned unchanged. :meth:`Protector.unseal`
   gives back an equal personal dict (any JSON-native dict).
2. Each subject gets its own random 256-bit data key on its first seal, created
   in the caller's transaction (it commits with the caller's events, or
   neither does) by ``INSERT ... ON CONFLICT DO NOTHING`` and a select, so
   concurrent first seals of one subject agree on one key. A key whose
   transaction rolled back is never used again.
3. Data keys are stored only wrapped (AES-256-GCM, bound to the subject id)
   under a key derived from the node's master key ``PII_MASTER_KEY``; the
   ``subject_keys`` table never holds a data key in clear.
4. A sealed blob that was altered, or moved to another subject, fails loudly
   with :class:`PersonalDataError`; a data key that does not open under this
   node's master key, too. Error messages and log lines name the subject id
   only, never personal data.
5. :meth:`Protector.erase` destroys the subject's key in the caller's
   transaction (its row stays as a tombstone: subject id and time only) and
   evicts it from this Protector's cache. From then on no
   stored event yields the subject's personal data: :meth:`Protector.unseal`
   gives ``"personal": None``, while other subjects unseal as before. Erasing
   is idempotent, and the subject stays erased: sealing for it again raises
   :class:`SubjectErased` instead of making a new key.
6. :meth:`Protector.pseudonym` maps a value (a NIK) to a stable token
   ``p_`` + 26 lowercase base32 characters: HMAC-SHA256 under a key derived
   (HKDF-SHA256, info ``b"rembug pseudonym"``) from the master key. The same
   value gives the same token on the same node; another master key gives
   another token, so a city that does not hold the key cannot recompute it.
7. :meth:`Protector.from_env` raises :class:`~shared.errors.ConfigError` that
   says what to set when ``PII_MASTER_KEY`` is missing or malformed.

Caching: unwrapped keys are kept in a bounded LRU cache for ``cache_ttl``
seconds. A key is cached only once it is committed (a key read in the very
transaction that created it may still roll back, and events sealed with a
cached key that was never stored would be lost). ``erase`` evicts the key from
this :class:`Protector`'s cache; another process that cached the key before
the erasure commits may still use it until its entry expires (``cache_ttl``).

Erasure deletes the key logically at once; PostgreSQL keeps the old row
version on disk until VACUUM, and in WAL and backups until they age out.
"""

import base64
import binascii
import hashlib
import hmac
import logging
import os
import threading
import time
import uuid
from collections import OrderedDict
from contextlib import contextmanager

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from psycopg.rows import tuple_row

from shared.errors import ConfigError, Conflict, RembugError

log = logging.getLogger(__name__)

PERSONAL = "personal"
ENV = "PII_MASTER_KEY"
VERSION = 1
KEY_BYTES = 32
NONCE_BYTES = 12
SEALED_KEYS = frozenset(("sealed", "subject", "v"))
HOW_TO_SET = (
    f"{ENV} must be 32 random bytes in base64, e.g. from "
    "`python -c 'import os,base64;print(base64.b64encode(os.urandom(32)).decode())'`; "
    "keep the same key for the life of the node (another key cannot read its stored "
    "personal data)"
)

# (subject_id, wrapped, made now, written by this transaction)
LOAD_KEYS = (
    "SELECT subject_id, wrapped, false, xmin = pg_current_xact_id_if_assigned()::xid "
    "FROM subject_keys WHERE subject_id = ANY(%s)"
)
# The outer select sees the rows committed before the statement began (and this
# transaction's own); a row that a concurrent transaction commits meanwhile is in
# neither part: the caller loads it with a second statement.
GET_OR_CREATE_KEYS = """
WITH made AS (
    INSERT INTO subject_keys (subject_id, wrapped)
    SELECT * FROM unnest(%s::text[], %s::bytea[])
    ON CONFLICT (subject_id) DO NOTHING
    RETURNING subject_id
)
SELECT subject_id, NULL::bytea, true, true FROM made
UNION ALL
SELECT subject_id, wrapped, false, xmin = pg_current_xact_id_if_assigned()::xid
FROM subject_keys WHERE subject_id = ANY(%s)
"""
ERASE_KEY = (
    "INSERT INTO subject_keys (subject_id, wrapped, erased_at) VALUES (%s, NULL, now()) "
    "ON CONFLICT (subject_id) DO UPDATE "
    "SET wrapped = NULL, erased_at = coalesce(subject_keys.erased_at, now())"
)


class PersonalDataError(RembugError):
    """Sealed personal data that cannot be opened; the message names the subject only."""


class SubjectErased(Conflict):
    """Personal data sealed for a subject whose key was erased."""


ERASED = object()  # a cache value: the subject's key was erased


def new_master_key():
    """A fresh master key as ``PII_MASTER_KEY`` wants it: 32 random bytes in base64."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def new_data_key():
    """A subject's data key: 32 random bytes."""
    return os.urandom(KEY_BYTES)


def parse_master_key(text):
    """The 32 bytes of a ``PII_MASTER_KEY`` value; ConfigError (without the value) if bad."""
    if not text or not text.strip():
        raise ConfigError(f"{ENV} is not set: {HOW_TO_SET}")
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{ENV} is not valid base64: {HOW_TO_SET}") from None
    if len(key) != KEY_BYTES:
        raise ConfigError(f"{ENV} decodes to {len(key)} bytes, not {KEY_BYTES}: {HOW_TO_SET}")
    return key


class Protector:
    """Seals, unseals and erases personal data for one node (one master key).

    ``db`` (a :class:`shared.db.Database`) is only needed to unseal without a
    connection of the caller's.
    """

    def __init__(self, master_key, db=None, cache_size=50_000, cache_ttl=60.0):
        if not isinstance(master_key, bytes) or len(master_key) != KEY_BYTES:
            raise ValueError(f"the master key must be {KEY_BYTES} bytes")
        self._wrapper = AESGCM(_derive(master_key, b"rembug subject keys"))
        self._pseudonym_key = _derive(master_key, b"rembug pseudonym")
        self._cache = _KeyCache(cache_size, cache_ttl)
        self.db = db

    @classmethod
    def from_env(cls, environ=None, db=None, **options):
        """A Protector under ``PII_MASTER_KEY`` of ``environ`` (default: os.environ)."""
        env = os.environ if environ is None else environ
        return cls(parse_master_key(env.get(ENV)), db=db, **options)

    # -- sealing -----------------------------------------------------------

    def seal(self, conn, subject_id, data):
        """``data`` with its personal dict sealed for ``subject_id`` (see the module's 1-2).

        Creates the subject's key in ``conn``'s transaction on its first seal.
        Raises SubjectErased if the subject was erased.
        """
        return self.seal_many(conn, [(subject_id, data)])[0]

    def seal_many(self, conn, items):
        """:meth:`seal` of each ``(subject_id, data)``: the bulk path, one statement for all keys.

        (A second statement loads the keys another transaction made meanwhile.)
        """
        items = [(_subject(subject), data) for subject, data in items]
        subjects = {subject for subject, data in items if _needs_sealing(subject, data)}
        keys = self._keys(conn, subjects, create=True)
        return [
            self._seal_one(keys[subject], subject, data) if subject in subjects else data
            for subject, data in items
        ]

    def _seal_one(self, key, subject, data):
        if key is ERASED:
            raise SubjectErased(f"subject {subject} was erased: no personal data can be stored")
        nonce = os.urandom(NONCE_BYTES)
        sealed = nonce + key.encrypt(nonce, _encode(subject, data[PERSONAL]), _aad(subject))
        box = {"sealed": base64.b64encode(sealed).decode("ascii"), "subject": subject}
        return {**data, PERSONAL: {**box, "v": VERSION}}

    # -- unsealing ---------------------------------------------------------

    def unseal(self, conn, data):
        """``data`` with its personal part opened, or None if the subject was erased.

        ``conn`` may be None: a connection is then borrowed from ``self.db``
        if a key is not cached. Data without a sealed personal part is
        returned unchanged. Raises PersonalDataError if the blob was altered
        or moved to another subject.
        """
        return self.unseal_many(conn, [data])[0]

    def unseal_many(self, conn, datas):
        """:meth:`unseal` of each data, fetching missing keys in one query."""
        datas = list(datas)
        subjects = {_sealed_subject(d[PERSONAL]) for d in datas if is_sealed(d.get(PERSONAL))}
        keys = self._keys(conn, subjects, create=False)
        return [
            self._unseal_one(keys, d[PERSONAL], d) if is_sealed(d.get(PERSONAL)) else d
            for d in datas
        ]

    def _unseal_one(self, keys, box, data):
        subject = box["subject"]
        if box["v"] != VERSION:
            raise PersonalDataError(f"personal data of subject {subject} has unknown v {box['v']}")
        key = keys.get(subject)
        if key is None:
            log.warning("subject %s has sealed personal data but no key: read as erased", subject)
        if key is None or key is ERASED:
            return {**data, PERSONAL: None}
        return {**data, PERSONAL: _open(key, subject, box["sealed"])}

    # -- erasing -----------------------------------------------------------

    def erase(self, conn, subject_id):
        """Destroy the subject's key in ``conn``'s transaction (idempotent), evicting it here."""
        subject = _subject(subject_id)
        conn.execute(ERASE_KEY, [subject])
        self._cache.evict(subject)
        log.info("erased the personal data key of subject %s", subject)

    # -- pseudonyms --------------------------------------------------------

    def pseudonym(self, value):
        """A stable token for ``value`` (str or bytes, used exactly as given): ``p_`` + 26 chars.

        Normalise first (a NIK: its 16 digits). Keyed by this node's master
        key: not recomputable without it.
        """
        if isinstance(value, str):
            value = value.encode("utf-8")
        digest = hmac.new(self._pseudonym_key, value, hashlib.sha256).digest()
        return "p_" + base64.b32encode(digest).decode("ascii")[:26].lower()  # 130 bits

    # -- keys --------------------------------------------------------------

    def _keys(self, conn, subjects, create):
        """``{subject: AESGCM | ERASED}`` for ``subjects``; absent: the subject has no key.

        ``create``: make the missing keys, in one statement (one round trip).
        """
        found, missing = {}, []
        for subject in subjects:
            key = self._cache.get(subject)
            if key is None:
                missing.append(subject)
            else:
                found[subject] = key
        if not missing:
            return found
        with self._connection(conn) as conn:
            found.update(
                self._get_or_create(conn, missing) if create else self._load(conn, missing)
            )
            raced = [s for s in missing if s not in found] if create else []
            if raced:  # made by a transaction that committed after our statement began
                found.update(self._load(conn, raced))
        return found

    def _load(self, conn, subjects):
        rows = conn.cursor(row_factory=tuple_row).execute(LOAD_KEYS, [subjects])
        return self._opened(rows.fetchall(), {})

    def _get_or_create(self, conn, subjects):
        subjects = sorted(subjects)  # every transaction inserts in one order: no deadlock
        fresh = {subject: new_data_key() for subject in subjects}
        wrapped = [self._wrap(subject, fresh[subject]) for subject in subjects]
        rows = conn.cursor(row_factory=tuple_row).execute(
            GET_OR_CREATE_KEYS, [subjects, wrapped, subjects]
        )
        return self._opened(rows.fetchall(), fresh)

    def _opened(self, rows, fresh):
        """Each row's key (ERASED for a tombstone), caching those already committed."""
        found = {}
        for subject, wrapped, made_now, in_this_transaction in rows:
            if made_now:
                key = AESGCM(fresh[subject])
            elif wrapped is None:
                key = ERASED
            else:
                key = AESGCM(self._unwrap(subject, wrapped))
            if not in_this_transaction:  # committed: it cannot roll back under us
                self._cache.put(subject, key)
            found[subject] = key
        return found

    def _wrap(self, subject, key):
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._wrapper.encrypt(nonce, key, _wrap_aad(subject))

    def _unwrap(self, subject, wrapped):
        wrapped = bytes(wrapped)
        try:
            return self._wrapper.decrypt(
                wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], _wrap_aad(subject)
            )
        except InvalidTag:
            raise PersonalDataError(
                f"the data key of subject {subject} does not open under this node's {ENV} "
                "(another master key, or an altered key row)"
            ) from None

    @contextmanager
    def _connection(self, conn):
        if conn is not None:
            yield conn
            return
        if self.db is None:
            raise RuntimeError("unseal without a connection needs a Protector made with db=")
        with self.db.connection() as own:
            try:
                yield own
            finally:
                own.rollback()


class _KeyCache:
    """A bounded LRU of unwrapped keys whose entries expire ``ttl`` seconds after caching."""

    def __init__(self, size, ttl, clock=time.monotonic):
        self.size, self.ttl, self.clock = size, ttl, clock
        self._entries = OrderedDict()
        self._lock = threading.Lock()

    def get(self, subject):
        with self._lock:
            entry = self._entries.get(subject)
            if entry is None:
                return None
            key, expires = entry
            if expires <= self.clock():
                del self._entries[subject]
                return None
            self._entries.move_to_end(subject)
            return key

    def put(self, subject, key):
        with self._lock:
            self._entries[subject] = (key, self.clock() + self.ttl)
            self._entries.move_to_end(subject)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def evict(self, subject):
        with self._lock:
            self._entries.pop(subject, None)

    def __len__(self):
        return len(self._entries)


def is_sealed(personal):
    """Whether a ``"personal"`` value is a sealed box (rather than a dict in clear, or None)."""
    return isinstance(personal, dict) and personal.keys() == SEALED_KEYS


def _sealed_subject(box):
    subject = box["subject"]
    if not isinstance(subject, str) or not subject or not isinstance(box["sealed"], str):
        raise PersonalDataError("a sealed personal part names no valid subject id")
    return subject


def _needs_sealing(subject, data):
    personal = data.get(PERSONAL)
    if personal is None:
        return False
    if is_sealed(personal):
        if personal["subject"] != subject:
            raise PersonalDataError(
                f"personal data sealed for subject {personal['subject']} "
                f"cannot be sealed again for subject {subject}"
            )
        return False
    if not isinstance(personal, dict):
        raise TypeError(f'data["personal"] must be a dict or None, not {type(personal).__name__}')
    return True


def _subject(subject_id):
    if isinstance(subject_id, uuid.UUID):
        return str(subject_id)
    if not isinstance(subject_id, str) or not subject_id:
        raise TypeError(f"a subject id must be a non-empty str, not {type(subject_id).__name__}")
    if "\x00" in subject_id:
        raise ValueError("a subject id cannot hold NUL (PostgreSQL text cannot)")
    return subject_id


def _encode(subject, personal):
    try:
        return orjson.dumps(personal)
    except TypeError:  # orjson.JSONEncodeError; its message never holds the value, but be sure
        raise TypeError(
            f"personal data of subject {subject} is not JSON-native "
            "(dicts with str keys, lists, str, 64-bit int, float, bool, None)"
        ) from None


def _open(key, subject, sealed):
    try:
        blob = base64.b64decode(sealed, validate=True)
        return orjson.loads(key.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], _aad(subject)))
    except (InvalidTag, binascii.Error, ValueError, TypeError):
        raise PersonalDataError(
            f"personal data of subject {subject} does not open: "
            "the sealed blob was altered or belongs to another subject"
        ) from None


def _aad(subject):
    return b"rembug personal v1\x00" + subject.encode("utf-8")


def _wrap_aad(subject):
    return b"rembug subject key v1\x00" + subject.encode("utf-8")


def _derive(master_key, info):
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info).derive(
        master_key
    )
