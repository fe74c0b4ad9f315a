"""Signed caller tokens and the nameko dependency that checks them.

A caller puts a token in the nameko call context under ``authorization``
(``ClusterRpcProxy(config, context_data={"authorization": token})``). The
token is a JWT signed with the node's ``AUTH_SECRET`` (HS256) whose claims
name the pseudonymous user, the role and the scope. :class:`Auth` gives each
worker the caller as an :class:`~shared.actor.Actor`, or raises
:class:`~shared.errors.Unauthenticated`; it never trusts an unsigned claim.
"""

import time
from functools import lru_cache

import jwt
from nameko.extensions import DependencyProvider

from shared import config as configmod
from shared.actor import ROLES, Actor
from shared.errors import Forbidden, Unauthenticated

CONTEXT_KEY = "authorization"
ALGORITHM = "HS256"
DEFAULT_TTL = 8 * 3600


def issue_token(secret, actor, ttl=DEFAULT_TTL):
    """A signed token for ``actor``, valid for ``ttl`` seconds."""
    now = int(time.time())
    claims = {
        "sub": actor.user_id,
        "role": actor.role,
        "kel": actor.kelurahan,
        "rw": actor.rw,
        "rt": actor.rt,
        "iat": now,
        "exp": now + ttl,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(secret, token):
    """The actor a token names, if its signature and expiry hold.

    A caller sends the same token with every call for hours; its signature is
    checked once and the result kept (per secret and token), its expiry on
    every call.
    """
    if not isinstance(token, str) or not token:
        raise Unauthenticated("this call needs a token in the call context under 'authorization'")
    actor, expires = _verified(secret, token)
    if expires <= time.time():
        raise Unauthenticated("the token has expired; ask for a new one")
    return actor


@lru_cache(maxsize=4096)
def _verified(secret, token):
    """(actor, expiry) of a token whose signature holds; errors are not cached."""
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]}
        )
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("the token has expired; ask for a new one") from None
    except jwt.InvalidTokenError:
        raise Unauthenticated("the token is not valid for this node") from None
    if claims.get("role") not in ROLES:
        raise Unauthenticated("the token names an unknown role")
    actor = Actor(
        user_id=str(claims["sub"]),
        role=claims["role"],
        kelurahan=str(claims.get("kel", "")),
        rw=claims.get("rw"),
        rt=claims.get("rt"),
    )
    return actor, claims["exp"]


class Caller:
    """What a worker knows of its caller."""

    def __init__(self, secret, token):
        self._secret = secret
        self._token = token
        self._actor = None

    @property
    def actor(self):
        """The verified caller; raises Unauthenticated without a valid token."""
        if self._actor is None:
            self._actor = verify_token(self._secret, self._token)
        return self._actor

    def authenticate(self):
        """Check that the call carries a valid token (any role); returns the caller."""
        return self.actor

    def require(self, *roles):
        """The caller, if it holds one of ``roles``; otherwise Forbidden."""
        actor = self.actor
        if actor.role not in roles:
            raise Forbidden(
                f"role {actor.role} may not do this; it needs one of: {', '.join(roles)}"
            )
        return actor


class Auth(DependencyProvider):
    """Gives each worker a :class:`Caller` built from the call context's token."""

    def __init__(self, service):
        self.service = service

    def setup(self):
        self.secret = configmod.load(self.service).auth_secret

    def get_dependency(self, worker_ctx):
        return Caller(self.secret, worker_ctx.data.get(CONTEXT_KEY))
