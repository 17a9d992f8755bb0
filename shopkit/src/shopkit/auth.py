"""Who is calling: the identity the gateway passes on with every call it
authenticated, and the ownership rules built on it.

The gateway verifies the caller's access token and sends its subject as
``X-User-Id`` (a decimal int64, the token's ``sub``) and its scopes as
``X-Auth-Scopes`` (space-separated), after removing any copies a client sent.
The services trust these headers as they are; that is why they must only be
reachable from the gateway's network.

- A call without ``X-User-Id`` is an internal call (service to service, the
  services' own tests) and is not restricted; ``X-Auth-Scopes`` alone changes
  nothing.
- A call with ``X-User-Id`` acts for that user: a resource addressed by its
  own id (a cart item, an order) that belongs to someone else is answered as
  NOT_FOUND, so its existence is not revealed, and a request naming another
  ``user_id`` is PERMISSION_DENIED, unless the scopes contain ``shop:admin``.
- A malformed header (not a positive decimal int64, repeated, a scope with a
  character that RFC 6749 does not allow, longer than 4 KiB) is
  INVALID_ARGUMENT (400) on every route.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import Headers

from shopkit import errors
from shopkit.wire import INT64_MAX

USER_ID_HEADER = "X-User-Id"
"""The header with the authenticated user's id (the token's ``sub``)."""
SCOPES_HEADER = "X-Auth-Scopes"
"""The header with the token's scopes, space-separated."""
ADMIN_SCOPE = "shop:admin"
"""The scope that may act on every user's resources."""
MAX_SCOPES_LENGTH = 4096
"""Longest X-Auth-Scopes value accepted, in characters."""

# A positive decimal int64 without sign, spaces or leading zeros (at most 19 digits).
_USER_ID = re.compile(r"[1-9][0-9]{0,18}")
# RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


@dataclass(frozen=True)
class Caller:
    """The caller of one request: user_id None for an internal call."""

    user_id: int | None = None
    scopes: frozenset[str] = frozenset()

    @property
    def internal(self) -> bool:
        """Whether this is an internal call (no X-User-Id): not restricted."""
        return self.user_id is None

    @property
    def admin(self) -> bool:
        """Whether the caller has the ``shop:admin`` scope."""
        return ADMIN_SCOPE in self.scopes

    def may_act_for(self, owner_id: int) -> bool:
        """Whether the caller may see and change what owner_id owns: an
        internal call, an admin, or owner_id itself."""
        return self.internal or self.admin or self.user_id == owner_id

    def check_user(self, user_id: int) -> None:
        """Raise PERMISSION_DENIED (403) when the request names a user the
        caller may not act for (a cart or the orders of user_id)."""
        if not self.may_act_for(user_id):
            raise errors.permission_denied(f"user {self.user_id} may not act for user {user_id}")


def _single(headers: Headers, name: str) -> str | None:
    values = headers.getlist(name)
    if len(values) > 1:
        raise errors.invalid_argument(f"{name} must be sent at most once")
    return values[0] if values else None


def parse_user_id(raw: str) -> int:
    """The user id in an X-User-Id value; INVALID_ARGUMENT unless it is a
    positive decimal int64 written plainly ("42", not "+42", " 42" or "042")."""
    if _USER_ID.fullmatch(raw) is None or int(raw) > INT64_MAX:
        raise errors.invalid_argument(f"{USER_ID_HEADER} must be a positive decimal int64, got {raw[:40]!r}")
    return int(raw)


def parse_scopes(raw: str) -> frozenset[str]:
    """The scopes of an X-Auth-Scopes value (space-separated, empty allowed);
    INVALID_ARGUMENT when longer than MAX_SCOPES_LENGTH or when a scope has a
    character outside RFC 6749's scope-token."""
    if len(raw) > MAX_SCOPES_LENGTH:
        raise errors.invalid_argument(f"{SCOPES_HEADER} must be at most {MAX_SCOPES_LENGTH} characters")
    scopes = [s for s in raw.split(" ") if s]
    if any(_SCOPE_TOKEN.fullmatch(s) is None for s in scopes):
        raise errors.invalid_argument(f"{SCOPES_HEADER} must be space-separated RFC 6749 scope tokens")
    return frozenset(scopes)


def caller_from_headers(headers: Headers) -> Caller:
    """The caller that headers describe; INVALID_ARGUMENT when malformed."""
    raw_user = _single(headers, USER_ID_HEADER)
    raw_scopes = _single(headers, SCOPES_HEADER)
    scopes = parse_scopes(raw_scopes) if raw_scopes is not None else frozenset()
    if raw_user is None:
        return Caller()
    return Caller(user_id=parse_user_id(raw_user), scopes=scopes)


async def get_caller(request: Request) -> Caller:
    """FastAPI dependency: the request's caller (see the module doc).

    Every service app runs it on every route (see :func:`shopkit.service.build_app`),
    so a malformed header is refused everywhere; routes that restrict by owner
    take it as :data:`CallerDep`, which reuses the same result."""
    return caller_from_headers(request.headers)


CallerDep = Annotated[Caller, Depends(get_caller)]
