"""Idempotency-Key on A's mutations: one change, the first answer replayed."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import func, select, update

from shopkit import idempotency
from shopkit.db import Outbox
from shopkit.idempotency import IdempotencyRecord
from shopkit.testing import assert_error
from shopkit.wire import utcnow
from tests.support import create_stock


async def count(app: FastAPI, table: type) -> int:
    async with app.state.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(table))).scalar_one())


async def cart_lines(client: AsyncClient, user_id: int) -> list[dict]:
    return (await client.get(f"/cart/fallback/{user_id}")).json()["items"]


async def test_repeat_is_applied_once_and_replayed(client: AsyncClient, app: FastAPI) -> None:
    await create_stock(client, 5, quantity=3)
    events = await count(app, Outbox)
    body = {"user_id": 1, "product_id": 5, "quantity": 2}
    first = await client.post("/cart/add", json=body, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == 201, first.text
    assert "idempotency-replayed" not in first.headers
    # Same request, keys in another order and other spacing: the same request.
    again = await client.post(
        "/cart/add",
        content='{"quantity": 2, "product_id": 5,   "user_id": 1}',
        headers={"Idempotency-Key": "k-1", "Content-Type": "application/json"},
    )
    assert again.status_code == 201, again.text
    assert again.headers["idempotency-replayed"] == "true"
    assert again.json() == first.json()
    assert again.headers["content-type"] == first.headers["content-type"]
    assert [i["item_id"] for i in await cart_lines(client, 1)] == [first.json()["item_id"]]
    assert await count(app, Outbox) == events + 1
    # Another key is another request.
    other = await client.post("/cart/add", json=body, headers={"Idempotency-Key": "k-2"})
    assert other.status_code == 201 and other.json()["item_id"] != first.json()["item_id"]
    assert len(await cart_lines(client, 1)) == 2


async def test_without_a_key_every_request_applies(client: AsyncClient, app: FastAPI) -> None:
    await create_stock(client, 5, quantity=3)
    for _ in range(2):
        assert (await client.post("/cart/add", json={"user_id": 1, "product_id": 5, "quantity": 1})).status_code == 201
    assert len(await cart_lines(client, 1)) == 2
    assert await count(app, IdempotencyRecord) == 0


async def test_key_reused_for_another_request_is_refused(client: AsyncClient) -> None:
    await create_stock(client, 5, quantity=3)
    ok = await client.post(
        "/cart/add", json={"user_id": 1, "product_id": 5, "quantity": 1}, headers={"Idempotency-Key": "k"}
    )
    assert ok.status_code == 201
    resp = await client.post(
        "/cart/add", json={"user_id": 1, "product_id": 5, "quantity": 2}, headers={"Idempotency-Key": "k"}
    )
    assert_error(resp, 400, "INVALID_ARGUMENT", contains="different request")
    assert [i["quantity"] for i in await cart_lines(client, 1)] == [1]


async def test_key_is_scoped_to_method_and_path(client: AsyncClient) -> None:
    await create_stock(client, 5, quantity=3)
    await create_stock(client, 6, quantity=3)
    for pid in (5, 6):
        resp = await client.put(
            f"/stock/{pid}",
            json={"product_name": "x", "quantity": 9, "price_cents": 1},
            headers={"Idempotency-Key": "k"},
        )
        assert resp.status_code == 200, resp.text
        assert "idempotency-replayed" not in resp.headers
    assert [(await client.get(f"/stock/{pid}")).json()["quantity"] for pid in (5, 6)] == [9, 9]


async def test_failure_is_not_stored_and_may_run_again(client: AsyncClient, app: FastAPI) -> None:
    body = {"user_id": 1, "product_id": 5, "quantity": 2}
    assert_error(await client.post("/cart/add", json=body, headers={"Idempotency-Key": "k"}), 404, "NOT_FOUND")
    assert await count(app, IdempotencyRecord) == 0
    await create_stock(client, 5, quantity=3)
    resp = await client.post("/cart/add", json=body, headers={"Idempotency-Key": "k"})
    assert resp.status_code == 201, resp.text
    assert "idempotency-replayed" not in resp.headers


async def test_invalid_request_with_a_key_is_not_stored(client: AsyncClient, app: FastAPI) -> None:
    resp = await client.post("/cart/add", json={"user_id": 1}, headers={"Idempotency-Key": "k"})
    assert resp.status_code == 422
    assert await count(app, IdempotencyRecord) == 0


async def test_bad_key_is_refused_before_anything_runs(client: AsyncClient, app: FastAPI) -> None:
    await create_stock(client, 5, quantity=3)
    for key in ("", "x" * 256):
        resp = await client.post(
            "/cart/add", json={"user_id": 1, "product_id": 5, "quantity": 1}, headers={"Idempotency-Key": key}
        )
        assert_error(resp, 400, "INVALID_ARGUMENT", contains="Idempotency-Key")
    assert await cart_lines(client, 1) == []


async def claim_states(app: FastAPI, **values: object) -> None:
    async with app.state.sessions() as session, session.begin():
        await session.execute(update(IdempotencyRecord).values(**values))


async def test_claims_left_by_a_dead_process(client: AsyncClient, app: FastAPI) -> None:
    await create_stock(client, 5, quantity=3)
    body = {"user_id": 1, "product_id": 5, "quantity": 1}
    headers = {"Idempotency-Key": "k"}
    assert (await client.post("/cart/add", json=body, headers=headers)).status_code == 201

    # Applied, answer never recorded: not applied a second time.
    await claim_states(app, status_code=None, body=None, committed=True)
    assert_error(
        await client.post("/cart/add", json=body, headers=headers), 409, "ABORTED", contains="not applied again"
    )
    # Claimed, never committed, recent: in progress.
    await claim_states(app, committed=False)
    assert_error(await client.post("/cart/add", json=body, headers=headers), 409, "ABORTED", contains="in progress")
    assert len(await cart_lines(client, 1)) == 1
    # Claimed, never committed, older than the claim timeout: taken over.
    await claim_states(app, created_at=utcnow() - timedelta(hours=1))
    resp = await client.post("/cart/add", json=body, headers=headers)
    assert resp.status_code == 201, resp.text
    assert len(await cart_lines(client, 1)) == 2


async def test_answers_expire_after_the_window(client: AsyncClient, app: FastAPI) -> None:
    await create_stock(client, 5, quantity=3)
    body = {"user_id": 1, "product_id": 5, "quantity": 1}
    assert (await client.post("/cart/add", json=body, headers={"Idempotency-Key": "k"})).status_code == 201
    await claim_states(app, created_at=utcnow() - timedelta(hours=25))
    resp = await client.post("/cart/add", json=body, headers={"Idempotency-Key": "k"})
    assert resp.status_code == 201 and "idempotency-replayed" not in resp.headers
    assert len(await cart_lines(client, 1)) == 2


async def test_delete_replays_its_answer(client: AsyncClient) -> None:
    await create_stock(client, 5, quantity=3)
    first = await client.delete("/stock/5", headers={"Idempotency-Key": "d"})
    assert first.status_code in (200, 204), first.text
    again = await client.delete("/stock/5", headers={"Idempotency-Key": "d"})
    assert (again.status_code, again.content) == (first.status_code, first.content)
    assert again.headers["idempotency-replayed"] == "true"
    # Without the key the product is gone.
    assert_error(await client.delete("/stock/5"), 404, "NOT_FOUND")


async def test_the_mutations_commit_marks_its_claim(app: FastAPI) -> None:
    """The claim is marked in the mutation's own transaction, so a process that
    dies after that commit leaves a claim that says the change was made."""
    async with app.state.sessions() as session, session.begin():
        session.add(IdempotencyRecord(method="POST", path="/x", key="k", digest="d", created_at=utcnow()))
    token = idempotency._current.set(idempotency._Claim("POST", "/x", "k"))
    try:
        try:
            async with app.state.sessions() as session, session.begin():
                session.add(Outbox(event_id="e", topic="t", key="1", payload="{}"))
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass
        async with app.state.sessions() as session:
            assert (await session.get(IdempotencyRecord, ("POST", "/x", "k"))).committed is False
        async with app.state.sessions() as session, session.begin():
            session.add(Outbox(event_id="e", topic="t", key="1", payload="{}"))
    finally:
        idempotency._current.reset(token)
    async with app.state.sessions() as session:
        assert (await session.get(IdempotencyRecord, ("POST", "/x", "k"))).committed is True


async def test_concurrent_repeats_apply_once(client: AsyncClient) -> None:
    await create_stock(client, 5, quantity=30)
    body = {"user_id": 1, "product_id": 5, "quantity": 1}
    answers = await asyncio.gather(
        *(client.post("/cart/add", json=body, headers={"Idempotency-Key": "race"}) for _ in range(10))
    )
    created = [a for a in answers if a.status_code == 201]
    for a in answers:
        if a.status_code != 201:
            assert_error(a, 409, "ABORTED", contains="in progress")
    assert created and all(a.json() == created[0].json() for a in created)
    assert len(await cart_lines(client, 1)) == 1


async def test_a_read_sent_by_post_is_not_replayed(client: AsyncClient, app: FastAPI) -> None:
    """POST /cart/fallback changes nothing: a key on it keeps nothing, and a
    repeat sees the cart as it is now."""
    await create_stock(client, 5, quantity=3)
    headers = {"Idempotency-Key": "read"}
    first = await client.post("/cart/fallback", json={"user_id": 1}, headers=headers)
    assert (first.status_code, first.json()["items"]) == (200, [])
    assert (await client.post("/cart/add", json={"user_id": 1, "product_id": 5, "quantity": 1})).status_code == 201
    again = await client.post("/cart/fallback", json={"user_id": 1}, headers=headers)
    assert again.status_code == 200 and "idempotency-replayed" not in again.headers
    assert len(again.json()["items"]) == 1
    assert await count(app, IdempotencyRecord) == 0


async def test_lookup_reads_a_key_without_touching_it(client: AsyncClient, app: FastAPI) -> None:
    await create_stock(client, 6, quantity=3)
    body = {"user_id": 2, "product_id": 6, "quantity": 1}
    added = await client.post("/cart/add", json=body, headers={"Idempotency-Key": "look-1"})
    assert added.status_code == 201, added.text
    params = {"method": "POST", "path": "/cart/add", "key": "look-1"}
    found = await client.get("/internal/idempotency", params=params)
    assert found.status_code == 200, found.text
    assert found.json() == {"state": "applied", "status_code": 201, "body": added.json()}
    # Read-only: asking again changes nothing, and the key still replays.
    assert (await client.get("/internal/idempotency", params=params)).json() == found.json()
    again = await client.post("/cart/add", json=body, headers={"Idempotency-Key": "look-1"})
    assert again.headers["idempotency-replayed"] == "true"
    assert len(await cart_lines(client, 2)) == 1
    unknown = await client.get("/internal/idempotency", params={**params, "key": "never-sent"})
    assert unknown.json() == {"state": "unknown"}
    # A failed mutation leaves no record: it was not applied.
    failed = await client.post("/cart/add", json={**body, "quantity": 9}, headers={"Idempotency-Key": "look-2"})
    assert failed.status_code == 400
    assert (await client.get("/internal/idempotency", params={**params, "key": "look-2"})).json() == {
        "state": "unknown"
    }
    assert (await client.get("/internal/idempotency", params={"method": "POST", "path": "/x"})).status_code in (
        400,
        422,
    )


async def test_lookup_reports_a_claim_in_flight_and_a_commit_without_answer(client: AsyncClient, app: FastAPI) -> None:
    now = utcnow()
    async with app.state.sessions() as session, session.begin():
        session.add(IdempotencyRecord(method="POST", path="/stock", key="in-flight", digest="d", created_at=now))
        session.add(
            IdempotencyRecord(method="POST", path="/stock", key="no-answer", digest="d", created_at=now, committed=True)
        )
    for key, state in (("in-flight", "pending"), ("no-answer", "committed")):
        got = await client.get("/internal/idempotency", params={"method": "post", "path": "/stock", "key": key})
        assert got.json() == {"state": state}
