"""The training commands (ebgan-data, ebgan-train, ebgan-eval-classifier, ebgan-eval, the demo) and the training
loop."""

from ebgan_tf.cli import hide_tensorflow_logs_if_run_as_command

# `python -m ebgan_tf.training.<command>` hides TensorFlow's start-up lines before the command imports it; a library
# import changes nothing (the console scripts hide them in ebgan_tf.commands).
hide_tensorflow_logs_if_run_as_command(__name__)
