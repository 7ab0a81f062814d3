"""Serving: ebgan-serve (a TF Serving-compatible model server), ebgan-client and ebgan-edit."""

from ebgan_tf.cli import hide_tensorflow_logs

hide_tensorflow_logs()  # before any command module imports tensorflow
