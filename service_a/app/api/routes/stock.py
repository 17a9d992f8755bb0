"""StockService: /stock."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from app import crud
from app.api.deps import ProductIdPath, ReadSessionDep, SessionDep
from app.models import StockCreate, StockLevelUpdate, StockPage, StockPublic, StockUpdate
from shopkit import errors
from shopkit.auth import require_admin

router = APIRouter(prefix="/stock", tags=["stock"])


def _page_size(raw: str) -> int:
    # The gateway sends every query field, so page_size may be "" (zero value).
    if raw.strip() == "":
        return 0
    try:
        return int(raw)
    except ValueError as exc:
        raise errors.invalid_argument(f"page_size: {raw!r} is not an integer", "query", "page_size") from exc


@router.get("", response_model=StockPage)
async def list_stock(
    session: ReadSessionDep,
    page_size: Annotated[str, Query(description="Items per page; 0 or empty means 50, at most 1000.")] = "",
    page_token: Annotated[str, Query(description="next_page_token of the previous page; empty for the first.")] = "",
) -> StockPage:
    """ListStock: one page of stock items ordered by product id."""
    items, token = await crud.list_stock(session, _page_size(page_size), page_token)
    return StockPage(items=[StockPublic.model_validate(i) for i in items], next_page_token=token)


@router.get("/{product_id}", response_model=StockPublic)
async def get_stock(product_id: ProductIdPath, session: ReadSessionDep) -> StockPublic:
    """GetStock: one stock item."""
    return await crud.read_stock(session, product_id)


@router.post("", response_model=StockPublic, status_code=status.HTTP_201_CREATED, dependencies=[Depends(require_admin)])
async def create_stock(body: StockCreate, session: SessionDep) -> StockPublic:
    """CreateStock: add a product; 409 ALREADY_EXISTS when its id is taken."""
    return StockPublic.model_validate(await crud.create_stock(session, body))


@router.put("/{product_id}", response_model=StockPublic, dependencies=[Depends(require_admin)])
async def update_stock(product_id: ProductIdPath, body: StockUpdate, session: SessionDep) -> StockPublic:
    """UpdateStock: replace name, quantity and price."""
    return StockPublic.model_validate(await crud.replace_stock(session, product_id, body))


@router.delete("/{product_id}", response_model=StockPublic, dependencies=[Depends(require_admin)])
async def delete_stock(product_id: ProductIdPath, session: SessionDep) -> StockPublic:
    """DeleteStock: remove a product and return it as it was."""
    return await crud.delete_stock(session, product_id)


@router.post("/update", response_model=StockPublic, dependencies=[Depends(require_admin)])
async def set_stock_level(body: StockLevelUpdate, session: SessionDep) -> StockPublic:
    """SetStockLevel: set the quantity on hand; a negative one is 400 INVALID_ARGUMENT."""
    if body.quantity < 0:
        raise errors.invalid_argument(f"quantity must not be negative, got {body.quantity}", "body", "quantity")
    return StockPublic.model_validate(await crud.set_stock_level(session, body.product_id, body.quantity))
