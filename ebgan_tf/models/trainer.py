"""EBGANTrainer: the keras.Model whose train_step trains encoder + generator, discriminator and classifier.

One forward pass per step computes every loss; the three network groups are then updated simultaneously, each
from the gradient of its own loss with respect to its own variables (generator group: L_G, discriminator: L_D,
classifier: L_C). D scores the composite y once: L_D's gradient is taken only with respect to D's variables, which
is exactly D's step on stop_gradient(y), while L_adv_g's gradient flows through the same D(y) into the generator.
Each loss is averaged over the GLOBAL batch, so N replicas make the same update as one device.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
import tensorflow as tf

from ebgan_tf.config import ATT_EBGAN, LossWeights, ModelConfig, Preset, validate_variant
from ebgan_tf.data.masks import CODE_PARTS, PARTS, part_layout
from ebgan_tf.models import losses
from ebgan_tf.models.alignment import align, random_similarities, warp
from ebgan_tf.models.classifier import Classifier
from ebgan_tf.models.discriminator import Discriminator
from ebgan_tf.models.encoder import Encoder
from ebgan_tf.models.generator import Generator, composite, gate_code
from ebgan_tf.models.landmarks import LandmarkEstimator

FACE = "face"  # the region whose rows LossWeights.face_adv weighs


class EBGANTrainer(keras.Model):
    """Holds the networks of EBGAN / Att-EBGAN, trains them with `fit` and edits with `edit`."""

    def __init__(
        self,
        model_config: ModelConfig,
        attribute_names: Sequence[str],
        variant: str,
        loss_weights: LossWeights = LossWeights(),
        attribute_parts: Sequence[str] | None = None,
        regions: Sequence[str] = (),
        teacher_edit: Callable[..., tf.Tensor] | None = None,
        region_attributes: Mapping[str, Sequence[str]] | None = None,
        **kwargs,
    ):
        """`attribute_parts`: the face part (`CODE_PARTS`) that shows each attribute; with per-part codes an
        Att-EBGAN attribute's block is read from that part's code only (None: from every part). `regions`: the
        trained regions, in the order the batches' `mask_region` counts them (for `LossWeights.face_adv`).
        `teacher_edit`: another trained model's `edit`, which the unfiltered edits follow in training with weight
        `loss_weights.teacher` (a bound method, so the teacher's weights are neither trained nor saved here; None:
        no teacher loss, as when a trained run is loaded for editing). `region_attributes`: the attributes each
        region shows (for `LossWeights.cls_labels="region"`)."""
        super().__init__(**kwargs)
        self.teacher_edit = teacher_edit
        self.variant = validate_variant(variant)
        self.model_config = model_config
        self.attribute_names = tuple(attribute_names)
        self.loss_weights = loss_weights
        self.regions = tuple(regions)
        if loss_weights.cls_labels == "region" and variant == ATT_EBGAN and not (regions and region_attributes):
            raise ValueError('cls_labels="region" needs the trained regions and the attributes each one shows.')
        # float32 [R, n]: 1 where region r (in the order of `regions`) shows attribute n (cls_labels="region").
        shown = region_attributes or {}
        self.region_shows = tf.reshape(
            tf.constant(
                [[float(name in shown.get(region, ())) for name in self.attribute_names] for region in self.regions],
                tf.float32,
            ),
            [len(self.regions), len(self.attribute_names)],
        )
        self.parts = model_config.code_pooling == "parts"
        # How E's exemplar is warped onto the source (`ModelConfig.exemplar_alignment`), None when it is not.
        self.alignment = None if model_config.exemplar_alignment == "none" else model_config.exemplar_alignment
        self.resampling = model_config.exemplar_resampling
        size, downsamplings = model_config.image_size, model_config.code_downsamplings
        if size % 2**downsamplings:
            raise ValueError(f"image_size {size} is not divisible by 2**code_downsamplings = {2**downsamplings}.")
        attributed = variant == ATT_EBGAN
        if attributed and not self.attribute_names:
            raise ValueError("Att-EBGAN needs at least one attribute name.")
        code_channels = (
            len(self.attribute_names) * model_config.code_channels_per_attribute + model_config.ungated_code_channels
            if attributed
            else model_config.ebgan_code_channels
        )
        self.encoder = Encoder(model_config, code_channels, name="encoder")
        self.part_channels = (
            self._part_channels(attribute_parts, code_channels)
            if attributed and self.parts and attribute_parts is not None
            else None
        )
        self.generator = Generator(model_config, name="generator")
        self.discriminator = Discriminator(model_config, name="discriminator")
        self.classifier = Classifier(model_config, len(self.attribute_names), name="classifier") if attributed else None
        # Per-part codes place the parts by landmarks, an aligned exemplar is warped by them; an edit given none (an
        # export's) estimates them.
        self.landmarks = LandmarkEstimator(model_config, name="landmarks") if self.parts or self.alignment else None
        loss_names = (
            ["g_loss", "d_loss"]
            + (["c_loss"] if attributed else [])
            + ["adv_g", "rec", "cyc"]
            + (["hole_rec"] if loss_weights.hole_rec else [])
            + (["hole_rec_l2"] if loss_weights.hole_rec_l2 else [])
            + (["swap_back"] if loss_weights.swap_back else [])
            + (["teacher"] if teacher_edit is not None else [])
            + (["cls_g"] if attributed else [])
            + ["adv_d", "spread"]
            + (["landmark_error"] if self.landmarks is not None else [])
        )
        self.spread_names = tuple(f"spread_{name}" for name in self.attribute_names) if attributed else ()
        self._trackers = {name: keras.metrics.Mean(name=name) for name in loss_names + list(self.spread_names)}
        # Keras optimizers, None until compile.
        self.g_optimizer: Any = None
        self.d_optimizer: Any = None
        self.c_optimizer: Any = None
        self.l_optimizer: Any = None

    def _part_channels(self, attribute_parts: Sequence[str], code_channels: int) -> tf.Tensor:
        """float32 [P, C]: 1 where part p's code carries channel c (its own attributes' blocks and the ungated
        block), 0 elsewhere."""
        if len(attribute_parts) != len(self.attribute_names) or set(attribute_parts) - set(CODE_PARTS):
            raise ValueError(
                f"attribute_parts must name one of {', '.join(CODE_PARTS)} for each of the "
                f"{len(self.attribute_names)} attributes, got {list(attribute_parts)}."
            )
        block = self.model_config.code_channels_per_attribute
        rows = [
            [
                1.0 if attribute_parts[channel // block] == part else 0.0
                for channel in range(len(self.attribute_names) * block)
            ]
            + [1.0] * self.model_config.ungated_code_channels
            for part in CODE_PARTS
        ]
        return tf.constant(rows, tf.float32)

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        """The loss trackers; Keras resets them at the start of every epoch."""
        return list(self._trackers.values())

    def build_all(self) -> None:
        """Runs every network once on zeros so all variables exist (before loading weights or compiling)."""
        size = self.model_config.image_size
        images, mask = tf.zeros([1, size, size, 3]), tf.zeros([1, size, size, 1])
        layout = tf.zeros([1, size, size, len(CODE_PARTS)]) if self.parts else None
        self.generator(images, mask, self.encoder(images, mask, layout), layout)
        self.discriminator(images)
        if self.classifier is not None:
            self.classifier(images)
        if self.landmarks is not None:
            self.landmarks(images)
        self.built = True

    def compile(
        self,
        learning_rate: float | keras.optimizers.schedules.LearningRateSchedule = 1e-4,
        beta_1: float = 0.5,
        beta_2: float = 0.999,
        ema_decay: float = 0.0,
        **kwargs,
    ) -> None:
        """Creates and builds the Adam optimizers of the three groups (call inside `strategy.scope()`).

        `ema_decay` > 0 keeps an exponential moving average of the encoder's and generator's weights in their
        optimiser (see `use_averaged_weights`). Extra keyword arguments go to keras.Model.compile; jit_compile
        defaults to False. Under a "mixed_float16" global policy the optimizers are wrapped in a LossScaleOptimizer.
        """
        if not self.built:
            self.build_all()

        def adam(name: str, variables: list, ema: float = 0.0) -> keras.optimizers.Optimizer:
            optimizer = keras.optimizers.Adam(
                learning_rate, beta_1=beta_1, beta_2=beta_2, name=name, use_ema=ema > 0, ema_momentum=ema or 0.99
            )
            if keras.mixed_precision.global_policy().name == "mixed_float16":
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer, name=name)
            optimizer.build(variables)
            return optimizer

        self.g_optimizer = adam("g_optimizer", self._generator_variables(), ema_decay)
        self.d_optimizer = adam("d_optimizer", self.discriminator.trainable_variables)
        if self.classifier is not None:
            self.c_optimizer = adam("c_optimizer", self.classifier.trainable_variables)
        if self.landmarks is not None:
            self.l_optimizer = adam("l_optimizer", self.landmarks.trainable_variables)
        kwargs.setdefault("jit_compile", False)
        # No optimiser in Keras' own slot: `fit` would overwrite the weights with their average after every call.
        super().compile(optimizer=None, **kwargs)

    def use_averaged_weights(self) -> bool:
        """Replaces the encoder's and generator's weights by their moving average, if the run keeps one (the
        weights a run is evaluated and exported with); returns whether it did. Training on afterwards starts from
        the average."""
        optimizer = getattr(self.g_optimizer, "inner_optimizer", self.g_optimizer)
        if optimizer is None or not optimizer.use_ema:
            return False
        optimizer.finalize_variable_values(self._generator_variables())
        return True

    @property
    def attribute_code_channels(self) -> int:
        """Channels of Z^B in attribute blocks (Att-EBGAN; 0 for EBGAN): the code without its ungated block."""
        if self.classifier is None:
            return 0
        return self.encoder.code_channels - self.model_config.ungated_code_channels

    def _generator_variables(self) -> list:
        return self.encoder.trainable_variables + self.generator.trainable_variables

    def _gate(self, code, labels):
        """Z' of Att-EBGAN (the label gating); EBGAN's code passes unchanged."""
        if self.classifier is None:
            return code
        return gate_code(code, labels, len(self.attribute_names), self.model_config.ungated_code_channels)

    def exemplar_code(self, image, mask, layout=None):
        """Z^B = E(B, M): the code of `image`'s masked region (per-part codes need the image's part `layout`; an
        Att-EBGAN attribute's block is kept only in the part that shows it)."""
        code = self.encoder(image, mask, layout)
        return code * self.part_channels if self.part_channels is not None else code

    def _code(self, image, mask, labels, layout=None):
        """(Z, Z'): the encoder's code of `image`'s masked region and its label-gated version."""
        code = self.exemplar_code(image, mask, layout)
        return code, self._gate(code, labels)

    def _recoloured(self, image, mask):
        """`image` with its masked region recoloured by a random gain and offset per image and channel (up to
        `reconstruction_colour_jitter`), seeded by the step like `_transfer_labels`."""
        strength = self.loss_weights.reconstruction_colour_jitter
        gain_seed, offset_seed = tf.unstack(tf.random.experimental.stateless_split(self._replica_seed(1), 2))
        shape = tf.stack([tf.shape(image)[0], 1, 1, 3])
        gain = tf.random.stateless_uniform(shape, gain_seed, 1.0 - strength, 1.0 + strength)
        offset = tf.random.stateless_uniform(shape, offset_seed, -strength, strength)
        recoloured = tf.clip_by_value((image + 1.0) * gain - 1.0 + offset, -1.0, 1.0)
        return composite(tf.cast(recoloured, image.dtype), image, tf.cast(mask, image.dtype))

    def _replica_seed(self, draw: int) -> tf.Tensor:
        """A stateless seed [2] of this step and replica for the draw numbered `draw` (1: the reconstruction's
        colours, 2: the landmark estimator's jitter); each replica draws for its own rows."""
        replica = tf.distribute.get_replica_context()
        replica_id = tf.cast(replica.replica_id_in_sync_group if replica is not None else 0, tf.int32)
        return tf.stack([tf.cast(self.g_optimizer.iterations, tf.int32), draw + 2 * replica_id])

    def _landmark_error(self, faces, landmarks, training: bool) -> tf.Tensor:
        """[N]: the mean distance in pixels between L(faces) and `landmarks` [N, 5, 2]; in training with
        `landmark_jitter`, both moved by one random similarity per face first, so that L learns where the landmarks
        are rather than the training faces' integer labels."""
        landmarks = tf.cast(landmarks, tf.float32)
        strength = self.loss_weights.landmark_jitter
        if strength and training:
            transforms, landmarks = random_similarities(landmarks, faces.shape[1], strength, self._replica_seed(2))
            faces = tf.cast(warp(faces, transforms), faces.dtype)
        assert self.landmarks is not None
        return tf.reduce_mean(tf.norm(self.landmarks(faces) - landmarks, axis=-1), axis=-1)

    def _drops_attributes(self) -> bool:
        """Whether training switches some of the exemplar's attributes off (`gate_dropout`, Att-EBGAN only)."""
        return bool(self.loss_weights.gate_dropout) and self.classifier is not None

    def _transfer_labels(self, labels):
        """The exemplar's labels with each present attribute switched off with probability `gate_dropout`.

        Stateless randomness seeded by the step, drawn for the GLOBAL batch and sliced to this replica's rows:
        resumable, and the same draws on one device, N replicas and N workers."""
        if not self._drops_attributes():
            return labels
        rate = self.loss_weights.gate_dropout
        replica = tf.distribute.get_replica_context()
        replicas = replica.num_replicas_in_sync if replica is not None else 1
        replica_id = replica.replica_id_in_sync_group if replica is not None else 0
        local = tf.shape(labels)[0]
        seed = tf.stack([tf.cast(self.g_optimizer.iterations, tf.int32), tf.constant(0, tf.int32)])
        draws = tf.random.stateless_uniform(tf.stack([local * replicas, tf.shape(labels)[1]]), seed)
        start = tf.cast(replica_id, tf.int32) * local
        keep = tf.cast(draws[start : start + local] >= rate, labels.dtype)
        return labels * keep

    def _per_example_losses(self, batch: dict, training: bool = False) -> dict[str, tf.Tensor]:
        """One forward pass: every loss of the paper, per example [N], keyed like the logs (gate dropout only
        when `training`)."""
        source, exemplar, mask = batch["source"], batch["exemplar"], batch["mask"]
        weights = self.loss_weights
        exemplar_mask = batch["exemplar_mask"] if weights.exemplar_mask == "own" else mask
        if self.alignment:  # E reads B in A's pose, through A's mask
            exemplar = align(
                exemplar, batch["exemplar_landmarks"], batch["source_landmarks"], self.alignment, self.resampling
            )
            exemplar_mask = mask
        if self.parts and "source_layout" not in batch:
            raise ValueError(
                "A model with per-part codes needs each face's part layout in its batches "
                "(source_layout, exemplar_layout): pipeline.make_dataset(..., part_layouts=True)."
            )
        source_layout = batch["source_layout"] if self.parts else None
        exemplar_layout = batch["exemplar_layout"] if self.parts else None
        fill_layout = source_layout * mask if self.parts else None  # where each part's code acts in the source
        context = self.generator.encode(source, mask)
        dropped_out = training and self._drops_attributes()
        transfer = self._transfer_labels(batch["exemplar_attributes"]) if training else batch["exemplar_attributes"]
        exemplar_code, exemplar_gated = self._code(exemplar, exemplar_mask, transfer, exemplar_layout)
        target = source
        if weights.reconstruction_colour_jitter and training:
            target = self._recoloured(source, mask)
        _, source_gated = self._code(target, mask, batch["source_attributes"], source_layout)
        generated = self.generator.decode(context, exemplar_gated, fill_layout)
        reconstructed = self.generator.decode(context, source_gated, fill_layout)
        edited = composite(generated, source, mask)  # the edit as a user receives it
        fake_logits = self.discriminator(edited)
        cycle_target = tf.stop_gradient(exemplar_code) if weights.detach_cycle_target else exemplar_code
        cycled = self.exemplar_code(generated, mask, source_layout)
        if weights.gate_dropout:  # blocks switched off are not in A^b: compare the transferred blocks only
            cycle_target, cycled = self._gate(cycle_target, transfer), self._gate(cycled, transfer)
        fixed = {}
        if self._cycle_fixed_encoder():  # the same L_cyc through E's weights only (train_step takes it out of E's)
            held = self.exemplar_code(tf.stop_gradient(generated), mask, source_layout)
            if weights.gate_dropout:
                held = self._gate(held, transfer)
            fixed["cyc_through_encoder"] = losses.cycle_loss(tf.stop_gradient(cycle_target), held)
        values = {
            "adv_g": losses.generator_adversarial_loss(fake_logits),
            "rec": losses.reconstruction_loss(target, reconstructed),
            "cyc": losses.cycle_loss(cycle_target, cycled),
            "adv_d": losses.discriminator_loss(self.discriminator(source), fake_logits),
        }
        values["g_loss"] = (
            self._adversarial_weights(batch) * values["adv_g"]
            + weights.rec * values["rec"]
            + weights.cyc * values["cyc"]
        )
        if weights.hole_rec:
            values["hole_rec"] = losses.hole_reconstruction_loss(target, reconstructed, mask)
            values["g_loss"] += weights.hole_rec * values["hole_rec"]
        if weights.hole_rec_l2:
            values["hole_rec_l2"] = losses.hole_reconstruction_loss(target, reconstructed, mask, squared=True)
            values["g_loss"] += weights.hole_rec_l2 * values["hole_rec_l2"]
        if weights.swap_back:
            swapped_back = self._swapped_back(
                context, source_gated, exemplar, exemplar_mask, exemplar_layout, fill_layout, batch["source_attributes"]
            )
            values["swap_back"] = losses.hole_reconstruction_loss(target, swapped_back, mask)
            values["g_loss"] += weights.swap_back * values["swap_back"]
        if self.teacher_edit is not None:
            values["teacher"] = self._teacher_loss(batch, context, exemplar_code, generated, fill_layout, dropped_out)
            values["g_loss"] += weights.teacher * values["teacher"]
        values["d_loss"] = values["adv_d"]
        # Collapse detector: the same value for every example of the batch (trackers average it over steps; under
        # several replicas, each replica measures its own part of the batch).
        ones = tf.ones_like(values["rec"])
        blocks = exemplar_code[..., : self.attribute_code_channels] if self.spread_names else exemplar_code
        spreads = losses.code_spread(tf.stop_gradient(blocks), max(len(self.spread_names), 1))
        values["spread"] = tf.reduce_mean(spreads) * ones
        for index, name in enumerate(self.spread_names):
            values[name] = spreads[index] * ones
        if self.classifier is not None:
            read = edited if weights.cls_on_composite else generated
            values["cls_g"] = losses.classification_loss(self._edit_labels(batch, transfer), self.classifier(read))
            values["c_loss"] = losses.classification_loss(batch["source_attributes"], self.classifier(source))
            values["g_loss"] += weights.cls * values["cls_g"]
        if self.landmarks is not None:
            values["landmark_error"] = self._landmark_error(source, batch["source_landmarks"], training)
        return {**values, **fixed}

    def _swapped_back(self, context, source_gated, exemplar, exemplar_mask, exemplar_layout, fill_layout, labels):
        """G(A, E(B^a)): A's region drawn into B's mask (`exemplar_mask`) by A's code, B^a = G(B, Z'^A), then taken
        back into A's hole from there, gated by A's labels (B^a shows A's attributes)."""
        exemplar_fill = exemplar_layout * exemplar_mask if self.parts else None
        drawn = self.generator.decode(self.generator.encode(exemplar, exemplar_mask), source_gated, exemplar_fill)
        _, back_gated = self._code(composite(drawn, exemplar, exemplar_mask), exemplar_mask, labels, exemplar_layout)
        return self.generator.decode(context, back_gated, fill_layout)

    def _teacher_loss(self, batch, context, exemplar_code, generated, fill_layout, dropped_out: bool) -> tf.Tensor:
        """[N]: L1 inside the hole between the unfiltered edit (`generated`, or a decode of the code gated by the
        exemplar's own labels where the gate dropout switched some off: `dropped_out`) and the teacher's edit of
        the same pair."""
        assert self.teacher_edit is not None
        unfiltered = generated
        if dropped_out:
            own_gated = self._gate(exemplar_code, batch["exemplar_attributes"])
            unfiltered = self.generator.decode(context, own_gated, fill_layout)
        taught = self.teacher_edit(
            batch["source"],
            batch["exemplar"],
            batch["mask"],
            source_landmarks=batch["source_landmarks"],
            exemplar_landmarks=batch["exemplar_landmarks"],
        )
        taught = tf.stop_gradient(tf.cast(taught, unfiltered.dtype))
        return losses.hole_reconstruction_loss(taught, unfiltered, batch["mask"])

    def _adversarial_weights(self, batch: dict) -> tf.Tensor | float:
        """The generator's adversarial weight: `adv`, or per row [N] `face_adv` where the row's region is the face."""
        weights = self.loss_weights
        if weights.face_adv is None or FACE not in self.regions:
            return weights.adv
        face_rows = tf.equal(
            self._row_regions(batch, "face_adv weighs the rows whose region is the face"), self.regions.index(FACE)
        )
        return tf.where(face_rows, weights.face_adv, weights.adv)

    def _edit_labels(self, batch: dict, transfer: tf.Tensor) -> tf.Tensor:
        """[N, n]: the labels L_cls_g asks C to read on the edit: `transfer` (the exemplar's, some switched off), or
        with `cls_labels="region"` those on the attributes the row's region shows and the source's on the others."""
        if self.loss_weights.cls_labels == "exemplar":
            return transfer
        rows = self._row_regions(batch, 'cls_labels="region" reads the attributes of each row\'s region')
        shows = tf.cast(tf.gather(self.region_shows, rows), transfer.dtype)
        return shows * transfer + (1.0 - shows) * tf.cast(batch["source_attributes"], transfer.dtype)

    def _row_regions(self, batch: dict, why: str) -> tf.Tensor:
        """[N]: each row's region (its index in `regions`); a ValueError saying `why` if the batches lack it."""
        if "mask_region" not in batch:
            raise ValueError(
                f"{why}: the batches need each row's region (mask_region, as pipeline.make_dataset yields it)."
            )
        return batch["mask_region"]

    def _cycle_fixed_encoder(self) -> bool:
        return not self.loss_weights.cycle_trains_encoder and self.loss_weights.cycle_fixed_encoder

    def _logs(self, values: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """Feeds the per-example losses to the trackers; returns their running means as rank-1 [1] tensors
        (MultiWorkerMirroredStrategy cannot reduce scalar logs across workers in Keras 3.15)."""
        for name, tracker in self._trackers.items():
            tracker.update_state(values[name])
        return {name: tf.reshape(tracker.result(), [1]) for name, tracker in self._trackers.items()}

    def train_step(self, batch: dict) -> dict[str, tf.Tensor]:
        """One simultaneous update of every group from one forward pass (see the module docstring)."""
        groups = [
            ("g_loss", self.g_optimizer, self._generator_variables()),
            ("d_loss", self.d_optimizer, self.discriminator.trainable_variables),
        ]
        if self.classifier is not None:
            groups.append(("c_loss", self.c_optimizer, self.classifier.trainable_variables))
        if self.landmarks is not None:
            groups.append(("landmark_error", self.l_optimizer, self.landmarks.trainable_variables))
        global_batch = tf.shape(batch["source"])[0] * tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape(persistent=True) as tape:
            values = self._per_example_losses(batch, training=True)
            objectives = [
                optimizer.scale_loss(tf.nn.compute_average_loss(values[name], global_batch_size=global_batch))
                for name, optimizer, _ in groups
            ]
            if not self.loss_weights.cycle_trains_encoder:
                cycle_name = "cyc_through_encoder" if self._cycle_fixed_encoder() else "cyc"
                cycle_objective = self.g_optimizer.scale_loss(
                    tf.nn.compute_average_loss(
                        self.loss_weights.cyc * values[cycle_name], global_batch_size=global_batch
                    )
                )
        gradients = [tape.gradient(objective, variables) for objective, (_, _, variables) in zip(objectives, groups)]
        if not self.loss_weights.cycle_trains_encoder:
            # L_cyc trains the generator only (as BicycleGAN's latent regression): its share of the encoder's
            # gradient is taken out again (with cycle_fixed_encoder, only its share through E(A^b)'s weights).
            encoder_variables = self.encoder.trainable_variables
            cycle_gradients = tape.gradient(cycle_objective, encoder_variables)
            gradients[0] = [
                gradient if cycle is None else gradient - cycle
                for gradient, cycle in zip(gradients[0][: len(encoder_variables)], cycle_gradients)
            ] + gradients[0][len(encoder_variables) :]
        del tape
        for (_, optimizer, variables), grads in zip(groups, gradients):
            optimizer.apply_gradients(zip(grads, variables))
        return self._logs(values)

    def test_step(self, batch: dict) -> dict[str, tf.Tensor]:
        """The same losses as train_step, without updates."""
        return self._logs(self._per_example_losses(batch))

    def layouts(self, source, exemplar, source_landmarks=None, exemplar_landmarks=None):
        """(source layout, exemplar layout) [N, S, S, P] of an edit with per-part codes, from each face's landmarks
        [N, 5, 2] or, where none are given, from the landmarks the model estimates on the image; (None, None) for a
        model without per-part codes."""
        if not self.parts:
            return None, None
        size = self.model_config.image_size
        return (
            part_layout(self.face_landmarks(source, source_landmarks), size),
            part_layout(self.face_landmarks(exemplar, exemplar_landmarks), size),
        )

    def face_landmarks(self, image, given=None) -> tf.Tensor:
        """The landmarks [N, 5, 2] of `image`: `given` if not None, else the model's estimate."""
        if given is not None:
            return tf.convert_to_tensor(given, tf.float32)
        assert self.landmarks is not None  # built with per-part codes or exemplar alignment
        return self.landmarks(image)

    def edit(
        self, source, exemplar, mask, attributes=None, source_landmarks=None, exemplar_landmarks=None
    ) -> tf.Tensor:
        """The composite y = A^b * M + A * (1 - M), float32 [N, S, S, 3] in [-1, 1].

        source, exemplar: [N, S, S, 3] in [-1, 1]; mask: [N, S, S, 1], 1 = edit. Att-EBGAN gates the exemplar's
        code with attributes * (C(exemplar) > 0.5): the classifier reads the exemplar's attributes (a user's photo
        has no labels) and `attributes` [N, n] (1 = transfer, 0 = filter out; None = all ones) switches single
        attributes off. EBGAN ignores `attributes`. Per-part codes place the parts by the faces' landmarks [N, 5, 2]
        where given, else by the landmarks the model estimates.
        """
        source, exemplar, mask = (tf.convert_to_tensor(value, tf.float32) for value in (source, exemplar, mask))
        source_layout, exemplar_layout = self.layouts(source, exemplar, source_landmarks, exemplar_landmarks)
        encoded = self.aligned_exemplar(source, exemplar, source_landmarks, exemplar_landmarks)
        code = self.exemplar_code(encoded, mask, exemplar_layout)
        if self.classifier is not None:
            labels = tf.cast(self.classifier(exemplar) > 0.0, tf.float32)  # logit > 0 <=> sigmoid > 0.5
            if attributes is not None:
                labels *= tf.convert_to_tensor(attributes, tf.float32)
            code = self._gate(code, labels)
        return self._fill(source, mask, code, source_layout)

    def aligned_exemplar(self, source, exemplar, source_landmarks=None, exemplar_landmarks=None) -> tf.Tensor:
        """The exemplar as E reads it in an edit: warped onto the source's landmarks if the model aligns it
        (`ModelConfig.exemplar_alignment`; each face's landmarks [N, 5, 2] as given or, where none are given, as the
        model estimates them), else as it is."""
        if not self.alignment:
            return exemplar
        return align(
            exemplar,
            self.face_landmarks(exemplar, exemplar_landmarks),
            self.face_landmarks(source, source_landmarks),
            self.alignment,
            self.resampling,
        )

    def _fill(self, source, mask, code, source_layout):
        """The composite of G_dec(G_enc(source, mask), code)."""
        fill_layout = source_layout * mask if source_layout is not None else None
        generated = self.generator.decode(self.generator.encode(source, mask), code, fill_layout)
        return composite(generated, source, mask)

    def zero_code_edit(self, source, mask, source_landmarks=None) -> tf.Tensor:
        """The exemplar-free baseline: `edit` with the exemplar code zeroed."""
        source, mask = tf.convert_to_tensor(source, tf.float32), tf.convert_to_tensor(mask, tf.float32)
        source_layout, _ = self.layouts(source, source, source_landmarks, source_landmarks)
        code = tf.zeros_like(self.exemplar_code(source, mask, source_layout))
        return self._fill(source, mask, code, source_layout)

    def call(self, batch: dict) -> tf.Tensor:
        """`edit` of a training batch (docs/data.md; no filtering), so `predict` works on training batches."""
        return self.edit(batch["source"], batch["exemplar"], batch["mask"])


def attribute_parts(preset: Preset, attribute_names: Sequence[str]) -> tuple[str, ...]:
    """The face part (`CODE_PARTS`) that shows each attribute in `preset`: the first of eyes, brows, nose, mouth
    that lists it, else the skin (face-wide attributes)."""
    return tuple(
        next((part for part in PARTS if name in preset.region_attributes.get(part, ())), CODE_PARTS[-1])
        for name in attribute_names
    )


def build_trainer(
    preset: Preset,
    variant: str,
    regions: Sequence[str],
    loss_weights: LossWeights | None = None,
    teacher_edit: Callable[..., tf.Tensor] | None = None,
) -> EBGANTrainer:
    """The trainer of `preset` for `regions` (its attributes: preset.attributes_for(regions), for both variants;
    EBGAN records them but does not use them). `loss_weights` defaults to the preset's."""
    names = preset.attributes_for(regions)
    return EBGANTrainer(
        preset.model,
        names,
        variant,
        loss_weights if loss_weights is not None else preset.train.loss_weights,
        attribute_parts=attribute_parts(preset, names),
        regions=regions,
        teacher_edit=teacher_edit,
        region_attributes=preset.region_attributes,
    )
