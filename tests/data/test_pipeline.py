"""Tests of the tf.data pipeline (ebgan_tf/data/pipeline.py) on small in-memory examples in the shared schema."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from ebgan_tf.data import masks, pipeline
from tests.helpers.examples import make_examples

ATTRIBUTES = ("Smiling", "Mustache", "Eyeglasses")


def batches(examples: tf.data.Dataset, count: int, **kwargs) -> list[dict[str, np.ndarray]]:
    options = dict(image_size=32, regions=("mouth",), attribute_names=ATTRIBUTES, batch_size=8, seed=1)
    options.update(kwargs)
    dataset = pipeline.make_dataset(examples, **options)
    return [{key: value.numpy() for key, value in batch.items()} for batch in dataset.take(count)]


@pytest.mark.slow
def test_batch_shapes_dtypes_and_ranges():
    batch = batches(make_examples(20), 1)[0]
    assert {key: value.shape for key, value in batch.items()} == {
        "source": (8, 32, 32, 3),
        "exemplar": (8, 32, 32, 3),
        "mask": (8, 32, 32, 1),
        "source_attributes": (8, 3),
        "exemplar_attributes": (8, 3),
        "source_landmarks": (8, 5, 2),
        "exemplar_landmarks": (8, 5, 2),
        "exemplar_mask": (8, 32, 32, 1),
        "mask_region": (8,),
    }
    assert all(value.dtype == np.float32 for key, value in batch.items() if key != "mask_region")
    assert batch["mask_region"].dtype == np.int32 and set(batch["mask_region"]) == {0}  # the one region, mouth
    for key in ("source", "exemplar"):
        assert batch[key].min() >= -1.0 and batch[key].max() <= 1.0
        assert batch[key].min() < -0.5 and batch[key].max() > 0.5  # the full range is used, not [0, 1]
    assert set(np.unique(batch["mask"])) == {0.0, 1.0}
    assert set(np.unique(batch["source_attributes"])) <= {0.0, 1.0}


def test_regions_are_drawn_in_proportion_to_their_weights():
    regions = ("mouth", "eyes", "nose")
    drawn = np.concatenate(
        [batch["mask_region"] for batch in batches(make_examples(16), 40, regions=regions, region_weights=(1, 0, 3))]
    )
    assert set(drawn) <= {0, 2}  # a weight of 0: never drawn
    assert 0.68 < np.mean(drawn == 2) < 0.82  # 3 / 4 of 320 draws (the standard deviation is 0.024)
    uniform = np.concatenate([batch["mask_region"] for batch in batches(make_examples(16), 40, regions=regions)])
    assert all(0.26 < np.mean(uniform == k) < 0.41 for k in range(3))


@pytest.mark.parametrize(
    "weights, message",
    [
        ((1, 3), "one weight per region: 2 for the 3 regions mouth,eyes,nose"),
        ((1, -1, 3), "not negative"),
        ((0, 0, 0), "one above 0"),
        ((1, float("nan"), 3), "must be finite"),
    ],
)
def test_bad_region_weights_are_refused(weights, message):
    with pytest.raises(ValueError, match=message):
        batches(make_examples(8), 1, regions=("mouth", "eyes", "nose"), region_weights=weights)


def test_attributes_follow_the_example():
    examples = make_examples(8)
    batch = batches(examples, 1, training=False, same_exemplar_share=0.0)[0]
    expected = np.array([[example["attributes"][name].numpy() for name in ATTRIBUTES] for example in examples])
    np.testing.assert_array_equal(batch["source_attributes"], expected.astype(np.float32))


def test_no_attributes():
    batch = batches(make_examples(8), 1, attribute_names=())[0]
    assert batch["source_attributes"].shape == batch["exemplar_attributes"].shape == (8, 0)


@pytest.mark.slow
def test_drop_remainder_and_no_repeat():
    result = batches(make_examples(20), 10, training=False, repeat=False)
    assert len(result) == 2 and all(batch["source"].shape[0] == 8 for batch in result)


def row_ids(images: np.ndarray) -> np.ndarray:
    """Index stored in each image's top-left pixel (see make_examples), back from [-1, 1]."""
    return np.round((images[:, 0, 0, 0] + 1.0) * 127.5).astype(int)


def test_pairing_exemplars_are_rows_of_the_batch_and_attributes_follow():
    same_rows = total_rows = 0
    for batch in batches(make_examples(64), 40, batch_size=16, same_exemplar_share=0.25, image_size=64):
        sources, exemplars = row_ids(batch["source"]), row_ids(batch["exemplar"])
        assert set(exemplars) <= set(sources)
        for i, exemplar_id in enumerate(exemplars):
            j = list(sources).index(exemplar_id)
            np.testing.assert_array_equal(batch["exemplar"][i], batch["source"][j])
            np.testing.assert_array_equal(batch["exemplar_attributes"][i], batch["source_attributes"][j])
        same_rows += int(np.sum(sources == exemplars))
        total_rows += len(sources)
    assert 0.15 < same_rows / total_rows < 0.35  # 640 rows at share 0.25


def test_exemplar_mask_is_the_rows_region_and_jitter_on_the_exemplars_landmarks():
    regions = ("mouth", "eyes")
    for training in (True, False):
        batch = batches(
            make_examples(16),
            1,
            batch_size=16,
            image_size=64,
            regions=regions,
            training=training,
            same_exemplar_share=0.3,
            part_layouts=True,
        )[0]
        for i in range(16):
            j = list(row_ids(batch["source"])).index(row_ids(batch["exemplar"])[i])
            np.testing.assert_array_equal(batch["exemplar_landmarks"][i], batch["source_landmarks"][j])
            np.testing.assert_array_equal(batch["exemplar_layout"][i], batch["source_layout"][j])
            # The row's own mask is one of the regions, drawn with some scale and shift; the exemplar's is the
            # same drawing on the exemplar's landmarks: recover the drawing by searching the exact candidates.
            if not training:
                candidates = [masks.region_mask(batch["source_landmarks"][i], region, 64).numpy() for region in regions]
                k = next(k for k, mask in enumerate(candidates) if np.array_equal(mask, batch["mask"][i]))
                assert batch["mask_region"][i] == k  # the row's region, as the trainer's face_adv reads it
                expected = masks.region_mask(batch["exemplar_landmarks"][i], regions[k], 64).numpy()
                np.testing.assert_array_equal(batch["exemplar_mask"][i], expected)
            if row_ids(batch["exemplar"])[i] == row_ids(batch["source"])[i]:  # B = A: the same mask
                np.testing.assert_array_equal(batch["exemplar_mask"][i], batch["mask"][i])
            assert batch["exemplar_mask"][i].sum() > 0
            # A jittered drawing has the source mask's area up to the two faces' size difference.
            ratio = batch["exemplar_mask"][i].sum() / batch["mask"][i].sum()
            assert 0.5 < ratio < 2.0


def test_part_layouts_only_when_asked_and_one_hot():
    plain = batches(make_examples(8), 1)[0]
    assert "source_layout" not in plain and "exemplar_layout" not in plain
    batch = batches(make_examples(8), 1, part_layouts=True)[0]
    assert batch["source_layout"].shape == (8, 32, 32, len(masks.CODE_PARTS))
    np.testing.assert_array_equal(batch["source_layout"].sum(axis=-1), 1.0)


@pytest.mark.slow
def test_pairing_without_same_share_never_pairs_a_row_with_itself():
    for batch in batches(make_examples(32), 5, same_exemplar_share=0.0, image_size=64):
        assert np.all(row_ids(batch["source"]) != row_ids(batch["exemplar"]))


@pytest.mark.slow
def test_deterministic_mode_repeats_exactly():
    examples = make_examples(24)
    first = batches(examples, 3, deterministic=True, seed=None, regions=("mouth", "eyes"))
    second = batches(examples, 3, deterministic=True, seed=None, regions=("mouth", "eyes"))
    for a, b in zip(first, second):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    other = batches(examples, 3, deterministic=True, seed=5, regions=("mouth", "eyes"))
    assert any(not np.array_equal(a["source"], b["source"]) for a, b in zip(first, other))


@pytest.mark.slow
def test_masks_match_the_source_landmarks():
    batch = batches(make_examples(16), 1, training=False, regions=("mouth",))[0]
    for mask, landmarks in zip(batch["mask"], batch["source_landmarks"]):
        np.testing.assert_array_equal(mask, masks.region_mask(landmarks, "mouth", 32).numpy())


@pytest.mark.slow
def test_training_jitters_masks_and_samples_every_region():
    batch = batches(make_examples(16), 1, training=True, regions=("mouth", "eyes"), batch_size=16)[0]
    exact = {
        region: [masks.region_mask(lm, region, 32).numpy() for lm in batch["source_landmarks"]]
        for region in ("mouth", "eyes")
    }
    jittered = [not any(np.array_equal(mask, exact[r][i]) for r in exact) for i, mask in enumerate(batch["mask"])]
    assert sum(jittered) >= 12
    mouth_y = batch["source_landmarks"][:, 3, 1]
    eye_y = batch["source_landmarks"][:, 0, 1]
    centre_y = np.array([np.mean(np.nonzero(mask[..., 0])[0]) + 0.5 for mask in batch["mask"]])
    chose_mouth = np.abs(centre_y - mouth_y) < np.abs(centre_y - eye_y)
    assert 0 < chose_mouth.sum() < 16


def test_crop_and_resize_transforms_landmarks():
    image = np.zeros((40, 30, 3), np.uint8)
    image[20:24, 10:14] = 255  # a white square with centre (12, 22) (x, y)
    landmarks = tf.constant([[12.0, 22.0]] * 5)
    resized, moved = pipeline.crop_and_resize(tf.constant(image), landmarks, 20, crop=(10, 5, 20, 20))
    resized = resized.numpy()
    assert resized.shape == (20, 20, 3) and resized.dtype == np.uint8
    np.testing.assert_allclose(moved.numpy()[0], [7.0, 12.0])  # (12 - 5, 22 - 10), scale 1
    resized, moved = pipeline.crop_and_resize(tf.constant(image), landmarks, 10, crop=(10, 5, 20, 20))
    np.testing.assert_allclose(moved.numpy()[0], [3.5, 6.0])
    ys, xs = np.nonzero(resized.numpy()[..., 0] > 100)
    np.testing.assert_allclose([xs.mean() + 0.5, ys.mean() + 0.5], [3.5, 6.0], atol=0.5)


@pytest.mark.slow
def test_crop_in_the_pipeline_and_encoded_images():
    examples = make_examples(8, height=80, width=64, encoded=True)
    plain = make_examples(8, height=80, width=64)
    crop = (8, 0, 64, 64)
    batch = batches(examples, 1, training=False, crop=crop, image_size=32, same_exemplar_share=0.0)[0]
    first = next(iter(plain))
    expected, moved = pipeline.crop_and_resize(first["image"], pipeline.example_landmarks(first["landmarks"]), 32, crop)
    np.testing.assert_allclose(batch["source"][0], (expected.numpy() / 127.5 - 1.0), atol=1e-6)
    np.testing.assert_allclose(batch["source_landmarks"][0], moved.numpy())
    raw_x = first["landmarks"]["nose_x"].numpy()
    np.testing.assert_allclose(batch["source_landmarks"][0, 2, 0], raw_x / 2)


def test_bad_arguments():
    examples = make_examples(4)
    with pytest.raises(ValueError, match="valid attributes"):
        pipeline.make_dataset(examples, image_size=32, regions=("mouth",), attribute_names=("Nope",), batch_size=2)
    with pytest.raises(ValueError, match="valid regions"):
        pipeline.make_dataset(examples, image_size=32, regions=("chin",), attribute_names=(), batch_size=2)
    with pytest.raises(ValueError, match="valid datasets: synthetic_faces, celeb_a"):
        pipeline.load_examples("mnist", "/tmp", "train", 64)
    with pytest.raises(FileNotFoundError, match="ebgan-data prepare"):
        pipeline.load_examples("synthetic_faces", "/nonexistent/data", "train", 64)


def test_splits_follow_the_paper_protocol():
    assert pipeline.TRAIN_SPLIT == {"synthetic_faces": "train", "celeb_a": "train+validation"}
    assert pipeline.EVAL_SPLIT == {"synthetic_faces": "test", "celeb_a": "test"}
