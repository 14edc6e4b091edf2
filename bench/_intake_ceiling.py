"""The ceiling of bench/intake.py: the same FastAPI stack and request models as intake (problem handlers,
body caps, request metrics, pydantic validation of every item), answering without a database or Kafka."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import FastAPI, Header
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from services.intake.schemas import BatchIn, RatingIn
from shared.bodysize import BodySizeLimit
from shared.problems import install_problem_handlers
from shared.service import _RequestMetrics  # noqa: PLC2701 - the very middleware intake runs behind

app = FastAPI(title="intake ceiling")
install_problem_handlers(app)


@app.post("/v1/ratings", status_code=202)
async def post_rating(rating: RatingIn, authorization: str = Header()) -> JSONResponse:
    return JSONResponse({"rating_id": str(uuid.uuid4()), "status": "accepted"}, status_code=202)


@app.post("/v1/ratings/batch")
async def post_batch(batch: BatchIn, authorization: str = Header()) -> JSONResponse:
    items: list[dict[str, Any]] = []
    for index, raw in enumerate(batch.items):
        try:
            RatingIn.model_validate(raw)
            items.append({"index": index, "status": "accepted", "rating_id": str(uuid.uuid4())})
        except ValidationError:
            items.append({"index": index, "status": "error"})
    return JSONResponse({"items": items, "accepted": len(items), "failed": 0})


app.add_middleware(BodySizeLimit, default=64 * 1024, large={"/batch": 8 * 1024 * 1024})
app.add_middleware(_RequestMetrics, service="ceiling")
