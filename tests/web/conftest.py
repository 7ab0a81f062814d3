"""Fixtures of the web editor's tests: two served models, photos on disk, the editor's server, a second editor whose
default model composes parts (edit_composed) and a headless Debian chromium driven by selenium (explicit executable
paths; never a browser download)."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import skimage.data

from ebgan_tf import faces, images
from ebgan_tf.serving.web.app import WebApp, WebServer
from ebgan_tf.serving.web.models import ModelSet
from tests.helpers.contract_model import export_contract_model
from tests.helpers.photo_assets import ASTRONAUT, paste_face
from tests.helpers.served_models import export_composing_model

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1500",
)
IMAGE_SIZE = 32  # the served models' size


@pytest.fixture(scope="session")
def model_paths(tmp_path_factory) -> dict[str, str]:
    """An Att-EBGAN model `ebgan` and an EBGAN model `plain` (contract fixtures, 32 px), in TF Serving's layout."""
    base = str(tmp_path_factory.mktemp("exports"))
    return {
        "ebgan": export_contract_model(base, "ebgan", image_size=IMAGE_SIZE),
        "plain": export_contract_model(base, "plain", image_size=IMAGE_SIZE, variant="ebgan", seed=1),
    }


@pytest.fixture(scope="session")
def model_set(model_paths) -> ModelSet:
    return ModelSet.load([model_paths["ebgan"], model_paths["plain"]])


@pytest.fixture(scope="session")
def composing_path(tmp_path_factory) -> str:
    """An untrained tiny Att-EBGAN with per-part codes (32 px, the served models' template) exported by the project's
    exporter, named `parts`: it has edit_composed (the contract fixture models do not: they are older exports)."""
    return export_composing_model(str(tmp_path_factory.mktemp("composing")))


@pytest.fixture(scope="session")
def compose_web(composing_path, model_paths):
    """An editor serving `parts` (the default, with edit_composed) and `ebgan` (the contract fixture, without)."""
    server = WebServer(WebApp(ModelSet.load([composing_path, model_paths["ebgan"]])), "127.0.0.1", 0).start()
    yield server
    server.stop()


@pytest.fixture()
def composed(monkeypatch) -> list[dict]:
    """What reached faces.compose_crops (and what it answered), per composed edit."""
    received = []
    original = faces.compose_crops

    def spy(editor, source, source_crop, exemplar_crops, part_masks, strengths=None, attributes=None, feather=2.0):
        output = original(editor, source, source_crop, exemplar_crops, part_masks, strengths, attributes, feather)
        received.append(
            {
                "crop": source_crop,
                "exemplars": [crop.image for crop in exemplar_crops],
                "masks": part_masks[..., 0] > 0.5,
                "strengths": strengths,
                "attributes": attributes,
                "output": output,
            }
        )
        return output

    monkeypatch.setattr(faces, "compose_crops", spy)
    return received


@pytest.fixture(scope="session")
def photos(tmp_path_factory) -> dict[str, str]:
    """Files: the astronaut (cut around her face), a synthetic face pasted on a canvas, a photo without a face,
    a text file, and a photo with two faces."""
    folder = tmp_path_factory.mktemp("photos")
    paths = {
        name: str(folder / file)
        for name, file in (
            ("astronaut", "astronaut.png"),
            ("second", "second.png"),
            ("coffee", "coffee.png"),
            ("text", "notes.txt"),
            ("two_faces", "two_faces.png"),
        )
    }
    images.save_image(paths["astronaut"], images.load_image(ASTRONAUT)[0:320, 40:440])
    images.save_image(paths["second"], paste_face(1, 64, 3.5, 12.0, (300, 360), (20, -30)).image)
    images.save_image(paths["coffee"], skimage.data.coffee())
    with open(paths["text"], "w", encoding="utf-8") as stream:
        stream.write("These are notes, not a photo.\n")
    big, small = paste_face(1, 64, 2.4, 0.0, (220, 220)), paste_face(4, 64, 1.6, 0.0, (220, 220))
    images.save_image(paths["two_faces"], np.concatenate([big.image, small.image], axis=1))
    return paths


@pytest.fixture(scope="session")
def web(model_set):
    """The editor's server on a free port of 127.0.0.1, editing in-process."""
    server = WebServer(WebApp(model_set), "127.0.0.1", 0).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser():
    """Headless chromium. Without it the browser tests are skipped, except in CI, where that is a failure."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        message = (
            f"{', '.join(missing)} missing: install Debian's chromium and chromium-driver (make test does, as root)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"ebgan-web-chromium-{os.getpid()}")
    shutil.rmtree(profile, ignore_errors=True)
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_script_timeout(120)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)
