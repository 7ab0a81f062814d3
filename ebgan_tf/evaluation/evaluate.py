"""`evaluate_models`: the trained runs and their baselines scored on the test split, with the report written."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Sequence

from ebgan_tf.config import parse_regions
from ebgan_tf.data import pipeline
from ebgan_tf.evaluation.classifier import EvalClassifier, load_eval_classifier
from ebgan_tf.evaluation.methods import NAIVE_PASTE, method_names, model_method, zero_code_method
from ebgan_tf.evaluation.pairs import EvalPairs, SwapTruth, load_pairs
from ebgan_tf.evaluation.report import write_report
from ebgan_tf.evaluation.scoring import MAX_PSNR, evaluate
from ebgan_tf.runs import RunConfig, load_trained, run_config_from_dir, trained_step


@dataclasses.dataclass(frozen=True)
class EvaluationSet:
    """What every model of one evaluation is measured on: the pairs, their ground truth and the classifier."""

    dataset: str
    image_size: int
    region_attributes: dict[str, tuple[str, ...]]  # region -> the attributes the classifier reads there
    pairs: EvalPairs
    truth: SwapTruth | None  # synthetic faces only
    classifier: EvalClassifier | None


def load_evaluation_set(configs: Sequence[RunConfig], data_dir: str, classifier_dir: str | None,
                        dataset: str | None = None, regions: Sequence[str] | str | None = None,
                        num_pairs: int = 500) -> EvaluationSet:
    """The test pairs of the runs `configs` (one image size), their ground truth and the evaluation classifier
    (if `classifier_dir`). `dataset` and `regions` default to the first run's. Raises ValueError / OSError for
    mismatched image sizes, an unknown data set or region, a classifier of another data set or size, missing data.
    """
    sizes = {config.model_config().image_size for config in configs}
    if len(sizes) > 1:
        raise ValueError(f"The models differ in image size ({', '.join(map(str, sorted(sizes)))} px); "
                         "compare models of one size.")
    image_size = sizes.pop()
    dataset = pipeline.validate_dataset(dataset or configs[0].dataset)
    regions = parse_regions(regions or configs[0].regions)
    classifier = load_eval_classifier(classifier_dir) if classifier_dir else None
    if classifier is not None and (classifier.config.dataset != dataset or classifier.image_size != image_size):
        raise ValueError(f"The evaluation classifier in {classifier_dir} reads {classifier.config.dataset} at "
                         f"{classifier.image_size} px; the evaluation needs {dataset} at {image_size} px.")
    preset = pipeline.dataset_preset(dataset)
    pairs = load_pairs(dataset, data_dir, image_size, num_pairs)
    region_attributes = {region: tuple(preset.region_attributes[region]) for region in regions}
    truth = SwapTruth(pairs, image_size) if pairs.seeds is not None else None
    return EvaluationSet(dataset, image_size, region_attributes, pairs, truth, classifier)


def evaluate_models(model_dirs: Sequence[str], data_dir: str, classifier_dir: str | None, output_dir: str,
                    dataset: str | None = None, regions: Sequence[str] | None = None, num_pairs: int = 500,
                    batch_size: int = 32, grid_rows: int = 4) -> dict:
    """`ebgan-eval`: loads the trained runs and the evaluation classifier (if `classifier_dir`; without one, the
    attribute metrics are left out), scores the models and the baselines on the test split, writes the report into
    `output_dir` and returns it.

    Raises ValueError / FileNotFoundError for user errors (unknown dataset or region, a directory without a
    model or classifier, mismatched image sizes, missing data), before anything is written.
    """
    if not model_dirs:
        raise ValueError("No model directory given.")
    if dataset is not None:
        pipeline.validate_dataset(dataset)
    if regions is not None:
        parse_regions(regions)
    configs = [run_config_from_dir(model_dir) for model_dir in model_dirs]
    evaluation = load_evaluation_set(configs, data_dir, classifier_dir, dataset, regions, num_pairs)

    trainers = [load_trained(model_dir) for model_dir in model_dirs]
    names = method_names([trainer.variant for trainer in trainers], model_dirs)
    methods = [model_method(trainer, name) for trainer, name in zip(trainers, names)]
    methods.append(NAIVE_PASTE)
    methods += [zero_code_method(trainer, f"zero exemplar code ({name})") for trainer, name in zip(trainers, names)]
    classifier = evaluation.classifier
    results, grid = evaluate(methods, evaluation.pairs, evaluation.region_attributes, classifier, evaluation.truth,
                             batch_size, grid_rows)
    report = {
        "dataset": evaluation.dataset, "split": pipeline.EVAL_SPLIT[evaluation.dataset],
        "num_pairs": len(evaluation.pairs), "image_size": evaluation.image_size,
        "date": datetime.date.today().isoformat(), "max_psnr": MAX_PSNR,
        "models": [{"name": name, "model_dir": model_dir, "variant": config.variant, "regions": list(config.regions),
                    "step": trained_step(model_dir)} for name, model_dir, config in zip(names, model_dirs, configs)],
        "classifier": {"dir": classifier_dir, "attribute_names": list(classifier.attribute_names),
                       "test_accuracy": classifier.test_accuracy} if classifier is not None else {},
        **results,
    }
    write_report(output_dir, report, grid, step=report["models"][0]["step"])
    return report
