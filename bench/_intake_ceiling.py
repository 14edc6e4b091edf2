"""The ceiling of bench/intake.py: the same FastAPI stack and request handling as intake (problem handlers,
body caps, the NUL guard, request metrics, pydantic validation of the rating, the batch read and validated by intake's own
`read_rating_batch`, answers serialised as intake serialises them), answering without a database or Kafka."""

from __future__ import annotations

import uuid

from fastapi import FastAPI, Header, Request

from services.intake.api import RATING_BATCH_BODY, JsonAnswer, read_rating_batch
from services.intake.schemas import RatingIn
from shared.bodysize import BodySizeLimit
from shared.problems import install_problem_handlers
from shared.service import _RequestMetrics  # noqa: PLC2701 - the very middleware intake runs behind
from shared.textguard import RefuseNul

app = FastAPI(title="intake ceiling")
install_problem_handlers(app)


@app.post("/v1/ratings", status_code=202)
async def post_rating(rating: RatingIn, authorization: str = Header()) -> JsonAnswer:
    return JsonAnswer({"rating_id": str(uuid.uuid4()), "status": "accepted"}, status_code=202)


@app.post("/v1/ratings/batch", openapi_extra=RATING_BATCH_BODY)
async def post_batch(request: Request, authorization: str = Header()) -> JsonAnswer:
    items = [
        {"index": index, "status": "accepted", "rating_id": str(uuid.uuid4())} if isinstance(item, RatingIn) else {"index": index, "status": "error"}
        for index, item in enumerate(await read_rating_batch(request))
    ]
    failed = sum(1 for item in items if item["status"] == "error")
    return JsonAnswer({"items": items, "accepted": len(items) - failed, "failed": failed})


app.add_middleware(RefuseNul)  # inside the size cap, as create_app adds it
app.add_middleware(BodySizeLimit, default=64 * 1024, large={"/batch": 8 * 1024 * 1024})
app.add_middleware(_RequestMetrics, service="ceiling")
