"""tensorflow-datasets builder `synthetic_faces`: rendered faces with CelebA's schema, no download.

Examples carry tfds `celeb_a`'s features (`image`, 40 boolean `attributes`, integer `landmarks`) plus the
`seed` that re-renders the face (`synthetic.sample_face(seed)`) and its continuous `style` factors. Each
split draws its seeds from its own range, so the splits never share a face and growing one split leaves
the others unchanged.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from ebgan_tf import config
from ebgan_tf.data import synthetic

LANDMARK_KEYS: tuple[str, ...] = tuple(f"{name}_{axis}" for name in config.LANDMARK_NAMES for axis in ("x", "y"))
SPLIT_SEED_OFFSETS: dict[str, int] = {"train": 0, "validation": 1_000_000_000, "test": 2_000_000_000}
MAX_SPLIT_SIZE = 1_000_000_000  # seed ranges of the splits are this far apart


@dataclasses.dataclass
class SyntheticFacesConfig(tfds.core.BuilderConfig):
    """Image size and number of faces per split."""

    image_size: int = 64
    num_train: int = 10_000
    num_validation: int = 1_000
    num_test: int = 1_000

    def split_sizes(self) -> dict[str, int]:
        return {"train": self.num_train, "validation": self.num_validation, "test": self.num_test}


STANDARD_CONFIGS: dict[int, SyntheticFacesConfig] = {
    64: SyntheticFacesConfig(name="64", description="64 x 64 faces.", image_size=64),
    128: SyntheticFacesConfig(
        name="128", description="128 x 128 faces.", image_size=128, num_train=5_000, num_validation=500, num_test=500
    ),
}


class SyntheticFaces(tfds.core.GeneratorBasedBuilder):
    """Procedurally rendered faces with CelebA's attributes and landmarks (see ebgan_tf/data/synthetic.py)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = list(STANDARD_CONFIGS.values())
    DEFAULT_BUILDER_CONFIG_NAME = "64"

    def _info(self) -> tfds.core.DatasetInfo:
        size = self.builder_config.image_size
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(size, size, 3), encoding_format="png"),
                    "landmarks": {name: np.int64 for name in LANDMARK_KEYS},
                    "attributes": {name: np.bool_ for name in config.CELEBA_ATTRIBUTES},
                    "seed": np.int64,
                    "style": {name: np.float32 for name in synthetic.STYLE_NAMES},
                }
            ),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        del dl_manager  # nothing to download
        return {
            split: self._generate_examples(range(SPLIT_SEED_OFFSETS[split], SPLIT_SEED_OFFSETS[split] + count))
            for split, count in self.builder_config.split_sizes().items()
        }

    def _generate_examples(self, seeds: range):
        size = self.builder_config.image_size
        for seed in seeds:
            params, image, landmarks = render_example(seed, size)
            yield (
                seed,
                {
                    "image": image,
                    "landmarks": dict(zip(LANDMARK_KEYS, landmarks.ravel())),
                    "attributes": params.attributes,
                    "seed": seed,
                    "style": params.style,
                },
            )


def render_example(seed: int, image_size: int) -> tuple[synthetic.FaceParams, np.ndarray, np.ndarray]:
    """The face of `seed` as the data set stores it: (parameters, uint8 image [S, S, 3], int64 landmarks [5, 2]
    rounded to whole pixels)."""
    params = synthetic.sample_face(seed)
    rendered = synthetic.render_face(params, image_size)
    return params, rendered.image, np.round(rendered.landmarks).astype(np.int64)


def synthetic_faces_config(
    image_size: int = 64, num_train: int | None = None, num_validation: int | None = None, num_test: int | None = None
) -> SyntheticFacesConfig:
    """The standard config of `image_size` (64 or 128) if no size is overridden, else a config whose name
    encodes every size, so differently sized data sets never share a directory."""
    if not isinstance(image_size, int) or image_size < 16:
        raise ValueError(f"image_size must be an integer of at least 16, got {image_size!r}.")
    base = STANDARD_CONFIGS.get(image_size, STANDARD_CONFIGS[64])
    sizes: dict[str, Any] = {"num_train": num_train, "num_validation": num_validation, "num_test": num_test}
    sizes = {key: getattr(base, key) if value is None else value for key, value in sizes.items()}
    for key, value in sizes.items():
        if not isinstance(value, int) or not 0 < value < MAX_SPLIT_SIZE:
            raise ValueError(f"{key} must be an integer in [1, {MAX_SPLIT_SIZE - 1}], got {value!r}.")
    if image_size in STANDARD_CONFIGS and all(sizes[key] == getattr(base, key) for key in sizes):
        return base
    name = f"{image_size}_{sizes['num_train']}_{sizes['num_validation']}_{sizes['num_test']}"
    return SyntheticFacesConfig(
        name=name, description=f"{image_size} x {image_size} faces, custom split sizes.", image_size=image_size, **sizes
    )


def prepare_synthetic_faces(
    data_dir: str,
    image_size: int = 64,
    num_train: int | None = None,
    num_validation: int | None = None,
    num_test: int | None = None,
) -> SyntheticFaces:
    """Renders the data set into `data_dir` unless already there (no network); returns the builder."""
    builder = SyntheticFaces(
        config=synthetic_faces_config(image_size, num_train, num_validation, num_test), data_dir=data_dir
    )
    if not builder.is_prepared():
        builder.download_and_prepare(
            download_dir=os.path.join(data_dir, "downloads"),
            download_config=tfds.download.DownloadConfig(try_download_gcs=False),
        )
    return builder


def load_synthetic_faces(
    data_dir: str,
    split: str,
    image_size: int = 64,
    prepare: bool = True,
    num_train: int | None = None,
    num_validation: int | None = None,
    num_test: int | None = None,
) -> tf.data.Dataset:
    """The examples of `split` ("train", "validation", "test" or a tfds slice such as "train[:10%]").

    Prepares the data set first if `prepare`; otherwise a missing data set is a FileNotFoundError.
    """
    if prepare:
        builder = prepare_synthetic_faces(data_dir, image_size, num_train, num_validation, num_test)
    else:
        builder = SyntheticFaces(
            config=synthetic_faces_config(image_size, num_train, num_validation, num_test), data_dir=data_dir
        )
        if not builder.is_prepared():
            raise FileNotFoundError(
                f"No synthetic_faces data set (config {builder.builder_config.name!r}) in {data_dir!r}; "
                "prepare it with prepare_synthetic_faces() or load with prepare=True."
            )
    return builder.as_dataset(split=split, shuffle_files=False)
