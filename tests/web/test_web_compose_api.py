"""The web editor's composed edit over HTTP (POST /api/compose): each part filled from its own face at its own
strength in one edit_composed call and pasted back into the full-size photo, results kept for the next edit, every
bad request answered 400 (404 for a forgotten photo) with the part it concerns, an export without edit_composed, and
the same pixels through gRPC."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from ebgan_tf import faces
from ebgan_tf.data import masks
from ebgan_tf.editing import Editor
from ebgan_tf.serving.server import ModelServer
from ebgan_tf.serving.server_config import ModelSource, ServerOptions
from ebgan_tf.serving.web.app import MAX_PARTS, WebApp, WebServer
from ebgan_tf.serving.web.inputs import gallery_face
from ebgan_tf.serving.web.models import ModelSet
from tests.helpers.photo_assets import allowed_to_change, seam_band
from tests.web.test_web_api import call, error_of, mask_url, request, upload

SIZE = 32


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@pytest.fixture(scope="module")
def uploaded(compose_web, photos) -> dict[str, str]:
    """Image ids on the composing editor: the astronaut (source), a second photo and built-in face 4."""
    return {
        "source": upload(compose_web.url, photos["astronaut"])["image"],
        "second": upload(compose_web.url, photos["second"], "exemplar")["image"],
        "built_in": json.loads(call(compose_web.url, "/api/gallery/3", b"")[2])["image"],
    }


def test_a_composed_edit_fills_each_part_from_its_face_in_the_full_size_photo(
    compose_web, composing_path, uploaded, photos, composed, monkeypatch
):
    monkeypatch.setattr(faces, "detect_faces", lambda image: pytest.fail("an edit ran detection again"))
    parts = [
        {"region": "eyes", "exemplar": {"image": uploaded["built_in"]}, "strength": 0.5, "drop": ["Mustache"]},
        {"region": "mouth", "exemplar": {"image": uploaded["second"], "face": 0}},
    ]
    status, headers, body = request(
        compose_web.url, "/api/compose", {"source": {"image": uploaded["source"]}, "parts": parts}
    )
    assert (status, headers["Content-Type"]) == (200, "image/png"), body
    assert int(headers["X-Edit-Milliseconds"]) >= 0 and headers["X-Image"]
    result, original = pixels(body), compose_web.app.store.get(uploaded["source"], "source").pixels
    assert result.shape == original.shape == (320, 400, 3)  # the full photo, not the model's crop
    # The same edit made here from the library's pieces: the alignments, the model's edit_composed, the paste-back.
    editor, store = Editor.load(composing_path), compose_web.app.store

    def align(image):
        return faces.align_face(image.pixels, image.faces[0].landmarks, editor.info.landmark_template, SIZE)

    crop = align(store.get(uploaded["source"], "source"))
    exemplars = [align(gallery_face(3)).image, align(store.get(uploaded["second"], "exemplar")).image]
    part_masks = np.stack([masks.region_mask(crop.landmarks, region, SIZE).numpy() for region in ("eyes", "mouth")])
    mustache_off = editor.info.attributes_from(drop=["Mustache"])
    edited = editor.edit_composed(crop.image, np.stack(exemplars), part_masks, [0.5, 1.0], [mustache_off, None])
    np.testing.assert_array_equal(result, faces.paste_back(original, edited, part_masks.max(axis=0), crop))
    sent = composed[-1]
    assert sent["strengths"] == [0.5, 1.0]
    np.testing.assert_array_equal(sent["attributes"][0], mustache_off)
    assert sent["attributes"][1] is None
    np.testing.assert_array_equal(np.stack(sent["exemplars"]), np.stack(exemplars))
    # Each part changed the photo where it lies; outside the parts and their seam it is the source, bit for bit.
    difference = np.abs(result.astype(int) - original).max(axis=-1)
    regions = [
        allowed_to_change(original.shape[:2], crop.matrix, mask[..., 0] > 0.5, seam_band(crop)) for mask in part_masks
    ]
    assert all(difference[region].max() > 30 for region in regions)
    assert not difference[~(regions[0] | regions[1])].any()


def test_a_result_is_kept_and_the_next_edit_starts_from_it(compose_web, uploaded, composed):
    def compose(source: str, region: str) -> tuple[np.ndarray, str]:
        status, headers, body = request(
            compose_web.url,
            "/api/compose",
            {"source": {"image": source}, "parts": [{"region": region, "exemplar": {"image": uploaded["second"]}}]},
        )
        assert status == 200, body
        return pixels(body), headers["X-Image"]

    first, kept = compose(uploaded["source"], "mouth")
    np.testing.assert_array_equal(compose_web.app.store.get(kept, "source").pixels, first)
    second, _ = compose(kept, "eyes")  # on top of the first result
    crop = composed[-1]["crop"]
    eyes = allowed_to_change(first.shape[:2], crop.matrix, composed[-1]["masks"][0], seam_band(crop))
    difference = np.abs(second.astype(int) - first).max(axis=-1)
    assert difference[eyes].max() > 30 and not difference[~eyes].any()  # the mouth edit stays
    status, headers, body = request(
        compose_web.url,
        "/api/edit",
        {"source": {"image": kept}, "exemplar": {"image": uploaded["second"]}, "region": "nose"},
    )
    assert status == 200 and headers["X-Image"] not in ("", kept)  # single edits are kept too
    np.testing.assert_array_equal(compose_web.app.store.get(headers["X-Image"], "source").pixels, pixels(body))


def test_a_painted_part_is_used_as_painted_and_each_face_is_aligned_once(compose_web, uploaded, composed, monkeypatch):
    aligned = []
    original = faces.face_crop
    monkeypatch.setattr(
        faces, "face_crop", lambda image, *args, **kwargs: aligned.append(args[3]) or original(image, *args, **kwargs)
    )
    painted = np.zeros([SIZE, SIZE], bool)
    painted[3:9, 5:20] = True
    status, _, body = request(
        compose_web.url,
        "/api/compose",
        {
            "source": {"image": uploaded["source"]},
            "parts": [
                {"mask": mask_url(painted), "exemplar": {"image": uploaded["second"]}, "strength": 0},
                {"region": "mouth", "exemplar": {"image": uploaded["second"], "face": 0}, "strength": 1},
                {"region": "nose", "exemplar": {"image": uploaded["built_in"]}, "strength": 0.25},
            ],
        },
    )
    assert status == 200, body
    assert aligned == ["source", "exemplar", "exemplar"]  # three faces: the second photo once for its two parts
    np.testing.assert_array_equal(composed[-1]["masks"][0], painted)
    assert composed[-1]["strengths"] == [0.0, 1.0, 0.25]


SECOND = "<the second photo's id>"
PART = {"region": "eyes", "exemplar": {"image": SECOND}}


@pytest.mark.parametrize(
    "change, status, field, kind, words",
    [
        (dict(parts=[{**PART, "region": "chin"}]), 400, "part-1", "invalid", "Part 1: Unknown region(s) 'chin'"),
        (dict(parts=[PART, {**PART, "region": "ears"}]), 400, "part-2", "invalid", "Part 2: Unknown region(s) 'ears'"),
        (dict(parts=[{"exemplar": {"image": SECOND}}]), 400, "part-1", "invalid", "Pick a region or paint a mask"),
        (dict(parts=[{**PART, "strength": 1.5}]), 400, "part-1", "invalid", "strength must be a number from 0"),
        (dict(parts=[{**PART, "strength": -0.1}]), 400, "part-1", "invalid", "got -0.1"),
        (dict(parts=[{**PART, "strength": "0.5"}]), 400, "part-1", "invalid", 'got "0.5"'),
        (dict(parts=[{**PART, "strength": True}]), 400, "part-1", "invalid", "got true"),
        (dict(parts=[{**PART, "strength": None}]), 400, "part-1", "invalid", "got null"),
        (dict(parts=[{**PART, "strength": float("nan")}]), 400, "part-1", "invalid", "got NaN"),
        (dict(parts=[{"region": "eyes"}]), 400, "part-1", "missing", "Part 1: Choose the face it comes from"),
        (dict(parts=[{**PART, "exemplar": {"image": "forgotten"}}]), 404, "part-1", "gone", "no longer on the server"),
        (
            dict(parts=[{**PART, "exemplar": {"image": SECOND, "face": 3}}]),
            400,
            "part-1",
            "invalid",
            "Face 3 does not exist",
        ),
        (
            dict(parts=[{"mask": mask_url(np.zeros([SIZE, SIZE])), "exemplar": {"image": SECOND}}]),
            400,
            "part-1",
            "empty_mask",
            "The mask is empty",
        ),
        (dict(parts=[{**PART, "drop": ["Beard"]}]), 400, "part-1", "invalid", "Beard"),
        (dict(parts=[{**PART, "drop": "Mustache"}]), 400, "part-1", "invalid", "drop must be a list"),
        (dict(parts=["eyes"]), 400, "part-1", "invalid", "A part must be an object"),
        (dict(parts=[PART] * (MAX_PARTS + 1)), 400, "parts", "too_many_parts", f"Too many parts: {MAX_PARTS + 1}"),
        (dict(parts=[]), 400, "parts", "invalid", "at least one part"),
        (dict(parts="eyes"), 400, "parts", "invalid", "at least one part"),
        (dict(source=None), 400, "source", "missing", "Add a source photo first"),
        (dict(model="ebgan"), 400, "model", "no_composed", "Export the model again"),
        (dict(model="nope"), 404, "model", "invalid", "No model named 'nope'"),
    ],
)
def test_bad_compose_requests_get_their_status_and_words_and_the_server_keeps_serving(
    compose_web, uploaded, change, status, field, kind, words
):
    body = json.loads(
        json.dumps({"source": {"image": uploaded["source"]}, "parts": [PART], **change}).replace(
            json.dumps(SECOND), json.dumps(uploaded["second"])
        )
    )
    answer = error_of(call(compose_web.url, "/api/compose", body))
    assert answer[0] == status and (answer[1]["field"], answer[1]["kind"]) == (field, kind), answer
    assert words in answer[1]["error"], answer
    fine = call(
        compose_web.url,
        "/api/compose",
        {"source": {"image": uploaded["source"]}, "parts": [{**PART, "exemplar": {"image": uploaded["second"]}}]},
    )
    assert fine[:2] == (200, "image/png")


def test_models_say_whether_they_compose(compose_web):
    described = json.loads(call(compose_web.url, "/api/models")[2])
    assert {model["name"]: model["composes"] for model in described["models"]} == {"parts": True, "ebgan": False}
    assert described["max_parts"] == MAX_PARTS and described["default"] == "parts"


def test_composed_edits_through_a_grpc_model_server_equal_in_process_ones(
    compose_web, composing_path, model_paths, uploaded
):
    sources = tuple(
        ModelSource(name, path.rsplit("/", 1)[0])
        for name, path in (("parts", composing_path), ("ebgan", model_paths["ebgan"]))
    )
    server = ModelServer(
        ServerOptions(models=sources, host="127.0.0.1", port=0, file_system_poll_wait_seconds=0)
    ).start()
    remote = WebServer(
        WebApp(ModelSet.remote(f"127.0.0.1:{server.port}", ["parts", "ebgan"], 30.0)), "127.0.0.1", 0
    ).start()
    try:
        keys = {name: remote.app.store.add(compose_web.app.store.get(key, "source")) for name, key in uploaded.items()}
        parts = lambda ids: [  # noqa: E731
            {"region": "eyes", "exemplar": {"image": ids["built_in"]}, "strength": 0.4, "drop": ["Smiling"]},
            {"region": "mouth", "exemplar": {"image": ids["second"]}, "strength": 0.9},
        ]
        status, _, over_grpc = call(
            remote.url, "/api/compose", {"source": {"image": keys["source"]}, "parts": parts(keys)}
        )
        _, _, in_process = call(
            compose_web.url, "/api/compose", {"source": {"image": uploaded["source"]}, "parts": parts(uploaded)}
        )
        assert status == 200, over_grpc
        np.testing.assert_array_equal(pixels(over_grpc), pixels(in_process))
        described = json.loads(call(remote.url, "/api/models")[2])["models"]
        assert {model["name"]: model["composes"] for model in described} == {"parts": True, "ebgan": False}
        status, answer = error_of(
            call(
                remote.url,
                "/api/compose",
                {"model": "ebgan", "source": {"image": keys["source"]}, "parts": parts(keys)},
            )
        )
        assert (status, answer["kind"]) == (400, "no_composed") and "Export the model again" in answer["error"]
    finally:
        remote.stop()
        server.stop()
