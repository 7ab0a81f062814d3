"""The web editor's composed edit, edit history, mask tools and zoom in a real browser (headless Debian chromium
through selenium): parts from several faces at their own strengths and switches, the full-size result, keeping an
edit and editing on top of it, undo and redo of edits, redo, clear and invert of the painted mask, zoom on the photo
and the result, an export without edit_composed, and every new control with the keyboard alone."""

from __future__ import annotations

import numpy as np
import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from ebgan_tf import faces, images
from ebgan_tf.data import masks
from ebgan_tf.serving.web.inputs import gallery_face
from tests.helpers.photo_assets import allowed_to_change, seam_band
from tests.web.test_web_browser import (  # noqa: F401 (edits)
    add_file,
    canvas_mask,
    edits,
    idle,
    result_pixels,
    tab_to,
    text,
    wait_for_result,
    wait_until,
)

SIZE = 32


@pytest.fixture()
def page(browser, compose_web):
    """The editor whose default model composes parts, loaded (models, gallery and switches shown)."""
    browser.get(compose_web.url)
    wait_until(
        browser,
        lambda: (
            browser.find_elements(By.CSS_SELECTOR, "#source-gallery button")
            and browser.find_elements(By.CSS_SELECTOR, "#attributes input")
            and browser.find_element(By.ID, "add-part").is_enabled()
        ),
    )
    return browser


def press(driver, *keys: str) -> None:
    ActionChains(driver).send_keys(*keys).perform()


def active_id(driver) -> str:
    return driver.switch_to.active_element.get_attribute("id")


def pick_gallery_faces(driver, source: int, exemplar: int) -> None:
    for field, index in (("source", source), ("exemplar", exemplar)):
        driver.find_element(By.ID, f"{field}-gallery-{index}").click()
        idle(driver)


def run(driver) -> np.ndarray:
    driver.find_element(By.ID, "run").click()
    wait_for_result(driver)
    idle(driver)
    return result_pixels(driver)


def aligned(compose_web, stored) -> faces.FaceCrop:
    """A stored photo's first face aligned for the composing model, as the server aligns it."""
    info = compose_web.app.models.get("parts").info
    return faces.face_crop(stored.pixels, info, "detect", 0, faces=stored.faces)


def test_a_composed_edit_of_parts_from_several_faces(page, compose_web, photos, composed):
    add_file(page, "source", photos["astronaut"])
    add_file(page, "exemplar", photos["second"])
    page.find_element(By.ID, "add-part").click()
    region, face = (Select(page.find_element(By.ID, f"part-1-{name}")) for name in ("region", "face"))
    assert region.first_selected_option.text == "mouth"  # the first region, from the exemplar photo
    assert face.first_selected_option.text == "second.png"
    region.select_by_value("eyes")
    face.select_by_visible_text("Built-in face 4")
    page.find_element(By.ID, "part-1-strength").send_keys(Keys.ARROW_LEFT * 10)  # steps of 0.05
    assert text(page, "part-1-strength-value") == "0.50"
    page.find_element(By.ID, "part-1-attribute-Mustache").click()
    page.find_element(By.ID, "add-part").click()
    assert Select(page.find_element(By.ID, "part-2-region")).first_selected_option.text == "mouth"
    result = run(page)
    assert "2 parts composed" in text(page, "status")
    sent = composed[-1]
    assert sent["strengths"] == [0.5, 1.0] and sent["attributes"][1] is None
    info = compose_web.app.models.get("parts").info
    np.testing.assert_array_equal(sent["attributes"][0], info.attributes_from(drop=["Mustache"]))
    second = compose_web.app.store.get(page.execute_script("return state.photos.exemplar.image"), "exemplar")
    np.testing.assert_array_equal(sent["exemplars"][0], aligned(compose_web, gallery_face(3)).image)
    np.testing.assert_array_equal(sent["exemplars"][1], aligned(compose_web, second).image)
    for mask, name in zip(sent["masks"], ("eyes", "mouth")):
        np.testing.assert_array_equal(mask, masks.region_mask(sent["crop"].landmarks, name, SIZE).numpy()[..., 0] > 0.5)
    # The download is the composed photo at the source's full size, exactly what the server made.
    original = images.load_image(photos["astronaut"])
    assert result.shape == original.shape == sent["output"].shape
    np.testing.assert_array_equal(result, sent["output"])
    assert np.abs(result.astype(int) - original).max() > 30


def changeable(edit: dict, shape: tuple[int, int]) -> np.ndarray:
    """bool [H, W]: the photo pixels an edit (as the `edits` spy saw it) may change: its region and seam band."""
    crop = edit["source_crop"]
    return allowed_to_change(shape, crop.matrix, edit["mask"], seam_band(crop))


def test_keep_an_edit_edit_on_top_of_it_undo_and_redo(page, edits):
    pick_gallery_faces(page, 1, 4)
    original = gallery_face(1).pixels
    page.find_element(By.ID, "preset-mouth").click()
    first = run(page)
    mouth = (first != original).any(axis=-1)
    assert mouth.any() and not page.find_element(By.ID, "keep").get_attribute("disabled")
    crop_before = page.execute_script("return state.crop.image.src")
    page.find_element(By.ID, "keep").click()
    idle(page)
    assert text(page, "history-status") == "Kept edits: 1 of 1." and "next edit starts from" in text(page, "status")
    assert page.find_element(By.ID, "keep").get_attribute("disabled")
    kept_url = page.find_element(By.ID, "download").get_attribute("href")
    assert page.find_element(By.ID, "source-image").get_attribute("src") == kept_url  # the picture edits start from
    assert page.execute_script("return state.crop.image.src") != crop_before  # the mask view shows it too
    page.find_element(By.ID, "preset-eyes").click()
    second = run(page)
    eyes = changeable(edits[-1], original.shape[:2])
    assert (mouth & ~eyes).any() and (second != first).any()
    np.testing.assert_array_equal(second[~eyes], first[~eyes])  # on top of the first edit: its mouth stays
    assert page.find_element(By.ID, "result-source").get_attribute("src") == kept_url  # before = the kept picture
    page.find_element(By.ID, "keep").click()
    idle(page)
    assert text(page, "history-status") == "Kept edits: 2 of 2."
    page.find_element(By.ID, "history-undo").click()
    idle(page)
    np.testing.assert_array_equal(result_pixels(page), first)
    assert text(page, "history-status") == "Kept edits: 1 of 2."
    page.find_element(By.ID, "history-undo").click()
    idle(page)
    assert not page.find_element(By.ID, "result-panel").is_displayed()  # back at the photo as added
    assert page.find_element(By.ID, "history-undo").get_attribute("disabled")
    assert page.find_element(By.ID, "source-image").get_attribute("src").endswith("/api/gallery/1.png")
    page.find_element(By.ID, "history-redo").click()
    idle(page)
    np.testing.assert_array_equal(result_pixels(page), first)
    page.find_element(By.ID, "history-redo").click()
    idle(page)
    np.testing.assert_array_equal(result_pixels(page), second)
    assert page.find_element(By.ID, "history-redo").get_attribute("disabled")
    # An edit kept after an undo replaces the edits that came after it.
    page.find_element(By.ID, "history-undo").click()
    idle(page)
    page.find_element(By.ID, "preset-nose").click()
    third = run(page)
    nose = changeable(edits[-1], original.shape[:2])
    page.find_element(By.ID, "keep").click()
    idle(page)
    assert text(page, "history-status") == "Kept edits: 2 of 2."
    np.testing.assert_array_equal(third[~nose], first[~nose])  # made from the first edit, not the second
    assert (third != second).any() and page.find_element(By.ID, "history-redo").get_attribute("disabled")


def test_the_painted_mask_undo_redo_clear_and_invert_reach_the_server(page, edits):
    pick_gallery_faces(page, 0, 3)
    page.find_element(By.ID, "preset-nose").click()
    nose = canvas_mask(page)
    view = page.find_element(By.ID, "mask-view")
    ActionChains(page).move_to_element_with_offset(view, -90, -100).click_and_hold().move_by_offset(
        120, 0
    ).release().perform()  # a stroke across the top
    painted = canvas_mask(page)
    assert painted[:8].any() and not nose[:8].any()
    for button, expected in (("undo", nose), ("redo", painted), ("undo", nose), ("redo", painted)):
        page.find_element(By.ID, button).click()
        np.testing.assert_array_equal(canvas_mask(page), expected, err_msg=button)
    for keys, expected in (("z", nose), ("y", painted), ("z", nose)):
        ActionChains(page).key_down(Keys.CONTROL).send_keys(keys).key_up(Keys.CONTROL).perform()
        np.testing.assert_array_equal(canvas_mask(page), expected, err_msg=keys)
    ActionChains(page).key_down(Keys.CONTROL).key_down(Keys.SHIFT).send_keys("z").key_up(Keys.SHIFT).key_up(
        Keys.CONTROL
    ).perform()
    np.testing.assert_array_equal(canvas_mask(page), painted)
    page.find_element(By.ID, "clear-mask").click()
    assert not canvas_mask(page).any()
    page.find_element(By.ID, "undo").click()
    np.testing.assert_array_equal(canvas_mask(page), painted)
    page.find_element(By.ID, "invert-mask").click()
    np.testing.assert_array_equal(canvas_mask(page), ~painted)
    run(page)
    np.testing.assert_array_equal(edits[-1]["mask"], ~painted)


def rect(driver, element) -> dict:
    """The element's (or element id's) box on the screen."""
    if isinstance(element, str):
        element = driver.find_element(By.ID, element)
    return driver.execute_script("return arguments[0].getBoundingClientRect().toJSON()", element)


def test_zoom_on_the_photo_and_on_the_result_centres_the_face(page, photos):
    add_file(page, "source", photos["astronaut"])
    page.find_element(By.ID, "exemplar-gallery-4").click()
    idle(page)
    fitted = rect(page, "source-image")
    Select(page.find_element(By.ID, "source-zoom")).select_by_value("4")
    zoomed, view = rect(page, "source-image"), rect(page, "source-view")
    assert abs(zoomed["width"] - 4 * fitted["width"]) <= 1 and abs(view["width"] - fitted["width"]) <= 1
    box = rect(page, page.find_element(By.CSS_SELECTOR, "#source-boxes .face-box.chosen"))  # 4 times larger
    centre = (box["left"] + box["width"] / 2, box["top"] + box["height"] / 2)
    assert view["left"] < centre[0] < view["right"] and view["top"] < centre[1] < view["bottom"]
    assert box["width"] > view["width"] / 2
    page.find_element(By.ID, "preset-mouth").click()
    run(page)
    fitted = rect(page, "result-image")
    Select(page.find_element(By.ID, "result-zoom")).select_by_value("8")
    for image in ("result-source", "result-image"):
        assert abs(rect(page, image)["width"] - 8 * fitted["width"]) <= 1
    position = "const v = document.getElementById(arguments[0]); return [v.scrollLeft, v.scrollTop];"
    before, after = (page.execute_script(position, view) for view in ("result-source-view", "result-view"))
    assert before == after and min(after) > 0  # both show the face, at the same place
    page.execute_script("document.getElementById('result-view').scrollLeft -= 50")
    wait_until(
        page,
        lambda: page.execute_script(position, "result-source-view") == page.execute_script(position, "result-view"),
    )
    Select(page.find_element(By.ID, "result-zoom")).select_by_value("1")
    assert abs(rect(page, "result-image")["width"] - fitted["width"]) <= 1


def test_parts_and_the_edit_history_with_the_keyboard_alone(page, compose_web, composed):
    page.execute_script("document.activeElement.blur()")
    for element_id in ("source-gallery-1", "exemplar-gallery-4"):
        tab_to(page, element_id)
        press(page, Keys.ENTER)
        idle(page)
    tab_to(page, "add-part")
    press(page, Keys.ENTER)
    assert active_id(page) == "part-1-region"
    press(page, Keys.ARROW_DOWN)  # mouth -> eyes
    assert Select(page.find_element(By.ID, "part-1-region")).first_selected_option.get_attribute("value") == "eyes"
    tab_to(page, "part-1-face")
    press(page, Keys.ARROW_DOWN)  # the exemplar (built-in face 5) -> built-in face 6
    assert Select(page.find_element(By.ID, "part-1-face")).first_selected_option.text == "Built-in face 6"
    tab_to(page, "part-1-strength")
    press(page, *[Keys.ARROW_LEFT] * 4)
    assert text(page, "part-1-strength-value") == "0.80"
    tab_to(page, "part-1-attribute-Mustache")
    press(page, Keys.SPACE)
    tab_to(page, "add-part")
    press(page, Keys.ENTER)
    tab_to(page, "part-2-remove")
    press(page, Keys.ENTER)
    assert active_id(page) == "add-part" and not page.find_elements(By.ID, "part-2-region")
    tab_to(page, "run")
    press(page, Keys.ENTER)
    wait_for_result(page)
    idle(page)
    sent = composed[-1]
    assert sent["strengths"] == [0.8] and len(sent["masks"]) == 1
    np.testing.assert_array_equal(
        sent["masks"][0], masks.region_mask(sent["crop"].landmarks, "eyes", SIZE).numpy()[..., 0] > 0.5
    )
    np.testing.assert_array_equal(sent["exemplars"][0], aligned(compose_web, gallery_face(5)).image)
    assert list(sent["attributes"][0]) == [0.0] + [1.0] * (len(sent["attributes"][0]) - 1)  # Mustache first
    first = result_pixels(page)
    tab_to(page, "keep")
    press(page, Keys.ENTER)
    idle(page)
    assert text(page, "history-status") == "Kept edits: 1 of 1."
    tab_to(page, "history-undo", backwards=True)
    press(page, Keys.ENTER)
    idle(page)
    assert text(page, "history-status") == "Kept edits: 0 of 1." and active_id(page) == "history-redo"
    press(page, Keys.ENTER)
    idle(page)
    assert text(page, "history-status") == "Kept edits: 1 of 1."
    np.testing.assert_array_equal(result_pixels(page), first)


def test_the_mask_tools_and_zoom_with_the_keyboard_alone(page):
    page.execute_script("document.activeElement.blur()")
    for element_id in ("source-gallery-2", "exemplar-gallery-5"):
        tab_to(page, element_id)
        press(page, Keys.ENTER)
        idle(page)
    tab_to(page, "preset-nose")
    press(page, Keys.SPACE)
    nose = canvas_mask(page)
    tab_to(page, "clear-mask")
    press(page, Keys.ENTER)
    assert not canvas_mask(page).any()
    tab_to(page, "invert-mask")
    press(page, Keys.ENTER)
    assert canvas_mask(page).all()
    tab_to(page, "undo", backwards=True)
    press(page, Keys.ENTER)
    assert not canvas_mask(page).any()
    press(page, Keys.ENTER)
    np.testing.assert_array_equal(canvas_mask(page), nose)
    tab_to(page, "redo")
    press(page, Keys.ENTER)
    assert not canvas_mask(page).any()
    tab_to(page, "source-zoom", backwards=True)
    fitted = rect(page, "source-image")
    press(page, Keys.ARROW_DOWN)  # fit -> 2x
    assert abs(rect(page, "source-image")["width"] - 2 * fitted["width"]) <= 1
    tab_to(page, "source-view", backwards=True)  # the zoomed photo takes the focus and scrolls with the arrows
    position = "return document.getElementById('source-view').scrollLeft"
    start = page.execute_script(position)
    press(page, Keys.ARROW_LEFT)
    wait_until(page, lambda: page.execute_script(position) < start)


def test_an_export_without_edit_composed_says_to_export_it_again_and_errors_show_by_their_part(page):
    pick_gallery_faces(page, 1, 4)
    page.find_element(By.ID, "add-part").click()
    Select(page.find_element(By.ID, "part-1-region")).select_by_value("painted")
    page.find_element(By.ID, "clear-mask").click()
    page.find_element(By.ID, "run").click()
    wait_until(page, lambda: text(page, "part-1-error"))
    assert text(page, "part-1-error").startswith("Part 1: The mask is empty")
    Select(page.find_element(By.ID, "model-select")).select_by_value("ebgan")
    idle(page)
    wait_until(page, lambda: "export the model again" in text(page, "parts-note"))
    assert not page.find_element(By.ID, "add-part").is_enabled()
    page.find_element(By.ID, "run").click()
    wait_until(page, lambda: text(page, "model-error"))
    assert "no edit_composed signature" in text(page, "model-error")
    assert "Export the model again" in text(page, "model-error")
