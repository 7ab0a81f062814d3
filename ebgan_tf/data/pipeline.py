"""The tf.data input pipeline: examples in the shared schema -> training batches (source, exemplar, mask, ...).

`load_examples` reads a data set (synthetic faces or CelebA) from disk; `make_dataset` turns any data set of
examples in the schema into GLOBAL batches in the batch schema of docs/data.md (tf.distribute splits them across
replicas):

  source, exemplar        float32 [B, S, S, 3] in [-1, 1]
  mask                    float32 [B, S, S, 1] in {0, 1}  (region of the source's landmarks)
  exemplar_mask           float32 [B, S, S, 1] in {0, 1}  (the same region and jitter on the exemplar's landmarks)
  source_attributes, exemplar_attributes   float32 [B, n] in {0, 1}
  source_landmarks, exemplar_landmarks     float32 [B, 5, 2] (x, y) after crop and resize
  source_layout, exemplar_layout           float32 [B, S, S, P] one-hot part maps (only with `part_layouts`)
"""

from __future__ import annotations

import functools
import glob
import os
from collections.abc import Sequence

import tensorflow as tf

from ebgan_tf import images
from ebgan_tf.config import (
    LANDMARK_NAMES,
    PRESETS,
    Preset,
    validate_attribute_names,
    validate_region_weights,
    validate_regions,
)
from ebgan_tf.data import masks

DATASETS: tuple[str, ...] = ("synthetic_faces", "celeb_a")
# Paper protocol: CelebA trains on train + validation and evaluates on test.
TRAIN_SPLIT: dict[str, str] = {"synthetic_faces": "train", "celeb_a": "train+validation"}
EVAL_SPLIT: dict[str, str] = {"synthetic_faces": "test", "celeb_a": "test"}

DETERMINISTIC_SEED = 0  # the seed of deterministic mode when none is given


def validate_dataset(dataset: str) -> str:
    """Returns `dataset` if known, else raises a ValueError listing the valid names."""
    if dataset not in DATASETS:
        raise ValueError(f"Unknown dataset {dataset!r}; valid datasets: {', '.join(DATASETS)}.")
    return dataset


def dataset_preset(dataset: str) -> Preset:
    """The preset that trains on `dataset` (its image size and region attributes); ValueError if unknown."""
    return next(preset for preset in PRESETS.values() if preset.dataset == validate_dataset(dataset))


def default_crop(dataset: str) -> tuple[int, int, int, int] | None:
    """(top, left, height, width) crop a data set's images need before resizing (CelebA's centre crop), or None."""
    if validate_dataset(dataset) == "celeb_a":
        from ebgan_tf.data import celeba  # pylint: disable=import-outside-toplevel

        return celeba.CROP
    return None


def load_examples(dataset: str, data_dir: str, split: str, image_size: int) -> tf.data.Dataset:
    """Examples of `split` in the shared schema, read from `data_dir` (prepared with `ebgan-data prepare`).

    Synthetic faces are rendered at `image_size`; CelebA images come at 178x218 (crop with `default_crop`).
    """
    validate_dataset(dataset)
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(
            f"Data directory {data_dir!r} does not exist; create it with "
            f"`ebgan-data prepare --dataset={dataset} --data_dir={data_dir}`."
        )
    if dataset == "synthetic_faces":
        return _load_synthetic_faces(data_dir, split, image_size)
    from ebgan_tf.data import celeba  # pylint: disable=import-outside-toplevel

    return celeba.load_examples(data_dir, split)


def _load_synthetic_faces(data_dir: str, split: str, image_size: int) -> tf.data.Dataset:
    """The standard synthetic_faces config of `image_size`, else the one prepared with custom split sizes."""
    from ebgan_tf.data import synthetic_faces  # pylint: disable=import-outside-toplevel

    try:
        return synthetic_faces.load_synthetic_faces(data_dir, split, image_size=image_size, prepare=False)
    except FileNotFoundError:
        pass
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

    info_files = glob.glob(os.path.join(glob.escape(data_dir), "synthetic_faces", "*", "*", "dataset_info.json"))
    builders = [tfds.builder_from_directory(os.path.dirname(path)) for path in sorted(info_files)]
    builders = [
        builder for builder in builders if tuple(builder.info.features["image"].shape[:2]) == (image_size, image_size)
    ]
    if not builders:
        raise FileNotFoundError(
            f"No synthetic_faces data set at {image_size} px in {data_dir!r}; create it with `ebgan-data prepare "
            f"--dataset=synthetic_faces --data_dir={data_dir} --image_size={image_size}`."
        )
    if len(builders) > 1:
        names = ", ".join(builder.builder_config.name for builder in builders)
        raise ValueError(
            f"Several synthetic_faces data sets at {image_size} px in {data_dir!r} (configs {names}); "
            "keep one, or give each its own data directory."
        )
    return builders[0].as_dataset(split=split, shuffle_files=False)


def example_landmarks(landmarks: dict[str, tf.Tensor]) -> tf.Tensor:
    """The schema's landmark dict -> float32 [5, 2] (x, y) in `LANDMARK_NAMES` order."""
    return tf.cast(
        tf.stack([tf.stack([landmarks[f"{name}_x"], landmarks[f"{name}_y"]]) for name in LANDMARK_NAMES]), tf.float32
    )


def crop_and_resize(
    image: tf.Tensor,
    landmarks: tf.Tensor,
    image_size: int,
    crop: Sequence[int] | None = None,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Crops uint8 [H, W, 3] to (top, left, height, width), resizes to image_size (bilinear, antialiased, rounded
    back to uint8) and maps landmarks [5, 2] the same way: x' = (x - left) * S / width, y' = (y - top) * S / height.
    """
    if crop is not None:
        top, left, height, width = crop
        image = image[top : top + height, left : left + width]
        landmarks = landmarks - tf.constant([left, top], tf.float32)
    if tuple(image.shape[:2]) == (image_size, image_size):  # already the right size: nothing to resample
        return image, landmarks
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    factors = tf.cast(tf.stack([image_size / width, image_size / height]), tf.float32)
    resized = tf.image.resize(image, [image_size, image_size], method="bilinear", antialias=True)
    resized = tf.cast(tf.round(tf.clip_by_value(resized, 0.0, 255.0)), tf.uint8)
    return resized, landmarks * factors


def _check_example_spec(spec: dict, attribute_names: Sequence[str]) -> None:
    for key in ("image", "attributes", "landmarks"):
        if key not in spec:
            raise ValueError(f"Examples lack the key {key!r}; the schema needs image, attributes and landmarks.")
    validate_attribute_names(attribute_names, tuple(spec["attributes"]))
    missing = [
        f"{name}_{axis}" for name in LANDMARK_NAMES for axis in "xy" if f"{name}_{axis}" not in spec["landmarks"]
    ]
    if missing:
        raise ValueError(f"Examples lack the landmark(s) {', '.join(missing)}.")


def _region_mask_fn(regions: Sequence[str], image_size: int):
    """(landmarks, region index, scale, shift) -> the mask of `regions[index]` on `landmarks` (scaled and shifted:
    see `masks.region_mask`)."""

    def mask_fn(landmarks: tf.Tensor, index: tf.Tensor, scale: tf.Tensor, shift: tf.Tensor) -> tf.Tensor:
        return tf.switch_case(
            index,
            [functools.partial(masks.region_mask, landmarks, region, image_size, scale, shift) for region in regions],
        )

    return mask_fn


def _draw_mask(
    seed: tf.Tensor, num_regions: int, jitter: bool, region_weights: Sequence[float] | None = None
) -> dict[str, tf.Tensor]:
    """How one example's mask is drawn: a region index uniform over `num_regions` (or in proportion to
    `region_weights`), and the jitter (none unless `jitter`). Kept so that the exemplar's own mask can be drawn alike
    on its landmarks."""
    choice_seed, jitter_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    scale, shift = masks.random_jitter(jitter_seed) if jitter else (tf.constant(1.0), tf.zeros([2]))
    if region_weights is None:
        region = tf.random.stateless_uniform([], choice_seed, 0, num_regions, dtype=tf.int32)
    else:
        logits = tf.math.log(tf.constant([region_weights], tf.float32))
        region = tf.cast(tf.random.stateless_categorical(logits, 1, choice_seed)[0, 0], tf.int32)
    return {
        "mask_region": region,
        "mask_scale": scale,
        "mask_shift": shift,
    }


def _pair(batch: dict[str, tf.Tensor], seed: tf.Tensor, same_exemplar_share: float, mask_fn) -> dict[str, tf.Tensor]:
    """Adds the exemplar of each row: the next row in a random cyclic order (never itself), except that a share
    `same_exemplar_share` of rows use B = A. Exemplar attributes, landmarks and part layout follow the exemplar;
    `exemplar_mask` is the row's region with the row's jitter drawn on the exemplar's own landmarks."""
    order_seed, same_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    size = tf.shape(batch["source"])[0]
    order = tf.argsort(tf.random.stateless_uniform([size], order_seed))
    successor = tf.scatter_nd(order[:, None], tf.roll(order, -1, axis=0), [size])
    same = tf.random.stateless_uniform([size], same_seed) < same_exemplar_share
    exemplar_index = tf.where(same, tf.range(size), successor)
    scale, shift = batch.pop("mask_scale"), batch.pop("mask_shift")  # the row's region stays: the trainer reads it
    exemplar_landmarks = tf.gather(batch["source_landmarks"], exemplar_index)
    paired = {
        **batch,
        "exemplar": tf.gather(batch["source"], exemplar_index),
        "exemplar_attributes": tf.gather(batch["source_attributes"], exemplar_index),
        "exemplar_landmarks": exemplar_landmarks,
        "exemplar_mask": tf.map_fn(
            lambda row: mask_fn(*row),
            (exemplar_landmarks, batch["mask_region"], scale, shift),
            fn_output_signature=tf.float32,
        ),
    }
    if "source_layout" in batch:
        paired["exemplar_layout"] = tf.gather(batch["source_layout"], exemplar_index)
    return paired


def make_dataset(
    examples: tf.data.Dataset,
    *,
    image_size: int,
    regions: Sequence[str],
    attribute_names: Sequence[str],
    batch_size: int,
    region_weights: Sequence[float] | None = None,
    crop: Sequence[int] | None = None,
    training: bool = True,
    same_exemplar_share: float = 0.1,
    mask_jitter: bool = True,
    shuffle_buffer: int = 1000,
    seed: int | None = None,
    deterministic: bool = False,
    repeat: bool = True,
    part_layouts: bool = False,
) -> tf.data.Dataset:
    """Training (or evaluation) batches (docs/data.md, "The batch schema") from examples in the shared schema.

    Args:
      examples: a data set of examples (image uint8 [H, W, 3] or encoded bytes, attributes, landmarks).
      image_size: output size S.
      regions: mask regions; each example draws one, uniformly unless `region_weights` (a composite name such as
        "components" is one choice).
      attribute_names: attributes of the model, in order (see `Preset.attributes_for`).
      batch_size: the GLOBAL batch size; the last partial batch is dropped.
      region_weights: one weight per region: each example draws a region in proportion to them (None: uniformly).
      crop: (top, left, height, width) applied before resizing, e.g. `default_crop(dataset)`.
      training: shuffle the examples and jitter the masks (if `mask_jitter`); otherwise keep order and exact masks.
      same_exemplar_share: share of rows whose exemplar is the source itself (B = A).
      shuffle_buffer: examples in the shuffle buffer (training only).
      seed: seed of every random choice; None = fresh randomness each run (unless `deterministic`).
      deterministic: fixed seed (`seed` or 0) and a deterministic element order, for tests and parity checks.
      repeat: repeat the examples forever.
      part_layouts: add `source_layout` and `exemplar_layout`, each face's part map (`masks.part_layout`), for
        models with per-part exemplar codes.
    """
    validate_regions(regions)
    if not regions:
        raise ValueError("No region given.")
    if region_weights is not None:
        region_weights = validate_region_weights(region_weights, regions)
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}.")
    if not 0.0 <= same_exemplar_share <= 1.0:
        raise ValueError(f"same_exemplar_share must be in [0, 1], got {same_exemplar_share}.")
    _check_example_spec(examples.element_spec, attribute_names)
    if deterministic and seed is None:
        seed = DETERMINISTIC_SEED
    encoded = examples.element_spec["image"].dtype == tf.string
    mask_fn = _region_mask_fn(list(regions), image_size)

    def prepare(example: dict, random_seed: tf.Tensor) -> dict[str, tf.Tensor]:
        image = example["image"]
        if encoded:
            image = tf.io.decode_image(image, channels=3, expand_animations=False)
        landmarks = example_landmarks(example["landmarks"])
        image, landmarks = crop_and_resize(image, landmarks, image_size, crop)
        drawn = _draw_mask(random_seed, len(regions), training and mask_jitter, region_weights)
        prepared = {
            "source": images.to_float(image),
            "mask": mask_fn(landmarks, drawn["mask_region"], drawn["mask_scale"], drawn["mask_shift"]),
            "source_attributes": tf.reshape(
                tf.cast([example["attributes"][name] for name in attribute_names], tf.float32), [len(attribute_names)]
            ),
            "source_landmarks": landmarks,
            **drawn,
        }
        if part_layouts:
            prepared["source_layout"] = masks.part_layout(landmarks, image_size)
        return prepared

    data = examples
    if training:
        data = data.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        data = data.repeat()
    data = tf.data.Dataset.zip(data, tf.data.Dataset.random(seed=seed).batch(2))
    data = data.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    data = data.batch(batch_size, drop_remainder=True)
    pair_seeds = tf.data.Dataset.random(seed=None if seed is None else seed + 1).batch(2)
    data = tf.data.Dataset.zip(data, pair_seeds)
    data = data.map(
        lambda batch, pair_seed: _pair(batch, pair_seed, same_exemplar_share, mask_fn),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    options = tf.data.Options()
    options.deterministic = deterministic or not training
    return data.with_options(options).prefetch(tf.data.AUTOTUNE)
