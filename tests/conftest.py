"""Shared test set-up: quiet TensorFlow logs, CPU only, the --fast switch, seeded randomness and the tiny data set
fixture.

Test modules live in one folder per package (tests/data, tests/models, ...) without __init__.py files, so their
basenames must stay unique; shared code lives in tests/helpers (imported as `tests.helpers...`).
"""

import os

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# Subprocesses import tests.helpers (and the repository's packages) whatever their working directory.
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [_REPO_ROOT, os.environ.get("PYTHONPATH")]))

import pytest  # noqa: E402  (after the environment above)

from ebgan_tf.cli import hide_tensorflow_logs  # noqa: E402

hide_tensorflow_logs()  # as in the commands: TensorFlow's C++ lines only with EBGAN_TF_VERBOSE=1

from ebgan_tf.data import pipeline, synthetic_faces  # noqa: E402
from tests.helpers.seeds import TEST_SEED, seed_random_generators  # noqa: E402
from tests.helpers.tiny import IMAGE_SIZE, SPLIT_SIZES  # noqa: E402


def pytest_addoption(parser):
    parser.addoption("--fast", action="store_true", help="Skip the tests marked slow (the developer's quick loop).")


def pytest_report_header(config) -> str:
    return f"random seed of every test: {TEST_SEED} (EBGAN_TEST_SEED)"


@pytest.fixture(autouse=True)
def seeded() -> None:
    """Seeds the global random generators before each test, so that a failure reproduces (Hypothesis takes its
    own seed: --hypothesis-seed in pytest.ini)."""
    seed_random_generators()


def pytest_collection_modifyitems(config, items):
    if config.getoption("--fast"):
        skip = pytest.mark.skip(reason="slow; run without --fast")
        for item in items:
            if "slow" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> str:
    """A tiny synthetic_faces data set at 32 px, read by pipeline.load_examples for this module's tests."""
    path = str(tmp_path_factory.mktemp("data"))
    synthetic_faces.prepare_synthetic_faces(path, image_size=IMAGE_SIZE, **SPLIT_SIZES)

    def load_tiny(dataset: str, data_dir: str, split: str, image_size: int):
        assert dataset == "synthetic_faces" and image_size == IMAGE_SIZE
        return synthetic_faces.load_synthetic_faces(data_dir, split, image_size, prepare=False, **SPLIT_SIZES)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pipeline, "load_examples", load_tiny)
        yield path
