"""ebgan-export: SavedModel and TFLite export of a trained run, with parity checks."""

from ebgan_tf.cli import hide_tensorflow_logs

hide_tensorflow_logs()  # before any command module imports tensorflow
