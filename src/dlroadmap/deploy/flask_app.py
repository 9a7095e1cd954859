"""Flask front end of the model server (WSGI). The same routes as the FastAPI one and the same `Core`:
this file only maps URLs to core calls, so the two front ends cannot drift apart.

    dlr serve MODEL_DIR --framework flask
    gunicorn -w 1 --threads 8 'dlroadmap.deploy.flask_app:from_env()'   (a production WSGI server;
                          DLR_MODEL_DIR, DLR_BACKEND and DLR_API_KEY configure it)
"""

from __future__ import annotations

import os

from dlroadmap.deploy.core import Core, Reply


def create_app(core: Core):
    from flask import Flask, Response, request
    from werkzeug.exceptions import HTTPException

    app = Flask("dlroadmap")
    app.config["MAX_CONTENT_LENGTH"] = core.limits.max_body_bytes  # werkzeug answers 413 before reading more
    app.url_map.strict_slashes = False

    def send(reply: Reply) -> Response:
        return Response(reply.json_bytes(), status=reply.status, content_type=reply.content_type, headers=reply.headers)

    @app.before_request
    def guard():
        if not core.authorized(request.path, dict(request.headers)):
            return send(core.unauthorized())
        return None

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException):
        message = f"request body exceeds the limit of {core.limits.max_body_bytes} bytes" if e.code == 413 else e.description
        return send(Reply(e.code or 500, {"error": message}))

    routes = {
        ("GET", "/healthz"): lambda: core.health(),
        ("GET", "/readyz"): lambda: core.readiness(),
        ("GET", "/metrics"): lambda: core.metrics(),
        ("GET", "/v1/models/<name>"): lambda name: core.v1_status(name),
        ("GET", "/v1/models/<name>/metadata"): lambda name: core.v1_metadata(name),
        ("POST", "/v1/models/<name>:predict"): lambda name: core.predict_v1(name, request.get_data(cache=False)),
        ("GET", "/v2"): lambda: core.v2_server(),
        ("GET", "/v2/health/live"): lambda: core.health(),
        ("GET", "/v2/health/ready"): lambda: core.readiness(),
        ("GET", "/v2/models/<name>"): lambda name: core.v2_metadata(name),
        ("GET", "/v2/models/<name>/ready"): lambda name: core.v2_ready(name),
        ("POST", "/v2/models/<name>/infer"): lambda name: core.infer_v2(name, request.get_data(cache=False)),
    }
    for i, ((method, rule), fn) in enumerate(routes.items()):
        app.add_url_rule(rule, f"route{i}", _view(fn, send), methods=[method])
    return app


def _view(fn, send):
    from dlroadmap.deploy.core import RequestError

    def view(**kwargs):
        try:
            return send(fn(**kwargs))
        except RequestError as e:
            return send(Reply(e.status, {"error": e.message}))

    return view


def run(core: Core, host: str, port: int) -> None:
    import logging

    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log line per request (as uvicorn here)
    # Werkzeug's threaded server: one thread per request; fine on loopback, use gunicorn in production.
    make_server(host, port, create_app(core), threaded=True).serve_forever()


def from_env():
    """WSGI app factory for gunicorn and friends, configured by environment variables."""
    return create_app(Core(os.environ["DLR_MODEL_DIR"], backend=os.environ.get("DLR_BACKEND", "onnxruntime"),
                           api_key=os.environ.get("DLR_API_KEY"), framework="flask"))
