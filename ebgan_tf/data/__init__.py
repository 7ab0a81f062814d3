"""Data sets (synthetic faces, CelebA), masks and the training input pipeline."""

DEFAULT_DATA_DIR = "~/tensorflow_datasets"  # tensorflow-datasets' own default
