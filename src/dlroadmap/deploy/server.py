"""FastAPI front end of the model server (ASGI, run by uvicorn). Routing and HTTP only: every check
and every answer comes from `Core` (core.py), which the Flask front end shares.

    dlr serve runs/models/mlp --port 8000        then open http://127.0.0.1:8000/docs
"""

from __future__ import annotations

import contextlib
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from dlroadmap import __version__
from dlroadmap.deploy.core import Core, Reply, RequestError

# JSON schemas for the OpenAPI document (/docs, /openapi.json). The core checks every body itself,
# so a request the schema would reject still gets the core's specific error message.
NUMBERS = {"type": "array", "items": {}, "description": "nested list of numbers: one row per instance"}
V1_BODY = {"type": "object", "properties": {
    "instances": {**NUMBERS, "description": "row format: one input per element, each shaped like the model's input"},
    "inputs": {**NUMBERS, "description": "columnar format: one tensor, batch first"},
    "signature_name": {"type": "string"}}, "example": {"instances": [[0.0]]}}
V2_BODY = {"type": "object", "required": ["inputs"], "properties": {
    "id": {"type": "string"},
    "inputs": {"type": "array", "items": {"type": "object", "required": ["name", "shape", "datatype", "data"], "properties": {
        "name": {"type": "string"}, "shape": {"type": "array", "items": {"type": "integer"}},
        "datatype": {"type": "string", "enum": ["FP32"]}, "data": {"type": "array", "items": {}}}}},
    "outputs": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}}}}
ERROR = {"description": "client error", "content": {"application/json": {"schema": {
    "type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}}}}
FLOAT32_MAX = 3.4028234663852886e38
ERRORS = {str(c): ERROR for c in (400, 401, 404, 413, 422)}


def nested_numbers(shape: list[int]) -> dict[str, Any]:
    """JSON schema of a nested list of numbers with exactly this shape, e.g. [28, 28]."""
    if not shape:
        return {"type": "number", "minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX}
    return {"type": "array", "minItems": shape[0], "maxItems": shape[0], "items": nested_numbers(shape[1:])}


def body_doc(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def create_app(core: Core):
    @contextlib.asynccontextmanager
    async def lifespan(_):
        yield
        core.close()  # stop the batcher threads

    app = FastAPI(title="dlroadmap model server", version=__version__, lifespan=lifespan,
                  description="TensorFlow Serving REST predict (/v1) and the Open Inference Protocol (KServe v2, /v2) "
                              f"over {', '.join(sorted(core.models))}, backend {core.backend}.")
    app.state.core = core

    def send(reply: Reply) -> Response:
        return Response(reply.json_bytes(), status_code=reply.status, media_type=reply.content_type, headers=reply.headers)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if not core.authorized(request.url.path, dict(request.headers)):
            return send(core.unauthorized())
        return await call_next(request)

    @app.exception_handler(RequestError)
    async def request_error(_: Request, e: RequestError):
        return JSONResponse({"error": e.message}, status_code=e.status)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, e: HTTPException):
        return JSONResponse({"error": str(e.detail)}, status_code=e.status_code, headers=getattr(e, "headers", None))

    async def body(request: Request) -> bytes:
        """Read at most max_body_bytes: a declared or streamed larger body is refused before it is all read."""
        limit = core.limits.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise RequestError(413, f"request body is {declared} bytes; the limit is {limit}")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestError(413, f"request body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    @app.get("/healthz", tags=["health"], summary="Liveness: the process answers")
    def healthz():
        return send(core.health())

    @app.get("/readyz", tags=["health"], summary="Readiness: models loaded and warmed up", responses={"503": ERROR})
    def readyz():
        return send(core.readiness())

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics: requests, latency, batch sizes")
    def metrics():
        return send(core.metrics())

    @app.get("/v1/models/{name}", tags=["TF Serving"], summary="Model version status", responses=ERRORS)
    def v1_status(name: str):
        return send(core.v1_status(name))

    @app.get("/v1/models/{name}/metadata", tags=["TF Serving"], summary="Model metadata (the model card)", responses=ERRORS)
    def v1_metadata(name: str):
        return send(core.v1_metadata(name))

    @app.post("/v1/models/{name}:predict", tags=["TF Serving"], summary="Predict (TensorFlow Serving REST)",
              openapi_extra=body_doc(V1_BODY), responses=ERRORS)
    async def v1_predict(name: str, request: Request):
        data = await body(request)
        return send(await run_in_threadpool(core.predict_v1, name, data))

    @app.get("/v2", tags=["KServe v2"], summary="Server metadata")
    def v2_server():
        return send(core.v2_server())

    @app.get("/v2/health/live", tags=["KServe v2"], summary="Server live")
    def v2_live():
        return send(core.health())

    @app.get("/v2/health/ready", tags=["KServe v2"], summary="Server ready", responses={"503": ERROR})
    def v2_ready_server():
        return send(core.readiness())

    @app.get("/v2/models/{name}", tags=["KServe v2"], summary="Model metadata", responses=ERRORS)
    def v2_metadata(name: str):
        return send(core.v2_metadata(name))

    @app.get("/v2/models/{name}/ready", tags=["KServe v2"], summary="Model ready", responses=ERRORS)
    def v2_ready(name: str):
        return send(core.v2_ready(name))

    @app.post("/v2/models/{name}/infer", tags=["KServe v2"], summary="Inference (Open Inference Protocol)",
              openapi_extra=body_doc(V2_BODY), responses=ERRORS)
    async def v2_infer(name: str, request: Request):
        data = await body(request)
        return send(await run_in_threadpool(core.infer_v2, name, data))

    def openapi() -> dict[str, Any]:
        """FastAPI's schema, made exact for the models this server loaded: `name` is one of them and an
        instance is a nested list of numbers of the model's input shape (clients and fuzzers see it)."""
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            for item in schema["paths"].values():
                for op in item.values():
                    for p in op.get("parameters", []):
                        if p["name"] == "name" and p["in"] == "path":
                            p["schema"] = {"type": "string", "enum": sorted(core.models), "title": "model name"}
            shapes = {tuple(m.runner.input_shape) for m in core.models.values()}
            rows = {"type": "array", "minItems": 1, "maxItems": core.limits.max_request_rows,
                    "items": {"anyOf": [nested_numbers(list(s)) for s in sorted(shapes)]}}
            body = schema["paths"]["/v1/models/{name}:predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
            for key in ("instances", "inputs"):  # one of the two, not both (a oneOf here slows fuzzers tenfold)
                body["properties"][key] = {**rows, "description": V1_BODY["properties"][key]["description"]}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
    return app


def run(core: Core, host: str, port: int, log_level: str = "warning") -> None:
    import uvicorn

    # One event loop; predictions run in its thread pool (and the batcher's thread).
    uvicorn.run(create_app(core), host=host, port=port, log_level=log_level, access_log=False, server_header=False)
