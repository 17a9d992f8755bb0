"""One error type for the API and its translation to the wire format.

Every error response is ``{"code": "<gRPC code name>", "message": "..."}`` with
the HTTP status the gateway maps back to the same gRPC code. FastAPI's request
validation errors keep status 422 and add the usual ``detail`` list.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

HTTP_STATUS: dict[str, int] = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "ABORTED": 409,
    "RESOURCE_EXHAUSTED": 429,
    "INTERNAL": 500,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}

# Codes for HTTP errors raised by the framework itself (unknown path, wrong method).
_CODE_OF_STATUS: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    409: "ALREADY_EXISTS",
    413: "INVALID_ARGUMENT",
    415: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


# Machine-readable causes clients branch on; the gateway answers them as a
# google.rpc.ErrorInfo (reason, domain).
REASON_OUT_OF_STOCK = "OUT_OF_STOCK"
REASON_EMPTY_CART = "EMPTY_CART"
REASON_UNKNOWN_PRODUCT = "UNKNOWN_PRODUCT"


class ApiError(Exception):
    """An error with a gRPC code name, a message safe to show to clients and,
    for the errors clients branch on, a reason (``"OUT_OF_STOCK"``)."""

    def __init__(self, code: str, message: str, reason: str = "", field: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason
        # Where the wrong field is, as a FastAPI validation location
        # ("body", "quantity"): the gateway names it in a google.rpc.BadRequest.
        self.field = field

    @property
    def status(self) -> int:
        """HTTP status of the error (500 for an unknown code)."""
        return HTTP_STATUS.get(self.code, 500)

    def to_response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        """The error as a JSON response."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.reason:
            body["reason"] = self.reason
        if self.field:
            body["detail"] = [{"loc": list(self.field), "msg": self.message}]
        if self.code == "UNAVAILABLE" and headers is None:
            headers = {"Retry-After": "1"}  # what a client told to try again needs to know
        return JSONResponse(body, status_code=self.status, headers=headers)


def invalid_argument(message: str, *field: str) -> ApiError:
    """INVALID_ARGUMENT (400): the request itself is wrong; field is where, as a
    FastAPI validation location (``"body", "quantity"`` or ``"query", "page_size"``)."""
    return ApiError("INVALID_ARGUMENT", message, field=field)


def not_found(message: str, reason: str = "") -> ApiError:
    """NOT_FOUND (404): a named resource does not exist."""
    return ApiError("NOT_FOUND", message, reason)


def permission_denied(message: str) -> ApiError:
    """PERMISSION_DENIED (403): the caller may not do this."""
    return ApiError("PERMISSION_DENIED", message)


def already_exists(message: str) -> ApiError:
    """ALREADY_EXISTS (409): the resource to create exists."""
    return ApiError("ALREADY_EXISTS", message)


def failed_precondition(message: str, reason: str = "") -> ApiError:
    """FAILED_PRECONDITION (400): the request is valid but the state forbids it."""
    return ApiError("FAILED_PRECONDITION", message, reason)


def unavailable(message: str) -> ApiError:
    """UNAVAILABLE (503): a dependency is down; the client may retry."""
    return ApiError("UNAVAILABLE", message)


def _location(loc: tuple[Any, ...]) -> str:
    parts = list(loc)
    if len(parts) > 1 and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(str(p) for p in parts) or "request"


def validation_message(errors: list[dict[str, Any]]) -> str:
    """One line naming every invalid field: ``"user_id: Field required; quantity: ..."``."""
    parts = []
    for err in errors:
        msg = str(err.get("msg", "invalid value"))
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        parts.append(f"{_location(tuple(err.get('loc', ())))}: {msg}")
    return "; ".join(parts) or "invalid request"


def is_database_outage(exc: BaseException) -> bool:
    """Whether exc means the database cannot be reached (rather than a bug)."""
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(
        exc,
        (
            sqlalchemy.exc.OperationalError,
            sqlalchemy.exc.InterfaceError,
            sqlalchemy.exc.TimeoutError,
            ConnectionError,
            TimeoutError,
            OSError,
        ),
    )


def install_error_handlers(app: FastAPI) -> None:
    """Make every error of the app answer in the wire format."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return exc.to_response()

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        return JSONResponse(
            {
                "code": "INVALID_ARGUMENT",
                "message": validation_message(errors),
                "detail": jsonable_encoder(errors),
            },
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _CODE_OF_STATUS.get(exc.status_code, "INTERNAL" if exc.status_code >= 500 else "INVALID_ARGUMENT")
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404 and message == "Not Found":
            message = "no such path"
        elif exc.status_code == 405:
            message = "method not allowed for this path"
        return JSONResponse({"code": code, "message": message}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        if is_database_outage(exc):
            log.warning("database unavailable: %s %s: %r", request.method, request.url.path, exc)
            return unavailable("database unavailable, try again later").to_response()
        log.exception("unhandled error: %s %s", request.method, request.url.path)
        return ApiError("INTERNAL", "internal error").to_response()
