"""The training commands (ebgan-data, ebgan-train, ebgan-eval-classifier, ebgan-eval, the demo) and the training loop."""

from ebgan_tf.cli import hide_tensorflow_logs

hide_tensorflow_logs()  # before any command module imports tensorflow
