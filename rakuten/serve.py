"""Serve a model over REST: MLflow's own scoring app, guarded.

    python -m rakuten.serve --model-uri models:/rakuten-text@champion --port 5001
    python -m rakuten.serve --model-uri models:/rakuten-image@champion --images-root /srv/pictures

The app is `mlflow.pyfunc.scoring_server.init(model)`, the one `mlflow models serve` runs, so the
payloads (`dataframe_split`, `dataframe_records`, CSV) and answers are MLflow's. Around it:
- no stack trace in any answer (MLflow adds the server's to some errors: it shows its paths); the
  trace goes to the server's log; an error names what to fix, without echoing the whole input;
- a body over `--max-body-mb` is a 413, a JSON body of more rows than `--max-rows` a 413, invalid JSON
  or JSON nested deeper than `request_body.MAX_JSON_DEPTH` a 400 (Python's parser would fail with a
  plain-text 500), a POST without Content-Type a 415, all before MLflow reads it; a big body is parsed
  in a worker process, off the requests' loop; an error's answer is under 1 KB;
- image and fusion models read no file a client names unless it lies under `--images-root`
  (`rakuten.picture_input`); clients send the picture itself as `image_b64`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from concurrent.futures import ThreadPoolExecutor

from rakuten import request_body
from rakuten.cli import command, load_model, open_store, store_options
from rakuten.predict import DEFAULT_MODEL_URI

log = logging.getLogger("rakuten.serve")
DEFAULT_MAX_ROWS = 100_000
MAX_ANSWER_CHARS = 500  # an error's message is cut there: an answer is never the input echoed back


class BodyGuard:
    """ASGI middleware: reads the request body (at most `max_bytes`), refuses it when too big (413),
    when its JSON is invalid, too deeply nested or holds more than `max_rows` rows
    (`rakuten.request_body`, big bodies parsed in a worker process), else hands it on unchanged."""

    def __init__(self, app, max_bytes: int, max_rows: int = DEFAULT_MAX_ROWS):
        self.app = app
        self.max_bytes = max_bytes
        self.max_rows = max_rows
        self._parser = None  # the worker process that parses big bodies, started with the first one

    async def _problem(self, body: bytes):
        if len(body) <= request_body.INLINE_BYTES:
            return request_body.problem(body, self.max_rows)
        if self._parser is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self._parser = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        return await asyncio.get_running_loop().run_in_executor(self._parser, request_body.problem, body,
                                                                self.max_rows)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            return await _answer(send, 413, f"request body over {self.max_bytes // 2**20} MB (--max-body-mb)")
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return await _answer(send, 413, f"request body over {self.max_bytes // 2**20} MB (--max-body-mb)")
            more = message.get("more_body", False)
        body = b"".join(chunks)
        content_type = dict(scope.get("headers") or []).get(b"content-type")
        if scope.get("method") == "POST" and not content_type:
            return await _answer(send, 415, "no Content-Type: send application/json or text/csv")
        refused = await self._problem(body) if body and content_type and b"json" in content_type.lower() else None
        if refused:
            return await _answer(send, *refused)
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)


async def _answer(send, status: int, message: str) -> None:
    code = {400: "BAD_REQUEST", 413: "REQUEST_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE"}[status]
    body = json.dumps({"error_code": code, "message": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class _NoInstancesHint(logging.Filter):
    """MLflow logs a hint about `instances` payloads after any schema error, whatever the payload."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "If using `instances` as input key" not in record.getMessage()


def build_app(model, max_body_mb: float = 20, max_rows: int = DEFAULT_MAX_ROWS):
    from mlflow.pyfunc import scoring_server
    from starlette.middleware.base import BaseHTTPMiddleware
    from starlette.responses import Response

    logging.getLogger("mlflow.pyfunc.scoring_server").addFilter(_NoInstancesHint())
    app = scoring_server.init(model)

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
        if isinstance(answer, dict) and str(answer.get("message", "")).startswith("Failed to predict data"):
            answer["message"] = answer["message"].split("\nError: ", 1)[-1]  # not the client's whole input back
        if isinstance(answer, dict):
            message = str(answer.get("message", ""))
            if len(message) > MAX_ANSWER_CHARS:
                answer["message"] = message[:MAX_ANSWER_CHARS] + f"... ({len(message):,} characters in all)"
            body = json.dumps(answer).encode()
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        return Response(body, status_code=response.status_code, headers=headers, media_type=response.media_type)

    app.add_middleware(BaseHTTPMiddleware, dispatch=without_stack_trace)
    return BodyGuard(app, int(max_body_mb * 2**20), max_rows)


def warm_up(model) -> None:
    """Predict the model's logged input example once, so that the first client does not wait for what
    loads lazily (e5's network and tokenizer take about a second)."""
    example = getattr(model, "input_example", None)
    if example is None:
        return
    try:
        model.predict(example)
    except Exception as error:  # a model that cannot predict its own example still serves its errors
        log.info("no warm-up (the input example did not predict here: %s)", error)


@command
def main(argv: list[str] | None = None) -> int:
    import uvicorn

    from rakuten import picture_input, tracking
    from rakuten.features.allocator import keep_freed_memory

    parser = argparse.ArgumentParser(parents=[store_options(DEFAULT_MODEL_URI)], prog="python -m rakuten.serve",
                                     description="Serve a model's pyfunc over REST (POST /invocations).")
    parser.add_argument("--host", default="127.0.0.1", help="put a reverse proxy in front to expose it")
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--images-root", default=None,
                        help="image models: read image_path only under this folder (default: no path is read; "
                             "clients send image_b64)")
    parser.add_argument("--max-body-mb", type=float, default=20, help="larger request bodies get a 413")
    parser.add_argument("--max-rows", type=int, default=DEFAULT_MAX_ROWS,
                        help="a JSON body of more rows gets a 413, before MLflow parses it")
    parser.add_argument("--max-picture-pixels", type=int, default=picture_input.DEFAULT_MAX_PIXELS,
                        help="image models: a picture whose header announces more pixels gets a 400, undecoded")
    args = parser.parse_args(argv)
    tracking.set_console(verbose=args.verbose)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    picture_input.serve_pictures_from(args.images_root)
    os.environ[picture_input.MAX_PIXELS_ENV] = str(args.max_picture_pixels)
    open_store(args.tracking_uri)
    keep_freed_memory()  # each request's network pass reuses the last one's memory instead of page-faulting it in
    model = load_model(args.model_uri)
    predicting = ThreadPoolExecutor(1, thread_name_prefix="rakuten-predict")
    predicting.submit(warm_up, model).result()
    app = build_app(model, args.max_body_mb, args.max_rows)
    roots = f"; pictures read under {args.images_root}" if args.images_root else ""
    print(f"serving {args.model_uri} on http://{args.host}:{args.port} (POST /invocations{roots}; Ctrl-C to stop)",
          flush=True)
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="warning"))
    asyncio.run(_serving(server, predicting))
    return 0


async def _serving(server, predicting: ThreadPoolExecutor) -> None:
    """uvicorn on a loop whose default executor, where MLflow's app predicts (`asyncio.to_thread`), is
    `predicting`: one thread, the one that warmed the model up. Every thread that runs torch keeps its
    own OpenMP team, and two teams on 2 cores take turns: a 2-row request to a fine-tuned e5 took 78 ms
    in one process from the one thread that ever predicted, 115 ms once a second thread had (2 cores of
    an Intel Xeon). Requests are answered one at a time; on 2 cores they were anyway."""
    asyncio.get_running_loop().set_default_executor(predicting)
    await server.serve()


if __name__ == "__main__":
    sys.exit(main())
