"""The web editor's fixes found trying it as a new user: empty photo panels show no broken image, the status does not
stay at "Working…" after an upload, a classifier reading that rounds to 0.50 never contradicts its yes/no, Enter
keeps the focus (and an edit moves it to the result), and switching models keeps the switches and clears the other
model's result."""

from __future__ import annotations

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from tests.web.test_web_browser import (add_file, idle, page, tab_to, text,  # noqa: F401 (page: the fixture)
                                        wait_for_result)


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
        page.execute_script("showReading([{attribute: arguments[0], probability: arguments[1], present: arguments[2]}])",
                            name, probability, present)
        shown[probability] = text(page, f"reading-{name}")
    assert shown == {0.50004: "exemplar: yes > 0.50", 0.5: "exemplar: no ≤ 0.50", 0.51: "exemplar: yes 0.51",
                     0.2: "exemplar: no 0.20"}
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
    switches = {box.get_attribute("data-attribute"): box.is_selected()
                for box in page.find_elements(By.CSS_SELECTOR, "#attributes input")}
    assert switches == {"Mustache": False, "Smiling": True, "Wearing_Lipstick": True}
