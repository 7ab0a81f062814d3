"""make bench's sections, run as `python -m benchmarks.<section>` (or all by benchmarks.run)."""

from ebgan_tf.cli import hide_tensorflow_logs_if_run_as_command

# As the commands: TensorFlow's start-up lines hidden when run with python -m (EBGAN_TF_VERBOSE=1 shows them).
hide_tensorflow_logs_if_run_as_command(__name__)
