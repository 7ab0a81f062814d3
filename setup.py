"""EBGAN-TF: exemplar-based generative facial editing (EBGAN / Att-EBGAN) in TensorFlow 2 / Keras 3."""

from setuptools import find_packages, setup

# The command folders install inside the library's name (ebgan_tf.training, ebgan_tf.export, ebgan_tf.serving):
# never in the way of a user's own modules called training, export or serving.
COMMAND_FOLDERS = ("training", "export", "serving")
COMMAND_PACKAGES = find_packages(include=[name for folder in COMMAND_FOLDERS for name in (folder, f"{folder}.*")])

setup(
    name="ebgan-tf",
    version="0.1.0",
    description="Exemplar-based generative facial editing (EBGAN, Att-EBGAN): train, export, serve.",
    python_requires=">=3.10,<3.14",
    packages=find_packages(include=["ebgan_tf", "ebgan_tf.*"]) + [f"ebgan_tf.{name}" for name in COMMAND_PACKAGES],
    package_dir={f"ebgan_tf.{folder}": folder for folder in COMMAND_FOLDERS},
    package_data={
        "ebgan_tf.serving": ["configs/*"],
        "ebgan_tf.serving.web": ["static/*"],
        "ebgan_tf.evaluation": ["targets.json"],
    },
    install_requires=[
        "tensorflow~=2.21.0",
        "keras>=3.15,<4",
        "tensorflow-datasets>=4.9.10,<5",
        "importlib_resources",  # used by tensorflow-datasets 4.9.10 but not declared for Python >= 3.9
        "numpy>=1.26,<3",
        "pillow>=10",
        "absl-py>=2.1",
        "tensorboard~=2.21.0",
        "matplotlib>=3.8",  # the quality-over-time plot of ebgan-curve (Agg backend, no display)
        "tensorflow-serving-api~=2.21.0",
        "grpcio>=1.60",
        "grpcio-health-checking>=1.60",
        "h11>=0.14,<1",  # HTTP/1.1 framing of the REST API and the web editor
        "ai-edge-litert>=2.3,<3",
        "mtcnn>=1.0,<2",  # face detection with its weights inside the package (no download)
    ],
    # selenium drives Debian's chromium in the browser tests of the web editor (.ci/run installs chromium).
    # h2: the tests' raw HTTP/2 (gRPC) frames; ruff and mypy: make lint (pinned: a new release may flag new things).
    extras_require={
        "dev": [
            "pytest>=8",
            "pytest-xdist>=3.5",
            "scikit-image>=0.22",
            "hypothesis>=6.100",
            "selenium>=4.20,<5",
            "h2>=4.1,<5",
            "ruff==0.17.6",
            "mypy==2.4.1",
        ]
    },
    entry_points={
        "console_scripts": [
            "ebgan-data=ebgan_tf.commands:ebgan_data",
            "ebgan-train=ebgan_tf.commands:ebgan_train",
            "ebgan-eval=ebgan_tf.commands:ebgan_eval",
            "ebgan-figures=ebgan_tf.commands:ebgan_figures",
            "ebgan-eval-classifier=ebgan_tf.commands:ebgan_eval_classifier",
            "ebgan-curve=ebgan_tf.commands:ebgan_curve",
            "ebgan-ablate=ebgan_tf.commands:ebgan_ablate",
            "ebgan-export=ebgan_tf.commands:ebgan_export",
            "ebgan-edit=ebgan_tf.commands:ebgan_edit",
            "ebgan-serve=ebgan_tf.commands:ebgan_serve",
            "ebgan-client=ebgan_tf.commands:ebgan_client",
            "ebgan-web=ebgan_tf.commands:ebgan_web",
        ],
    },
)
