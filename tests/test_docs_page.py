"""The docs page in a real browser: Debian's headless Chromium, driven by
Selenium through Debian's chromedriver, against a real server on loopback.

No skip: without /usr/bin/chromium and /usr/bin/chromedriver this fails,
so CI must install them (apt-get install -y chromium chromium-driver).
"""

import json
import os
import threading

import pytest
from conftest import API, auth, rows
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait
from werkzeug.serving import make_server

from datasources import openapi

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


@pytest.fixture
def backend():
    """The page is the same on every backend: SQLite only."""
    return "sqlite"


@pytest.fixture
def base_url(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture
def browser(tmp_path):
    for path in (CHROMIUM, CHROMEDRIVER):
        assert os.access(path, os.X_OK), f"{path} missing: apt-get install chromium chromium-driver"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    yield driver
    driver.quit()


def wait_for(browser, css, seconds=20):
    return WebDriverWait(browser, seconds).until(
        ready.visibility_of_element_located((By.CSS_SELECTOR, css))
    )


def execute_list_call(browser):
    """Run "Try it out" on the list operation; its live response's status."""
    wait_for(browser, ".try-out__btn").click()
    wait_for(browser, ".btn.execute").click()
    status = wait_for(browser, ".live-responses-table .response .response-col_status")
    body = browser.find_element(
        By.CSS_SELECTOR, ".live-responses-table .response .response-col_description"
    )
    return status.text.strip(), body.get_attribute("textContent")


def test_the_page_lists_the_operations_and_tries_a_list_call(client, base_url, browser):
    assert client.post(API, json={"key": "crm", "name": "CRM"}, headers=auth()).status_code == 201
    browser.get(f"{base_url}/api/v1/docs")
    wait_for(browser, ".opblock")
    operations = [
        (block.find_element(By.CSS_SELECTOR, ".opblock-summary-method").text,
         block.find_element(By.CSS_SELECTOR, ".opblock-summary-path").text)
        for block in browser.find_elements(By.CSS_SELECTOR, ".opblock")
    ]  # fmt: skip
    assert operations == [(method, API) for method in ("GET", "POST", "PUT", "DELETE")] + [
        ("GET", f"{API}/{{key}}"),
        ("GET", "/api/v1/connectors"),
        ("GET", "/api/v1/connectors/{key}"),
    ]

    browser.find_element(By.CSS_SELECTOR, ".opblock-get .opblock-summary").click()
    status, body = execute_list_call(browser)
    assert status == "401" and "A bearer token is required." in body

    browser.find_element(By.CSS_SELECTOR, ".btn.authorize").click()
    wait_for(browser, ".auth-container input").send_keys(auth(role="viewer")["Authorization"][7:])
    browser.find_element(By.CSS_SELECTOR, ".auth-btn-wrapper .authorize").click()
    wait_for(browser, ".btn-done").click()
    wait_for(browser, ".btn.execute").click()
    WebDriverWait(browser, 20).until(
        lambda b: (
            b.find_element(
                By.CSS_SELECTOR, ".live-responses-table .response .response-col_status"
            ).text.strip()
            == "200"
        )
    )
    body = browser.find_element(
        By.CSS_SELECTOR, ".live-responses-table .response .response-col_description"
    )
    assert '"key": "crm"' in body.get_attribute("textContent")


def pre_filled_body(browser, method):
    """Open an operation, press "Try it out": the body Swagger UI pre-fills."""
    block = browser.find_element(By.CSS_SELECTOR, f".opblock-{method}")
    block.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
    WebDriverWait(browser, 20).until(
        lambda b: block.find_element(By.CSS_SELECTOR, ".try-out__btn").is_displayed()
    )
    block.find_element(By.CSS_SELECTOR, ".try-out__btn").click()
    textarea = WebDriverWait(browser, 20).until(
        lambda b: block.find_element(By.CSS_SELECTOR, "textarea.body-param__text")
    )
    return block, json.loads(textarea.get_attribute("value"))


def test_try_it_out_pre_fills_the_references_example_and_creates_it(app, base_url, browser):
    browser.get(f"{base_url}/api/v1/docs")
    wait_for(browser, ".opblock")
    tags = browser.find_elements(By.CSS_SELECTOR, ".opblock-tag")
    assert [tag.find_element(By.CSS_SELECTOR, "a span").text for tag in tags] == [
        openapi.TAG,
        openapi.CATALOG_TAG,
    ]
    browser.find_element(By.CSS_SELECTOR, ".btn.authorize").click()
    wait_for(browser, ".auth-container input").send_keys(auth()["Authorization"][7:])
    browser.find_element(By.CSS_SELECTOR, ".auth-btn-wrapper .authorize").click()
    wait_for(browser, ".btn-done").click()

    block, body = pre_filled_body(browser, "post")
    assert body == openapi.CREATE_EXAMPLE  # the reference's, no text made up from a pattern
    block.find_element(By.CSS_SELECTOR, ".btn.execute").click()
    live = ".live-responses-table .response .response-col_status"
    status = WebDriverWait(browser, 20).until(lambda b: block.find_element(By.CSS_SELECTOR, live))
    assert status.text.strip() == "201"
    [row] = rows(app)
    assert (row["key"], row["name"], row["status"]) == (
        "crm-customers",
        "CRM Customer Export",
        "active",
    )
    _, update = pre_filled_body(browser, "put")
    assert update == openapi.UPDATE_EXAMPLE
