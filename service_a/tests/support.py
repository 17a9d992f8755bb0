"""What service A's tests share besides :mod:`shopkit_testing`: its folder
and creating stock through the API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

SERVICE_DIR = Path(__file__).resolve().parent.parent


async def create_stock(
    client: httpx.AsyncClient, product_id: int, quantity: int = 10, price_cents: int = 100, name: str | None = None
) -> dict[str, Any]:
    """Create a stock item through the API and return it."""
    resp = await client.post(
        "/stock",
        json={
            "product_id": product_id,
            "product_name": name or f"product {product_id}",
            "quantity": quantity,
            "price_cents": price_cents,
        },
    )
    assert resp.status_code == 201, resp.text
    return resp.json()
