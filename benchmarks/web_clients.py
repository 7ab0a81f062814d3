"""Browser-like clients of the web editor, for the web benchmark: in a process of their own, as browsers are (the
load generator shares neither the server's interpreter lock nor its imports; this module needs the standard library
only).

    python -m benchmarks.web_clients PORT CLIENTS EDITS < request.json

Each of CLIENTS threads opens its own keep-alive connection and sends the edit request (POST /api/edit, the JSON
body read from stdin) EDITS times, one after another. Prints one JSON line: {"latencies": [seconds, ...],
"failures": n} (a failure: a status other than 200, or a connection error).
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time


class Page:
    """One browser-like client: a keep-alive HTTP connection to the editor."""

    def __init__(self, port: int):
        self._connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def post(self, path: str, body: bytes, content_type: str) -> tuple[int, bytes]:
        self._connection.request("POST", path, body, {"Content-Type": content_type})
        response = self._connection.getresponse()
        return response.status, response.read()

    def upload(self, photo: bytes, field: str) -> str:
        status, body = self.post(f"/api/images?field={field}", photo, "image/png")
        if status != 200:
            raise RuntimeError(f"upload failed: {status} {body[:200]!r}")
        return json.loads(body)["image"]

    def edit(self, request: bytes) -> int:
        return self.post("/api/edit", request, "application/json")[0]

    def close(self) -> None:
        self._connection.close()


def run_clients(port: int, clients: int, edits: int, request: bytes) -> tuple[list[float], int]:
    """(latency of every edit in seconds, failed edits) of `clients` concurrent clients sending `edits` each."""
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()

    def client() -> None:
        mine, failed = [], 0
        page = Page(port)
        for _ in range(edits):
            started = time.perf_counter()
            try:
                failed += page.edit(request) != 200
            except OSError:
                failed += 1
            mine.append(time.perf_counter() - started)
        page.close()
        with lock:
            latencies.extend(mine)
            failures[0] += failed

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, failures[0]


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    port, clients, edits = (int(value) for value in argv[1:])
    latencies, failures = run_clients(port, clients, edits, sys.stdin.buffer.read())
    print(json.dumps({"latencies": latencies, "failures": failures}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
