"""The web editor in a real browser (headless Debian chromium through selenium): a whole edit with files, errors
shown next to their input, the keyboard alone, a painted mask, several faces, the model chooser, the classifier's
reading of the exemplar, and photos dropped or pasted."""

from __future__ import annotations

import base64
import io
import os

import numpy as np
import pytest
from PIL import Image
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from ebgan_tf import faces, images
from ebgan_tf.serving.web.inputs import gallery_face

WAIT = 180  # seconds: the first detection builds MTCNN, slow on 2 shared busy cores


@pytest.fixture()
def page(browser, web):
    browser.get(web.url)
    wait_until(
        browser,
        lambda: (
            browser.find_elements(By.CSS_SELECTOR, "#source-gallery button")
            and browser.find_elements(By.CSS_SELECTOR, "#attributes input")
        ),
    )
    return browser


@pytest.fixture()
def edits(monkeypatch) -> list[dict]:
    """What reached faces.edit_crops on the server, per edit (source crop, mask, attributes)."""
    received = []
    original = faces.edit_crops

    def spy(editor, source, source_crop, exemplar_crop, crop_mask, attributes=None, feather=2.0):
        received.append({"mask": crop_mask[..., 0] > 0.5, "attributes": attributes, "source_crop": source_crop})
        return original(editor, source, source_crop, exemplar_crop, crop_mask, attributes, feather)

    monkeypatch.setattr(faces, "edit_crops", spy)
    return received


def wait_until(driver, condition, timeout: float = WAIT):
    try:
        return WebDriverWait(driver, timeout).until(lambda _: condition())
    except TimeoutException:
        errors = [element.text for element in driver.find_elements(By.CSS_SELECTOR, ".error") if element.text]
        raise AssertionError(f"timed out; errors on the page: {errors}") from None


def idle(driver) -> None:
    wait_until(driver, lambda: driver.execute_script("return !document.body.hasAttribute('aria-busy')"))


def text(driver, element_id: str) -> str:
    return driver.find_element(By.ID, element_id).text


def add_file(driver, field: str, path: str) -> None:
    driver.find_element(By.ID, f"{field}-file").send_keys(path)
    wait_until(driver, lambda: text(driver, f"{field}-faces") or text(driver, f"{field}-error"))
    idle(driver)


def result_pixels(driver) -> np.ndarray:
    """The result the page shows (and offers for download), fetched from its blob URL inside the page."""
    encoded = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch(document.getElementById('download').href).then((r) => r.arrayBuffer()).then((buffer) => {
          let text = ''; for (const byte of new Uint8Array(buffer)) text += String.fromCharCode(byte);
          done(btoa(text)); }).catch((error) => done('failed: ' + error));""")
    assert not encoded.startswith("failed"), encoded
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded))).convert("RGB"))


def wait_for_result(driver) -> None:
    wait_until(
        driver,
        lambda: (
            driver.execute_script(
                "const i = document.getElementById('result-image');"
                "return !document.getElementById('result-panel').hidden && i.complete && i.naturalWidth > 0"
            )
            or text(driver, "run-error")
        ),
    )
    assert not text(driver, "run-error")


def test_a_whole_edit_of_two_photos(page, photos, edits, tmp_path):
    add_file(page, "source", photos["astronaut"])
    add_file(page, "exemplar", photos["second"])
    assert (
        "one face found" in text(page, "source-faces")
        and len(page.find_elements(By.CSS_SELECTOR, "#source-boxes .face-box")) == 1
    )
    page.find_element(By.ID, "preset-mouth").click()
    page.find_element(By.ID, "attribute-Mustache").click()
    # Inputs are off while the request runs: recorded in the page, since the fake model answers sooner than a
    # WebDriver round trip on a loaded machine.
    page.execute_script(
        "const controls = document.getElementById('controls'); window.controlsWereOff = false;"
        "new MutationObserver(() => { window.controlsWereOff ||= controls.disabled; })"
        ".observe(controls, {attributes: true, attributeFilter: ['disabled']});"
    )
    page.find_element(By.ID, "run").click()
    wait_for_result(page)
    assert page.execute_script("return window.controlsWereOff")
    assert page.find_element(By.ID, "controls").get_attribute("disabled") is None  # and on again after it
    assert "filtered out: Mustache" in text(page, "status")
    sent = edits[-1]
    np.testing.assert_array_equal(sent["attributes"], [0.0, 1.0, 1.0])
    result, original = result_pixels(page).astype(int), images.load_image(photos["astronaut"]).astype(int)
    assert result.shape == original.shape
    changed = np.abs(result - original).max(axis=-1) > 0
    # Inside the mouth (warped into the photo) the result differs; far outside it, it is the source.
    crop = sent["source_crop"]
    ys, xs = np.nonzero(sent["mask"])
    mouth = faces.transform_points(faces.invert(crop.matrix), np.stack([xs + 0.5, ys + 0.5], 1))
    rows, cols = np.nonzero(changed)
    assert changed[np.round(mouth[:, 1]).astype(int), np.round(mouth[:, 0]).astype(int)].mean() > 0.5
    scale = np.sqrt(abs(np.linalg.det(crop.matrix[:, :2])))
    reach = 3 / scale  # photo pixels per 3 crop pixels: the seam band and rounding
    assert cols.min() >= mouth[:, 0].min() - reach and cols.max() <= mouth[:, 0].max() + reach
    assert rows.min() >= mouth[:, 1].min() - reach and rows.max() <= mouth[:, 1].max() + reach
    assert page.find_element(By.ID, "download").get_attribute("download") == "edited.png"
    # Before/after: holding B shows the source in place of the result.
    result_url = page.find_element(By.ID, "result-image").get_attribute("src")
    ActionChains(page).key_down("b").perform()
    assert page.find_element(By.ID, "result-image").get_attribute("src") != result_url
    ActionChains(page).key_up("b").perform()
    assert page.find_element(By.ID, "result-image").get_attribute("src") == result_url
    screenshot = os.environ.get("EBGAN_WEB_SCREENSHOT") or str(tmp_path / "web-editor.png")
    assert page.save_screenshot(screenshot) and Image.open(screenshot).size[0] > 800


def test_a_file_that_is_not_an_image_and_a_photo_without_a_face_show_their_errors(page, photos):
    add_file(page, "exemplar", photos["text"])
    assert "not an image" in text(page, "exemplar-error") and not text(page, "source-error")
    add_file(page, "source", photos["coffee"])
    assert "No face was found" in text(page, "source-error")
    page.find_element(By.ID, "run").click()
    assert "Add a exemplar photo first" in text(page, "exemplar-error")


def tab_to(driver, element_id: str, presses: int = 120, backwards: bool = False) -> None:
    """Presses Tab (Shift+Tab `backwards`) until the element has the focus (fails if it is not reachable by
    keyboard)."""
    for _ in range(presses):
        if driver.switch_to.active_element.get_attribute("id") == element_id:
            return
        keys = ActionChains(driver)
        (
            keys.key_down(Keys.SHIFT).send_keys(Keys.TAB).key_up(Keys.SHIFT) if backwards else keys.send_keys(Keys.TAB)
        ).perform()
    raise AssertionError(f"#{element_id} cannot be reached with {'Shift+' if backwards else ''}Tab")


def test_the_whole_edit_with_the_keyboard_alone(page, edits):
    page.execute_script("document.activeElement.blur()")  # start from the top of the page
    for element_id in ("source-gallery-1", "exemplar-gallery-4"):
        tab_to(page, element_id)
        ActionChains(page).send_keys(Keys.ENTER).perform()
        idle(page)
    assert "built-in face 2" in text(page, "source-faces") and "built-in face 5" in text(page, "exemplar-faces")
    tab_to(page, "preset-eyes")
    ActionChains(page).send_keys(Keys.SPACE).perform()
    tab_to(page, "attribute-Smiling")
    ActionChains(page).send_keys(Keys.SPACE).perform()
    tab_to(page, "run")
    ActionChains(page).send_keys(Keys.ENTER).perform()
    wait_for_result(page)
    np.testing.assert_array_equal(edits[-1]["attributes"], [1.0, 0.0, 1.0])
    assert edits[-1]["mask"][: 32 // 2].any() and not edits[-1]["mask"][int(32 * 0.7) :].any()  # eyes, not mouth
    tab_to(page, "download")


def canvas_mask(driver) -> np.ndarray:
    values = driver.execute_script("""
        const c = state.mask, d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const on = []; for (let i = 0; i < d.length; i += 4) on.push(d[i] > 127 ? 1 : 0); return on;""")
    size = int(np.sqrt(len(values)))
    return np.asarray(values, bool).reshape(size, size)


def test_a_painted_mask_reaches_the_server_as_painted(page, photos, edits):
    for field, index in (("source", 0), ("exemplar", 3)):
        page.find_element(By.ID, f"{field}-gallery-{index}").click()
        idle(page)
    page.find_element(By.ID, "preset-nose").click()
    nose = canvas_mask(page)
    view = page.find_element(By.ID, "mask-view")
    ActionChains(page).move_to_element_with_offset(view, -90, -100).click_and_hold().move_by_offset(
        60, 0
    ).move_by_offset(60, 0).release().perform()  # a stroke across the top
    painted = canvas_mask(page)
    assert painted[:8].any() and not nose[:8].any()
    page.find_element(By.ID, "tool-eraser").click()
    ActionChains(page).move_to_element_with_offset(view, -30, -100).click().perform()  # a dot on the stroke
    erased = canvas_mask(page)
    assert (erased <= painted).all() and erased.sum() < painted.sum()
    page.find_element(By.ID, "undo").click()
    np.testing.assert_array_equal(canvas_mask(page), painted)
    page.find_element(By.ID, "run").click()
    wait_for_result(page)
    np.testing.assert_array_equal(edits[-1]["mask"], painted)


def test_several_faces_are_outlined_and_picked_by_a_click(page, photos):
    add_file(page, "source", photos["two_faces"])
    boxes = page.find_elements(By.CSS_SELECTOR, "#source-boxes .face-box")
    assert len(boxes) == 2 and "2 faces found: face 1" in text(page, "source-faces")
    first_crop = page.execute_script("return state.crop.image.src")
    boxes[1].click()
    idle(page)
    assert "face 2 is used" in text(page, "source-faces")
    assert page.execute_script("return state.crop.image.src") != first_crop


def test_the_model_chooser_shows_each_models_information(page):
    assert "att_ebgan" in text(page, "model-info") and "32×32" in text(page, "model-info")
    Select(page.find_element(By.ID, "model-select")).select_by_value("plain")
    wait_until(page, lambda: "ebgan model: it transfers" in text(page, "attributes-note"))
    assert not page.find_elements(By.CSS_SELECTOR, "#attributes input") and "no attributes" in text(page, "model-info")


def expected_reading(web, model: str, stored) -> dict[str, tuple[bool, float]]:
    """attribute -> (present, probability) of the server's classifier on the exemplar's aligned crop."""
    answer = web.app.crop({"model": model, "image": web.app.store.add(stored), "field": "exemplar"})
    return {entry["attribute"]: (entry["present"], entry["probability"]) for entry in answer["reading"]}


def shown_reading(driver) -> dict[str, str]:
    return {
        element.get_attribute("id")[len("reading-") :]: element.text
        for element in driver.find_elements(By.CSS_SELECTOR, "#attributes .reading")
    }


def test_the_classifiers_reading_of_the_exemplar_is_shown_beside_each_switch(page, web):
    assert set(shown_reading(page).values()) == {""}  # no exemplar yet
    page.find_element(By.ID, "exemplar-gallery-4").click()
    wait_until(page, lambda: all(shown_reading(page).values()))
    expected = expected_reading(web, "ebgan", gallery_face(4))
    shown = shown_reading(page)
    assert set(shown) == set(expected) == {"Mustache", "Smiling", "Wearing_Lipstick"}
    for name, (present, probability) in expected.items():
        word, number = shown[name].removeprefix("exemplar: ").split()
        assert word == ("yes" if present else "no") and abs(float(number) - probability) <= 0.006, (name, shown)
    assert {present for present, _ in expected.values()} == {True, False}  # both words are on the page
    assert "whether the model's classifier reads it on the exemplar" in text(page, "attributes-note")
    Select(page.find_element(By.ID, "model-select")).select_by_value("plain")  # EBGAN: nothing to read
    wait_until(page, lambda: "ebgan model: it transfers" in text(page, "attributes-note"))
    idle(page)
    assert not page.find_elements(By.CSS_SELECTOR, "#attributes .reading")
    Select(page.find_element(By.ID, "model-select")).select_by_value("ebgan")  # back: read again
    wait_until(page, lambda: shown_reading(page) and all(shown_reading(page).values()))
    assert shown_reading(page) == shown


SEND_FILE = """
    const [kind, targetId, encoded, name, type] = arguments;
    const bytes = Uint8Array.from(atob(encoded), (char) => char.charCodeAt(0));
    const transfer = new DataTransfer();
    transfer.items.add(new File([bytes], name, { type }));
    const target = targetId ? document.getElementById(targetId) : document;
    if (targetId) target.focus();
    const init = { bubbles: true, cancelable: true };
    const event = kind === "drop" ? new DragEvent("drop", { ...init, dataTransfer: transfer })
                                  : new ClipboardEvent("paste", { ...init, clipboardData: transfer });
    target.dispatchEvent(event);
    return event.defaultPrevented;"""


def send_file(driver, kind: str, target_id: str | None, path: str, field: str) -> None:
    """Dispatches a synthetic `drop` on `target_id` (or a `paste` with it focused; None: on the document) carrying
    the file at `path`, built in the page as a File; waits for the photo to be taken."""
    with open(path, "rb") as stream:
        encoded = base64.b64encode(stream.read()).decode()
    assert driver.execute_script(SEND_FILE, kind, target_id, encoded, os.path.basename(path), "image/png")
    wait_until(driver, lambda: text(driver, f"{field}-faces") or text(driver, f"{field}-error"))
    idle(driver)
    assert not text(driver, f"{field}-error")


def stored_pixels(driver, web, field: str) -> np.ndarray:
    """The pixels the server holds for the photo the page uses as `field`."""
    return web.app.store.get(driver.execute_script(f"return state.photos.{field}.image"), field).pixels


def test_a_dropped_photo_is_taken_like_a_chosen_file(page, web, photos):
    send_file(page, "drop", "source-drop", photos["astronaut"], "source")
    dropped = stored_pixels(page, web, "source")
    assert "one face found" in text(page, "source-faces") and not page.execute_script("return state.photos.exemplar")
    assert page.execute_script("return state.crop !== null")  # the aligned face and the region are shown
    assert page.find_element(By.ID, "source-image").get_attribute("src").startswith("blob:")
    add_file(page, "source", photos["astronaut"])  # the same file through the picker
    np.testing.assert_array_equal(dropped, stored_pixels(page, web, "source"))
    np.testing.assert_array_equal(dropped, images.load_image(photos["astronaut"]))
    send_file(page, "drop", "exemplar-drop", photos["second"], "exemplar")
    np.testing.assert_array_equal(stored_pixels(page, web, "exemplar"), images.load_image(photos["second"]))
    wait_until(page, lambda: all(shown_reading(page).values()))  # the exemplar's reading follows a drop too


def test_a_pasted_photo_goes_to_the_focused_panel_else_the_source(page, web, photos):
    send_file(page, "paste", None, photos["second"], "source")  # nothing focused, no source yet: the source
    np.testing.assert_array_equal(stored_pixels(page, web, "source"), images.load_image(photos["second"]))
    assert not page.execute_script("return state.photos.exemplar")
    send_file(page, "paste", "exemplar-drop", photos["astronaut"], "exemplar")  # the exemplar panel has the focus
    np.testing.assert_array_equal(stored_pixels(page, web, "exemplar"), images.load_image(photos["astronaut"]))
    np.testing.assert_array_equal(stored_pixels(page, web, "source"), images.load_image(photos["second"]))
    assert "one face found" in text(page, "exemplar-faces")
