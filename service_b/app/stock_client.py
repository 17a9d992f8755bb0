"""Service B's HTTP client of service A's order endpoints (taking and
releasing stock, reading A's master cart), and the three ways a call ends
badly: refused, unreachable, outcome unknown."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import httpx
from pydantic import ValidationError

from app.models import ProcessStockResponse, StockItem, StockLine
from app.replica import MasterUnknown
from shopkit import identity, logs, telemetry

log = logging.getLogger(__name__)


class StockRefused(Exception):
    """A answered with a client error: it took nothing."""

    def __init__(self, code: str, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.code, self.message, self.reason = code, message, reason


class StockUnreachable(Exception):
    """A could not be reached at all: it took nothing."""


class StockOutcomeUnknown(Exception):
    """The call failed after it may have reached A: A may have taken the stock."""


class StockClient:
    """HTTP client of service A's order endpoints."""

    def __init__(
        self,
        base_url: str,
        timeout: float,
        signer: identity.Signer,
        audience: str = "service_a",
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._signer = signer
        self._audience = audience
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            transport=transport,
        )
        telemetry.instrument_client(self._http)

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def process_stock(self, lines: Sequence[StockLine], reservation_id: str) -> list[StockItem]:
        """Take the stock of lines under reservation_id; see the exception types."""
        body = {"items": [line.model_dump() for line in lines], "reservation_id": reservation_id}
        try:
            resp = await self._http.post("/order/process_stock", json=body, headers=self._headers())
        except httpx.ConnectError as exc:
            raise StockUnreachable(f"service A unreachable: {exc!r}") from exc
        except httpx.HTTPError as exc:
            raise StockOutcomeUnknown(f"call to service A failed: {exc!r}") from exc
        if resp.is_success:
            try:
                items = ProcessStockResponse.model_validate_json(resp.content).items
            except ValidationError as exc:
                raise StockOutcomeUnknown(f"service A answered an unreadable body: {exc}") from exc
            if [i.product_id for i in items] != [line.product_id for line in lines]:
                raise StockOutcomeUnknown("service A answered other products than asked for")
            return items
        if 400 <= resp.status_code < 500:
            code, message = "FAILED_PRECONDITION", f"service A refused the stock request (HTTP {resp.status_code})"
            reason = ""
            with contextlib.suppress(ValueError, AttributeError):
                payload = resp.json()
                code, message = str(payload.get("code", code)), str(payload.get("message", message))
                reason = str(payload.get("reason", ""))
            raise StockRefused(code, message, reason)
        raise StockOutcomeUnknown(f"service A answered HTTP {resp.status_code}")

    async def master_owner(self, item_id: int) -> int | None:
        """The owner of item_id in A's master cart, None when A has no such
        line; MasterUnknown when A cannot say."""
        payload = await self._master(f"/internal/master-cart/items/{item_id}", missing_ok=True)
        return None if payload is None else int(payload["user_id"])

    async def master_item_ids(self, user_id: int) -> list[int]:
        """The ids of user_id's lines in A's master cart; MasterUnknown when A
        cannot say."""
        payload = await self._master(f"/internal/master-cart/users/{user_id}")
        assert payload is not None
        return [int(i) for i in payload["item_ids"]]

    async def _master(self, path: str, missing_ok: bool = False) -> dict[str, Any] | None:
        try:
            resp = await self._http.get(path, headers=self._headers())
        except httpx.HTTPError as exc:
            raise MasterUnknown(f"service A unreachable: {exc!r}") from exc
        if resp.status_code == 404 and missing_ok:
            return None
        if not resp.is_success:
            raise MasterUnknown(f"service A answered HTTP {resp.status_code}")
        try:
            payload = resp.json()
        except ValueError as exc:
            raise MasterUnknown("service A answered an unreadable body") from exc
        if not isinstance(payload, dict):
            raise MasterUnknown("service A answered an unreadable body")
        return payload

    async def release_stock(self, reservation_id: str) -> bool:
        """Give back what reservation_id took; raises httpx.HTTPError on failure."""
        resp = await self._http.post(
            "/order/release_stock", json={"reservation_id": reservation_id}, headers=self._headers()
        )
        resp.raise_for_status()
        return bool(resp.json().get("released"))

    def _headers(self) -> dict[str, str]:
        """B's own identity for A (scope shop:service), and the incoming
        request's id and trace context."""
        headers = _trace_headers()
        headers[identity.ASSERTION_HEADER] = self._signer.assertion(self._audience)
        return headers


def _trace_headers() -> dict[str, str]:
    """The incoming request's id and trace context, passed on to service A."""
    headers = {}
    if rid := logs.request_id.get():
        headers["X-Request-Id"] = rid
    if tp := telemetry.current_traceparent():
        headers["traceparent"] = tp
    return headers
