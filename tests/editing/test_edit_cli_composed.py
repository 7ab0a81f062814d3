"""Tests of `ebgan-edit --part` (serving/edit.py): a composed edit, a part per exemplar file, on aligned crops and
on photos (each exemplar photo detected once), and its errors."""

from __future__ import annotations

import os

import numpy as np
import pytest

from ebgan_tf import faces, images
from ebgan_tf.cli import run_in_process
from ebgan_tf.data import masks, synthetic
from ebgan_tf.editing import Editor
from ebgan_tf.serving import edit
from tests.helpers.photo_assets import ASTRONAUT, TINY_SIZE, allowed_to_change, export_tiny_model, seam_band


def ebgan_edit(*argv: str) -> int:
    return run_in_process(edit.main, edit.define_flags, ["ebgan-edit", *argv])


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    return export_tiny_model(str(tmp_path_factory.mktemp("exports")), variant="att_ebgan")


@pytest.fixture(scope="module")
def editor(model) -> Editor:
    return Editor.load(model)


@pytest.fixture()
def crops(tmp_path) -> dict[str, str]:
    """Aligned synthetic faces at the model's size: a.png (source), b.png, c.png."""
    paths = {}
    for index, name in enumerate("abc"):
        paths[name] = str(tmp_path / f"{name}.png")
        images.save_image(paths[name], synthetic.render_face(synthetic.sample_face(60 + index), TINY_SIZE).image)
    return paths


def test_parts_of_aligned_crops_are_one_composed_edit(model, editor, crops, tmp_path, capsys):
    out = str(tmp_path / "out.png")
    assert ebgan_edit(f"--model={model}", f"--source={crops['a']}", f"--part=eyes:{crops['b']}:0.7",
                      f"--part=mouth:{crops['c']}", "--drop=Mustache", f"--output={out}") == 0
    assert f"Wrote {out}" in capsys.readouterr().out
    template = editor.info.landmark_template
    drop = editor.info.transfer_vector(drop=["Mustache"])
    expected = editor.edit_composed(
        images.load_image(crops["a"]), np.stack([images.load_image(crops["b"]), images.load_image(crops["c"])]),
        np.stack([masks.region_mask(template, region, TINY_SIZE).numpy() for region in ("eyes", "mouth")]),
        [0.7, 1.0], [drop, drop])
    np.testing.assert_array_equal(images.load_image(out), expected)


@pytest.mark.slow
def test_parts_on_a_photo_detect_each_exemplar_once_and_change_only_the_parts(model, editor, tmp_path,
                                                                                monkeypatch):
    photo = images.load_image(ASTRONAUT)[0:320, 40:440]
    source, exemplar, out = (str(tmp_path / name) for name in ("photo.png", "exemplar.png", "out.png"))
    images.save_image(source, photo)
    images.save_image(exemplar, np.ascontiguousarray(photo[:, ::-1]))
    detected = []
    detect = faces.detect_faces
    monkeypatch.setattr(faces, "detect_faces", lambda image: detected.append(image.shape) or detect(image))
    assert ebgan_edit(f"--model={model}", f"--source={source}", f"--part=eyes:{exemplar}:0.5",
                      f"--part=mouth:{exemplar}", f"--output={out}") == 0
    assert len(detected) == 2  # the source and the one exemplar file, not once per part
    result = images.load_image(out)
    assert result.shape == photo.shape
    crop = faces.face_crop(photo, editor.info)
    region = masks.region_mask(crop.landmarks, ["eyes", "mouth"], TINY_SIZE).numpy()[..., 0] > 0
    outside = ~allowed_to_change(photo.shape[:2], crop.matrix, region, seam_band(crop))
    np.testing.assert_array_equal(result[outside], photo[outside])
    assert np.abs(result.astype(int) - photo)[~outside].max() > 0


@pytest.mark.parametrize("parts, extra, message", [
    (["lips:{b}"], [], "Unknown region(s) 'lips'; valid regions: mouth"),
    (["eyes:{missing}"], [], "exemplar file not found: "),
    (["eyes:{b}:1.5"], [], "strength must be in [0, 1]"),
    (["eyes:{b}:-0.2"], [], "strength must be in [0, 1]"),
    (["eyes:{b}:nan"], [], "strength must be in [0, 1]"),
    (["eyes:{b}:lots"], [], "the strength 'lots' is not a number"),
    (["eyes"], [], "give region:exemplar file[:strength]"),
    ([":{b}"], [], "give region:exemplar file[:strength]"),
    (["eyes,mouth:{b}"], [], "one region per part"),
    (["eyes:{b}"], ["--region=mouth"], "Give --part (one per region, each with its exemplar) or --exemplar"),
    (["eyes:{b}"], ["--drop=Beard"], "Unknown attribute(s) 'Beard'"),
])
def test_bad_parts_are_clear_errors_and_write_nothing(model, crops, tmp_path, capsys, parts, extra, message):
    out = str(tmp_path / "out.png")
    values = {"b": crops["b"], "missing": str(tmp_path / "missing.png")}
    status = ebgan_edit(f"--model={model}", f"--source={crops['a']}",
                        *[f"--part={part.format(**values)}" for part in parts], *extra, f"--output={out}")
    captured = capsys.readouterr()
    assert status == 1
    assert captured.err.startswith("ebgan-edit: error: ") and message in captured.err, captured.err
    assert "Traceback" not in captured.err
    assert not os.path.exists(out)
