"""The web editor's fixes found trying it as a new user: empty photo panels show no broken image, the status does not
stay at "Working…" after an upload, a classifier reading that rounds to 0.50 never contradicts its yes/no, Enter
keeps the focus (and an edit moves it to the result), and switching models keeps the switches and clears the other
model's result; a camera-sized upload gets through, and a refusal for its size says it in MB."""

from __future__ import annotations

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from ebgan_tf.serving.request_limits import RequestLimits
from ebgan_tf.serving.web.app import WebApp, WebOptions, WebServer
from tests.web.test_web_api import call, error_of
from tests.web.test_web_browser import add_file, idle, page, tab_to, text, wait_for_result  # noqa: F401 (page: the fixture)


def test_a_fresh_page_shows_no_empty_photo_stage(page):
    stages = page.find_elements(By.CSS_SELECTOR, ".stage")
    assert stages and not any(stage.is_displayed() for stage in stages)
    assert not any(image.is_displayed() for image in page.find_elements(By.CSS_SELECTOR, ".stage img"))


def test_the_status_is_not_left_at_working_after_an_upload(page, photos):
    add_file(page, "source", photos["astronaut"])
    assert text(page, "status") != "Working…"
    add_file(page, "exemplar", photos["text"])  # an error: the status does not claim work either
    assert text(page, "exemplar-error") and text(page, "status") != "Working…"
    assert page.find_element(By.ID, "source-image").is_displayed()  # the source's photo shows


def test_a_reading_that_rounds_to_one_half_agrees_with_the_gate(page):
    name = page.find_element(By.CSS_SELECTOR, "#attributes input").get_attribute("data-attribute")
    shown = {}
    for probability, present in ((0.50004, True), (0.5, False), (0.51, True), (0.2, False)):
        page.execute_script(
            "showReading([{attribute: arguments[0], probability: arguments[1], present: arguments[2]}])",
            name,
            probability,
            present,
        )
        shown[probability] = text(page, f"reading-{name}")
    assert shown == {
        0.50004: "exemplar: yes > 0.50",
        0.5: "exemplar: no ≤ 0.50",
        0.51: "exemplar: yes 0.51",
        0.2: "exemplar: no 0.20",
    }
    idle(page)


def active_id(driver) -> str:
    return driver.switch_to.active_element.get_attribute("id")


def test_enter_keeps_the_focus_on_a_gallery_face_and_moves_it_to_the_result_after_an_edit(page):
    for element_id in ("source-gallery-1", "exemplar-gallery-4"):
        tab_to(page, element_id)
        ActionChains(page).send_keys(Keys.ENTER).perform()
        idle(page)
        assert active_id(page) == element_id  # not the page body
    page.find_element(By.ID, "preset-mouth").click()
    tab_to(page, "run")
    ActionChains(page).send_keys(Keys.ENTER).perform()
    wait_for_result(page)
    idle(page)
    assert active_id(page) == "result-title"
    top = page.execute_script("return document.getElementById('result-title').getBoundingClientRect().top")
    assert 0 <= top < page.execute_script("return window.innerHeight")  # in view


def test_switching_models_keeps_the_switches_and_clears_the_other_models_result(page):
    page.find_element(By.ID, "source-gallery-1").click()
    idle(page)
    page.find_element(By.ID, "exemplar-gallery-4").click()
    idle(page)
    page.find_element(By.ID, "preset-mouth").click()
    page.find_element(By.ID, "attribute-Mustache").click()
    page.find_element(By.ID, "run").click()
    wait_for_result(page)
    idle(page)
    Select(page.find_element(By.ID, "model-select")).select_by_value("plain")
    idle(page)
    assert not page.find_element(By.ID, "result-panel").is_displayed() and not text(page, "status")
    Select(page.find_element(By.ID, "model-select")).select_by_value("ebgan")
    idle(page)
    switches = {
        box.get_attribute("data-attribute"): box.is_selected()
        for box in page.find_elements(By.CSS_SELECTOR, "#attributes input")
    }
    assert switches == {"Mustache": False, "Smiling": True, "Wearing_Lipstick": True}


def test_a_camera_sized_upload_gets_through_and_an_oversized_one_is_refused_in_megabytes(web, model_set):
    """26.8 MiB (the camera JPEG that was refused) reaches the decoder under the default limit; over a limit the
    answer gives the file's size and the limit in MB."""
    body = b"\xff\xd8\xff" + bytes(int(26.8 * 1024 * 1024))  # a JPEG's first bytes, then nothing decodable
    status, answer = error_of(call(web.url, "/api/images?field=source", body, "image/jpeg"))
    assert status == 400 and answer["kind"] != "too_large", answer  # read, then refused as an image, not for size
    options = WebOptions(limits=RequestLimits(max_message_bytes=20 * 1024 * 1024))
    strict = WebServer(WebApp(model_set, options), "127.0.0.1", 0).start()
    try:
        status, answer = error_of(call(strict.url, "/api/images?field=source", body, "image/jpeg"))
    finally:
        strict.stop()
    assert (status, answer["kind"]) == (413, "too_large")
    assert "28.1 MB" in answer["error"] and "limit of 21.0 MB" in answer["error"], answer
