"""EBGAN-TF: exemplar-based generative facial editing (EBGAN / Att-EBGAN) in TensorFlow 2 / Keras 3."""

from setuptools import find_packages, setup

setup(
    name="ebgan-tf",
    version="0.1.0",
    description="Exemplar-based generative facial editing (EBGAN, Att-EBGAN): train, export, serve.",
    python_requires=">=3.10,<3.14",
    packages=find_packages(include=["ebgan_tf", "ebgan_tf.*", "training", "export", "serving", "serving.*"]),
    package_data={"serving": ["configs/*"], "serving.web": ["static/*"]},
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
        "ai-edge-litert>=2.3,<3",
        "mtcnn>=1.0,<2",  # face detection with its weights inside the package (no download)
    ],
    # selenium drives Debian's chromium in the browser tests of the web editor (.ci/run installs chromium).
    extras_require={"dev": ["pytest>=8", "pytest-xdist>=3.5", "scikit-image>=0.22", "hypothesis>=6.100",
                            "selenium>=4.20,<5"]},
    entry_points={
        "console_scripts": [
            "ebgan-data=training.data:run",
            "ebgan-train=training.train:run",
            "ebgan-eval=training.evaluate:run",
            "ebgan-figures=training.figures:run",
            "ebgan-eval-classifier=training.eval_classifier:run",
            "ebgan-curve=training.curve:run",
            "ebgan-export=export.main:run",
            "ebgan-edit=serving.edit:run",
            "ebgan-serve=serving.main:run",
            "ebgan-client=serving.client:run",
            "ebgan-web=serving.web.main:run",
        ],
    },
)
