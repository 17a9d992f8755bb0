"""Service A trusts no one by position: every route but the probes needs a
valid identity assertion; stock writes need shop:admin and taking stock
needs shop:service, whoever reaches the port."""

from __future__ import annotations

import json
from pathlib import Path

import jwt as pyjwt
import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import func, select

from shopkit import identity, trusted_keys
from shopkit.db import Outbox
from shopkit.identity import ADMIN_SCOPE, SERVICE_SCOPE
from shopkit_testing import (
    TEST_IDENTITY,
    as_admin,
    as_service,
    as_user,
    assert_error,
    forged_assertions,
    write_key,
)
from tests.support import create_stock

STOCK_ITEM = {"product_id": 9, "product_name": "kettle", "quantity": 3, "price_cents": 100}
TAKE = {"items": [{"product_id": 5, "quantity": 1}]}


async def events(app: FastAPI) -> int:
    async with app.state.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(Outbox))).scalar_one())


@pytest.mark.parametrize(
    ("name", "headers"), forged_assertions("service_a"), ids=lambda v: v if isinstance(v, str) else ""
)
async def test_forged_identity(
    client: AsyncClient, bare_client: AsyncClient, app: FastAPI, name: str, headers: list[tuple[str, str]]
) -> None:
    """Reads, writes and internal routes alike: 401 with WWW-Authenticate,
    nothing written."""
    await create_stock(client, 5)
    before = await events(app)
    for resp in (
        await bare_client.get("/stock/5", headers=headers),
        await bare_client.get("/stock", headers=headers),
        await bare_client.post("/stock", json=STOCK_ITEM, headers=headers),
        await bare_client.post("/cart/add", json={"user_id": 10, "product_id": 5, "quantity": 1}, headers=headers),
        await bare_client.post("/order/process_stock", json=TAKE, headers=headers),
        await bare_client.post(
            "/internal/idempotency/lookup", json={"method": "POST", "path": "/x", "key": "k"}, headers=headers
        ),
    ):
        assert_error(resp, 401, "UNAUTHENTICATED")
        assert resp.headers["www-authenticate"] == 'IdentityAssertion header="X-Identity-Assertion"', name
    assert (await client.get("/stock/5")).json()["quantity"] == 10
    assert (await client.get("/cart/fallback/10")).json()["items"] == []
    assert await events(app) == before


async def test_probes_and_contract_are_open(bare_client: AsyncClient) -> None:
    for path in ("/healthz", "/readyz", "/openapi.json"):
        assert (await bare_client.get(path)).status_code == 200, path
    # Everything else is closed, also what FastAPI serves by itself.
    assert (await bare_client.get("/docs")).status_code == 401


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("user", 403),
        ("user with shop:service", 403),
        ("gateway service without admin", 403),
        ("service_b", 403),
        ("admin", 201),
    ],
)
async def test_stock_writes_need_admin(client: AsyncClient, app: FastAPI, who: str, status: int) -> None:
    headers = {
        "user": as_user(10),
        "user with shop:service": as_user(10, SERVICE_SCOPE),
        "gateway service without admin": as_service(SERVICE_SCOPE),
        "service_b": as_service(SERVICE_SCOPE, issuer="service_b"),
        "admin": as_admin(10),
    }[who]
    await create_stock(client, 5)
    writes = [
        await client.post("/stock", json=STOCK_ITEM, headers=headers),
        await client.put("/stock/5", json={k: v for k, v in STOCK_ITEM.items() if k != "product_id"}, headers=headers),
        await client.post("/stock/update", json={"product_id": 5, "quantity": 1}, headers=headers),
        await client.delete("/stock/5", headers=headers),
    ]
    if status == 403:
        for resp in writes:
            assert_error(resp, 403, "PERMISSION_DENIED", contains=ADMIN_SCOPE)
        assert (await client.get("/stock/5")).json()["quantity"] == 10
    else:
        assert [r.status_code for r in writes] == [201, 200, 200, 200]


@pytest.mark.parametrize(
    ("who", "allowed"),
    [
        ("user", False),
        ("service_b without scopes", False),
        ("service_b", True),
        ("user with shop:service", True),  # a client with the scope, through the gateway
        ("admin", True),
    ],
)
async def test_taking_stock_needs_service_scope(client: AsyncClient, who: str, allowed: bool) -> None:
    headers = {
        "user": as_user(10),
        "service_b without scopes": as_service("openid", issuer="service_b"),
        "service_b": as_service(SERVICE_SCOPE, issuer="service_b"),
        "user with shop:service": as_user(10, SERVICE_SCOPE),
        "admin": as_admin(10),
    }[who]
    await create_stock(client, 5)
    resp = await client.post("/order/process_stock", json=TAKE, headers=headers)
    released = await client.post("/order/release_stock", json={"reservation_id": "r-1"}, headers=headers)
    if allowed:
        assert (resp.status_code, released.status_code) == (200, 200), resp.text
        assert (await client.get("/stock/5")).json()["quantity"] == 9
    else:
        assert_error(resp, 403, "PERMISSION_DENIED", contains=SERVICE_SCOPE)
        assert_error(released, 403, "PERMISSION_DENIED", contains=SERVICE_SCOPE)
        assert (await client.get("/stock/5")).json()["quantity"] == 10


async def test_lookup_is_for_services_only(client: AsyncClient) -> None:
    body = {"caller": "10", "method": "POST", "path": "/cart/add", "key": "k"}
    assert_error(
        await client.post("/internal/idempotency/lookup", json=body, headers=as_user(10)), 403, "PERMISSION_DENIED"
    )
    resp = await client.post("/internal/idempotency/lookup", json=body, headers=as_service(SERVICE_SCOPE))
    assert (resp.status_code, resp.json()) == (200, {"state": "unknown"})


async def test_user_id_header_is_ignored(client: AsyncClient) -> None:
    """The assertion names the caller; X-User-Id and X-Auth-Scopes beside it
    change nothing."""
    await create_stock(client, 5)
    spoofed = {**as_user(11), "X-User-Id": "10", "X-Auth-Scopes": "shop:admin"}
    resp = await client.post("/cart/add", json={"user_id": 10, "product_id": 5, "quantity": 1}, headers=spoofed)
    assert_error(resp, 403, "PERMISSION_DENIED", contains="user 10")
    assert_error(await client.post("/stock", json=STOCK_ITEM, headers=spoofed), 403, "PERMISSION_DENIED")


async def test_verification_is_cached_per_assertion(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """One signature check per assertion, however many requests carry it."""
    verifier = identity.Verifier(trusted_keys.parse_trust(TEST_IDENTITY.keys), "service_a")
    calls = 0
    real = pyjwt.decode

    def counting(*args: object, **kwargs: object) -> object:
        nonlocal calls
        if not kwargs.get("options", {}).get("verify_signature", True):  # type: ignore[union-attr]
            return real(*args, **kwargs)  # type: ignore[arg-type]
        calls += 1
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(identity.jwt, "decode", counting)
    token = TEST_IDENTITY.gateway.assertion("service_a", (), "10")
    for _ in range(5):
        assert (await verifier.verify(token)).user_id == 10
    assert calls == 1


async def test_new_key_is_picked_up_without_restart(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Rotating: the trusted JWKS file is rewritten with a new key, and the
    running verifier accepts assertions signed with it."""
    monkeypatch.setattr(trusted_keys, "_FILE_CHECK_SECONDS", 0.0)
    old_key, jwks = write_key(tmp_path, "shop-gateway")
    verifier = identity.Verifier({"shop-gateway": str(jwks)}, "service_a")
    verifier.load()
    old = identity.Signer(str(old_key), "shop-gateway")
    assert (await verifier.verify(old.assertion("service_a", (), "10"))).user_id == 10

    new_dir = tmp_path / "new"
    new_dir.mkdir()
    new_key, new_jwks = write_key(new_dir, "shop-gateway")
    new = identity.Signer(str(new_key), "shop-gateway")
    token = new.assertion("service_a", (), "12")
    with pytest.raises(identity.Unauthenticated, match="no key"):
        await verifier.verify(token)
    both = json.loads(jwks.read_text())["keys"] + json.loads(new_jwks.read_text())["keys"]
    jwks.write_text(json.dumps({"keys": both}))
    assert (await verifier.verify(token)).user_id == 12


def test_settings_refuse_to_start_without_trust() -> None:
    from app.settings import Settings

    with pytest.raises(ValueError, match="IDENTITY_KEYS"):
        Settings(identity_keys="")
    with pytest.raises(ValueError, match="issuer=location"):
        Settings(identity_keys="/path/without/issuer")
