"""Tests of ebgan-edit (serving/edit.py) on photos: any size, format and mode in; same size and format out; every
bad input a clear error with exit status 1 and no output file. `--part`: a composed edit, a part per exemplar file,
on aligned crops and on photos (each exemplar photo detected once), and its errors."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from ebgan_tf import faces, images
from ebgan_tf.cli import run_in_process
from ebgan_tf.data import masks, synthetic
from ebgan_tf.editing import Editor
from ebgan_tf.serving import edit
from tests.helpers.photo_assets import ASTRONAUT, TINY_SIZE, allowed_to_change, export_tiny_model, paste_face, seam_band

EXIF_ORIENTATION = 0x0112


def ebgan_edit(*argv: str) -> int:
    return run_in_process(edit.main, edit.define_flags, ["ebgan-edit", *argv])


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    return export_tiny_model(str(tmp_path_factory.mktemp("exports")), variant="att_ebgan")


@pytest.fixture(scope="module")
def editor(model) -> Editor:
    return Editor.load(model)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """The astronaut, cut to 320 x 400 around her face (smaller photos detect faster)."""
    return images.load_image(ASTRONAUT)[0:320, 40:440]


@pytest.fixture()
def files(tmp_path, photo) -> dict[str, str]:
    paths = {
        "png": str(tmp_path / "photo.png"),
        "jpg": str(tmp_path / "photo.jpg"),
        "exemplar": str(tmp_path / "exemplar.png"),
    }
    images.save_image(paths["png"], photo)
    images.save_image(paths["jpg"], photo)
    images.save_image(paths["exemplar"], np.ascontiguousarray(photo[:, ::-1]))
    return paths


@pytest.mark.parametrize("extension, image_format", [("png", "PNG"), ("jpg", "JPEG")])
@pytest.mark.slow
def test_edits_a_photo_into_the_same_size_and_format(model, editor, files, photo, capsys, extension, image_format):
    source = files[extension]
    assert (
        ebgan_edit(
            f"--model={model}",
            f"--source={source}",
            f"--exemplar={files['exemplar']}",
            "--region=mouth",
            "--drop=Mustache",
        )
        == 0
    )
    output = source.replace(f".{extension}", f"_edited.{extension}")
    assert f"Wrote {output}" in capsys.readouterr().out
    with Image.open(output) as written:
        assert written.format == image_format and written.size == (photo.shape[1], photo.shape[0])
    result, original = images.load_image(output).astype(int), images.load_image(source).astype(int)
    crop = faces.face_crop(images.load_image(source), editor.info)
    region = masks.region_mask(crop.landmarks, "mouth", TINY_SIZE).numpy()[..., 0] > 0
    outside = ~allowed_to_change(photo.shape[:2], crop.matrix, region, seam_band(crop))
    assert np.abs(result - original)[~outside].max() > 30  # the mouth was edited
    if image_format == "PNG":
        np.testing.assert_array_equal(result[outside], original[outside])
    else:  # re-encoded at quality 95
        assert np.abs(result - original)[outside].mean() < 1.5


@pytest.mark.slow
def test_a_mask_image_in_photo_coordinates(model, editor, files, photo, tmp_path):
    mask = np.zeros(photo.shape[:2], np.uint8)
    mask[130:150, 170:190] = 255  # around the nose
    images.save_image(tmp_path / "mask.png", mask)
    out = tmp_path / "out.png"
    assert (
        ebgan_edit(
            f"--model={model}",
            f"--source={files['png']}",
            f"--exemplar={files['exemplar']}",
            f"--mask={tmp_path / 'mask.png'}",
            f"--output={out}",
        )
        == 0
    )
    changed = np.any(images.load_image(out) != photo, axis=-1)
    rows, cols = np.nonzero(changed)
    crop = faces.face_crop(photo, editor.info)
    band = seam_band(crop) + 1 / np.sqrt(np.linalg.det(crop.matrix[:, :2]))  # + one model pixel (nearest warps)
    assert changed[140, 180] and rows.min() >= 130 - band and rows.max() < 150 + band
    assert cols.min() >= 170 - band and cols.max() < 190 + band and changed.sum() < (20 + 2 * band) ** 2


@pytest.mark.slow
def test_an_aligned_source_with_a_photo_exemplar(model, editor, files, tmp_path):
    source = synthetic.render_face(synthetic.sample_face(3), TINY_SIZE).image
    images.save_image(tmp_path / "aligned.png", source)
    out = tmp_path / "out.png"
    assert (
        ebgan_edit(
            f"--model={model}",
            f"--source={tmp_path / 'aligned.png'}",
            f"--exemplar={files['png']}",
            "--region=mouth",
            f"--output={out}",
        )
        == 0
    )
    exemplar = faces.face_crop(images.load_image(files["png"]), editor.info).image
    expected = editor.edit(
        source, exemplar, masks.region_mask(editor.info.landmark_template, "mouth", TINY_SIZE).numpy()
    )
    np.testing.assert_array_equal(images.load_image(out), expected)


def test_list_faces_prints_every_face_largest_first_without_a_model(tmp_path, capsys):
    big, small = paste_face(1, 64, 2.4, 0.0, (220, 220)), paste_face(4, 64, 1.6, 0.0, (220, 220))
    images.save_image(tmp_path / "group.png", np.concatenate([small.image, big.image], axis=1))
    assert ebgan_edit(f"--source={tmp_path / 'group.png'}", "--list_faces") == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "440x220 pixels, 2 face(s), largest first" in lines[0]
    assert lines[1].startswith("  [0] box x=") and lines[2].startswith("  [1] box x=")
    assert int(lines[1].split("x=")[1].split()[0]) > 220 > int(lines[2].split("x=")[1].split()[0])


@pytest.mark.parametrize("mode", ["RGBA", "LA", "L", "P", "I;16", "exif"])
@pytest.mark.slow
def test_photos_in_any_mode_and_orientation_are_read(photo, tmp_path, capsys, mode):
    path = str(tmp_path / ("photo.jpg" if mode == "exif" else "photo.png"))
    if mode == "exif":  # stored rotated, with the EXIF tag that turns it upright
        exif = Image.Exif()
        exif[EXIF_ORIENTATION] = 6  # display = stored image rotated 90 degrees clockwise
        Image.fromarray(photo).transpose(Image.Transpose.ROTATE_90).save(path, exif=exif, quality=95)
    elif mode == "I;16":
        gray = np.asarray(Image.fromarray(photo).convert("L"), np.uint16) * 257
        Image.fromarray(gray).save(path)
    else:
        Image.fromarray(photo).convert(mode).save(path)
    assert ebgan_edit(f"--source={path}", "--list_faces") == 0
    printed = capsys.readouterr().out
    assert "400x320 pixels, 1 face(s)" in printed
    x = int(printed.split("box x=")[1].split()[0])
    assert abs(x - (182 - 40)) < 8  # the face where it is in the upright photo


def _huge_png(path: str) -> None:
    """A small file whose header declares 9000 x 8000 pixels (more than images.MAX_PIXELS)."""
    Image.new("1", (9000, 8000)).save(path)


@pytest.mark.parametrize(
    "case, message",
    [
        ("no_face", "flat.png: no face found"),
        ("face_index", "face index 4 is out of range: 1 face(s) found"),
        ("exemplar_face_index", "exemplar.png: face index 2 is out of range"),
        ("missing", "missing.png: no such file"),
        ("corrupt", "not an image file"),
        ("huge", "image is too large (9000x8000 pixels"),
        ("region", "Unknown region(s) 'chin'; valid regions: mouth"),
        ("attribute", "Unknown attribute(s) 'Beard'; valid attributes: Mustache"),
        ("mask_size", "mask image is 100x100 (height x width); it must have the source photo's size 320x400"),
        ("align_none", "without alignment it must be the model's size 32x32"),
        ("no_model", "Model not found: "),
    ],
)
@pytest.mark.slow
def test_bad_input_is_a_clear_error_and_writes_nothing(model, files, tmp_path, capsys, case, message):
    source, exemplar, out = files["png"], files["exemplar"], str(tmp_path / "out.png")
    extra = ["--region=mouth"]
    if case == "no_face":
        source = str(tmp_path / "flat.png")
        images.save_image(source, np.full([200, 300, 3], 128, np.uint8))
    elif case == "missing":
        source = str(tmp_path / "missing.png")
    elif case == "corrupt":
        source = str(tmp_path / "corrupt.png")
        with open(source, "wb") as handle:
            handle.write(os.urandom(2000))
    elif case == "huge":
        source = str(tmp_path / "huge.png")
        _huge_png(source)
    mask = tmp_path / "mask.png"
    images.save_image(mask, np.full([100, 100], 255, np.uint8))
    extra = {
        "face_index": extra + ["--face_index=4"],
        "exemplar_face_index": extra + ["--exemplar_face_index=2"],
        "region": ["--region=mouth,chin"],
        "attribute": extra + ["--drop=Beard"],
        "mask_size": [f"--mask={mask}"],
        "align_none": extra + ["--align=none"],
    }.get(case, extra)
    model_flag = [f"--model={tmp_path / 'missing'}" if case == "no_model" else f"--model={model}"]
    status = ebgan_edit(*model_flag, f"--source={source}", f"--exemplar={exemplar}", f"--output={out}", *extra)
    captured = capsys.readouterr()
    assert status == 1
    assert captured.err.startswith("ebgan-edit: error: ") and message in captured.err
    assert "Traceback" not in captured.err
    assert not os.path.exists(out)


def test_default_output_keeps_the_source_format():
    assert edit.default_output("/a/b/me.jpg") == "/a/b/me_edited.jpg"
    assert edit.default_output("photo.PNG") == "photo_edited.PNG"
    assert edit.default_output("noextension") == "noextension_edited.png"


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
    assert (
        ebgan_edit(
            f"--model={model}",
            f"--source={crops['a']}",
            f"--part=eyes:{crops['b']}:0.7",
            f"--part=mouth:{crops['c']}",
            "--drop=Mustache",
            f"--output={out}",
        )
        == 0
    )
    assert f"Wrote {out}" in capsys.readouterr().out
    template = editor.info.landmark_template
    drop = editor.info.attributes_from(drop=["Mustache"])
    expected = editor.edit_composed(
        images.load_image(crops["a"]),
        np.stack([images.load_image(crops["b"]), images.load_image(crops["c"])]),
        np.stack([masks.region_mask(template, region, TINY_SIZE).numpy() for region in ("eyes", "mouth")]),
        [0.7, 1.0],
        [drop, drop],
    )
    np.testing.assert_array_equal(images.load_image(out), expected)


@pytest.mark.slow
def test_parts_on_a_photo_detect_each_exemplar_once_and_change_only_the_parts(
    model, editor, photo, tmp_path, monkeypatch
):
    source, exemplar, out = (str(tmp_path / name) for name in ("photo.png", "exemplar.png", "out.png"))
    images.save_image(source, photo)
    images.save_image(exemplar, np.ascontiguousarray(photo[:, ::-1]))
    detected = []
    detect = faces.detect_faces
    monkeypatch.setattr(faces, "detect_faces", lambda image: detected.append(image.shape) or detect(image))
    assert (
        ebgan_edit(
            f"--model={model}",
            f"--source={source}",
            f"--part=eyes:{exemplar}:0.5",
            f"--part=mouth:{exemplar}",
            f"--output={out}",
        )
        == 0
    )
    assert len(detected) == 2  # the source and the one exemplar file, not once per part
    result = images.load_image(out)
    assert result.shape == photo.shape
    crop = faces.face_crop(photo, editor.info)
    region = masks.region_mask(crop.landmarks, ["eyes", "mouth"], TINY_SIZE).numpy()[..., 0] > 0
    outside = ~allowed_to_change(photo.shape[:2], crop.matrix, region, seam_band(crop))
    np.testing.assert_array_equal(result[outside], photo[outside])
    assert np.abs(result.astype(int) - photo)[~outside].max() > 0


@pytest.mark.parametrize(
    "parts, extra, message",
    [
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
    ],
)
def test_bad_parts_are_clear_errors_and_write_nothing(model, crops, tmp_path, capsys, parts, extra, message):
    out = str(tmp_path / "out.png")
    values = {"b": crops["b"], "missing": str(tmp_path / "missing.png")}
    status = ebgan_edit(
        f"--model={model}",
        f"--source={crops['a']}",
        *[f"--part={part.format(**values)}" for part in parts],
        *extra,
        f"--output={out}",
    )
    captured = capsys.readouterr()
    assert status == 1
    assert captured.err.startswith("ebgan-edit: error: ") and message in captured.err, captured.err
    assert "Traceback" not in captured.err
    assert not os.path.exists(out)
