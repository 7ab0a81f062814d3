"""What the HTTP front ends (the REST API and the web editor) share: each phase of a request under a deadline of
`limits.RequestLimits`, a bounded number of connections, the body rules of `limits`, and every answer, protocol
errors included, as JSON."""

from __future__ import annotations

import http
import http.server
import io
import json
import socket
import threading
import time
from typing import Any, Mapping

import grpc
from absl import logging

from ebgan_tf.serving.errors import ServingError, invalid
from ebgan_tf.serving.limits import RequestLimits, content_length

# A status's HTTP code (docs/hardening.md); anything else is a server error, 500.
HTTP_STATUS = {grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.NOT_FOUND: 404,
               grpc.StatusCode.FAILED_PRECONDITION: 400, grpc.StatusCode.RESOURCE_EXHAUSTED: 413,
               grpc.StatusCode.UNAVAILABLE: 503}


class DeadlineReader(io.RawIOBase):
    """A socket's input with a deadline for the current phase of a request (not a timeout per read, which a
    client sending one byte a second would never trip)."""

    def __init__(self, sock: socket.socket):
        self._sock = sock
        self._deadline = float("inf")
        self.phase = "request"

    def expect(self, phase: str, seconds: float) -> None:
        self.phase, self._deadline = phase, time.monotonic() + seconds

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(self.phase)
        self._sock.settimeout(remaining)
        try:
            return self._sock.recv_into(buffer)
        except TimeoutError:
            raise TimeoutError(self.phase) from None


class TimedWriter:
    """A socket's output: every write must be taken by the client within `seconds`."""

    def __init__(self, sock: socket.socket, seconds: float):
        self._sock, self._seconds = sock, seconds

    def write(self, data: bytes) -> int:
        self._sock.settimeout(self._seconds)
        self._sock.sendall(data)
        return len(data)

    def flush(self) -> None:
        pass


class LimitedHandler(http.server.BaseHTTPRequestHandler):
    """One connection: GET and POST requests, each phase under the server's timeouts, answered by `handle_request`
    (which a front end defines); an exception it raises is answered by `error_answer`, in JSON."""

    protocol_version = "HTTP/1.1"
    default_headers: Mapping[str, str] = {}  # sent with every answer, errors included
    server: "LimitedHTTPServer"

    def handle_request(self, post: bool) -> None:
        raise NotImplementedError

    def error_answer(self, error: Exception) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON body) of a request that raised `error`."""
        if isinstance(error, ServingError):
            return HTTP_STATUS.get(error.code, 500), {"error": error.message}
        return 500, {"error": f"{type(error).__name__}: {error}"}

    def setup(self) -> None:
        self.connection = self.request
        self._reader = DeadlineReader(self.connection)
        self.rfile = io.BufferedReader(self._reader)
        self.wfile = TimedWriter(self.connection, self.server.limits.body_timeout_seconds)
        self._write_lock = threading.Lock()
        self.busy = self.abandoned = self._body_read = self._answered_one = False
        self.server.track(self, True)

    def finish(self) -> None:
        self.server.track(self, False)

    def log_message(self, format, *args):  # noqa: A002  (quiet; errors are logged below)
        logging.debug("HTTP %s", format % args)

    def handle_one_request(self) -> None:
        """One request: wait (idle timeout), read the request line and headers (header timeout), then dispatch.
        A new connection's first request counts from the accept under the header timeout. A request line without
        an HTTP version (HTTP/0.9) and unknown methods get an error, not silence."""
        limits = self.server.limits
        try:
            if self._answered_one:
                self._reader.expect("idle", limits.idle_timeout_seconds)
            else:
                self._reader.expect("headers", limits.header_timeout_seconds)
            if not self.rfile.peek(1):
                self.close_connection = True
                return
            if self._answered_one:
                self._reader.expect("headers", limits.header_timeout_seconds)
            self._answered_one = True
            self.raw_requestline = self.rfile.readline(65537)
            if len(self.raw_requestline) > 65536:
                self._fail(414, "The request line is longer than 65536 bytes.")
                return
            if len(self.raw_requestline.split()) != 3:
                self._fail(400, f"Malformed request line {self.raw_requestline[:80]!r}: expected "
                                "'METHOD /path HTTP/1.1' (HTTP/0.9 is not supported).")
                return
            if not self.parse_request():
                return
            if self.command not in ("GET", "POST"):
                self._fail(405, f"Method {self.command} is not allowed; use GET or POST.")
                return
            self._dispatch(post=self.command == "POST")
        except TimeoutError as error:
            self.close_connection = True
            if error.args and error.args[0] in ("headers", "body"):
                seconds = (limits.header_timeout_seconds if error.args[0] == "headers"
                           else limits.body_timeout_seconds)
                self._fail(408, f"The request {error.args[0]} did not arrive within {seconds:g} s.")

    def _dispatch(self, post: bool) -> None:
        self.busy, self._body_read = True, False
        try:
            self.handle_request(post)
        except TimeoutError:
            raise
        except ConnectionError:
            self.close_connection = True  # the client went away mid-answer
        except Exception as error:  # pylint: disable=broad-except  (every failure is answered)
            status, body = self.error_answer(error)
            if status >= 500:
                logging.exception("HTTP request failed")
            self.send_json(status, body)
        finally:
            self.busy = False

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (bad headers, too many headers, bad version) in JSON, closing the connection."""
        self._fail(code, message or self.responses.get(code, ("Error",))[0])

    def _fail(self, status: int, message: str) -> None:
        """An error answer that also closes the connection (the rest of the request cannot be trusted)."""
        self.close_connection = True
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":  # no parsed request: answer HTTP/1.0
            self.request_version, self.requestline, self.command = "HTTP/1.0", "", None
        try:
            self.send_json(status, {"error": message})
        except OSError:
            pass  # the client is gone

    def send_json(self, status: int, body: Mapping[str, Any]) -> None:
        self.send_answer(status, "application/json", json.dumps(body).encode())

    def send_answer(self, status: int, content_type: str, data: bytes,
                    headers: Mapping[str, str] | None = None) -> None:
        """One answer. A request whose body was declared but not read ends its connection (the unread body would
        be taken for the next request)."""
        with self._write_lock:
            if self.abandoned:
                return
            if not self._body_read and self.command == "POST":
                self.close_connection = True
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for key, value in {**self.default_headers, **(headers or {})}.items():
                self.send_header(key, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)

    def read_body(self) -> bytes:
        """The request body under the length rules of ebgan_tf.serving.limits and the body timeout: INVALID_ARGUMENT for
        a missing, repeated, negative or non-numeric Content-Length, a Transfer-Encoding or a body cut short,
        RESOURCE_EXHAUSTED over --max_message_bytes."""
        if self.headers.get("Transfer-Encoding"):
            raise invalid("Transfer-Encoding is not accepted; send the body with a Content-Length.")
        limits = self.server.limits
        length = content_length(self.headers.get_all("Content-Length") or [], limits.max_message_bytes,
                                self.server.body_limit_flag)
        self._reader.expect("body", limits.body_timeout_seconds)
        data = self.rfile.read(length)
        self._body_read = True
        if len(data) < length:
            raise invalid(f"The request body ended after {len(data)} of {length} bytes (Content-Length).")
        return data

    def abandon(self, status: int, message: str) -> None:
        """From another thread (shutdown): answers a request still being computed and closes its connection."""
        self.close_connection = True
        try:
            self.send_json(status, {"error": message})
        except OSError:
            pass
        with self._write_lock:
            self.abandoned = True
        close_quietly(self.connection)


def close_quietly(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _answer_and_close(sock: socket.socket, status: int, message: str) -> None:
    """A JSON error answer on a connection no handler serves, then the connection closed."""
    body = json.dumps({"error": message}).encode()
    reason = http.HTTPStatus(status).phrase.encode()
    try:
        sock.settimeout(1.0)
        sock.sendall(b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nConnection: close\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (status, reason, len(body), body))
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        sock.close()
        return
    threading.Thread(target=_drain_and_close, args=(sock,), name="http-close", daemon=True).start()


def _drain_and_close(sock: socket.socket, seconds: float = 1.0) -> None:
    """Reads what the client still sends (for at most `seconds`), then closes: closing a socket with unread input
    would reset the connection, and the client could lose the answer it was sent."""
    deadline = time.monotonic() + seconds
    try:
        while (remaining := deadline - time.monotonic()) > 0:
            sock.settimeout(remaining)
            if not sock.recv(65536):
                break
    except OSError:
        pass
    sock.close()


class LimitedHTTPServer(http.server.ThreadingHTTPServer):
    """An HTTP server with at most `limits.max_rest_connections` connections open (more are answered 503 and
    closed), each on a thread; `abandon_busy` answers what is still being computed (shutdown)."""

    daemon_threads = True
    request_queue_size = 128  # the listen backlog (socketserver's 5 would reorder a burst of connections)

    def __init__(self, address: tuple[str, int], handler: type[LimitedHandler], limits: RequestLimits,
                 body_limit_flag: str = "--max_message_bytes", connections_flag: str = "--rest_max_connections"):
        self.limits = limits
        self.body_limit_flag, self._connections_flag = body_limit_flag, connections_flag
        self._slots = threading.BoundedSemaphore(limits.max_rest_connections)
        self._handlers: set[LimitedHandler] = set()
        self._lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            _answer_and_close(request, 503, f"Too many connections (at most {self.limits.max_rest_connections}, "
                                            f"{self._connections_flag}); retry later.")
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def refuse_waiting(self) -> int:
        """After `shutdown()`: answers the connections still waiting to be accepted 503 and closes them (closing the
        listening socket would reset them); returns how many."""
        self.socket.setblocking(False)
        refused = 0
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return refused
            _answer_and_close(connection, 503, "The server is shutting down; retry elsewhere.")
            refused += 1

    def track(self, handler: LimitedHandler, open_: bool) -> None:
        """Called by each connection's handler when it opens and closes."""
        with self._lock:
            (self._handlers.add if open_ else self._handlers.discard)(handler)

    def handle_error(self, request, client_address) -> None:
        logging.debug("HTTP connection from %s failed", client_address, exc_info=True)

    def busy_handlers(self) -> list[LimitedHandler]:
        with self._lock:
            return [handler for handler in self._handlers if handler.busy]

    def close_idle(self) -> None:
        """Closes the connections that wait for a request (keep-alive), so that they do not hold shutdown up."""
        with self._lock:
            idle = [handler for handler in self._handlers if not handler.busy]
        for handler in idle:
            close_quietly(handler.connection)

    def abandon_busy(self) -> int:
        """Answers every request still being computed with 503 and closes its connection; returns how many."""
        busy = self.busy_handlers()
        for handler in busy:
            handler.abandon(503, "The server shut down before this request finished.")
        return len(busy)
