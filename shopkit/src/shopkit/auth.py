"""Who is calling, and the rules built on it.

The caller of every request is what its signed identity assertion says (see
:mod:`shopkit.identity`, verified by its middleware before any route runs):
a user (the subject of the access token the gateway verified) or a service,
each with scopes. Nothing else identifies a caller: an ``X-User-Id`` or
``X-Auth-Scopes`` header means nothing here.

- A user acts for themselves: a resource addressed by its own id (a cart
  item, an order) that belongs to someone else is answered as NOT_FOUND, so
  its existence is not revealed, and a request naming another ``user_id`` is
  PERMISSION_DENIED, unless the scopes contain ``shop:admin``.
- Admin routes (stock writes) need ``shop:admin``; internal routes (service to
  service: taking and releasing stock, the idempotency lookup) need
  ``shop:service`` or ``shop:admin``. A caller without them is
  PERMISSION_DENIED.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from shopkit import errors
from shopkit.identity import ADMIN_SCOPE, SERVICE_SCOPE, Caller, caller_of

__all__ = [
    "ADMIN_SCOPE",
    "SERVICE_SCOPE",
    "AdminDep",
    "Caller",
    "CallerDep",
    "ServiceDep",
    "get_caller",
]


async def get_caller(request: Request) -> Caller:
    """FastAPI dependency: the request's verified caller. UNAUTHENTICATED when
    there is none (a route the identity middleware leaves open)."""
    caller = caller_of(request.scope)
    if caller is None:
        raise errors.ApiError("UNAUTHENTICATED", "caller not authenticated")
    return caller


async def require_admin(request: Request) -> Caller:
    """FastAPI dependency of admin routes: the caller, with ``shop:admin``."""
    caller = await get_caller(request)
    if not caller.admin:
        raise errors.permission_denied(f"{caller.subject} lacks scope {ADMIN_SCOPE}")
    return caller


async def require_service(request: Request) -> Caller:
    """FastAPI dependency of internal routes: the caller, with ``shop:service``
    (or ``shop:admin``)."""
    caller = await get_caller(request)
    if not caller.has_scope(SERVICE_SCOPE, ADMIN_SCOPE):
        raise errors.permission_denied(f"{caller.subject} lacks scope {SERVICE_SCOPE}")
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]
AdminDep = Annotated[Caller, Depends(require_admin)]
ServiceDep = Annotated[Caller, Depends(require_service)]
