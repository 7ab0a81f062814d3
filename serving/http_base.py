"""What the HTTP front ends (the REST API and the web editor) share: each phase of a request under a deadline of
`request_limits.RequestLimits`, a bounded number of connections, the body rules of `limits`, and every answer, protocol
errors included, as JSON."""

from __future__ import annotations

import http
import json
import re
import socket
import socketserver
import threading
import time
from collections.abc import Mapping
from typing import Any

import grpc
import h11
from absl import logging

from ebgan_tf.serving.errors import ServingError, invalid
from ebgan_tf.serving.limits import content_length
from ebgan_tf.serving.request_limits import RequestLimits, flag

# A status's HTTP code (docs/hardening.md); anything else is a server error, 500.
HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 413,
    grpc.StatusCode.UNAVAILABLE: 503,
}


MAX_REQUEST_LINE_BYTES = 65536  # a longer request line is 414
MAX_HEAD_BYTES = 65536  # request line and headers; more (a long header line, many headers) is 431
MAX_HEADERS = 100  # header lines of one request; more is 431
_RECEIVE_BYTES = 1 << 20
_BLANK_LINE = re.compile(rb"\n\r?\n")


class Headers:
    """A request's headers as h11 parsed them (names in lower case): `get` and `get_all` by any-case name."""

    def __init__(self, pairs: list[tuple[bytes, bytes]]):
        self._pairs = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in pairs]

    def get_all(self, name: str) -> list[str]:
        return [value for key, value in self._pairs if key == name.lower()]

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self.get_all(name)
        return values[0] if values else default


class _Refused(Exception):
    """A request answered with an error before it reached a front end; its connection is closed."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _check_head(head: bytes, max_body_bytes: int) -> None:
    """The project's own rules on a request head (raw bytes, up to the blank line if it has arrived), before h11
    parses it: the request line's form and length, the number of headers (_Refused), no Transfer-Encoding and the
    Content-Length rules of ebgan_tf.serving.limits (ServingError), with messages that name the problem. h11 does
    the framing."""
    end = head.find(b"\n")
    line = head if end < 0 else head[:end].rstrip(b"\r")
    if len(line) > MAX_REQUEST_LINE_BYTES:
        raise _Refused(414, f"The request line is longer than {MAX_REQUEST_LINE_BYTES} bytes.")
    if end < 0:
        return
    if len(line.split()) != 3:
        raise _Refused(
            400, f"Malformed request line {line[:80]!r}: expected 'METHOD /path HTTP/1.1' (HTTP/0.9 is not supported)."
        )
    blank = _BLANK_LINE.search(head, end)
    if blank is None or blank.start() > MAX_HEAD_BYTES:
        if len(head) > MAX_HEAD_BYTES:
            raise _Refused(431, f"The request head is too long (over {MAX_HEAD_BYTES} bytes).")
        return
    lines = head[end + 1 : blank.start()].split(b"\n") if blank.start() > end else []
    if len(lines) > MAX_HEADERS:
        raise _Refused(431, f"The request has {len(lines)} headers; at most {MAX_HEADERS} are accepted.")
    fields = [(name.strip().lower(), value.strip()) for name, _, value in (item.partition(b":") for item in lines)]
    if any(name == b"transfer-encoding" for name, _ in fields):
        raise invalid("Transfer-Encoding is not accepted; send the body with a Content-Length.")
    lengths = [value.decode("latin-1") for name, value in fields if name == b"content-length"]
    if lengths:
        content_length(lengths, max_body_bytes)


class LimitedHandler(socketserver.BaseRequestHandler):
    """One connection: GET and POST requests framed by h11, each phase under the server's timeouts, answered by
    `handle_request` (which a front end defines; it reads `command`, `path`, `headers` and `read_body()`); an
    exception it raises is answered by `error_answer`, in JSON. A request whose declared body is not read ends its
    connection after the answer: the body is never taken for a request."""

    default_headers: Mapping[str, str] = {}  # sent with every answer, errors included
    server: LimitedHTTPServer

    def handle_request(self, post: bool) -> None:
        raise NotImplementedError

    def error_answer(self, error: Exception) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON body) of a request that raised `error`."""
        if isinstance(error, ServingError):
            return HTTP_STATUS.get(error.code, 500), {"error": error.message}
        return 500, {"error": f"{type(error).__name__}: {error}"}

    def setup(self) -> None:
        self.connection: socket.socket = self.request
        self.command, self.path, self.headers = "", "", Headers([])
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        self._deadline, self._phase = float("inf"), "headers"
        self._write_lock = threading.Lock()
        self.busy = self.abandoned = False
        self.server.track(self, True)

    def finish(self) -> None:
        self.server.track(self, False)

    def handle(self) -> None:
        limits = self.server.limits
        self._expect("headers", limits.header_timeout_seconds)  # a new connection's first request: from the accept
        try:
            while self._serve_one():
                self._h11.start_next_cycle()
                self._expect("idle", limits.idle_timeout_seconds)
        except _Refused as refused:
            self._fail(refused.status, {"error": refused.message})
        except ServingError as error:  # the head broke a rule of ebgan_tf.serving.limits
            self._fail(*self.error_answer(error))
        except TimeoutError:
            if self._phase in ("headers", "body"):
                seconds = limits.header_timeout_seconds if self._phase == "headers" else limits.body_timeout_seconds
                self._fail(408, {"error": f"The request {self._phase} did not arrive within {seconds:g} s."})
        except OSError:
            pass  # the client went away
        _drain_and_close(self.connection)

    # -- reading

    def _expect(self, phase: str, seconds: float) -> None:
        self._phase, self._deadline = phase, time.monotonic() + seconds

    def _receive(self) -> bytes:
        """The next bytes from the client (b"" at its end) within the current phase's deadline."""
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(self._phase)
        self.connection.settimeout(remaining)
        return self.connection.recv(_RECEIVE_BYTES)

    def _next_event(self, head: bytearray | None = None) -> Any:
        """h11's next event, receiving as needed; `head` collects the bytes of a request head for `_check_head`."""
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as error:
                raise _Refused(error.error_status_hint, _protocol_message(error)) from None
            if event is not h11.NEED_DATA:
                return event
            data = self._receive()
            if head is not None:
                if self._phase == "idle" and data:
                    self._expect("headers", self.server.limits.header_timeout_seconds)
                head += data[: MAX_HEAD_BYTES + 2 - len(head)]
                _check_head(bytes(head), self.server.limits.max_message_bytes)
            self._h11.receive_data(data)

    def _serve_one(self) -> bool:
        """Reads and answers one request; False when the connection is to be closed."""
        head = bytearray(self._h11.trailing_data[0][: MAX_HEAD_BYTES + 2])  # a pipelined request's first bytes
        if head:
            _check_head(bytes(head), self.server.limits.max_message_bytes)
        event = self._next_event(head)
        if not isinstance(event, h11.Request):
            return False  # the client closed the connection between requests
        self.command, self.path = event.method.decode("ascii"), event.target.decode("ascii")
        self.headers = Headers(list(event.headers))
        if self.command not in ("GET", "POST"):
            raise _Refused(405, f"Method {self.command} is not allowed; use GET or POST.")
        lengths = self.headers.get_all("Content-Length")
        self._length = int(lengths[0]) if lengths else None if self.command == "POST" else 0
        if self._length == 0:
            self._next_event()  # a request without a body: its end
        self._dispatch(post=self.command == "POST")
        return self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE

    def _request_ended(self) -> bool:
        """The whole request, body included, has been read."""
        return self._h11.their_state in (h11.DONE, h11.MUST_CLOSE)

    def read_body(self) -> bytes:
        """The request body under the length rules of ebgan_tf.serving.limits and the body timeout: INVALID_ARGUMENT
        for a missing Content-Length or a body cut short, RESOURCE_EXHAUSTED over the body limit (the head's checks
        refused the other malformed lengths)."""
        if self._length is None:
            content_length([], self.server.limits.max_message_bytes)
        if self._request_ended():
            return b""
        self._expect("body", self.server.limits.body_timeout_seconds)
        chunks: list[bytes] = []
        received = 0
        while True:
            try:
                event = self._next_event()
            except _Refused:
                raise invalid(
                    f"The request body ended after {received} of {self._length} bytes (Content-Length)."
                ) from None
            if isinstance(event, h11.EndOfMessage):
                return b"".join(chunks)
            chunks.append(bytes(event.data))
            received += len(event.data)

    # -- answering

    def _dispatch(self, post: bool) -> None:
        self.busy = True
        try:
            self.handle_request(post)
        except (TimeoutError, _Refused):
            raise  # answered by `handle`, which closes the connection
        except ConnectionError:
            pass  # the client went away mid-answer
        except Exception as error:  # pylint: disable=broad-except  (every failure is answered)
            status, body = self.error_answer(error)
            if status >= 500:
                logging.exception("HTTP request failed")
            self.send_json(status, body)
        finally:
            self.busy = False

    def _fail(self, status: int, body: Mapping[str, Any]) -> None:
        """An error answer that closes the connection (the rest of the request cannot be trusted), written directly
        (outside h11's cycle: it may come before a request was parsed); nothing if an answer was sent already."""
        with self._write_lock:
            if self.abandoned or self._h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
                return  # answered already
            self.abandoned = True
            try:
                self.connection.settimeout(self.server.limits.body_timeout_seconds)
                self.connection.sendall(_raw_answer(status, json.dumps(body).encode(), self.default_headers))
            except OSError:
                pass  # the client is gone

    def send_json(self, status: int, body: Mapping[str, Any]) -> None:
        self.send_answer(status, "application/json", json.dumps(body).encode())

    def send_answer(
        self, status: int, content_type: str, data: bytes, headers: Mapping[str, str] | None = None
    ) -> None:
        """One answer. A request whose declared body was not read ends its connection."""
        with self._write_lock:
            if self.abandoned or self._h11.our_state is not h11.SEND_RESPONSE:
                return
            fields = {
                "Content-Type": content_type,
                "Content-Length": str(len(data)),
                **self.default_headers,
                **(headers or {}),
            }
            if not self._request_ended() and self._length != 0:
                fields["Connection"] = "close"
            self.connection.settimeout(self.server.limits.body_timeout_seconds)
            self.connection.sendall(
                b"".join(
                    (
                        self._h11.send(
                            h11.Response(
                                status_code=status, headers=list(fields.items()), reason=http.HTTPStatus(status).phrase
                            )
                        ),
                        self._h11.send(h11.Data(data=data)),
                        self._h11.send(h11.EndOfMessage()),
                    )
                )
            )

    def abandon(self, status: int, message: str) -> None:
        """From another thread (shutdown): answers a request still being computed and closes its connection."""
        self._fail(status, {"error": message})
        close_quietly(self.connection)


def _protocol_message(error: h11.RemoteProtocolError) -> str:
    if error.error_status_hint == 431:
        return f"The request head is too long (over {MAX_HEAD_BYTES} bytes)."
    return f"Malformed HTTP/1.1 request: {error}."


def _raw_answer(status: int, body: bytes, headers: Mapping[str, str]) -> bytes:
    """A JSON answer that closes its connection, as bytes (for answers outside h11's request cycle)."""
    fields = {"Content-Type": "application/json", "Content-Length": str(len(body)), **headers, "Connection": "close"}
    head = f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n" + "".join(
        f"{key}: {value}\r\n" for key, value in fields.items()
    )
    return head.encode("latin-1") + b"\r\n" + body


def close_quietly(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _answer_and_close(sock: socket.socket, status: int, message: str) -> None:
    """A JSON error answer on a connection no handler serves, then the connection closed (on a thread of its own:
    the caller is the accept loop)."""
    try:
        sock.settimeout(1.0)
        sock.sendall(_raw_answer(status, json.dumps({"error": message}).encode(), {}))
    except OSError:
        pass
    threading.Thread(target=_drain_and_close, args=(sock,), name="http-close", daemon=True).start()


def _drain_and_close(sock: socket.socket, seconds: float = 1.0) -> None:
    """Ends our side, reads what the client still sends (for at most `seconds`), then closes: closing a socket
    with unread input would reset the connection, and the client could lose the answer it was sent."""
    deadline = time.monotonic() + seconds
    try:
        sock.shutdown(socket.SHUT_WR)
        while (remaining := deadline - time.monotonic()) > 0:
            sock.settimeout(remaining)
            if not sock.recv(65536):
                break
    except OSError:
        pass
    sock.close()


class LimitedHTTPServer(socketserver.ThreadingTCPServer):
    """An HTTP server with at most `limits.max_connections` connections open (more are answered 503 and
    closed), each on a thread; `abandon_busy` answers what is still being computed (shutdown)."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the listen backlog (socketserver's 5 would reorder a burst of connections)

    def __init__(self, address: tuple[str, int], handler: type[LimitedHandler], limits: RequestLimits):
        self.limits = limits
        self._slots = threading.BoundedSemaphore(limits.max_connections)
        self._handlers: set[LimitedHandler] = set()
        self._lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            _answer_and_close(
                request,
                503,
                f"Too many connections (at most {self.limits.max_connections}, "
                f"{flag('max_connections')}); retry later.",
            )
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
