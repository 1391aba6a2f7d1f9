"""Serve a model over REST: MLflow's own scoring app, with no stack trace in any answer.

    python -m rakuten.serve --model-uri models:/rakuten-text@champion --port 5001

The app is `mlflow.pyfunc.scoring_server.init(model)`, the one `mlflow models serve` runs, so the
payloads (`dataframe_split`, `dataframe_records`, CSV) and answers are MLflow's. MLflow adds the
server's stack trace to some error answers (an input it cannot parse, an unexpected error): that
shows the server's paths to any client, so here the trace goes to the server's log instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

import mlflow

log = logging.getLogger("rakuten.serve")
DEFAULT_MODEL_URI = "models:/rakuten-text@champion"


def build_app(model_uri: str):
    from mlflow.pyfunc import scoring_server
    from starlette.middleware.base import BaseHTTPMiddleware
    from starlette.responses import Response

    app = scoring_server.init(mlflow.pyfunc.load_model(model_uri))

    async def without_stack_trace(request, call_next):
        response = await call_next(request)
        if response.status_code < 400 or "json" not in response.headers.get("content-type", ""):
            return response
        body = b"".join([chunk async for chunk in response.body_iterator])
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
        if isinstance(answer, dict) and "stack_trace" in answer:
            log.error("%s %s answered %d:\n%s", request.method, request.url.path, response.status_code,
                      answer.pop("stack_trace"))
            body = json.dumps(answer).encode()
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        return Response(body, status_code=response.status_code, headers=headers, media_type=response.media_type)

    app.add_middleware(BaseHTTPMiddleware, dispatch=without_stack_trace)
    return app


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    from rakuten import track

    parser = argparse.ArgumentParser(description="Serve a model's pyfunc over REST (POST /invocations).")
    parser.add_argument("--model-uri", default=DEFAULT_MODEL_URI)
    parser.add_argument("--host", default="127.0.0.1", help="put a reverse proxy in front to expose it")
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--tracking-uri", default=None, help="default: $MLFLOW_TRACKING_URI, else ./mlflow.db")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        mlflow.set_tracking_uri(track.resolve_tracking_uri(args.tracking_uri))
        app = build_app(args.model_uri)
    except Exception as error:  # MLflow raises several types for a bad URI or an unreachable store
        print(f"error: cannot load model {args.model_uri}: {track.one_line(error)}", file=sys.stderr)
        return 2
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
