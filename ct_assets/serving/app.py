"""``ct serve``: the HTTP layer over routing, batching, slots and the prediction log.

Request path of ``POST /predict``:
  1. limits.read_body reads the body, refusing it with 413 past serving.max_body_bytes
     (the Content-Length header first, then the bytes actually streamed);
  2. limits.parse / check_predict validate it (422 naming the key, value and limit);
  3. scoring.Scorer reads the current Slots once (models.py), gives each text its arm by
     the hash of its event id (routing.py), and queues the texts on the serving models'
     micro-batchers and any off-path scoring on the other model's (batching.py);
  4. the response returns as soon as the serving arms answered; a task then waits for
     the off-path results and appends the rows to the prediction log (landing zone).
``POST /feedback`` hands a late label to the prediction log. ``/healthz`` says the process
is alive, ``/readyz`` whether a champion is loaded, ``/metrics`` is Prometheus text.

In the background, ``ModelSlots.keep_fresh`` re-reads the aliases every
serving.reload_seconds and swaps new models in; the prediction log flushes on its own
thread. Shutdown (the lifespan) stops the reload, lets queued work finish, then closes
the log, which writes every buffered row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from ct_assets.core.home import CtHome
from ct_assets.core.settings import Settings
from ct_assets.registry.mlflow_registry import AdapterRegistry
from ct_assets.registry.records import MODEL_NAME
from ct_assets.serving.limits import (
    FeedbackRequest,
    PredictRequest,
    Refused,
    check_feedback,
    feedback_note,
    check_predict,
    parse,
    read_body,
)
from ct_assets.serving.metrics import ServingMetrics
from ct_assets.serving.models import ModelSlots, RegistryModels
from ct_assets.serving.prediction_log import UnknownEventError
from ct_assets.serving.scoring import (
    CountedPredictionLog,
    DuplicateEventError,
    ModelFailedError,
    NotReadyError,
    Scorer,
)

log = logging.getLogger(__name__)
# A batcher still busy after this at shutdown is left to die with the process (daemon thread).
BATCHER_JOIN_S = 30.0


class _CountRequests:
    """ASGI middleware: every HTTP response counted by route and status."""

    def __init__(self, app, metrics: ServingMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500}  # if the app dies before answering, the server answers 500

        async def record(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            self.metrics.http_request(scope["path"], status["code"])


def create_app(settings: Settings, home: CtHome, *, accept_client_timestamps: bool = False) -> FastAPI:
    limits = settings.serving
    metrics = ServingMetrics()
    if home.is_server:
        # The prediction log appends and rewrites files under a lock (serving.prediction_log):
        # a local folder only. Refused rather than silently logging where no asset reads.
        raise ValueError(f"ct serve: CT_PROFILE=server keeps the landing zone at {home.profile.landing_url}, and "
                         "the prediction log writes a local folder only; run ct serve with CT_PROFILE=local")
    registry = AdapterRegistry(home.mlflow_tracking_uri, home.mlflow_artifact_root, MODEL_NAME,
                               lock_path=home.registry_lock)
    source = RegistryModels(registry, home.adapter_cache, max_length=settings.training.max_length,
                            batch_size=limits.max_batch, db_path=home.mlflow / "mlflow.db",
                            precision=settings.training.inference_precision)
    models = ModelSlots(source, limits, metrics)
    prediction_log = CountedPredictionLog(home.resolve(settings.source.path, "source.path"),
                                          flush_rows=limits.log_flush_rows, flush_seconds=limits.log_flush_seconds,
                                          metrics=metrics)
    scorer = Scorer(models, prediction_log, metrics, limits)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        prediction_log.start()
        reloader = asyncio.create_task(models.keep_fresh(), name="ct-serve-reload")
        try:
            yield
        finally:
            reloader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reloader
            await scorer.drain()
            batchers = models.close()
            await asyncio.to_thread(lambda: [b.join(BATCHER_JOIN_S) for b in batchers])
            await asyncio.to_thread(prediction_log.close)

    app = FastAPI(title="ct serve", summary="the champion by alias, a gated canary, shadow scoring",
                  lifespan=lifespan)
    app.add_middleware(_CountRequests, metrics=metrics)

    @app.exception_handler(Refused)
    async def _refused(_request: Request, err: Refused) -> JSONResponse:
        return JSONResponse({"detail": err.message}, status_code=err.status)

    async def body_of(request: Request) -> bytes:
        return await read_body(request.stream(), request.headers.get("content-length"), limits.max_body_bytes)

    @app.post("/predict")
    async def predict(request: Request) -> dict:
        """{texts: [str], ids?: [str], event_ts?} -> {predictions: [{event_id, label, confidence,
        version, arm}]}, one per text in order."""
        req = parse(PredictRequest, await body_of(request))
        event_ts = check_predict(req, limits, accept_client_timestamps)
        try:
            return {"predictions": await scorer.predict(req.texts, req.ids, event_ts)}
        except NotReadyError as err:
            raise Refused(503, str(err)) from None
        except DuplicateEventError as err:
            raise Refused(409, str(err)) from None
        except ModelFailedError as err:
            log.error("ct serve: %s", err)
            raise Refused(500, str(err)) from None

    @app.post("/feedback", status_code=202)
    async def feedback(request: Request) -> dict:
        """{event_id, label, label_ts?} -> 202; 404 if no served row has that event_id."""
        req = parse(FeedbackRequest, await body_of(request))
        label_ts = check_feedback(req, settings.labels, accept_client_timestamps)
        try:
            await scorer.feedback(req.event_id, req.label, label_ts)
        except UnknownEventError as err:
            raise Refused(404, str(err)) from None
        answer = {"event_id": req.event_id, "label": req.label, "label_ts": label_ts.isoformat()}
        if (note := feedback_note(req.label, settings.labels)) is not None:
            answer["note"] = note
        return answer

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"alive": True}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        slots = models.slots
        if slots.champion is None:
            return JSONResponse({"ready": False, "reason": slots.champion_problem}, status_code=503)
        challenger = slots.challenger.version if slots.challenger is not None else None
        return JSONResponse({
            "ready": True, "champion": slots.champion.version, "champion_problem": slots.champion_problem,
            "challenger": challenger, "challenger_problem": slots.challenger_problem,
            "canary_percent": limits.canary_percent if challenger is not None else 0.0, "shadow": limits.shadow})

    @app.get("/metrics")
    async def prometheus() -> Response:
        metrics.log_pending.set(prediction_log.pending_rows)
        return Response(metrics.exposition(), media_type=metrics.content_type)

    return app


def serve(settings: Settings, home: CtHome, *, host: str | None = None, port: int | None = None,
          accept_client_timestamps: bool = False) -> None:
    """Run the app under uvicorn until SIGINT/SIGTERM (then the lifespan shuts it down)."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(settings, home, accept_client_timestamps=accept_client_timestamps)
    # No access log: at serving rates it is noise; /metrics counts every request by route and status.
    uvicorn.run(app, host=host or settings.serving.host, port=port or settings.serving.port,
                access_log=False, log_level="info")
