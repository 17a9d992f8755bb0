"""The cost of a service's identity check per request (shopkit.identity):
the middleware around a trivial app, with a cached assertion (every request
after the first of a caller within the assertion's life), against the bare
app, and the first verification of an assertion (a signature check).

Run from service_a/ with the venv (on a quiet machine: see scripts/lib/load.sh):
    cd service_a && ../.venv/bin/python ../scripts/bench/identity.py
"""

import asyncio, time
from shopkit import identity, trusted_keys
from shopkit_testing import TEST_IDENTITY

async def inner(scope, receive, send):
    return None

async def main():
    v = identity.Verifier(trusted_keys.parse_trust(TEST_IDENTITY.keys), "service_a")
    v.load()
    mw = identity.IdentityMiddleware(inner, v)
    tok = TEST_IDENTITY.gateway.assertion("service_a", ("shop:admin",), "7").encode()
    headers = [(b"host", b"x"), (b"accept", b"application/json"), (b"x-request-id", b"abc"), (b"x-identity-assertion", tok), (b"x-request-deadline", b"123")]
    async def recv(): return {}
    async def send(m): pass
    n = 200_000
    for label, wrapped in (("bare inner app", inner), ("identity middleware (cached)", mw)):
        best = 1e9
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(n):
                await wrapped({"type": "http", "path": "/stock/1", "method": "GET", "headers": headers}, recv, send)
            best = min(best, (time.perf_counter() - t0) / n)
        print(f"{label}: {best*1e6:.2f} us per request")
    # uncached verification (first sight of an assertion)
    toks = [TEST_IDENTITY.gateway.assertion("service_a", (), str(u)) for u in range(1, 2001)]
    t0 = time.perf_counter()
    for t in toks:
        await v.verify(t)
    print(f"first verification of an assertion: {(time.perf_counter()-t0)/len(toks)*1e6:.1f} us")
asyncio.run(main())
