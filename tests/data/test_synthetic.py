"""Synthetic face renderer (ebgan_tf/data/synthetic.py) and its tfds builder (synthetic_faces.py)."""

import dataclasses

import numpy as np
import pytest

from ebgan_tf import config
from ebgan_tf.data import masks, synthetic, synthetic_faces

SIZE = 64
SEEDS = (0, 1, 2)


def _mask(landmarks, region, size=SIZE):
    return masks.region_mask(landmarks, region, size).numpy()[..., 0] > 0


def _changed(a, b, threshold=0):
    return np.abs(a.astype(int) - b.astype(int)).max(-1) > threshold


def _with_style(params, **style):
    return dataclasses.replace(params, style={**params.style, **style})


def test_sample_face_labels_and_style():
    params = synthetic.sample_face(7)
    assert tuple(params.attributes) == config.CELEBA_ATTRIBUTES
    assert not any(
        params.attributes[name] for name in config.CELEBA_ATTRIBUTES if name not in synthetic.ATTRIBUTE_REGIONS
    )
    assert sum(params.attributes[name] for name in synthetic.HAIR_COLOURS) <= 1
    assert params.attributes["No_Beard"] == (not (params.attributes["Mustache"] or params.attributes["Goatee"]))
    assert set(params.style) == set(synthetic.STYLE_NAMES)
    assert synthetic.sample_face(7) == params


def test_attributes_are_balanced():
    faces = [synthetic.sample_face(seed) for seed in range(600)]
    for name in synthetic.RENDERED_ATTRIBUTES:
        share = np.mean([face.attributes[name] for face in faces])
        assert 0.15 <= share <= 0.6, (name, share)


@pytest.mark.slow
def test_render_is_deterministic_and_seeds_differ():
    first = synthetic.render_face(synthetic.sample_face(3), SIZE)
    again = synthetic.render_face(synthetic.sample_face(3), SIZE)
    other = synthetic.render_face(synthetic.sample_face(4), SIZE)
    assert first.image.dtype == np.uint8 and first.image.shape == (SIZE, SIZE, 3)
    assert first.landmarks.dtype == np.float32 and first.landmarks.shape == (5, 2)
    assert first.image.tobytes() == again.image.tobytes()
    np.testing.assert_array_equal(first.landmarks, again.landmarks)
    assert _changed(first.image, other.image, 30).sum() > 100


@pytest.mark.parametrize(
    "name",
    [
        name
        for name in synthetic.RENDERED_ATTRIBUTES
        if name not in synthetic.DERIVED_ATTRIBUTES + synthetic.HAIR_COLOURS
    ],
)
@pytest.mark.slow
def test_attribute_changes_pixels_only_inside_its_region(name):
    region = synthetic.ATTRIBUTE_REGIONS[name]
    for seed in SEEDS:
        params = synthetic.sample_face(seed)
        off = synthetic.render_face(synthetic.with_attributes(params, {name: False}), SIZE)
        on = synthetic.render_face(synthetic.with_attributes(params, {name: True}), SIZE)
        inside = _mask(off.landmarks, region) | _mask(on.landmarks, region)  # Smiling widens the mouth
        changed = _changed(off.image, on.image)
        assert not (changed & ~inside).any(), f"{name} changed pixels outside the {region} mask (seed {seed})"
        assert _changed(off.image, on.image, 20).sum() >= 4, f"{name} is hardly visible (seed {seed})"


def test_region_attributes_cover_the_config():
    for region, names in config.SYNTHETIC_REGION_ATTRIBUTES.items():
        assert all(synthetic.ATTRIBUTE_REGIONS[name] == region for name in names)
    assert all(synthetic.ATTRIBUTE_REGIONS[name] == "face" for name in ("Male", "Pale_Skin", "Rosy_Cheeks", "Bangs"))


@pytest.mark.parametrize("colour", synthetic.HAIR_COLOURS)
@pytest.mark.slow
def test_hair_colour_changes_only_hair_outside_the_face(colour):
    params = synthetic.sample_face(5)
    other = next(name for name in synthetic.HAIR_COLOURS if name != colour)
    with_colour = synthetic.render_face(synthetic.with_attributes(params, {colour: True}), SIZE)
    with_other = synthetic.render_face(synthetic.with_attributes(params, {other: True}), SIZE)
    changed = _changed(with_colour.image, with_other.image)
    assert not (changed & _mask(with_colour.landmarks, "face")).any()
    assert _changed(with_colour.image, with_other.image, 30).sum() > 200


def test_with_attributes_keeps_labels_consistent():
    params = synthetic.with_attributes(synthetic.sample_face(1), {"Blond_Hair": True, "Mustache": True})
    assert params.attributes["Blond_Hair"] and not params.attributes["Black_Hair"]
    assert not params.attributes["No_Beard"]
    shaved = synthetic.with_attributes(params, {"Mustache": False, "Goatee": False})
    assert shaved.attributes["No_Beard"]
    with pytest.raises(ValueError, match="derived"):
        synthetic.with_attributes(params, {"No_Beard": True})
    with pytest.raises(ValueError, match="Young"):
        synthetic.with_attributes(params, {"Young": True})
    with pytest.raises(ValueError, match="exclusive"):
        synthetic.with_attributes(params, {"Blond_Hair": True, "Gray_Hair": True})


@pytest.mark.slow
def test_landmarks_lie_on_the_drawn_parts():
    for seed in SEEDS:
        params = synthetic.with_attributes(synthetic.sample_face(seed), {"Eyeglasses": False, "Bangs": False})
        rendered = synthetic.render_face(params, 128)
        image = rendered.image.astype(int)

        def pixel(x, y, image=image):
            return image[int(y), int(x)]

        left_eye, right_eye, nose, left_mouth, right_mouth = rendered.landmarks
        forehead = (left_eye + right_eye) / 2 - [0.0, 0.75 * np.linalg.norm(right_eye - left_eye)]
        skin = pixel(*forehead)
        for eye in (left_eye, right_eye):  # iris and pupil are far darker than skin
            assert pixel(*eye).sum() < skin.sum() - 150
        for corner in (left_mouth, right_mouth):  # the lips' dark corners
            assert np.abs(pixel(*corner) - skin).sum() > 60
        assert np.abs(pixel(*nose) - skin).sum() > 15  # the shaded nose tip


def test_landmarks_follow_the_pose():
    params = synthetic.sample_face(2)
    base = synthetic.render_face(_with_style(params, pose_shift_x=0.0, pose_angle=0.0, pose_scale=1.0), SIZE)
    shifted = synthetic.render_face(_with_style(params, pose_shift_x=4 / SIZE, pose_angle=0.0, pose_scale=1.0), SIZE)
    np.testing.assert_allclose(shifted.landmarks, base.landmarks + [4.0, 0.0], atol=1e-4)
    np.testing.assert_array_equal(shifted.image[:, 8:], base.image[:, 4:-4])  # the drawing moved with them
    turned = synthetic.render_face(_with_style(params, pose_angle=3.0, pose_scale=1.05), SIZE).landmarks
    eye_line = turned[1] - turned[0]
    assert np.degrees(np.arctan2(eye_line[1], eye_line[0])) == pytest.approx(3.0, abs=1e-3)
    assert np.linalg.norm(eye_line) == pytest.approx(synthetic.INTEROCULAR * SIZE * 1.05, rel=1e-5)


@pytest.mark.parametrize("region", config.REGIONS)
@pytest.mark.slow
def test_swap_keeps_a_outside_its_region_and_takes_b_inside(region):
    face_a, face_b = synthetic.sample_face(10), synthetic.sample_face(11)
    original = synthetic.render_face(face_a, SIZE)
    swapped = synthetic.render_swap(face_a, face_b, region, SIZE)
    inside = _mask(original.landmarks, region)
    changed = _changed(original.image, swapped.image)
    assert not (changed & ~inside).any()
    assert _changed(original.image, swapped.image, 20)[inside].sum() >= 5
    itself = synthetic.render_swap(face_a, face_a, region, SIZE)
    assert itself.image.tobytes() == original.image.tobytes()


def test_swap_carries_style_factors_and_reports_drawn_landmarks():
    face_a = synthetic.with_attributes(synthetic.sample_face(12), {"Smiling": False})
    face_b = _with_style(
        face_a, lip_hue=1.0 - face_a.style["lip_hue"], mouth_width=0.9 if face_a.style["mouth_width"] < 0.84 else 0.78
    )
    original = synthetic.render_face(face_a, SIZE)
    swapped = synthetic.render_swap(face_a, face_b, "mouth", SIZE)
    assert _changed(original.image, swapped.image, 10).sum() >= 3  # same labels, other lips
    np.testing.assert_allclose(swapped.landmarks[:3], original.landmarks[:3])
    mouth = np.linalg.norm(swapped.landmarks[4] - swapped.landmarks[3]) / np.linalg.norm(
        swapped.landmarks[1] - swapped.landmarks[0]
    )
    assert mouth == pytest.approx(face_b.style["mouth_width"], rel=1e-4)


def test_swap_drop_equals_exemplar_without_the_attribute():
    face_a = synthetic.sample_face(20)
    face_b = synthetic.with_attributes(synthetic.sample_face(21), {"Mustache": True})
    dropped = synthetic.render_swap(face_a, face_b, "mouth", SIZE, drop=["Mustache"])
    shaved = synthetic.render_swap(face_a, synthetic.with_attributes(face_b, {"Mustache": False}), "mouth", SIZE)
    kept = synthetic.render_swap(face_a, face_b, "mouth", SIZE)
    assert dropped.image.tobytes() == shaved.image.tobytes()
    assert _changed(dropped.image, kept.image, 30).sum() >= 5
    with pytest.raises(ValueError, match="Eyeglasses"):
        synthetic.render_swap(face_a, face_b, "mouth", SIZE, drop=["Eyeglasses"])
    with pytest.raises(ValueError, match="valid regions"):
        synthetic.render_swap(face_a, face_b, "ears", SIZE)


# ------------------------------------------------------------------------------------------- tfds builder

SIZES = {"num_train": 8, "num_validation": 4, "num_test": 4}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    builder = synthetic_faces.prepare_synthetic_faces(data_dir, image_size=32, **SIZES)
    return data_dir, builder


def _examples(data_dir, split):
    dataset = synthetic_faces.load_synthetic_faces(data_dir, split, image_size=32, prepare=False, **SIZES)
    return list(dataset.as_numpy_iterator())


@pytest.mark.slow
def test_builder_schema(prepared):
    data_dir, builder = prepared
    assert builder.name == "synthetic_faces" and builder.builder_config.name == "32_8_4_4"
    examples = _examples(data_dir, "train")
    assert len(examples) == 8
    example = examples[0]
    assert example["image"].dtype == np.uint8 and example["image"].shape == (32, 32, 3)
    assert set(example["attributes"]) == set(config.CELEBA_ATTRIBUTES)
    assert all(isinstance(value, (bool, np.bool_)) for value in example["attributes"].values())
    assert set(example["landmarks"]) == set(synthetic_faces.LANDMARK_KEYS)
    assert all(np.asarray(value).dtype == np.int64 for value in example["landmarks"].values())
    assert set(example["style"]) == set(synthetic.STYLE_NAMES)
    assert np.asarray(example["seed"]).dtype == np.int64


@pytest.mark.slow
def test_builder_examples_rerender_from_their_seed(prepared):
    data_dir, _ = prepared
    for example in _examples(data_dir, "validation"):
        params = synthetic.sample_face(int(example["seed"]))
        rendered = synthetic.render_face(params, 32)
        np.testing.assert_array_equal(example["image"], rendered.image)
        assert example["attributes"] == params.attributes
        landmarks = [example["landmarks"][key] for key in synthetic_faces.LANDMARK_KEYS]
        np.testing.assert_array_equal(landmarks, np.round(rendered.landmarks).ravel())
        assert example["style"]["mouth_width"] == pytest.approx(params.style["mouth_width"])


@pytest.mark.slow
def test_builder_is_deterministic_and_splits_are_disjoint(prepared, tmp_path):
    data_dir, _ = prepared
    seeds = {
        split: [int(example["seed"]) for example in _examples(data_dir, split)]
        for split in ("train", "validation", "test")
    }
    assert [len(seeds[split]) for split in ("train", "validation", "test")] == [8, 4, 4]
    assert len(set().union(*map(set, seeds.values()))) == 16
    again = synthetic_faces.load_synthetic_faces(str(tmp_path), "test", image_size=32, **SIZES)
    first = _examples(data_dir, "test")
    for ours, theirs in zip(first, again.as_numpy_iterator()):
        assert ours["seed"] == theirs["seed"]
        np.testing.assert_array_equal(ours["image"], theirs["image"])


def test_builder_configs_encode_sizes_and_reject_bad_ones(tmp_path):
    assert synthetic_faces.synthetic_faces_config(64).name == "64"
    assert synthetic_faces.synthetic_faces_config(128).name == "128"
    assert synthetic_faces.synthetic_faces_config(64, num_train=100).name == "64_100_1000_1000"
    with pytest.raises(ValueError, match="num_test"):
        synthetic_faces.synthetic_faces_config(64, num_test=0)
    with pytest.raises(ValueError, match="image_size"):
        synthetic_faces.synthetic_faces_config(8)
    with pytest.raises(FileNotFoundError, match="prepare"):
        synthetic_faces.load_synthetic_faces(str(tmp_path / "missing"), "train", prepare=False)
