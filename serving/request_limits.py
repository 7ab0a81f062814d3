"""What one request may ask of a server (`RequestLimits`), and the command-line flags that set it.

Each limit has one flag, named as its field (`flag`), in every command that has it; error messages name the flag
through `flag`. The HTTP limits (`HTTP_LIMITS`) are the same flags with the same help in ebgan-serve (its REST API)
and ebgan-web: a command defines them with `define_http_limit_flags` and reads them with `http_limits_from_flags`.
This module imports no TensorFlow (a command defines its flags before it loads anything); the checks against the
limits are in ebgan_tf.serving.limits.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from absl import flags


@dataclasses.dataclass(frozen=True)
class RequestLimits:
    """What one request may ask of the server (every front end, batching on or off)."""

    max_batch_rows: int = 64  # rows (dimension 0) of one request
    max_message_bytes: int = 64 * 1024 * 1024  # a gRPC message in or out, or an HTTP request body
    header_timeout_seconds: float = 10.0  # HTTP: request line and headers must arrive within this
    body_timeout_seconds: float = 30.0  # HTTP: the body must arrive, and the answer be taken, within this
    idle_timeout_seconds: float = 60.0  # HTTP: a kept-alive connection without a new request is closed
    max_connections: int = 64  # HTTP connections open at once; more are answered 503 and closed
    grpc_message_timeout_seconds: float = 30.0  # gRPC: a call's request message must arrive within this
    grpc_max_concurrent_streams: int = 100  # gRPC: calls open at once on one connection (HTTP/2 setting)
    grpc_max_pending_messages: int = 64  # gRPC: calls waiting for their message; over it the oldest is ended

    def __post_init__(self):
        for field in dataclasses.fields(self):
            if not getattr(self, field.name) > 0:
                raise ValueError(f"{field.name} must be positive, got {getattr(self, field.name)}.")


_FIELDS = frozenset(field.name for field in dataclasses.fields(RequestLimits))

# The limits of the shared HTTP layer (ebgan_tf.serving.http_base), each with its flag's help.
HTTP_LIMITS = {
    "max_message_bytes": "Largest HTTP request body accepted (and, in ebgan-serve, gRPC message received or sent); "
    "a larger one is refused unread: HTTP 413 (gRPC RESOURCE_EXHAUSTED). ebgan-web's default "
    "takes a 40-megapixel camera JPEG (--max_pixels).",
    "header_timeout_seconds": "HTTP: seconds for a request's first line and headers to arrive (else 408 and the "
    "connection is closed).",
    "body_timeout_seconds": "HTTP: seconds for a request's body to arrive, and for the client to take each answer "
    "(else 408 and the connection is closed).",
    "idle_timeout_seconds": "HTTP: seconds a kept-alive connection may wait for its next request (then it is closed).",
    "max_connections": "HTTP connections open at once; more are answered 503 and closed.",
}


def flag(field: str) -> str:
    """The command-line flag that sets the RequestLimits field `field`, as error messages and help texts name it."""
    if field not in _FIELDS:
        raise KeyError(f"RequestLimits has no field {field!r}.")
    return f"--{field}"


def define_http_limit_flags(defaults: RequestLimits = RequestLimits()) -> None:
    """Defines the flags of HTTP_LIMITS, with their defaults from `defaults` (a command's own). The calling command
    makes them its key flags (shown by --help): `flags.adopt_module_key_flags(request_limits)`."""
    for field, help_text in HTTP_LIMITS.items():
        default = getattr(defaults, field)
        if isinstance(getattr(RequestLimits(), field), float):
            flags.DEFINE_float(field, float(default), help_text, lower_bound=0.001)
        else:
            flags.DEFINE_integer(field, default, help_text, lower_bound=1)


def http_limits_from_flags(limits: RequestLimits = RequestLimits()) -> RequestLimits:
    """`limits` with the HTTP limits the flags of define_http_limit_flags set (after the command line is parsed)."""
    values: dict[str, Any] = {field: flags.FLAGS[field].value for field in HTTP_LIMITS}
    return dataclasses.replace(limits, **values)
