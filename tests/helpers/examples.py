"""Small in-memory examples in the shared example schema, for the pipeline and `ebgan-data` tests."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from ebgan_tf.config import CELEBA_ATTRIBUTES, LANDMARK_NAMES


def make_examples(num: int, height: int = 64, width: int = 64, seed: int = 0, encoded: bool = False) -> tf.data.Dataset:
    """`num` examples in the schema: a dark background, a light face ellipse and dark dots at the landmarks.

    Each image's top-left pixel stores its index (for tracing rows through the pipeline).
    """
    rng = np.random.default_rng(seed)
    images, landmark_columns, attribute_columns = [], {}, {name: [] for name in CELEBA_ATTRIBUTES}
    for index in range(num):
        cx, cy = width / 2 + rng.uniform(-2, 2), height / 2 + rng.uniform(-2, 2)
        d = width * rng.uniform(0.3, 0.4)
        points = np.array(
            [
                [cx - d / 2, cy - d / 3],
                [cx + d / 2, cy - d / 3],
                [cx, cy + d / 6],
                [cx - d / 3, cy + d * 0.7],
                [cx + d / 3, cy + d * 0.7],
            ]
        )
        ys, xs = np.mgrid[:height, :width] + 0.5
        image = np.full((height, width, 3), 30, np.uint8)
        image[((xs - cx) / (0.9 * d)) ** 2 + ((ys - cy) / (1.3 * d)) ** 2 <= 1] = (220, 180, 150)
        for x, y in points:
            image[(xs - x) ** 2 + (ys - y) ** 2 <= 4] = (60, 20, 20)
        image[0, 0] = index
        images.append(image)
        for (x, y), name in zip(np.round(points).astype(np.int64), LANDMARK_NAMES):
            landmark_columns.setdefault(f"{name}_x", []).append(x)
            landmark_columns.setdefault(f"{name}_y", []).append(y)
        for name in CELEBA_ATTRIBUTES:
            attribute_columns[name].append(bool(rng.integers(2)))
    image_column = np.stack(images)
    if encoded:
        image_column = np.array([tf.io.encode_png(image).numpy() for image in images], dtype=object)
    return tf.data.Dataset.from_tensor_slices(
        {
            "image": image_column,
            "attributes": {name: np.array(values) for name, values in attribute_columns.items()},
            "landmarks": {name: np.array(values, np.int64) for name, values in landmark_columns.items()},
        }
    )
