"""Does adding to carts slow down as the data grows?

Sends N adds (POST /cart/add, one unit of product 1) with C in flight, first
all to one user's cart, then each to a new user, and reports the rate of the
last tenth of the adds against the first tenth. Used by
scripts/bench-services.sh; needs product 1 with enough stock. With --token
(a token with scope shop:admin for the gateway with authentication on) every
add sends it as a bearer token.

Started on its own (not from a script that ran the load guard), it runs
itself again under scripts/lib/load.sh, which prints the 1-minute load
average at the start and the end and refuses to measure on a busy machine."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx


async def run(url: str, adds: int, concurrency: int, user_of: Callable[[int], int], token: str) -> list[float]:
    """Completion times of the adds, in completion order; fails on any non-2xx."""
    done: list[float] = []
    key_base = f"growth-{user_of(0)}-{time.time_ns()}"
    queue = iter(range(adds))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

        async def worker() -> None:
            for i in queue:
                body = {"user_id": user_of(i), "product_id": 1, "quantity": 1}
                # A careful client: a key per add, sent again while the
                # answer is 503/504 (an instance ejected on a loaded machine).
                headers = {"Idempotency-Key": f"{key_base}-{i}"}
                if token:
                    headers["Authorization"] = f"Bearer {token}"
                for attempt in range(8):
                    resp = await client.post("/cart/add", json=body, headers=headers)
                    if resp.status_code not in (503, 504):
                        break
                    await asyncio.sleep(min(0.2 * 2**attempt, 3))
                if resp.status_code >= 300:
                    raise RuntimeError(f"add {i}: {resp.status_code} {resp.text}")
                done.append(time.perf_counter())

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return [start, *done]


def tenth_rates(times: list[float]) -> list[float]:
    """Adds per second in each tenth of the run (by completion order)."""
    n = len(times) - 1
    step = n // 10
    return [step / (times[(k + 1) * step] - times[k * step]) for k in range(10)]


def main() -> None:
    if not os.environ.get("BENCH_LOAD_CHECKED"):
        guard = Path(__file__).resolve().parent.parent / "lib" / "load.sh"
        os.execvpe("bash", ["bash", str(guard), sys.executable, *sys.argv], {**os.environ, "BENCH_LOAD_NAME": "growth"})
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True, help="base URL of the gateway (or service A)")
    parser.add_argument("--adds", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--token", default="", help="bearer token to send (scope shop:admin)")
    parser.add_argument("--user-base", type=int, default=int(time.time()) % 1_000_000 * 1000)
    args = parser.parse_args()
    base = args.user_base
    out = sys.stdout
    out.write(f"{'cart':<12} {'first tenth/s':>14} {'last tenth/s':>13} {'last/first':>10}  tenths\n")
    for name, user_of in (("one user", lambda i: base), ("many users", lambda i: base + 1 + i)):
        rates = tenth_rates(asyncio.run(run(args.url, args.adds, args.concurrency, user_of, args.token)))
        tenths = " ".join(f"{r:.0f}" for r in rates)
        out.write(f"{name:<12} {rates[0]:>14.0f} {rates[-1]:>13.0f} {rates[-1] / rates[0]:>9.2f}x  {tenths}\n")
        out.flush()


if __name__ == "__main__":
    main()
