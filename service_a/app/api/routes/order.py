"""OrderService on A: the stock side of paying an order."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from app import reservations
from app.api.deps import SessionDep
from app.models import ProcessStockRequest, ProcessStockResponse, ReleaseStockRequest, ReleaseStockResponse
from shopkit.auth import require_service

# Internal routes: service B (or an admin) takes and gives back stock.
router = APIRouter(prefix="/order", tags=["order"], dependencies=[Depends(require_service)])


@router.post("/process_stock", response_model=ProcessStockResponse)
async def process_stock(body: ProcessStockRequest, session: SessionDep) -> ProcessStockResponse:
    """ProcessOrderStock: decrement every line at once, all or nothing."""
    return ProcessStockResponse(items=await reservations.process_stock(session, body))


@router.post("/release_stock", response_model=ReleaseStockResponse)
async def release_stock(body: ReleaseStockRequest, session: SessionDep) -> ReleaseStockResponse:
    """Give back the stock taken under a reservation id (service B's compensation).

    Not part of the public API: the gateway has no route to it."""
    released, lines = await reservations.release_stock(session, body.reservation_id)
    return ReleaseStockResponse(reservation_id=body.reservation_id, released=released, items=lines)
