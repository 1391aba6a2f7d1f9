"""A throwaway HTTP server that answers every method by a function of the path: the fake tracking
servers of the fault tests (a server that fails, one whose `/health` lies)."""

from __future__ import annotations

import contextlib
import http.server
import threading

from tests.helpers.services import free_port


@contextlib.contextmanager
def scripted_server(answer):
    """A server on 127.0.0.1 answering each request with `answer(path) -> (status, body bytes)`;
    yields its port; shut down on exit."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self):
            status, body = answer(self.path)
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
