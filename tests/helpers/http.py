"""Throwaway HTTP servers of the fault tests: one that answers every method by a function of the
path (a server that fails, one whose `/health` lies), and a proxy to a real server that cuts replies off."""

from __future__ import annotations

import contextlib
import http.server
import threading

from tests.helpers.services import free_port


@contextlib.contextmanager
def scripted_server(answer):
    """A server on 127.0.0.1 answering each request with `answer(path) -> (status, body bytes)`;
    yields its port; shut down on exit."""

    class Handler(Quiet):
        def _answer(self):
            status, body = answer(self.path)
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    with serving(Handler) as port:
        yield port


class Quiet(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serving(handler):
    """A threading server of `handler` on a free port of 127.0.0.1; yields the port; shut down on exit."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()


@contextlib.contextmanager
def reply_cutting_proxy(upstream_port: int, cut: dict[str, int | set[int]]):
    """A proxy on 127.0.0.1 to a real server at `upstream_port` that cuts off, for each pattern of
    `cut` (a regex over "METHOD path"), its n-th (or each of a set of n) matching reply with a body after the headers and a
    third of the body (the request reached the server: what a server killed in the middle of its
    reply does; a reply without a body cannot be cut midway, and is not counted). Yields
    (its port, the "METHOD path" of every request it forwarded, those whose reply it cut)."""
    import http.client
    import re

    seen: dict[str, int] = {pattern: 0 for pattern in cut}
    forwarded: list[str] = []
    cut_off: list[str] = []
    lock = threading.Lock()

    class Handler(Quiet):
        protocol_version = "HTTP/1.1"

        def _forward(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            upstream = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=120)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
            upstream.request(self.command, self.path, body=body, headers=headers)
            reply = upstream.getresponse()
            content = reply.read()
            upstream.close()
            request = f"{self.command} {self.path}"
            with lock:
                forwarded.append(request)
                breaking = False
                for pattern in cut:
                    if content and re.search(pattern, request):
                        seen[pattern] += 1
                        nth = cut[pattern]
                        breaking = breaking or seen[pattern] in (nth if isinstance(nth, set) else {nth})
                if breaking:
                    cut_off.append(request)
            self.send_response(reply.status)
            for key, value in reply.getheaders():
                if key.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            if breaking:
                self.wfile.write(content[: len(content) // 3])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return
            self.wfile.write(content)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

    with serving(Handler) as port:
        yield port, forwarded, cut_off
