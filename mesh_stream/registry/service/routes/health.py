"""``/health``: liveness and readiness for load balancers and orchestrators (no credential).

``GET /health`` and ``GET /health/live`` answer 200 while the process runs.
``GET /health/ready`` answers 200 on every instance sharing the registry topic, the writer
and its followers alike, once the registry log is replayed and Kafka answers (on the
writer: once its producer is usable too); the body's ``role`` and ``writer_url`` say which
instance writes. It answers 503 with a ``reason`` during start-up replay, while Kafka is
unreachable, while the writer's producer is being recreated, and while a claim by another
writer id conflicts with this instance. An instance that a newer writer took over from
(fenced) stays ready: it follows the new writer and forwards writes to it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.types import ASGIApp, Receive, Scope, Send

from mesh_stream.registry.service.context import RegistryJSONResponse, ServicesDep
from mesh_stream.registry.service.store import RegistryStore

router = APIRouter(prefix="/health", tags=["health"])


@router.get("", summary="Liveness: 200 while the process runs")
@router.get("/live", summary="Liveness: 200 while the process runs (as GET /health)")
async def live() -> dict[str, str]:
    return {"status": "alive"}


@router.get(
    "/ready",
    summary="Readiness: 200 when replayed, writable and connected to Kafka; else 503",
    responses={503: {"description": '{"status": "not ready", "reason": ...}'}},
)
def ready(services: ServicesDep) -> RegistryJSONResponse:
    # A plain def: the Kafka probe blocks (up to 2 s), so it runs in the thread pool.
    ok, details = services.schemas.store.readiness()
    body: dict[str, Any] = {"status": "ready" if ok else "not ready", **details}
    return RegistryJSONResponse(body, status_code=200 if ok else 503)


#: Paths that answer during the start-up replay: health, and metrics (the replay's progress).
ANSWER_WHILE_STARTING = ("/health", "/metrics")


class StartingGate:
    """Answers 503 to everything but health and metrics until the store has replayed its log."""

    def __init__(self, app: ASGIApp, store: RegistryStore) -> None:
        self.app = app
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not str(scope.get("path", "")).startswith(
            ANSWER_WHILE_STARTING
        ):
            reason = self.store.starting()
            if reason is not None:
                response = RegistryJSONResponse(
                    {
                        "error_code": 50302,
                        "message": f"the registry is starting ({reason}); retry when GET "
                        f"/health/ready answers 200",
                    },
                    status_code=503,
                    headers={"Retry-After": "1"},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
