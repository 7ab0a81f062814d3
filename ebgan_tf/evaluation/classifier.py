"""The evaluation classifier that reads attributes on edited images.

It is trained apart from Att-EBGAN's classifier C (same network class, `ebgan_tf.models.classifier`, its own
weights), on real images of the data set's training split, for every attribute a region shows, and reports its
accuracy on the test split. `save_eval_classifier` writes `eval_classifier.weights.h5` and `eval_classifier.json`
(settings, attribute names, test accuracy); `load_eval_classifier` reads them back.
"""

from __future__ import annotations

import dataclasses
import json
import os

import keras
import numpy as np
import tensorflow as tf

from ebgan_tf import images, metrics
from ebgan_tf.config import REGIONS, ModelConfig
from ebgan_tf.data import pipeline
from ebgan_tf.files import write_atomically, write_text_atomically
from ebgan_tf.models.classifier import Classifier

CONFIG_FILE = "eval_classifier.json"
WEIGHTS_FILE = "eval_classifier.weights.h5"
LOG_EVERY = 100  # training steps between progress lines
PREDICT_BATCH = 128


@dataclasses.dataclass(frozen=True)
class EvalClassifierConfig:
    """Settings of an evaluation classifier; `attribute_names` empty = every attribute of the data set's regions."""

    dataset: str = "synthetic_faces"
    image_size: int = 64
    attribute_names: tuple[str, ...] = ()
    width: int = 8  # channels of the first level (ModelConfig.classifier_width)
    max_width: int = 64
    steps: int = 4000
    batch_size: int = 32
    learning_rate: float = 2e-3
    seed: int = 0
    num_test: int | None = None  # test examples to measure the accuracy on; None = the whole test split

    def resolved(self) -> EvalClassifierConfig:
        """Validates the settings and fills the default attribute names; a ValueError names the bad setting."""
        pipeline.validate_dataset(self.dataset)
        for name in ("image_size", "width", "max_width", "steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be at least 1, got {getattr(self, name)}.")
        if self.image_size < 16:
            raise ValueError(f"--image_size must be at least 16, got {self.image_size}.")
        if self.num_test is not None and self.num_test < 1:
            raise ValueError(f"--num_test must be at least 1, got {self.num_test}.")
        names = self.attribute_names or default_attributes(self.dataset)
        return dataclasses.replace(self, attribute_names=tuple(names))

    def model_config(self) -> ModelConfig:
        return ModelConfig(image_size=self.image_size, classifier_width=self.width, max_width=self.max_width)


def default_attributes(dataset: str) -> tuple[str, ...]:
    """Every attribute some region of the data set's preset shows (what ebgan-eval may ask about)."""
    return pipeline.dataset_preset(dataset).attributes_for(REGIONS)


def labelled_images(
    dataset: str, data_dir: str, split: str, image_size: int, attribute_names: tuple[str, ...]
) -> tf.data.Dataset:
    """(image float32 [S, S, 3] in [-1, 1], labels float32 [n]) of `split`, cropped and resized like training."""
    examples = pipeline.load_examples(dataset, data_dir, split, image_size)
    crop = pipeline.default_crop(dataset)

    def prepare(example: dict) -> tuple[tf.Tensor, tf.Tensor]:
        image, _ = pipeline.crop_and_resize(
            example["image"], pipeline.example_landmarks(example["landmarks"]), image_size, crop
        )
        labels = tf.cast(tf.stack([example["attributes"][name] for name in attribute_names]), tf.float32)
        return images.to_float(image), labels

    return examples.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)


class EvalClassifier:
    """A trained evaluation classifier: `predict(uint8 images)` -> bool labels [N, n] over `attribute_names`."""

    def __init__(self, network: Classifier, config: EvalClassifierConfig, test_accuracy: dict | None = None):
        self.network = network
        self.config = config
        self.attribute_names = config.attribute_names
        self.image_size = config.image_size
        self.test_accuracy = test_accuracy

    def logits(self, pixels: np.ndarray) -> np.ndarray:
        """Logits float32 [N, n] of uint8 images [N, S, S, 3], in batches."""
        pixels = np.asarray(pixels)
        if pixels.ndim != 4 or pixels.shape[1:] != (self.image_size, self.image_size, 3):
            raise ValueError(
                f"The evaluation classifier reads images [N, {self.image_size}, {self.image_size}, 3]; "
                f"got {pixels.shape}."
            )
        batches = [
            self.network(images.to_float(pixels[start : start + PREDICT_BATCH]), training=False).numpy()
            for start in range(0, len(pixels), PREDICT_BATCH)
        ]
        return np.concatenate(batches) if batches else np.zeros([0, len(self.attribute_names)], np.float32)

    def predict(self, pixels: np.ndarray) -> np.ndarray:
        """Bool labels [N, n] (sigmoid > 0.5) of uint8 images [N, S, S, 3]."""
        return self.logits(pixels) > 0.0


def build_network(config: EvalClassifierConfig) -> Classifier:
    """The classifier network of `config` with all its variables created."""
    network = Classifier(config.model_config(), len(config.attribute_names), name="eval_classifier")
    network(tf.zeros([1, config.image_size, config.image_size, 3]))
    return network


def measure_accuracy(classifier: EvalClassifier, dataset: tf.data.Dataset) -> dict:
    """{"per_attribute": {name: accuracy}, "mean", "min", "count"} of `classifier` on (float image, labels)."""
    predicted, expected = [], []
    for batch_images, batch_labels in dataset.batch(PREDICT_BATCH):
        predicted.append(classifier.predict(images.to_uint8(batch_images.numpy())))
        expected.append(batch_labels.numpy() > 0.5)
    if not predicted:
        raise ValueError("The test split is empty: no accuracy can be measured.")
    rates = metrics.agreement(np.concatenate(predicted), np.concatenate(expected))
    return {
        "per_attribute": {name: float(value) for name, value in zip(classifier.attribute_names, rates.per_attribute)},
        "mean": rates.mean,
        "min": float(np.min(rates.per_attribute)),
        "count": int(sum(map(len, predicted))),
    }


def save_eval_classifier(classifier: EvalClassifier, output_dir: str) -> None:
    """Writes the weights, then `eval_classifier.json` (settings + test accuracy), each atomically."""
    write_atomically(os.path.join(output_dir, WEIGHTS_FILE), classifier.network.save_weights)
    record = {**dataclasses.asdict(classifier.config), "test_accuracy": classifier.test_accuracy}
    write_text_atomically(os.path.join(output_dir, CONFIG_FILE), json.dumps(record, indent=2) + "\n")


def load_eval_classifier(directory: str) -> EvalClassifier:
    """The classifier saved in `directory`; FileNotFoundError (saying how to make one) when there is none."""
    config_path, weights_path = (os.path.join(directory, name) for name in (CONFIG_FILE, WEIGHTS_FILE))
    if not (os.path.isfile(config_path) and os.path.isfile(weights_path)):
        raise FileNotFoundError(
            f"No evaluation classifier in {directory!r} (it needs {CONFIG_FILE} and "
            f"{WEIGHTS_FILE}); train one with `ebgan-eval-classifier --output_dir={directory}`."
        )
    with open(config_path, encoding="utf-8") as stream:
        record = json.load(stream)
    test_accuracy = record.pop("test_accuracy", None)
    record["attribute_names"] = tuple(record["attribute_names"])
    config = EvalClassifierConfig(**record)
    network = build_network(config)
    network.load_weights(weights_path)
    return EvalClassifier(network, config, test_accuracy)


class _Progress(keras.callbacks.Callback):
    """Prints the running loss every LOG_EVERY steps."""

    def __init__(self, steps: int):
        super().__init__()
        self._steps = steps

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if (batch + 1) % LOG_EVERY == 0 or batch + 1 == self._steps:
            print(
                f"step {batch + 1}/{self._steps}: loss {float(np.mean((logs or {}).get('loss', np.nan))):.4f}",
                flush=True,
            )


def train_eval_classifier(
    config: EvalClassifierConfig, data_dir: str, output_dir: str | None = None, verbose: bool = True
) -> EvalClassifier:
    """Trains on the training split, measures the accuracy on the test split and (if `output_dir`) saves it.

    Raises ValueError for bad settings and FileNotFoundError for missing data, before any training.
    """
    config = config.resolved()
    train_split, test_split = pipeline.TRAIN_SPLIT[config.dataset], pipeline.EVAL_SPLIT[config.dataset]
    train = labelled_images(config.dataset, data_dir, train_split, config.image_size, config.attribute_names)
    test = labelled_images(config.dataset, data_dir, test_split, config.image_size, config.attribute_names)
    if config.num_test is not None:
        test = test.take(config.num_test)
    keras.utils.set_random_seed(config.seed)
    network = build_network(config)
    network.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        jit_compile=False,
    )
    batches = (
        train.shuffle(4096, seed=config.seed)
        .repeat()
        .batch(config.batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )
    network.fit(
        batches,
        epochs=1,
        steps_per_epoch=config.steps,
        verbose=0,
        shuffle=False,
        callbacks=[_Progress(config.steps)] if verbose else [],
    )
    classifier = EvalClassifier(network, config)
    classifier.test_accuracy = measure_accuracy(classifier, test)
    if output_dir:
        save_eval_classifier(classifier, output_dir)
    return classifier
