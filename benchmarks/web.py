"""Benchmark: the web editor (`ebgan-web`) as a browser uses it, over HTTP on loopback.

Detection on upload of a 1024 px photo (POST /api/images: decode + MTCNN), and the edit request after both uploads
(POST /api/edit with the painted mask as the page sends it: align both faces, edit, paste back, encode the PNG),
p50 / p95, with the model in-process and behind `ebgan-serve` over gRPC (its own process). Then 8 concurrent
browser-like clients (each its own connection, edit after edit): failures and p95 against 5x the single-client p50.
The edit clients run in a process of their own (benchmarks/web_clients.py), as browsers do.
Model: the contract fixture (tests/helpers/contract_model.py, att_ebgan, 64 px). Photo: the scikit-image astronaut
scaled to 1024 x 1024. Run alone with `python -m benchmarks.web`.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

from benchmarks.results import target_row
from benchmarks.serving import REPO, _ServerProcess
from benchmarks.web_clients import Page
from ebgan_tf import images
from ebgan_tf.serving.web.app import WebApp, WebServer
from ebgan_tf.serving.web.models import ModelSet
from tests.helpers.contract_model import export_contract_model
from tests.helpers.photo_assets import ASTRONAUT

IMAGE_SIZE = 64
PHOTO_SIDE = 1024
UPLOADS = 8
EDITS = 40
CLIENTS = 8
EDITS_PER_CLIENT = 10
WARMUP = 3


def _percentiles(seconds: list[float]) -> tuple[float, float]:
    p50, p95 = np.percentile(np.asarray(seconds) * 1000.0, [50, 95])
    return float(p50), float(p95)


def _timed(call, count: int) -> list[float]:
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - started)
    return latencies


def _clients(port: int, clients: int, edits: int, request: bytes) -> tuple[list[float], int]:
    """(latencies in seconds, failures) of `clients` browser-like clients in a process of their own."""
    answer = subprocess.run(
        [sys.executable, "-m", "benchmarks.web_clients", str(port), str(clients), str(edits)],
        input=request,
        capture_output=True,
        check=True,
        cwd=REPO,
    )
    measured = json.loads(answer.stdout)
    return measured["latencies"], measured["failures"]


def _edit_request(page: Page, photo: bytes, exemplar: bytes, app: WebApp) -> bytes:
    """The page's edit request: both photos uploaded, the mouth preset as a painted mask PNG, Mustache off."""
    source, other = page.upload(photo, "source"), page.upload(exemplar, "exemplar")
    crop = app.crop({"image": source, "face": 0})
    return json.dumps(
        {
            "source": {"image": source, "face": 0},
            "exemplar": {"image": other, "face": 0},
            "mask": crop["masks"]["mouth"],
            "drop": ["Mustache"],
        }
    ).encode()


def _measure_editor(name: str, models: ModelSet, photo: bytes, exemplar: bytes, rows: list) -> float:
    """Rows for one editor (in-process or gRPC); returns the single-client edit p50 in ms."""
    server = WebServer(WebApp(models), "127.0.0.1", 0).start()
    try:
        page = Page(server.port)
        request = _edit_request(page, photo, exemplar, server.app)
        if name == "in-process":
            p50, p95 = _percentiles(_timed(lambda: page.upload(photo, "source"), UPLOADS))
            rows.append(
                (f"web detection on upload of a {PHOTO_SIDE} px photo: p50 / p95", f"{p50:.0f} ms / {p95:.0f} ms")
            )
            rows.append(target_row("web detection on upload p50", p50 / 1000, 1.0, " s", at_most=True))
        page.close()
        _clients(server.port, 1, WARMUP, request)
        latencies, _ = _clients(server.port, 1, EDITS, request)
        single_p50, p95 = _percentiles(latencies)
        rows.append((f"web edit request after both uploads, {name}: p50 / p95", f"{single_p50:.0f} ms / {p95:.0f} ms"))
        rows.append(target_row(f"web edit request p50, {name}", single_p50, 300, " ms", at_most=True))
        latencies, failures = _clients(server.port, CLIENTS, EDITS_PER_CLIENT, request)
        p50, p95 = _percentiles(latencies)
        rows.append((f"web {CLIENTS} concurrent clients, {name}: failed requests", f"{failures} of {len(latencies)}"))
        rows.append((f"web {CLIENTS} concurrent clients, {name}: p50 / p95", f"{p50:.0f} ms / {p95:.0f} ms"))
        rows.append(
            target_row(f"web {CLIENTS} clients p95 / single-client p50, {name}", p95 / single_p50, 5, "x", at_most=True)
        )
        return single_p50
    finally:
        server.stop()


def run() -> list[tuple[str, str]]:
    """Measures and prints (measure, value) rows."""
    astronaut = Image.fromarray(images.load_image(ASTRONAUT)).resize((PHOTO_SIDE, PHOTO_SIDE), Image.Resampling.BICUBIC)
    buffers = [io.BytesIO(), io.BytesIO()]
    astronaut.save(buffers[0], format="PNG")
    astronaut.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(buffers[1], format="PNG")
    photo, exemplar = (buffer.getvalue() for buffer in buffers)
    rows = [
        (
            "web benchmark set-up",
            f"contract model (att_ebgan, {IMAGE_SIZE} px); astronaut at {PHOTO_SIDE} px as "
            "source, mirrored as exemplar; HTTP on loopback, keep-alive connections",
        )
    ]
    with tempfile.TemporaryDirectory() as base:
        path = export_contract_model(base, "ebgan", 1, IMAGE_SIZE)
        in_process = _measure_editor("in-process", ModelSet.load([path]), photo, exemplar, rows)
        with _ServerProcess(os.path.join(base, "ebgan"), batching=False) as address:
            over_grpc = _measure_editor(
                "gRPC to ebgan-serve", ModelSet.remote(address, ["ebgan"], 60.0), photo, exemplar, rows
            )
    rows.append(("web edit request p50 gRPC / in-process", f"{over_grpc / in_process:.2f}"))
    for measure, value in rows:
        print(f"{measure}: {value}")
    return rows


if __name__ == "__main__":
    run()
