"""`scalelab view`: a report folder served on 127.0.0.1 by the standard library's HTTP server."""

from __future__ import annotations

import functools
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from scalelab.errors import UserError


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the standard library's name)
        pass


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:  # a browser closing a connection early is no error
        pass


def serve_folder(folder: str | Path, port: int = 8080) -> ThreadingHTTPServer:
    """A server bound to 127.0.0.1:`port` (0: any free port) for `folder`; call serve_forever() on it."""
    folder = Path(folder)
    if not (folder / "report.html").is_file():
        raise UserError(f"{folder} holds no report.html; make one with `scalelab report`")
    try:
        return _Server(("127.0.0.1", port), functools.partial(_Quiet, directory=str(folder)))
    except OSError as e:
        raise UserError(f"cannot listen on 127.0.0.1:{port}: {e.strerror}") from None
