"""Signed identity assertions: how a service knows who is calling.

A service trusts no one by position. Every call it serves (except the
``/healthz``, ``/readyz`` and ``/openapi.json`` probes, which carry no one's
data) must carry an ``X-Identity-Assertion`` header: a short-lived JWT signed
by a party the service trusts, for this service as audience, naming either

- a user: ``sub`` is the decimal user id of the access token the gateway
  verified, ``scope`` its scopes. Only issuers listed as user issuers (the
  gateway, ``shop-gateway`` by default) may assert a user;
- a service: ``sub`` is ``svc:<issuer>``, the signing party itself (the gateway
  for its idempotency lookups, service B for its stock calls to A), with the
  scopes it acts with (``shop:service``).

Trust is a list of ``issuer=location`` pairs (``IDENTITY_KEYS``), the
location a JWKS file or an http(s) URL serving one; a file is read again when
it changes and a URL every 5 minutes or when a token names a key id not yet
seen (at most once per 10 s), so a new key is picked up without a restart
(:mod:`shopkit.trusted_keys`). Only EdDSA and ES256 signatures are accepted; ``kid``, ``iss``, ``aud``,
``sub``, ``iat`` and ``exp`` are required and the lifetime is bounded.

Verified assertions are cached until they expire (the gateway reuses one
assertion per caller for several seconds), so a service verifies a signature
once per caller and period, not once per request.

A call without a valid assertion is answered 401 ``UNAUTHENTICATED``,
whatever other headers say.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from jwt import PyJWK

from shopkit import errors
from shopkit.trusted_keys import ALGORITHMS, TrustedIssuer
from shopkit.wire import INT64_MAX

log = logging.getLogger(__name__)

ASSERTION_HEADER = "X-Identity-Assertion"
"""The request header carrying the assertion."""
ADMIN_SCOPE = "shop:admin"
"""The scope that may act on every user's resources and on admin routes."""
SERVICE_SCOPE = "shop:service"
"""The scope of internal routes (service to service)."""
SERVICE_PREFIX = "svc:"
"""Prefix of a service's subject: ``svc:<issuer>``."""
MAX_LIFETIME_SECONDS = 900
"""Longest exp - iat accepted (the debugging header lives 10 minutes; the gateway's 60 s)."""
LEEWAY_SECONDS = 5
"""Clock skew allowed on exp and iat."""
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json"})
"""Paths served without an assertion: probes and the service's own contract."""

_HEADER_KEY = ASSERTION_HEADER.lower().encode()
_MAX_TOKEN = 4096
_USER_ID = re.compile(r"[1-9][0-9]{0,18}")
# RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
_CACHE_SIZE = 4096


class Unauthenticated(Exception):
    """The assertion is missing, malformed, expired or not trusted."""


@dataclass(frozen=True)
class Caller:
    """Who made one request, as its assertion says: a user (user_id set) or a
    service (service set), with scopes."""

    subject: str
    user_id: int | None = None
    service: str | None = None
    scopes: frozenset[str] = frozenset()

    @property
    def admin(self) -> bool:
        """Whether the caller has the ``shop:admin`` scope."""
        return ADMIN_SCOPE in self.scopes

    def has_scope(self, *scopes: str) -> bool:
        """Whether the caller has any of scopes."""
        return not self.scopes.isdisjoint(scopes)

    def may_act_for(self, owner_id: int) -> bool:
        """Whether the caller may see and change what owner_id owns: owner_id
        itself or an admin."""
        return self.admin or self.user_id == owner_id

    def check_user(self, user_id: int) -> None:
        """Raise PERMISSION_DENIED (403) when the request names a user the
        caller may not act for (a cart or the orders of user_id)."""
        if not self.may_act_for(user_id):
            raise errors.permission_denied(f"{self.subject} may not act for user {user_id}")


class Verifier:
    """Verifies assertions for one audience against the trusted issuers."""

    def __init__(
        self,
        trust: Mapping[str, str],
        audience: str,
        user_issuers: Iterable[str] = ("shop-gateway",),
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.audience = audience
        self.user_issuers = frozenset(user_issuers)
        self._issuers = {name: TrustedIssuer(name, loc) for name, loc in trust.items()}
        self._clock = clock
        self._cache: dict[str, tuple[Caller, float]] = {}

    def load(self) -> None:
        """Read the key files now; OSError or ValueError when one cannot be
        read, so a service with a wrong path does not start."""
        for issuer in self._issuers.values():
            if not issuer.url:
                issuer.load_file()

    async def verify(self, token: str) -> Caller:
        """The caller token asserts; Unauthenticated when it is not valid."""
        now = self._clock()
        hit = self._cache.get(token)
        if hit is not None:
            if now < hit[1] + LEEWAY_SECONDS:
                return hit[0]
            del self._cache[token]
        caller, exp = await self._verify(token, now)
        if len(self._cache) >= _CACHE_SIZE:
            self._cache = {t: v for t, v in self._cache.items() if now < v[1]}
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()
        self._cache[token] = (caller, exp)
        return caller

    async def _verify(self, token: str, now: float) -> tuple[Caller, float]:
        if len(token) > _MAX_TOKEN:
            raise Unauthenticated("assertion too long")
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"malformed assertion: {exc}") from exc
        if header.get("alg") not in ALGORITHMS:
            raise Unauthenticated(f"algorithm {header.get('alg')!r} not accepted")
        kid, iss = header.get("kid"), unverified.get("iss")
        if not isinstance(kid, str) or not kid:
            raise Unauthenticated("assertion without kid")
        issuer = self._issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise Unauthenticated(f"issuer {iss!r} not trusted")
        key = await issuer.key(kid)
        if key is None:
            raise Unauthenticated(f"issuer {iss!r} has no key {kid!r}")
        if key.algorithm_name != header["alg"]:
            raise Unauthenticated("algorithm does not match the key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[key.algorithm_name],
                audience=self.audience,
                issuer=iss,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
            )
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"assertion refused: {exc}") from exc
        # One audience only, as a string or a list of one (how jwx writes it):
        # an assertion good for several services is good for none.
        if claims["aud"] not in (self.audience, [self.audience]):
            raise Unauthenticated("assertion must name this service as its only audience")
        exp, iat = claims["exp"], claims["iat"]
        if not isinstance(exp, int | float) or not isinstance(iat, int | float):
            raise Unauthenticated("exp and iat must be numbers")
        if exp - iat > MAX_LIFETIME_SECONDS:
            raise Unauthenticated(f"assertion lives longer than {MAX_LIFETIME_SECONDS} s")
        if iat > now + LEEWAY_SECONDS:
            raise Unauthenticated("assertion issued in the future")
        return self._caller(issuer.name, claims), float(exp)

    def _caller(self, issuer: str, claims: dict[str, Any]) -> Caller:
        sub, scope = claims["sub"], claims.get("scope", "")
        if not isinstance(sub, str) or not isinstance(scope, str) or len(scope) > _MAX_TOKEN:
            raise Unauthenticated("sub and scope must be strings")
        scopes = [s for s in scope.split(" ") if s]
        if any(_SCOPE_TOKEN.fullmatch(s) is None for s in scopes):
            raise Unauthenticated("scope must be space-separated RFC 6749 scope tokens")
        if sub.startswith(SERVICE_PREFIX):
            if sub != SERVICE_PREFIX + issuer:
                raise Unauthenticated(f"issuer {issuer!r} may not assert {sub!r}")
            return Caller(subject=sub, service=issuer, scopes=frozenset(scopes))
        if issuer not in self.user_issuers:
            raise Unauthenticated(f"issuer {issuer!r} may not assert users")
        if _USER_ID.fullmatch(sub) is None or int(sub) > INT64_MAX:
            raise Unauthenticated("sub must be a positive decimal int64 or svc:<issuer>")
        return Caller(subject=sub, user_id=int(sub), scopes=frozenset(scopes))


class Signer:
    """Signs assertions as one issuer with a private JWK (EdDSA or ES256),
    reusing each for half its lifetime."""

    def __init__(self, key_path: str, issuer: str, ttl_seconds: int = 60, clock: Callable[[], float] = time.time):
        data = json.loads(Path(key_path).read_bytes())
        self._key = PyJWK.from_dict(data)
        if self._key.algorithm_name not in ALGORITHMS or not self._key.key_id:
            raise ValueError(f"{key_path}: want a private EdDSA or ES256 JWK with a kid")
        self.issuer = issuer
        self._ttl = ttl_seconds
        self._clock = clock
        self._cache: dict[tuple[str, str, str], tuple[str, float]] = {}

    def assertion(self, audience: str, scopes: Iterable[str] = (SERVICE_SCOPE,), subject: str = "") -> str:
        """An assertion for audience; subject defaults to this service (svc:<issuer>)."""
        sub = subject or SERVICE_PREFIX + self.issuer
        scope = " ".join(scopes)
        now = self._clock()
        ck = (audience, sub, scope)
        hit = self._cache.get(ck)
        if hit is not None and now < hit[1]:
            return hit[0]
        iat = int(now)
        claims = {"iss": self.issuer, "sub": sub, "aud": audience, "iat": iat, "exp": iat + self._ttl}
        if scope:
            claims["scope"] = scope
        token = jwt.encode(claims, self._key.key, algorithm=self._key.algorithm_name, headers={"kid": self._key.key_id})
        if len(self._cache) > 256:
            self._cache.clear()
        self._cache[ck] = (token, now + self._ttl / 2)
        return token


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class IdentityMiddleware:
    """Refuses every request without a valid assertion (401) and keeps the
    caller in ``scope["state"]["caller"]`` for the routes (see
    :func:`shopkit.auth.get_caller`) and the idempotency records."""

    def __init__(self, app: ASGIApp, verifier: Verifier) -> None:
        self.app = app
        self.verifier = verifier

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        values = [v for k, v in scope.get("headers") or () if k == _HEADER_KEY]
        try:
            if len(values) != 1:
                raise Unauthenticated(f"{ASSERTION_HEADER} must be sent once" if values else f"no {ASSERTION_HEADER}")
            caller = await self.verifier.verify(values[0].decode("latin-1"))
        except Unauthenticated as exc:
            await _refuse(send, str(exc))
            return
        scope.setdefault("state", {})["caller"] = caller
        await self.app(scope, receive, send)


async def _refuse(send: Send, reason: str) -> None:
    body = json.dumps({"code": "UNAUTHENTICATED", "message": f"caller not authenticated: {reason}"[:300]}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", f'IdentityAssertion header="{ASSERTION_HEADER}"'.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def caller_of(scope: Scope) -> Caller | None:
    """The caller IdentityMiddleware verified for scope, if any."""
    with contextlib.suppress(KeyError, TypeError):
        caller = scope["state"]["caller"]
        if isinstance(caller, Caller):
            return caller
    return None
