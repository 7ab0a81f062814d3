"""The networks of EBGAN / Att-EBGAN (one file each), the paper's losses, and the trainer that trains them."""

from ebgan_tf.models.trainer import EBGANTrainer, build_trainer

__all__ = ["EBGANTrainer", "build_trainer"]
