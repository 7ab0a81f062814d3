"""TFLite export for phones: the SavedModel's signatures at batch 1, built-in ops only.

The model is first written through keras.export.ExportArchive (a plain tf.Module export converted to garbage
in our checks: outputs off by up to 5.7e14), then converted once per variant:
  float32  no optimisation (bit-for-bit the same arithmetic up to kernel differences),
  float16  weights stored as float16,
  dynamic  dynamic-range quantisation (int8 weights, float activations),
  int8     full-integer quantisation (int8 weights and activations), calibrated on examples of the run's own
           training data (`calibration_data`). The signatures' inputs and outputs keep their types (uint8 images,
           float32 mask, attributes and probabilities); the generator's tanh and everything after it (rescale,
           rounding, clipping, the composite) stay float (docs/export.md, "The int8 variant").
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator

import numpy as np
import tensorflow as tf

from ebgan_tf import images
from ebgan_tf.cli import native_logs_muted
from ebgan_tf.config import ATT_EBGAN
from ebgan_tf.export.saved_model import CLASSIFY, EDIT, EDIT_COMPOSED, EDIT_FILTERED, METADATA, build_archive
from ebgan_tf.files import write_bytes_atomically
from ebgan_tf.models.trainer import EBGANTrainer

INT8 = "int8"
TFLITE_VARIANTS: tuple[str, ...] = ("float32", "float16", "dynamic", INT8)
DEFAULT_CALIBRATION_EXAMPLES = 600
CONVERSION_PREFIX = ".convert-"  # the folder, inside out_dir, of the SavedModel that export_tflite converts


def parse_variants(text: str) -> tuple[str, ...]:
    """'float32,dynamic' -> validated variant names (an unknown one is a ValueError listing the valid ones)."""
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [name for name in names if name not in TFLITE_VARIANTS]
    if unknown:
        raise ValueError(f"Unknown TFLite variant(s) {', '.join(unknown)}; valid: {', '.join(TFLITE_VARIANTS)}.")
    return names


@dataclasses.dataclass(frozen=True)
class CalibrationData:
    """Representative inputs for the int8 variant: aligned training faces, their exemplars and region masks."""

    source: np.ndarray  # uint8 [K, S, S, 3]
    exemplar: np.ndarray  # uint8 [K, S, S, 3], another training face
    mask: np.ndarray  # float32 [K, S, S, 1], one of the run's regions on the source's landmarks
    regions: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.source)


def calibration_data(
    dataset: str,
    data_dir: str,
    image_size: int,
    regions: tuple[str, ...],
    attribute_names: tuple[str, ...],
    count: int,
    seed: int = 0,
) -> CalibrationData:
    """`count` examples of the training split, the regions in turn (as even as `count` allows), each with another
    face as exemplar; the masks are the regions on the source's own landmarks, as in training (without jitter)."""
    from ebgan_tf.data import pipeline  # pylint: disable=import-outside-toplevel

    if count < len(regions):
        raise ValueError(
            f"--calibration_examples must be at least the number of regions ({len(regions)}: "
            f"{', '.join(regions)}), got {count}."
        )
    parts = []
    for index, region in enumerate(regions):
        share = count // len(regions) + (index < count % len(regions))
        batches = pipeline.make_dataset(
            pipeline.load_examples(dataset, data_dir, pipeline.TRAIN_SPLIT[dataset], image_size),
            image_size=image_size,
            regions=[region],
            attribute_names=attribute_names,
            batch_size=share,
            crop=pipeline.default_crop(dataset),
            training=False,
            same_exemplar_share=0.0,
            deterministic=True,
            seed=seed + index,
        )
        batch = next(iter(batches))
        parts.append(
            (
                images.to_uint8(batch["source"]).numpy(),
                images.to_uint8(batch["exemplar"]).numpy(),
                batch["mask"].numpy(),
            )
        )
    source, exemplar, mask = (np.concatenate(arrays) for arrays in zip(*parts))
    return CalibrationData(source, exemplar, mask, tuple(regions))


def calibration_data_of_run(
    model_dir: str, data_dir: str, count: int = DEFAULT_CALIBRATION_EXAMPLES
) -> CalibrationData:
    """`calibration_data` of a training directory: its data set, regions and attributes; the examples are read from
    `data_dir` (config.json does not record where the data was)."""
    from ebgan_tf.runs import run_config_from_dir  # pylint: disable=import-outside-toplevel

    config = run_config_from_dir(model_dir)
    assert config.dataset is not None and config.regions is not None, "run_config_from_dir resolves"
    return calibration_data(
        config.dataset,
        os.path.expanduser(data_dir),
        config.model_config().image_size,
        tuple(config.regions),
        config.preset_object().attributes_for(config.regions),
        count,
    )


def _representative_dataset(
    calibration: CalibrationData, signatures: list[str], num_attributes: int
) -> Callable[[], Iterator[tuple[str, dict[str, np.ndarray]]]]:
    """(signature, inputs) pairs of batch 1 for every example: `edit`, `edit_filtered` with random attribute
    switches, `classify` on the source and on the exemplar, and `edit_composed` with one part at a random
    strength."""

    def generate() -> Iterator[tuple[str, dict[str, np.ndarray]]]:
        rng = np.random.default_rng(0)
        for index in range(len(calibration)):
            one = slice(index, index + 1)
            inputs = {
                "source": calibration.source[one],
                "exemplar": calibration.exemplar[one],
                "mask": calibration.mask[one],
            }
            yield EDIT, inputs
            if EDIT_FILTERED in signatures:
                switches = (rng.random([1, num_attributes]) < 0.5).astype(np.float32)
                yield EDIT_FILTERED, {**inputs, "attributes": switches}
            if CLASSIFY in signatures:
                yield CLASSIFY, {"image": inputs["source"]}
                yield CLASSIFY, {"image": inputs["exemplar"]}
            yield (
                EDIT_COMPOSED,
                {
                    "source": inputs["source"],
                    "exemplars": inputs["exemplar"][:, None],
                    "masks": inputs["mask"][:, None],
                    "strengths": rng.random([1, 1]).astype(np.float32),
                    "attributes": np.ones([1, 1, num_attributes], np.float32),
                },
            )

    return generate


def _read_model(flatbuffer: bytes):
    """A .tflite flatbuffer as TensorFlow Lite's schema objects (ModelT)."""
    from tensorflow.lite.tools import flatbuffer_utils  # pylint: disable=import-outside-toplevel

    return flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))


def _builtin_code(model, op) -> int:
    """The schema's BuiltinOperator value of `op` (old files keep small ones in deprecatedBuiltinCode)."""
    code = model.operatorCodes[op.opcodeIndex]
    return max(code.builtinCode, code.deprecatedBuiltinCode)


def _float_nodes(float_model: bytes) -> list[str]:
    """Output names of the ops the int8 variant keeps float:
    - every TANH and every op downstream of one (int8 steps there cost a grey level each, and the composite must
      pass the source's pixels through exactly);
    - every ARG_MIN, the ops upstream of one back to the dense layer that estimates the landmarks, and every op
      reading one (the ONE_HOT): the part layout of per-part codes, computed from the landmarks, where an int8 step
      moves a part's border by a pixel (the argmin of int8 distances flips whole regions), and an int8 ONE_HOT does
      not hold its 0 and 1;
    - every DIV and the ops computing its divisor: a part's area, 0 where the mask misses the part, divides by zero
      in int8;
    - the aligned exemplar's warp: every GATHER, the ops upstream of one back to the landmark estimator's dense layer
      (the sampling positions), and the element-wise ops downstream of those (the bilinear weights and blend), where
      int8 positions move the exemplar's pixels.
    """
    from tensorflow.lite.python import schema_py_generated as schema  # pylint: disable=import-outside-toplevel

    model = _read_model(float_model)
    names = []
    for subgraph in model.subgraphs:
        ops = subgraph.operators  # stored in execution order
        codes = [_builtin_code(model, op) for op in ops]
        kept: set[int] = set()  # indices of the ops kept float
        tainted: set[int] = set()
        for index, op in enumerate(ops):
            if codes[index] == schema.BuiltinOperator.TANH or tainted.intersection(op.inputs):
                tainted.update(op.outputs)
                kept.add(index)
        argmins = [index for index, code in enumerate(codes) if code == schema.BuiltinOperator.ARG_MIN]
        argmin_outputs = {output for index in argmins for output in ops[index].outputs}
        kept.update(index for index, op in enumerate(ops) if argmin_outputs.intersection(op.inputs))
        divisions = [index for index, code in enumerate(codes) if code == schema.BuiltinOperator.DIV]
        kept.update(argmins + divisions)
        argmin_inputs = {tensor for index in argmins for tensor in ops[index].inputs}
        divisors = {ops[index].inputs[1] for index in divisions}
        kept.update(_upstream(ops, codes, argmin_inputs | divisors)[0])
        kept.update(_warp_ops(ops, codes))
        names += [subgraph.tensors[output].name.decode() for index in sorted(kept) for output in ops[index].outputs]
    return names


def _upstream(ops: list, codes: list[int], tensors: set[int]) -> tuple[set[int], set[int]]:
    """The ops computing `tensors`, back to (not through) a FULLY_CONNECTED — the landmark estimator's head, whose
    int8 output is a quarter-pixel step at 64 px — as (their indices, the tensors they and `tensors` read)."""
    from tensorflow.lite.python import schema_py_generated as schema  # pylint: disable=import-outside-toplevel

    kept: set[int] = set()
    needed = set(tensors)
    for index in reversed(range(len(ops))):  # ops are stored in execution order: producers before readers
        if codes[index] != schema.BuiltinOperator.FULLY_CONNECTED and needed.intersection(ops[index].outputs):
            needed.update(ops[index].inputs)
            kept.add(index)
    return kept, needed


def _warp_ops(ops: list, codes: list[int]) -> set[int]:
    """Indices of the ops of `align`'s warp in one subgraph (none without a GATHER): see `_float_nodes`."""
    from tensorflow.lite.python import schema_py_generated as schema  # pylint: disable=import-outside-toplevel

    operator = schema.BuiltinOperator
    gathers = [index for index, code in enumerate(codes) if code == operator.GATHER]
    kept, needed = _upstream(ops, codes, {tensor for index in gathers for tensor in ops[index].inputs})
    kept.update(gathers)
    blended = needed | {output for index in kept for output in ops[index].outputs}
    elementwise = {operator.MUL, operator.ADD, operator.SUB, operator.EXPAND_DIMS, operator.RESHAPE}
    for index, op in enumerate(ops):
        if codes[index] in elementwise and blended.intersection(op.inputs):
            blended.update(op.outputs)
            kept.add(index)
    return kept


def _quantise_int8(float_model: bytes, representative: Callable[[], Iterator]) -> bytes:
    """Calibrates a float model and quantises it to int8, keeping the `_float_nodes` float.

    The two steps of the converter's own full-integer path, called directly: through TFLiteConverter (and its
    QuantizationDebugger) the calibrator fails on the input-less `metadata` signature ("NULL SignatureDef inputs
    for exported method metadata"), and only this path takes a list of ops to keep float.
    """
    from tensorflow.lite.python.convert import mlir_quantize  # pylint: disable=import-outside-toplevel
    from tensorflow.lite.python.optimize.calibrator import Calibrator  # pylint: disable=import-outside-toplevel

    with native_logs_muted(), warnings.catch_warnings():
        # The Calibrator runs TensorFlow's own (deprecated) tf.lite.Interpreter, which warns once per process.
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated", category=UserWarning)
        calibrated = Calibrator(float_model).calibrate(representative)
        return mlir_quantize(calibrated, denylisted_nodes=_float_nodes(float_model))


def _converter(saved_model_dir: str, signature_keys: list[str], variant: str) -> tf.lite.TFLiteConverter:
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=signature_keys)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if variant == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter


def export_tflite(
    trainer: EBGANTrainer,
    landmark_template: np.ndarray,
    out_dir: str,
    variants: tuple[str, ...] = TFLITE_VARIANTS,
    prefix: str = "model",
    calibration: CalibrationData | None = None,
) -> dict[str, str]:
    """Writes `<out_dir>/<prefix>_<variant>.tflite` for each variant; returns variant -> path.

    The int8 variant needs `calibration` (see `calibration_data`); without it, it is a ValueError. The batch-1
    SavedModel that is converted is written to a hidden folder `<out_dir>/.convert-*`, removed at the end: not to the
    system's temporary folder, so that when out_dir is a staging folder (ebgan-export) a killed export's
    conversion folder goes with it.
    """
    if INT8 in variants and calibration is None:
        raise ValueError("The int8 TFLite variant needs calibration data (examples of the model's training data).")
    os.makedirs(out_dir, exist_ok=True)
    keys = [EDIT] + ([EDIT_FILTERED, CLASSIFY] if trainer.variant == ATT_EBGAN else []) + [EDIT_COMPOSED, METADATA]
    paths = {}
    with tempfile.TemporaryDirectory(prefix=CONVERSION_PREFIX, dir=out_dir) as staging:
        build_archive(trainer, landmark_template, batch=1, validate=False).write_out(staging, verbose=False)
        for variant in variants:
            path = os.path.join(out_dir, f"{prefix}_{variant}.tflite")
            flatbuffer = _converter(staging, keys, "float32" if variant == INT8 else variant).convert()
            if variant == INT8:
                assert calibration is not None  # checked above
                flatbuffer = _quantise_int8(
                    flatbuffer, _representative_dataset(calibration, keys, len(trainer.attribute_names))
                )
            write_bytes_atomically(path, flatbuffer)
            paths[variant] = path
    return paths


@dataclasses.dataclass(frozen=True)
class OpCount:
    """The ops of one signature of a TFLite file: how many run in integer, and the kinds of the others."""

    integer: int
    total: int
    float_ops: dict[str, int]  # op name -> count of ops with a float32 input or output (QUANTIZE etc. included)

    @property
    def share(self) -> float:
        return self.integer / self.total if self.total else 0.0


def integer_ops(path: str) -> dict[str, OpCount]:
    """Signature -> OpCount of a .tflite file: an op runs in integer when none of its tensors is float32."""
    from tensorflow.lite.python import schema_py_generated as schema  # pylint: disable=import-outside-toplevel

    op_names = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    with open(path, "rb") as handle:
        model = _read_model(handle.read())
    counts = {}
    for signature in model.signatureDefs:
        subgraph = model.subgraphs[signature.subgraphIndex]
        integer = 0
        float_ops: dict[str, int] = {}
        for op in subgraph.operators:
            tensors = [index for index in list(op.inputs) + list(op.outputs) if index >= 0]
            if any(subgraph.tensors[index].type == schema.TensorType.FLOAT32 for index in tensors):
                name = op_names[_builtin_code(model, op)]
                float_ops[name] = float_ops.get(name, 0) + 1
            else:
                integer += 1
        counts[signature.signatureKey.decode()] = OpCount(integer, len(subgraph.operators), float_ops)
    return counts
