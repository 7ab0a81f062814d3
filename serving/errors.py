"""The one error type of the server and the client: a gRPC status code and a message."""

from __future__ import annotations

import grpc


class ServingError(Exception):
    """A failed request or call with its gRPC status code (NOT_FOUND, INVALID_ARGUMENT, UNAVAILABLE, ...)."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


def not_found(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.NOT_FOUND, message)


def invalid(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def status_code(number: int) -> grpc.StatusCode | None:
    """The gRPC status code of a status number (TensorFlow's error codes are gRPC's); None if there is none."""
    return next((code for code in grpc.StatusCode if code.value[0] == number), None)
