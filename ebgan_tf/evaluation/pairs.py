"""Evaluation pairs: the first N faces of the test split (or N synthetic faces no split uses); the exemplar of face i
is face i + 1 (mod N). The mask is
the region of the SOURCE's landmarks, unjittered, as a user's edit. `SwapTruth` renders the ground truth of synthetic
faces: "A with region R from B"."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import numpy as np

from ebgan_tf.data import masks, pipeline, synthetic
from ebgan_tf.data.synthetic_faces import MAX_SPLIT_SIZE, SPLIT_SEED_OFFSETS, render_example

# The first seed of the faces no split uses: past the last split's range.
UNSEEN_SEED_OFFSET = max(SPLIT_SEED_OFFSETS.values()) + MAX_SPLIT_SIZE


@dataclasses.dataclass(frozen=True)
class EvalPairs:
    """N test faces as sources; the exemplar of face i is face i + 1 (mod N)."""

    sources: np.ndarray  # uint8 [N, S, S, 3]
    landmarks: np.ndarray  # float32 [N, 5, 2] (x, y) of the sources, after crop and resize
    attributes: dict[str, np.ndarray]  # attribute name -> bool [N] of the sources
    seeds: np.ndarray | None = None  # int64 [N]: synthetic faces' seeds (re-render A and B), else None

    def __len__(self) -> int:
        return len(self.sources)

    @property
    def exemplar_index(self) -> np.ndarray:
        return (np.arange(len(self)) + 1) % len(self)

    @property
    def exemplars(self) -> np.ndarray:
        return self.sources[self.exemplar_index]

    @property
    def other_index(self) -> np.ndarray:
        """Face i + 2 (mod N) for source i: another face than the exemplar, for the exemplar gain."""
        return (np.arange(len(self)) + 2) % len(self)

    @property
    def other_exemplars(self) -> np.ndarray:
        return self.sources[self.other_index]

    def labels(self, names: Sequence[str], exemplar: bool = False) -> np.ndarray:
        """Bool [N, len(names)]: the sources' labels, or the exemplars' if `exemplar`."""
        labels = np.stack([np.asarray(self.attributes[name], bool) for name in names], axis=1)
        return labels[self.exemplar_index] if exemplar else labels


def _check_num_pairs(num_pairs: int) -> None:
    if num_pairs < 3:
        raise ValueError(f"--num_pairs must be at least 3 (source, exemplar and another face), got {num_pairs}.")


def load_pairs(dataset: str, data_dir: str, image_size: int, num_pairs: int) -> EvalPairs:
    """The first `num_pairs` faces of the test split (fewer if the split is smaller), as the model sees them."""
    _check_num_pairs(num_pairs)
    split = pipeline.EVAL_SPLIT[pipeline.validate_dataset(dataset)]
    examples = pipeline.load_examples(dataset, data_dir, split, image_size).take(num_pairs)
    crop = pipeline.default_crop(dataset)

    def prepare(example: dict) -> dict:
        image, landmarks = pipeline.crop_and_resize(
            example["image"], pipeline.example_landmarks(example["landmarks"]), image_size, crop
        )
        prepared = {"image": image, "landmarks": landmarks, "attributes": example["attributes"]}
        if "seed" in example:
            prepared["seed"] = example["seed"]
        return prepared

    batches = list(examples.map(prepare).batch(256).as_numpy_iterator())
    if not batches or sum(len(batch["image"]) for batch in batches) < 3:
        raise ValueError(f"The {split} split of {dataset} in {data_dir} has fewer than 2 faces: nothing to pair.")
    joined = {key: np.concatenate([batch[key] for batch in batches]) for key in ("image", "landmarks")}
    attributes = {
        name: np.concatenate([batch["attributes"][name] for batch in batches]) for name in batches[0]["attributes"]
    }
    seeds = np.concatenate([batch["seed"] for batch in batches]) if "seed" in batches[0] else None
    return EvalPairs(joined["image"], joined["landmarks"].astype(np.float32), attributes, seeds)


def unseen_pairs(image_size: int, num_pairs: int) -> EvalPairs:
    """`num_pairs` synthetic faces that no split of any prepared data set holds (seeds from `UNSEEN_SEED_OFFSET`),
    rendered at `image_size` as the data set stores them (landmarks rounded to whole pixels)."""
    _check_num_pairs(num_pairs)
    seeds = np.arange(UNSEEN_SEED_OFFSET, UNSEEN_SEED_OFFSET + num_pairs, dtype=np.int64)
    params, faces, landmarks = zip(*(render_example(int(seed), image_size) for seed in seeds))
    attributes = {name: np.array([face.attributes[name] for face in params]) for name in params[0].attributes}
    return EvalPairs(np.stack(faces), np.stack(landmarks).astype(np.float32), attributes, seeds)


def region_masks(landmarks: np.ndarray, region: str, size: int) -> np.ndarray:
    """Float32 masks [N, S, S, 1] of `region` on each face's landmarks [N, 5, 2] (no jitter)."""
    return masks.region_mask(landmarks, region, size).numpy()


class SwapTruth:
    """Ground truth from the synthetic renderer: face A (a source's seed) with a region drawn from face B."""

    def __init__(self, pairs: EvalPairs, image_size: int):
        if pairs.seeds is None:
            raise ValueError("Ground-truth swaps need the synthetic faces' seeds.")
        self._seeds = pairs.seeds
        self._exemplar_index, self._other_index = pairs.exemplar_index, pairs.other_index
        self._size = image_size
        first = synthetic.render_face(self._face(int(pairs.seeds[0])), image_size).image
        if not np.array_equal(first, pairs.sources[0]):
            raise ValueError(
                "The test faces differ from what the renderer draws for their seeds: the data set was "
                "made by another version of ebgan_tf/data/synthetic.py; prepare it again."
            )

    @staticmethod
    @functools.lru_cache(maxsize=4096)
    def _face(seed: int) -> synthetic.FaceParams:
        return synthetic.sample_face(seed)

    def render(
        self, region: str, indices: Sequence[int] | np.ndarray, drop: Sequence[str] = (), other: bool = False
    ) -> np.ndarray:
        """uint8 [len(indices), S, S, 3]: source i with `region` from its exemplar (with `other`, from the other face
        of the exemplar gain), attributes `drop` forced off."""
        exemplars = self._other_index if other else self._exemplar_index
        faces = [(self._face(int(self._seeds[i])), self._face(int(self._seeds[exemplars[i]]))) for i in indices]
        return np.stack([synthetic.render_swap(a, b, region, self._size, drop=tuple(drop)).image for a, b in faces])
