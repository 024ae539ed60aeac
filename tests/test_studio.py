"""The web studio, end to end in headless Chromium (Debian's chromium and chromium-driver,
driven by selenium): type a prompt, generate, watch it play, find it in the history, delete it.

.ci/run installs the browser and sets NANOSORA_REQUIRE_BROWSER=1, so there a missing
browser fails the test; elsewhere it is skipped with the reason."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from nanosora.model import load
from nanosora.server.api import create_app
from tests.helpers import make_tiny_model
from tests.test_server import Server

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and DRIVER):
        if os.environ.get("NANOSORA_REQUIRE_BROWSER"):
            pytest.fail(
                "chromium and chromedriver are required here (apt-get install chromium chromium-driver)"
            )
        pytest.skip("no chromium/chromedriver on this machine (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    # the flags that keep Chromium quiet on a machine with no outside network
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={tempfile.mkdtemp()}"):  # fmt: skip
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    yield driver
    driver.quit()


def test_generate_play_list_and_delete_in_the_browser(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    (tmp_path / "model").mkdir()
    model = load(make_tiny_model(tmp_path / "model"))
    app = create_app(lambda: model, tmp_path / "data", steps=2)
    with Server(app) as s:
        browser.get(s.url + "/")
        wait = WebDriverWait(browser, 60)
        browser.find_element(By.CSS_SELECTOR, ".examples span").click()  # an example prompt
        assert browser.find_element(By.ID, "prompt").get_attribute("value") == "a red circle moves right"
        Select(browser.find_element(By.ID, "size")).select_by_visible_text("64x64")
        seconds = browser.find_element(By.ID, "seconds")
        seconds.clear()
        seconds.send_keys("1")
        browser.find_element(By.ID, "go").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "done"))
        player = browser.find_element(By.ID, "player")
        assert player.get_attribute("src").startswith("blob:") and player.is_displayed()
        # the browser decoded the mp4: it knows its duration (9 frames at 8 fps)
        wait.until(lambda d: d.execute_script("return document.getElementById('player').readyState") >= 1)
        duration = browser.execute_script("return document.getElementById('player').duration")
        assert 0.9 <= duration <= 1.3
        rows = browser.find_elements(By.CSS_SELECTOR, "#history .item")
        assert len(rows) == 1 and "a red circle moves right" in rows[0].text and "completed" in rows[0].text

        # an empty prompt gets a message, not a request
        browser.find_element(By.ID, "prompt").clear()
        browser.find_element(By.ID, "go").click()
        assert "prompt" in browser.find_element(By.ID, "error").text.lower()

        rows[0].find_element(By.CSS_SELECTOR, "button.delete").click()
        wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, "#history .item"))
        assert app.state.store.count("completed") == 0


def test_inputs_follow_the_mode_a_new_key_clears_its_error_and_the_clip_fits(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    (tmp_path / "model").mkdir()
    model = load(make_tiny_model(tmp_path / "model"))
    app = create_app(lambda: model, tmp_path / "data", steps=1, api_key="right")
    with Server(app) as s:
        browser.set_window_size(1280, 900)
        browser.get(s.url + "/")
        browser.execute_script("localStorage.clear()")
        browser.get(s.url + "/")
        wait = WebDriverWait(browser, 60)
        # without the key the history cannot load: the error says so
        wait.until(lambda d: d.find_element(By.ID, "error").text)
        mode = Select(browser.find_element(By.ID, "mode"))
        image, extend = browser.find_element(By.ID, "imageBox"), browser.find_element(By.ID, "extendBox")
        assert not image.is_displayed() and not extend.is_displayed()  # text mode: no media inputs
        mode.select_by_value("image")
        assert image.is_displayed() and not extend.is_displayed()
        mode.select_by_value("extend")
        assert extend.is_displayed() and not image.is_displayed()
        mode.select_by_value("text")
        assert not image.is_displayed()
        browser.find_element(By.ID, "apikey").send_keys("right")
        wait.until(lambda d: not d.find_element(By.ID, "error").text)  # the new key works
        browser.find_element(By.ID, "prompt").send_keys("a red circle")
        browser.find_element(By.ID, "go").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "done"))
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#history .item"))
        bottom = browser.execute_script(
            "return document.getElementById('player').getBoundingClientRect().bottom"
        )
        inner = browser.execute_script("return window.innerHeight")
        assert 0 < bottom <= inner  # the whole clip is in view without scrolling
        rendering = browser.execute_script(
            "return getComputedStyle(document.getElementById('player')).imageRendering"
        )
        assert rendering == "pixelated"
