"""The keys of the issuers a service trusts, and where they come from.

Trust is a list of ``issuer=location`` pairs (``IDENTITY_KEYS``), the
location a JWKS file or an http(s) URL serving one. A file is read again when
it changes (checked at most once a second), a URL every 5 minutes or when a
token names a key id not yet seen (at most once per 10 s), so a new key is
picked up without a restart. Only EdDSA and ES256 keys with a ``kid`` are
kept. :mod:`shopkit.identity` verifies assertions with them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from pathlib import Path

import httpx
import jwt
from jwt import PyJWK, PyJWKSet

log = logging.getLogger("shopkit.identity")

ALGORITHMS = ("EdDSA", "ES256")
"""Signature algorithms accepted; everything else (HS*, none, RS*) is refused."""

_SERVICE_NAME = re.compile(r"[a-z][a-z0-9_-]{0,27}")
_FILE_CHECK_SECONDS = 1.0
_URL_REFRESH_SECONDS = 300.0
_URL_MISS_SECONDS = 10.0


def parse_trust(spec: str) -> dict[str, str]:
    """``issuer=location,...`` as a dict; ValueError when malformed."""
    trust: dict[str, str] = {}
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        issuer, sep, location = part.partition("=")
        issuer, location = issuer.strip(), location.strip()
        if not sep or not location or _SERVICE_NAME.fullmatch(issuer) is None:
            raise ValueError(f"{part!r}: want issuer=location, issuer in [a-z0-9_-], at most 28 characters")
        if issuer in trust:
            raise ValueError(f"issuer {issuer!r} listed twice")
        trust[issuer] = location
    if not trust:
        raise ValueError("no trusted issuer: set IDENTITY_KEYS to issuer=jwks-file-or-url,...")
    return trust


def keys_of(document: bytes, origin: str) -> dict[str, PyJWK]:
    """The EdDSA and ES256 keys with a kid of a JWKS (or single JWK) document,
    by kid; ValueError naming origin when it is not one."""
    try:
        data = json.loads(document)
        keys = PyJWKSet.from_dict(data).keys if "keys" in data else [PyJWK.from_dict(data)]
    except (ValueError, TypeError, jwt.PyJWTError) as exc:
        raise ValueError(f"{origin}: not a JWKS: {exc}") from exc
    out: dict[str, PyJWK] = {}
    for key in keys:
        if key.key_id and key.algorithm_name in ALGORITHMS:
            out[key.key_id] = key
    return out


class TrustedIssuer:
    """The keys of one trusted issuer, kept fresh from their file or URL
    (:meth:`key`); logged, and the keys already read kept, when a reload fails."""

    def __init__(self, name: str, location: str) -> None:
        self.name = name
        self.location = location
        self.url = location.startswith(("http://", "https://"))
        self._http: httpx.AsyncClient | None = None
        self.keys: dict[str, PyJWK] = {}
        self._stamp: tuple[int, int] | None = None
        self._checked = float("-inf")
        self._fetched = float("-inf")
        self._lock = asyncio.Lock()

    def load_file(self) -> None:
        st = os.stat(self.location)
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            self.keys = keys_of(Path(self.location).read_bytes(), self.location)
            self._stamp = stamp
            log.info("identity: issuer %s: %d key(s) from %s", self.name, len(self.keys), self.location)

    async def fetch(self) -> None:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=httpx.Timeout(5.0), follow_redirects=False)
        resp = await self._http.get(self.location)
        if len(resp.content) > 1 << 20:
            raise ValueError(f"{self.location}: JWKS larger than 1 MiB")
        resp.raise_for_status()
        self.keys = keys_of(resp.content, self.location)
        log.info("identity: issuer %s: %d key(s) from %s", self.name, len(self.keys), self.location)

    async def key(self, kid: str) -> PyJWK | None:
        now = time.monotonic()
        if not self.url:
            if now - self._checked >= _FILE_CHECK_SECONDS:
                self._checked = now
                try:
                    self.load_file()
                except (OSError, ValueError) as exc:
                    # Keep the keys already read: a half-written file must not
                    # lock everyone out.
                    log.warning("identity: issuer %s: %s", self.name, exc)
            return self.keys.get(kid)
        stale = now - self._fetched >= _URL_REFRESH_SECONDS
        missing = kid not in self.keys and now - self._fetched >= _URL_MISS_SECONDS
        if stale or missing:
            async with self._lock:
                if time.monotonic() - self._fetched >= _URL_MISS_SECONDS:
                    self._fetched = time.monotonic()
                    try:
                        await self.fetch()
                    except (httpx.HTTPError, ValueError) as exc:
                        log.warning("identity: issuer %s: %s", self.name, exc)
        return self.keys.get(kid)
