"""Fills carts for the pay benchmark of scripts/bench-services.sh.

For each user in FIRST .. FIRST+COUNT-1, adds one unit of one product
(product 1 + user % PRODUCTS, so that the payments do not all take the stock
of one row) to the master cart on service A with POST /cart/add, called
directly with an identity header for an administrator (make -s
service-header). Then waits until service B, which builds its carts from A's cart
events over Kafka, shows every one of these carts non-empty: a payment of
such a user on B finds exactly one line to pay.

Prints one progress line to stderr (no figures); exits 1 when an add fails
or B has not caught up within --timeout seconds."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Iterable

import httpx


async def each(users: Iterable[int], concurrency: int, job: Callable[[int], Awaitable[None]]) -> None:
    """Run job for every user, concurrency at a time."""
    todo = iter(users)

    async def worker() -> None:
        for user in todo:
            await job(user)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def header(line: str) -> dict[str, str]:
    """A "Name: value" header line as a dict."""
    name, _, value = line.partition(":")
    return {name.strip(): value.strip()}


async def fill(args: argparse.Namespace) -> None:
    a_headers, b_headers = header(args.a_header), header(args.b_header)
    users = range(args.first, args.first + args.count)
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    start = time.perf_counter()
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def add(user: int) -> None:
            body = {"user_id": user, "product_id": 1 + user % args.products, "quantity": 1}
            # A key per cart, so that an add sent again (503/504, or a
            # keep-alive connection the server closed under the request)
            # is applied once.
            key = {"Idempotency-Key": f"bench-cart-{user}"}
            resp: httpx.Response | None = None
            for attempt in range(8):
                try:
                    resp = await client.post(f"{args.a}/cart/add", json=body, headers={**a_headers, **key})
                except httpx.TransportError:
                    resp = None
                if resp is not None and resp.status_code not in (503, 504):
                    break
                await asyncio.sleep(min(0.2 * 2**attempt, 3))
            if resp is None:
                raise SystemExit(f"carts.py: add for user {user}: no answer after 8 attempts")
            if resp.status_code >= 300:
                raise SystemExit(f"carts.py: add for user {user}: HTTP {resp.status_code} {resp.text[:300]}")

        await each(users, args.concurrency, add)
        added = time.perf_counter()

        missing: list[int] = list(users)
        still: list[int] = []

        async def check(user: int) -> None:
            try:
                resp = await client.get(f"{args.b}/cart/{user}", headers=b_headers)
            except httpx.TransportError:
                still.append(user)  # asked again in the next pass
                return
            if resp.status_code != 200 or not resp.json().get("items"):
                still.append(user)

        deadline = time.monotonic() + args.timeout
        while missing:
            still.clear()
            await each(missing, args.concurrency, check)
            missing = sorted(still)
            if missing:
                if time.monotonic() > deadline:
                    raise SystemExit(
                        f"carts.py: service B has not received the carts of {len(missing)} users "
                        f"(e.g. {missing[0]}) after {args.timeout:.0f} s"
                    )
                await asyncio.sleep(0.5)
    sys.stderr.write(
        f"[carts] {args.count} carts for users {args.first}..{args.first + args.count - 1}: added on A, "
        f"on B after {time.perf_counter() - added:.1f} s more ({time.perf_counter() - start:.1f} s in all)\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--a", required=True, help="base URL of service A")
    parser.add_argument("--b", required=True, help="base URL of service B")
    parser.add_argument("--first", type=int, required=True, help="first user id")
    parser.add_argument("--count", type=int, required=True, help="number of users (carts)")
    parser.add_argument("--products", type=int, default=100, help="products 1..PRODUCTS exist with enough stock")
    parser.add_argument("--a-header", required=True, help="identity header line for A (make -s service-header)")
    parser.add_argument("--b-header", required=True, help="identity header line for B (make -s service-header)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for B")
    args = parser.parse_args()
    if args.count > 0:
        asyncio.run(fill(args))


if __name__ == "__main__":
    main()
