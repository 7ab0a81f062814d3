r"""ebgan-train: train EBGAN or Att-EBGAN with Keras `fit` under a tf.distribute strategy.

  ebgan-train --preset=synthetic64 --variant=att_ebgan --regions=mouth \
      --dataset=synthetic_faces --data_dir=demo/data --model_dir=runs/mouth

Rerunning the same command resumes from the latest checkpoint in --model_dir. Several machines: run the same
command on each with --strategy=multi_worker and TF_CONFIG naming the cluster and this machine's task.
"""

from __future__ import annotations

import dataclasses

from absl import flags

from ebgan_tf.cli import check_no_arguments, define_data_dir_flag, reports_errors, run_main
from ebgan_tf.config import CLS_LABELS, EXEMPLAR_MASKS, PRESETS, VARIANTS, get_preset
from ebgan_tf.data.pipeline import DATASETS
from ebgan_tf.runs import RunConfig
from ebgan_tf.training import train_lib
from ebgan_tf.training.callbacks import DivergenceError, NonFiniteError
from ebgan_tf.training.distribute import STRATEGIES, make_strategy

_DEFAULTS = RunConfig(model_dir="")


def define_flags() -> None:
    """Defines the command's flags (see ebgan_tf.cli)."""
    flags.DEFINE_enum(
        "preset",
        _DEFAULTS.preset,
        sorted(PRESETS),
        "Named bundle of image size, network widths, region attributes and training defaults.",
    )
    flags.DEFINE_enum(
        "variant",
        _DEFAULTS.variant,
        VARIANTS,
        "ebgan: exemplar transfer; att_ebgan: also gates the exemplar code by attribute labels and "
        "trains a classifier, so single attributes can be filtered out when editing.",
    )
    flags.DEFINE_string(
        "regions",
        None,
        "Comma-separated regions whose masks are trained, each named once (each example draws one, all "
        "equally often unless --region_weights): mouth, eyes, brows, nose, components, face. Default: the "
        "preset's (mouth).",
    )
    flags.DEFINE_list(
        "region_weights",
        None,
        "Comma-separated numbers, one per region of --regions in its order: each training example draws a region in "
        "proportion to them (--regions=mouth,nose --region_weights=1,3 draws a nose three times as often as a "
        "mouth). Recorded in config.json. Default: every region equally often.",
    )
    flags.DEFINE_enum(
        "dataset",
        None,
        DATASETS,
        "Data set to train on. Default: the preset's (synthetic_faces for synthetic64, celeb_a for celeba128).",
    )
    define_data_dir_flag()
    flags.DEFINE_string(
        "model_dir",
        None,
        "Directory for config.json, checkpoints, TensorBoard logs and the final "
        "weights. An existing run there is resumed.",
    )
    flags.DEFINE_integer("epochs", _DEFAULTS.epochs, "Number of epochs.")
    flags.DEFINE_integer("steps_per_epoch", _DEFAULTS.steps_per_epoch, "Training steps (global batches) per epoch.")
    flags.DEFINE_integer(
        "batch_size",
        None,
        "GLOBAL batch size, split evenly over the replicas; must be a multiple "
        "of their number. Default: the preset's (32).",
    )
    flags.DEFINE_float(
        "learning_rate", None, "Adam learning rate of all three optimisers. Default: the preset's (1e-4)."
    )
    flags.DEFINE_float(
        "adv_weight",
        None,
        "Weight of the generator's adversarial loss in L_G. Default: the preset's "
        "(1, the paper's). Lower values make short CPU runs fill the hole sooner (see the demo).",
    )
    flags.DEFINE_float(
        "face_adv_weight",
        None,
        "Weight of the generator's adversarial loss in the rows whose region "
        "is the whole face (real faces have the skin of their neck, so there the adversarial loss keeps "
        "the source's skin instead of the exemplar's). Default: the preset's (synthetic64 and "
        "celeba128: 0; the paper's presets: the same as --adv_weight).",
    )
    flags.DEFINE_float(
        "swap_back_weight",
        None,
        "Weight of the swap-back loss: the source's region drawn into the exemplar and taken back must match "
        "the source inside the hole (L1, normalised by the hole's area); pixel supervision of the transfer "
        "path. Default: the preset's (0 = off).",
    )
    flags.DEFINE_float(
        "teacher_weight",
        None,
        "Weight of the teacher loss: the unfiltered edit (every attribute the exemplar shows transferred) must "
        "match the --teacher run's edit of the same pair inside the hole (L1, normalised by the hole's area). "
        "Default: the preset's (0 = off).",
    )
    flags.DEFINE_string(
        "teacher",
        None,
        "A trained run folder (same image size) whose edits the --teacher_weight loss follows, loaded as ebgan-eval "
        "loads it and never trained; e.g. a trained EBGAN for an Att-EBGAN. Recorded in config.json.",
    )
    flags.DEFINE_float("rec_weight", None, "Weight of the reconstruction loss in L_G. Default: the preset's (100).")
    flags.DEFINE_float("cyc_weight", None, "Weight of the cycle (code) loss in L_G. Default: the preset's (10).")
    flags.DEFINE_float(
        "cls_weight",
        None,
        "Weight of the attribute classification loss in L_G (att_ebgan). Default: the preset's (10).",
    )
    flags.DEFINE_float(
        "hole_rec_weight",
        None,
        "Weight of the reconstruction L1 inside the mask only (normalised by "
        "the mask's area), beside the paper's L_rec. Default: the preset's (0 = the paper's losses).",
    )
    flags.DEFINE_bool(
        "detach_cycle_target",
        None,
        "Stop the gradient of L_cyc's target E(B, M), so the encoder cannot "
        "satisfy L_cyc by returning one code for every face. Default: the preset's.",
    )
    flags.DEFINE_bool(
        "cycle_trains_encoder",
        None,
        "Let L_cyc update the encoder as well as the generator (the "
        "paper's joint update); --nocycle_trains_encoder trains only the generator with it, so the "
        "encoder cannot satisfy it with one code for every face. Default: the preset's.",
    )
    flags.DEFINE_bool(
        "cycle_fixed_encoder",
        None,
        "With --nocycle_trains_encoder: hold the encoder's weights fixed "
        "only where L_cyc encodes the edit, E(A^b) (a cheaper step), instead of taking all of L_cyc's "
        "gradient out of the encoder. Default: the preset's.",
    )
    flags.DEFINE_float(
        "gate_dropout",
        None,
        "att_ebgan: probability that an attribute the exemplar has is switched "
        "off in a training pair (gate and classification target 0), teaching filtered edits. Default: "
        "the preset's.",
    )
    flags.DEFINE_float(
        "hole_rec_l2_weight",
        None,
        "Weight of the mean squared error inside the mask only (the error "
        "PSNR measures), beside --hole_rec_weight. Default: the preset's.",
    )
    flags.DEFINE_enum(
        "exemplar_mask",
        None,
        EXEMPLAR_MASKS,
        "The mask the encoder reads a training pair's exemplar "
        "through: source (the source's mask, the paper's) or own (the same region and jitter on the "
        "exemplar's own landmarks). Default: the preset's.",
    )
    flags.DEFINE_enum(
        "cls_labels",
        None,
        CLS_LABELS,
        "att_ebgan: the labels the classification loss asks the edit to "
        "show: exemplar (the exemplar's on every attribute, the paper's) or region (the exemplar's on the "
        "attributes of the edited region, the source's on the others). Default: the preset's.",
    )
    flags.DEFINE_bool(
        "cls_on_composite",
        None,
        "att_ebgan: the classification loss reads the edit as a user "
        "receives it (generated inside the mask, the source outside) instead of the whole generated image. "
        "Default: the preset's.",
    )
    flags.DEFINE_float(
        "reconstruction_colour_jitter",
        None,
        "Recolour the hole of the reconstruction pair (B = A) by "
        "a random gain and offset per channel of up to this much, in the exemplar and the target, so "
        "the generator takes the hole's colours from the code, not the context. 0 = off. Default: the "
        "preset's.",
    )
    flags.DEFINE_float(
        "landmark_jitter",
        None,
        "Train the landmark estimator (models that align their exemplar or use per-part codes) on "
        "the source moved by a random similarity (shift up to this fraction of the image, scale within 1 +- this, "
        "rotation within +- this many radians), its landmarks moved alike, so that it learns where the landmarks "
        "are rather than the training faces' integer labels. 0 = off. Default: the preset's.",
    )
    flags.DEFINE_float(
        "ema_decay",
        None,
        "Keep an exponential moving average of the encoder's and generator's "
        "weights with this momentum per step, and evaluate and export it (0 = the last step's "
        "weights). Default: the preset's.",
    )
    flags.DEFINE_float(
        "lr_decay_fraction",
        None,
        "Let the learning rate fall linearly to 0 over this last share of "
        "the run's steps (epochs x steps_per_epoch; 0 = constant). Default: the preset's.",
    )
    flags.DEFINE_list(
        "model_config",
        [],
        "Overrides of the preset's network settings as name=value pairs, e.g. "
        "base_width=16,max_width=64 or code_pooling=parts,code_injection=all_scales,generator=unet "
        "(fields of "
        "ebgan_tf.config.ModelConfig; see docs/method.md).",
    )
    flags.DEFINE_enum(
        "strategy",
        "auto",
        STRATEGIES,
        "Distribution strategy. auto: mirrored when there is more than "
        "one GPU or --cpu_replicas > 1, else one_device. multi_worker: MultiWorkerMirroredStrategy over "
        "the machines named by the TF_CONFIG environment variable (run the same command on each).",
    )
    flags.DEFINE_integer(
        "cpu_replicas",
        1,
        "Split the CPU into this many logical devices, so that --strategy=mirrored "
        "runs on a machine without GPUs (one replica per logical CPU).",
    )
    flags.DEFINE_integer("seed", _DEFAULTS.seed, "Seed of the weight initialisation and of the input pipeline.")
    flags.DEFINE_integer(
        "checkpoint_every",
        _DEFAULTS.checkpoint_every,
        "Save a checkpoint (models, optimisers, step) every this many steps, and at the end.",
    )
    flags.DEFINE_integer("keep_checkpoints", _DEFAULTS.keep_checkpoints, "Number of most recent checkpoints to keep.")
    flags.DEFINE_string(
        "init_from",
        None,
        "A run folder or an export (a SavedModel version or base folder of ebgan-export, such as models/att_ebgan): "
        "a new run starts from its networks (a run's as ebgan-eval loads them: final weights, else the latest "
        "checkpoint's), for fine-tuning or a model option that keeps the networks' shapes; its optimisers, step "
        "count and learning-rate schedule start anew. An export holds no discriminator: add --noinit_discriminator. "
        "Recorded in config.json; resuming needs the same value.",
    )
    flags.DEFINE_boolean(
        "init_discriminator",
        _DEFAULTS.init_discriminator,
        "With --init_from: copy that run's discriminator too. --noinit_discriminator copies only the editing networks "
        "(encoder, generator, classifier, landmark estimator) and starts the discriminator new.",
    )
    flags.DEFINE_integer(
        "log_every", _DEFAULTS.log_every, "Write the training losses to TensorBoard every this many steps."
    )
    flags.DEFINE_integer(
        "image_every",
        _DEFAULTS.image_every,
        "Write the edit grid (source, exemplar, mask, result, "
        "filtered result) of a fixed evaluation batch to TensorBoard every this many steps.",
    )
    flags.DEFINE_integer("image_rows", _DEFAULTS.image_rows, "Rows (examples) of the TensorBoard edit grid.")
    flags.DEFINE_integer(
        "validation_steps",
        _DEFAULTS.validation_steps,
        "Batches of the evaluation split to compute the validation losses on after each epoch (0 = no validation).",
    )
    flags.DEFINE_bool(
        "mixed_precision",
        _DEFAULTS.mixed_precision,
        "Compute in float16 with float32 weights "
        "(Keras 'mixed_float16', dynamic loss scaling). For GPUs with tensor cores (compute capability "
        "7.0+); on CPUs it is slower than float32.",
    )
    flags.DEFINE_bool(
        "xla",
        _DEFAULTS.xla,
        "Compile the training step with XLA (jit_compile=True). Usually faster "
        "on GPUs and CPUs alike; the first step takes longer (compilation).",
    )
    flags.DEFINE_float(
        "divergence_factor",
        _DEFAULTS.divergence_factor,
        "Stop the run, keeping its last good "
        "checkpoint, when the reconstruction loss rises above this many times its lowest value so far "
        "(finite divergence, which the NaN guard does not see). 0 = never.",
    )
    flags.mark_flag_as_required("model_dir")


FLAGS = flags.FLAGS


def _parse_model_config(pairs: list[str]) -> dict[str, int | str]:
    overrides: dict[str, int | str] = {}
    for pair in pairs:
        name, separator, value = pair.partition("=")
        if not separator or not value.strip():
            raise ValueError(f"--model_config expects name=value pairs, got {pair!r}.")
        overrides[name.strip()] = value.strip()
    return overrides


def _parse_region_weights(values: list[str] | None) -> tuple[float, ...] | None:
    if values is None:
        return None
    try:
        return tuple(float(value) for value in values)
    except ValueError:
        raise ValueError(f"--region_weights expects comma-separated numbers, got {','.join(values)!r}.") from None


def run_config_from_flags() -> RunConfig:
    """The RunConfig the flags describe (validated later by `RunConfig.resolved`)."""
    weights = get_preset(FLAGS.preset).train.loss_weights
    given = {
        "adv": FLAGS.adv_weight,
        "rec": FLAGS.rec_weight,
        "cyc": FLAGS.cyc_weight,
        "cls": FLAGS.cls_weight,
        "hole_rec": FLAGS.hole_rec_weight,
        "detach_cycle_target": FLAGS.detach_cycle_target,
        "cycle_trains_encoder": FLAGS.cycle_trains_encoder,
        "cycle_fixed_encoder": FLAGS.cycle_fixed_encoder,
        "gate_dropout": FLAGS.gate_dropout,
        "hole_rec_l2": FLAGS.hole_rec_l2_weight,
        "exemplar_mask": FLAGS.exemplar_mask,
        "reconstruction_colour_jitter": FLAGS.reconstruction_colour_jitter,
        "landmark_jitter": FLAGS.landmark_jitter,
        "face_adv": FLAGS.face_adv_weight,
        "swap_back": FLAGS.swap_back_weight,
        "teacher": FLAGS.teacher_weight,
        "cls_labels": FLAGS.cls_labels,
        "cls_on_composite": FLAGS.cls_on_composite,
    }
    return RunConfig(
        model_dir=FLAGS.model_dir,
        preset=FLAGS.preset,
        variant=FLAGS.variant,
        regions=tuple(FLAGS.regions.split(",")) if FLAGS.regions is not None else None,
        region_weights=_parse_region_weights(FLAGS.region_weights),
        dataset=FLAGS.dataset,
        data_dir=FLAGS.data_dir,
        epochs=FLAGS.epochs,
        steps_per_epoch=FLAGS.steps_per_epoch,
        batch_size=FLAGS.batch_size,
        learning_rate=FLAGS.learning_rate,
        ema_decay=FLAGS.ema_decay,
        lr_decay_fraction=FLAGS.lr_decay_fraction,
        loss_weights=dataclasses.replace(weights, **{k: v for k, v in given.items() if v is not None}),
        model_overrides=_parse_model_config(FLAGS.model_config),
        seed=FLAGS.seed,
        checkpoint_every=FLAGS.checkpoint_every,
        keep_checkpoints=FLAGS.keep_checkpoints,
        log_every=FLAGS.log_every,
        image_every=FLAGS.image_every,
        image_rows=FLAGS.image_rows,
        validation_steps=FLAGS.validation_steps,
        mixed_precision=FLAGS.mixed_precision,
        xla=FLAGS.xla,
        divergence_factor=FLAGS.divergence_factor,
        init_from=FLAGS.init_from,
        init_discriminator=FLAGS.init_discriminator,
        teacher=FLAGS.teacher,
    )


@reports_errors("ebgan-train", ValueError, NonFiniteError, DivergenceError)  # ConfigError is a ValueError
def main(argv: list[str]) -> int:
    check_no_arguments(argv)
    train_lib.train(run_config_from_flags(), make_strategy(FLAGS.strategy, FLAGS.cpu_replicas))
    return 0


def run() -> None:
    """Console-script entry point."""
    run_main(main, define_flags, __name__, __doc__)


if __name__ == "__main__":
    run()
