"""`evaluate_models`: the trained runs and their baselines scored on the test split, with the report written."""

from __future__ import annotations

import dataclasses
import datetime
import os
from collections.abc import Callable, Sequence

from ebgan_tf.config import parse_regions
from ebgan_tf.data import pipeline
from ebgan_tf.editing import Editor
from ebgan_tf.evaluation.classifier import EvalClassifier, load_eval_classifier
from ebgan_tf.evaluation.methods import NAIVE_PASTE, Method, export_method, method_names, model_method, zero_code_method
from ebgan_tf.evaluation.pairs import EvalPairs, SwapTruth, load_pairs, unseen_pairs
from ebgan_tf.evaluation.report import write_report
from ebgan_tf.evaluation.scoring import MAX_PSNR, evaluate
from ebgan_tf.evaluation.targets import load_targets
from ebgan_tf.runs import CONFIG_FILE, load_trained, run_config_from_dir, trained_step

EVALUATION_FACES = ("test", "unseen")  # the test split's faces, or synthetic faces that no split uses


@dataclasses.dataclass(frozen=True)
class EvaluatedModel:
    """A model under evaluation: a training run (model_dir with config.json) or an exported model."""

    path: str
    variant: str
    image_size: int
    step: int | None  # the run's training step; None for an export
    dataset: str | None = None  # a run's data set and regions (an export does not record them)
    regions: tuple[str, ...] | None = None
    editor: Editor | None = None

    def methods(self, name: str) -> list[Method]:
        """The model's method and, for a run, its zero-code baseline (an export cannot zero its code); a run's
        weights are loaded here."""
        if self.editor is not None:
            return [export_method(self.editor, name)]
        trainer = load_trained(self.path)
        return [model_method(trainer, name), zero_code_method(trainer, f"zero exemplar code ({name})")]


def open_model(path: str) -> EvaluatedModel:
    """A run directory (config.json) or an export: a SavedModel version or base directory, or a .tflite file."""
    if os.path.isdir(path) and os.path.exists(os.path.join(path, CONFIG_FILE)):
        config = run_config_from_dir(path)
        assert config.regions is not None, "run_config_from_dir resolves"
        return EvaluatedModel(
            path,
            config.variant,
            config.model_config().image_size,
            trained_step(path),
            config.dataset,
            tuple(config.regions),
        )
    if not os.path.exists(path):
        raise FileNotFoundError(f"Model not found: {path} (give a model_dir of ebgan-train or an ebgan-export output).")
    try:
        editor = Editor.load(path)
    except ValueError as error:
        raise ValueError(
            f"{path} is neither a training run (no {CONFIG_FILE}) nor an exported model: {error}"
        ) from None
    return EvaluatedModel(path, editor.info.variant, editor.info.image_size, None, editor=editor)


def open_models(
    paths: Sequence[str], dataset: str | None, regions: Sequence[str] | None
) -> tuple[list[EvaluatedModel], int, str, tuple[str, ...]]:
    """Opens the models and checks them against each other: (models, image size, data set, regions); the data set
    and regions default to the first training run's. ValueError for an unknown data set or region, models of
    different sizes, or exports alone without a data set and regions."""
    if not paths:
        raise ValueError("No model directory given.")
    if dataset is not None:
        pipeline.validate_dataset(dataset)
    if regions is not None:
        parse_regions(regions)
    models = [open_model(path) for path in paths]
    sizes = {model.image_size for model in models}
    if len(sizes) > 1:
        raise ValueError(
            f"The models differ in image size ({', '.join(map(str, sorted(sizes)))} px); compare models of one size."
        )
    runs = [model for model in models if model.step is not None]
    if not runs and (dataset is None or regions is None):
        raise ValueError("An exported model does not record its data set and regions: give --dataset and --regions.")
    dataset, regions = dataset or runs[0].dataset, regions or runs[0].regions
    assert dataset is not None and regions is not None, "a training run records both"
    return models, sizes.pop(), pipeline.validate_dataset(dataset), parse_regions(regions)


@dataclasses.dataclass(frozen=True)
class EvaluationSet:
    """What every model of one evaluation is measured on: the pairs, their ground truth and the classifier."""

    dataset: str
    image_size: int
    region_attributes: dict[str, tuple[str, ...]]  # region -> the attributes the classifier reads there
    pairs: EvalPairs
    truth: SwapTruth | None  # synthetic faces only
    classifier: EvalClassifier | None


def load_evaluation_set(
    dataset: str,
    image_size: int,
    regions: Sequence[str],
    data_dir: str,
    classifier_dir: str | None,
    num_pairs: int = 500,
    faces: str = "test",
) -> EvaluationSet:
    """The pairs of `dataset` at `image_size` (`faces`: "test", the test split's; "unseen", synthetic faces of no
    split), their ground truth and the evaluation classifier (if `classifier_dir`). Raises ValueError / OSError for a
    classifier of another data set or size, unseen faces of CelebA, missing data."""
    classifier = load_eval_classifier(classifier_dir) if classifier_dir else None
    if classifier is not None and (classifier.config.dataset != dataset or classifier.image_size != image_size):
        raise ValueError(
            f"The evaluation classifier in {classifier_dir} reads {classifier.config.dataset} at "
            f"{classifier.image_size} px; the evaluation needs {dataset} at {image_size} px."
        )
    preset = pipeline.dataset_preset(dataset)
    if faces not in EVALUATION_FACES:
        raise ValueError(f"Unknown faces {faces!r}; valid: {', '.join(EVALUATION_FACES)}.")
    if faces == "unseen":
        if dataset != "synthetic_faces":
            raise ValueError(f"Unseen faces are rendered synthetic faces; {dataset} has only its test split.")
        pairs = unseen_pairs(image_size, num_pairs)
    else:
        pairs = load_pairs(dataset, data_dir, image_size, num_pairs)
    region_attributes = {region: tuple(preset.region_attributes[region]) for region in regions}
    truth = SwapTruth(pairs, image_size) if pairs.seeds is not None else None
    return EvaluationSet(dataset, image_size, region_attributes, pairs, truth, classifier)


def evaluate_models(
    model_dirs: Sequence[str],
    data_dir: str,
    classifier_dir: str | None,
    output_dir: str,
    dataset: str | None = None,
    regions: Sequence[str] | None = None,
    num_pairs: int = 500,
    batch_size: int = 32,
    grid_rows: int = 4,
    targets_file: str | None = None,
    faces: str = "test",
    log: Callable[[str], None] | None = None,
) -> dict:
    """`ebgan-eval`: loads the models (training runs or exports) and the evaluation classifier (if `classifier_dir`;
    without one, the attribute metrics are left out), scores the models and the baselines on the test split (or on
    synthetic faces of no split: `faces="unseen"`), writes the report into `output_dir` and returns it. An export
    is scored through its signatures (uint8 in and out) and has no zero-code baseline nor code spread; with exports
    only, `dataset` and `regions` must be given. The models are checked against the targets of `targets_file`
    (default: the project's table, evaluation/targets.json). `log` (e.g. print) receives progress lines.

    Raises ValueError / FileNotFoundError for user errors (unknown dataset or region, a directory without a
    model or classifier, mismatched image sizes, missing data, a missing or malformed targets file), before
    anything is written.
    """
    targets = load_targets(targets_file)
    models, image_size, dataset, regions = open_models(model_dirs, dataset, regions)
    evaluation = load_evaluation_set(dataset, image_size, regions, data_dir, classifier_dir, num_pairs, faces)
    pairs, classifier = evaluation.pairs, evaluation.classifier

    names = method_names([model.variant for model in models], model_dirs)
    per_model = [model.methods(name) for model, name in zip(models, names)]
    methods = [own[0] for own in per_model] + [NAIVE_PASTE] + [baseline for own in per_model for baseline in own[1:]]
    results, grid = evaluate(
        methods,
        pairs,
        evaluation.region_attributes,
        classifier,
        evaluation.truth,
        batch_size,
        grid_rows,
        targets,
        log,
    )
    split = pipeline.EVAL_SPLIT[dataset] if faces == "test" else "unseen"
    report = {
        "dataset": dataset,
        "split": split,
        "num_pairs": len(pairs),
        "image_size": image_size,
        "date": datetime.date.today().isoformat(),
        "max_psnr": MAX_PSNR,
        "targets_file": targets_file,
        "models": [
            {
                "name": name,
                "model_dir": model.path,
                "variant": model.variant,
                "regions": list(model.regions or ()),
                "step": model.step,
            }
            for name, model in zip(names, models)
        ],
        "classifier": {
            "dir": classifier_dir,
            "attribute_names": list(classifier.attribute_names),
            "test_accuracy": classifier.test_accuracy,
        }
        if classifier is not None
        else {},
        **results,
    }
    write_report(output_dir, report, grid, step=report["models"][0]["step"] or 0)
    return report
