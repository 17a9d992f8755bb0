"""Idempotency-Key on A's mutations: one change, the first answer replayed."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import func, select, update

from shopkit import idempotency
from shopkit.db import Outbox
from shopkit.idempotency import IdempotencyRecord
from shopkit.wire import utcnow
from shopkit_testing import as_user, assert_error
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


async def age_records(app: FastAPI, **values: object) -> None:
    async with app.state.sessions() as session, session.begin():
        await session.execute(update(IdempotencyRecord).values(**values))


async def test_another_callers_key_is_a_different_key(client: AsyncClient, app: FastAPI) -> None:
    """User 8 sending user 7's key is neither refused nor replayed user 7's
    answer: it is user 8's own request, applied as such."""
    await create_stock(client, 5, quantity=10)
    headers = {"Idempotency-Key": "shared"}
    mine = await client.post(
        "/cart/add", json={"user_id": 7, "product_id": 5, "quantity": 1}, headers={**headers, **as_user(7)}
    )
    assert mine.status_code == 201, mine.text
    theirs = await client.post(
        "/cart/add", json={"user_id": 8, "product_id": 5, "quantity": 2}, headers={**headers, **as_user(8)}
    )
    assert theirs.status_code == 201, theirs.text
    assert "idempotency-replayed" not in theirs.headers
    assert theirs.json()["user_id"] == 8 and theirs.json()["item_id"] != mine.json()["item_id"]
    # Each caller's repeat replays its own answer.
    again = await client.post(
        "/cart/add", json={"user_id": 8, "product_id": 5, "quantity": 2}, headers={**headers, **as_user(8)}
    )
    assert again.headers["idempotency-replayed"] == "true" and again.json() == theirs.json()
    assert await count(app, IdempotencyRecord) == 2
    assert len(await cart_lines(client, 7)) == 1 and len(await cart_lines(client, 8)) == 1


async def test_the_record_commits_with_the_change_or_not_at_all(client: AsyncClient, app: FastAPI) -> None:
    """A mutation refused inside its transaction leaves neither change, event
    nor record; one that commits leaves all three."""
    await create_stock(client, 5, quantity=1)
    body = {"user_id": 1, "product_id": 5, "quantity": 2}
    events = await count(app, Outbox)
    assert_error(
        await client.post("/cart/add", json=body, headers={"Idempotency-Key": "k"}), 400, "FAILED_PRECONDITION"
    )
    assert (await count(app, IdempotencyRecord), await count(app, Outbox)) == (0, events)
    resp = await client.post("/cart/add", json={**body, "quantity": 1}, headers={"Idempotency-Key": "k2"})
    assert resp.status_code == 201, resp.text
    assert (await count(app, IdempotencyRecord), await count(app, Outbox)) == (1, events + 1)


async def test_a_duplicate_found_at_commit_is_rolled_back_and_replayed(
    client: AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When a concurrent duplicate committed between the look-up and the
    commit, the second change is rolled back and the first answer replayed."""
    await create_stock(client, 5, quantity=5)
    body = {"user_id": 1, "product_id": 5, "quantity": 1}
    first = await client.post("/cart/add", json=body, headers={"Idempotency-Key": "race"})
    events = await count(app, Outbox)
    real = idempotency.IdempotencyMiddleware._stored
    calls: list[int] = []

    async def miss_once(self: idempotency.IdempotencyMiddleware, sessions: object, m: object) -> object:
        calls.append(1)
        if len(calls) == 1:
            return None  # the look-up ran before the first request committed
        return await real(self, sessions, m)  # type: ignore[arg-type]

    monkeypatch.setattr(idempotency.IdempotencyMiddleware, "_stored", miss_once)
    again = await client.post("/cart/add", json=body, headers={"Idempotency-Key": "race"})
    assert again.status_code == 201, again.text
    assert again.headers["idempotency-replayed"] == "true" and again.json() == first.json()
    assert len(calls) == 2
    assert len(await cart_lines(client, 1)) == 1
    assert await count(app, Outbox) == events


async def test_a_mutation_past_its_deadline_commits_nothing(client: AsyncClient, app: FastAPI) -> None:
    """X-Request-Deadline in the past: 504, and neither change, event nor
    record, so a look-up after the deadline can say "not applied" for good."""
    await create_stock(client, 5, quantity=5)
    events = await count(app, Outbox)
    past = str(int(time.time() * 1000) - 1)
    body = {"user_id": 1, "product_id": 5, "quantity": 1}
    for headers in ({"X-Request-Deadline": past, "Idempotency-Key": "late"}, {"X-Request-Deadline": past}):
        assert_error(await client.post("/cart/add", json=body, headers=headers), 504, "DEADLINE_EXCEEDED")
    assert await cart_lines(client, 1) == []
    assert (await count(app, IdempotencyRecord), await count(app, Outbox)) == (0, events)
    future = str(int(time.time() * 1000) + 60_000)
    ok = await client.post("/cart/add", json=body, headers={"X-Request-Deadline": future, "Idempotency-Key": "late"})
    assert ok.status_code == 201, ok.text
    for bad in ("", "soon", "-1", "1" * 17):
        resp = await client.post("/cart/add", json=body, headers={"X-Request-Deadline": bad})
        assert_error(resp, 400, "INVALID_ARGUMENT", contains="X-Request-Deadline")
    assert len(await cart_lines(client, 1)) == 1


async def test_answers_expire_after_the_window(client: AsyncClient, app: FastAPI) -> None:
    await create_stock(client, 5, quantity=3)
    body = {"user_id": 1, "product_id": 5, "quantity": 1}
    assert (await client.post("/cart/add", json=body, headers={"Idempotency-Key": "k"})).status_code == 201
    await age_records(app, created_at=utcnow() - timedelta(hours=25))
    resp = await client.post("/cart/add", json=body, headers={"Idempotency-Key": "k"})
    assert resp.status_code == 201 and "idempotency-replayed" not in resp.headers
    assert len(await cart_lines(client, 1)) == 2
    # The new answer replaced the expired record: it is the one replayed now.
    again = await client.post("/cart/add", json=body, headers={"Idempotency-Key": "k"})
    assert again.headers.get("idempotency-replayed") == "true" and again.json() == resp.json()
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


async def test_concurrent_repeats_apply_once(client: AsyncClient, app: FastAPI) -> None:
    """Repeats in flight together: one change, every one answered with it."""
    await create_stock(client, 5, quantity=30)
    body = {"user_id": 1, "product_id": 5, "quantity": 1}
    answers = await asyncio.gather(
        *(client.post("/cart/add", json=body, headers={"Idempotency-Key": "race"}) for _ in range(10))
    )
    assert [a.status_code for a in answers] == [201] * 10, [a.text for a in answers]
    assert all(a.json() == answers[0].json() for a in answers)
    assert len(await cart_lines(client, 1)) == 1
    assert await count(app, IdempotencyRecord) == 1


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


def lookup_body(key: str, body: dict[str, object], caller: str = "", path: str = "/cart/add") -> dict[str, object]:
    return {"caller": caller, "method": "POST", "path": path, "key": key, "body": json.dumps(body)}


async def test_lookup_answers_only_for_the_request_asked_about(client: AsyncClient, app: FastAPI) -> None:
    """applied, with the stored answer, only for the same caller, key and
    request; unknown for anything else, and read-only."""
    await create_stock(client, 6, quantity=3)
    body = {"user_id": 2, "product_id": 6, "quantity": 1}
    added = await client.post("/cart/add", json=body, headers={"Idempotency-Key": "look-1", **as_user(2)})
    assert added.status_code == 201, added.text
    asked = lookup_body("look-1", body, caller="2")
    found = await client.post("/internal/idempotency/lookup", json=asked)
    assert found.status_code == 200, found.text
    assert found.json() == {"state": "applied", "status_code": 201, "body": added.json()}
    assert (await client.post("/internal/idempotency/lookup", json=asked)).json() == found.json()
    unknown = {"state": "unknown"}
    for other in (
        lookup_body("look-1", body, caller="3"),  # another caller with the same key
        lookup_body("look-1", body),  # no caller
        lookup_body("look-1", {**body, "quantity": 2}, caller="2"),  # another request
        lookup_body("never-sent", body, caller="2"),
        lookup_body("look-1", body, caller="2", path="/stock"),
    ):
        assert (await client.post("/internal/idempotency/lookup", json=other)).json() == unknown, other
    again = await client.post("/cart/add", json=body, headers={"Idempotency-Key": "look-1", **as_user(2)})
    assert again.headers["idempotency-replayed"] == "true"
    assert len(await cart_lines(client, 2)) == 1
    failed = await client.post("/cart/add", json={**body, "quantity": 9}, headers={"Idempotency-Key": "look-2"})
    assert failed.status_code == 400
    assert (await client.post("/internal/idempotency/lookup", json=lookup_body("look-2", body))).json() == unknown
    bad = await client.post("/internal/idempotency/lookup", json={"method": "POST", "path": "/x"})
    assert bad.status_code in (400, 422)
