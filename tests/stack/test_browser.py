"""The Prefect UI in a real browser: what a person sees and does on the local stack.

Headless Chromium (Debian's, installed by `make browser`) driven by selenium through
/usr/bin/chromedriver opens the UI of the `local_stack` server: the training, drift, watcher
and batch-scoring deployments of both shipped models (churn, diabetes) with their schedules,
the nightly's next run at 02:00 in its time zone, then
training-manual's custom run form. It fills the run name, spec_path and reason, submits, and
watches the run page until the run is Completed. The Prefect API then confirms that this very
run (name, parameters, deployment) exists and completed, so the UI really started it.

Screenshots go to test-artifacts/browser/ (gitignored), kept whatever the outcome; the last
page seen is saved as last-page.png and last-page.html.

Selectors are visible text (link texts, button labels, the form's field labels) plus two of
the UI's semantic hooks: table rows (`tr`) of the deployment list and the run's `state-badge`.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from selenium import webdriver
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.service]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = ROOT / "test-artifacts" / "browser"
# Flags for a sandbox-less root user on a machine without outside network: the background
# services (updates, sync, metrics) would otherwise keep trying connections that are refused.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1400,1600",
]
STACK_START_S = 600  # the local_stack fixture, if this test is the first to use it
UI_WAIT_S = 60  # a page or element of the UI to appear (the SPA loads in a few seconds)
SCHEDULER_WAIT_S = 240  # the server's scheduler runs every 60 s
RUN_WAIT_S = 600  # the run to finish (it may queue behind other runs of the same model)
FINAL_STATES = {"Failed", "Crashed", "Cancelled", "TimedOut"}


def _nightly_timezone() -> str:
    """The nightly schedule's time zone, from prefect.yaml: the browser shows times in it."""
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    nightly = next(d for d in config["deployments"] if d["name"] == "training-nightly")
    return nightly["schedules"][0].get("timezone", "UTC")


@pytest.fixture(scope="module")
def artifacts() -> Path:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    print(f"\nbrowser test artifacts: {ARTIFACTS}")  # noqa: T201
    return ARTIFACTS


@pytest.fixture
def browser(tmp_path: Path, artifacts: Path) -> Iterator[WebDriver]:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not found: install Debian's chromium and chromium-driver "
            "with `make browser` (`make test` does it)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(flag)
    service = Service(
        CHROMEDRIVER, log_output=str(artifacts / "chromedriver.log"),
        env={**os.environ, "TZ": _nightly_timezone()},
    )
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        try:
            driver.save_screenshot(str(artifacts / "last-page.png"))
            (artifacts / "last-page.html").write_text(driver.page_source)
        except WebDriverException:
            pass
        driver.quit()


def _shot(driver: WebDriver, name: str) -> None:
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")  # noqa: T201


def _wait(driver: WebDriver, what: str, condition: Callable[[WebDriver], Any],
          timeout_s: float = UI_WAIT_S) -> Any:
    """Wait for `condition` to return something truthy; fail saying `what` never happened."""
    try:
        return WebDriverWait(
            driver, timeout_s, poll_frequency=0.5,
            ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
        ).until(condition)
    except TimeoutException:
        pytest.fail(f"the UI never showed {what} within {timeout_s:.0f} s "
                    f"(page {driver.current_url}; see {ARTIFACTS}/last-page.png)")


def _wait_refreshing(driver: WebDriver, what: str, condition: Callable[[WebDriver], Any],
                     timeout_s: float = UI_WAIT_S, every_s: float = 15) -> Any:
    """`_wait`, reloading the page every `every_s`: for data the page may have fetched too early.

    The UI polls for most things by itself; a reload is the fallback a person would use.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return WebDriverWait(
                driver, min(every_s, max(deadline - time.monotonic(), 0.1)), poll_frequency=0.5,
                ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
            ).until(condition)
        except TimeoutException:
            if time.monotonic() >= deadline:
                pytest.fail(f"the UI never showed {what} within {timeout_s:.0f} s "
                            f"(page {driver.current_url}; see {ARTIFACTS}/last-page.png)")
            driver.refresh()


def _visible(driver: WebDriver, xpath: str) -> WebElement | None:
    element = driver.find_element(By.XPATH, xpath)
    return element if element.is_displayed() else None


def _literal(text: str) -> str:
    assert "'" not in text
    return f"'{text}'"


def _deployment_row(driver: WebDriver, name: str) -> str:
    """The text of the deployment list's row for `name` (name, flow, status, tags, schedules)."""
    return driver.find_element(By.XPATH, f"//tr[.//a[normalize-space()={_literal(name)}]]").text


def _field(driver: WebDriver, label: str) -> WebElement:
    """The block of a run form field: the closest ancestor of its label that holds a control."""
    return driver.find_element(
        By.XPATH,
        f"//*[normalize-space(text())={_literal(label)}]/ancestor::*"
        "[.//textarea or .//input or .//button[normalize-space()='str']][1]",
    )


def _type(control: WebElement, text: str) -> None:
    """Replace a control's text the way a person does (select all, type), so Vue sees it."""
    control.send_keys(Keys.CONTROL, "a")
    control.send_keys(text)


# The deployment list shows ten rows a page: it is searched one family at a time. Every
# family holds the default model's deployments and the diabetes spec's (and the third
# model's), generated from the stack's configs folder (tools/deployments.py).
FAMILIES = {
    "training": ("training-nightly", "training-manual", "training-on-new-data"),
    "batch-scoring": ("batch-scoring-nightly", "batch-scoring-on-new-data"),
    "watch": ("watch-data", "watch-scoring-inbox"),
    "drift-check": ("drift-check",),
}
SCHEDULES = {"training-nightly": "At 02:00 AM every day",
             "batch-scoring-nightly": "At 04:00 AM every day",
             "watch-data": "Every minute", "watch-scoring-inbox": "Every minute",
             "drift-check": "Every hour"}
UNSCHEDULED = ("training-manual", "training-on-new-data", "batch-scoring-on-new-data")


def _see_deployments(driver: WebDriver, ui_url: str) -> None:
    driver.get(f"{ui_url}/deployments")
    for family, names in FAMILIES.items():
        search = _wait(driver, "the deployment search box", lambda d: _visible(
            d, "//input[@placeholder='Search deployments...']"))
        _type(search, family)
        every = [n for name in names for n in (name, f"{name}-diabetes")]
        _wait(driver, f"the {family} deployments of both models", lambda d, every=every: all(
            _visible(d, f"//a[normalize-space()={_literal(name)}]") for name in every))
        _shot(driver, f"01-deployments-{family}")
        _wait(driver, f"the {family} schedules of both models", lambda d, every=every: all(
            SCHEDULES[name.removesuffix("-diabetes")] in _deployment_row(d, name)
            for name in every if name.removesuffix("-diabetes") in SCHEDULES))
        for name in every:
            if name.removesuffix("-diabetes") in UNSCHEDULED:
                row = _deployment_row(driver, name)
                assert "every" not in row.lower(), f"{name} shows a schedule: {row!r}"
    _type(driver.find_element(By.XPATH, "//input[@placeholder='Search deployments...']"),
          "training-nightly")
    _wait(driver, "the training-nightly link",
          lambda d: _visible(d, "//a[normalize-space()='training-nightly']"))


def _see_nightly_next_run(driver: WebDriver) -> None:
    """The nightly's page: its schedule, and the scheduler's next run at 02:00 (its time zone)."""
    driver.find_element(By.LINK_TEXT, "training-nightly").click()
    _wait(driver, "the nightly's schedule on its page",
          lambda d: _visible(d, "//*[normalize-space(text())='At 02:00 AM every day']"))
    deadline = time.monotonic() + SCHEDULER_WAIT_S
    while "02:00:00 AM" not in driver.find_element(By.TAG_NAME, "body").text:
        if time.monotonic() > deadline:
            pytest.fail(f"no nightly run scheduled for 02:00:00 AM after {SCHEDULER_WAIT_S} s")
        time.sleep(10)
        driver.refresh()
        _wait(driver, "the nightly's page",
              lambda d: _visible(d, "//*[normalize-space(text())='Next Run']"))
    _shot(driver, "02-nightly")


def _fill_custom_run(driver: WebDriver, run_name: str, spec_path: str, reason: str) -> None:
    driver.find_element(By.XPATH, "//a[normalize-space()='Deployments']").click()
    # the list shows ten rows a page, and the stack has three models' deployments
    _type(_wait(driver, "the deployment search box", lambda d: _visible(
        d, "//input[@placeholder='Search deployments...']")), "training-manual")
    _wait(driver, "the training-manual link",
          lambda d: _visible(d, "//a[normalize-space()='training-manual']")).click()
    _wait(driver, "the Run button",
          lambda d: _visible(d, "//button[normalize-space()='Run']")).click()
    _wait(driver, "Run's menu with Custom run",
          lambda d: _visible(d, "//*[normalize-space()='Custom run']")).click()
    _wait(driver, "the run form", lambda d: _field(d, "reason (Optional)"))

    _type(_field(driver, "Run Name").find_element(By.TAG_NAME, "input"), run_name)
    _type(_field(driver, "spec_path (Optional)").find_element(By.TAG_NAME, "textarea"), spec_path)
    # reason is `str | None`: switch it from None to str, then its text box appears.
    _field(driver, "reason (Optional)").find_element(
        By.XPATH, ".//button[normalize-space()='str']"
    ).click()
    reason_box = _wait(driver, "the reason text box",
                       lambda d: _field(d, "reason (Optional)").find_element(By.TAG_NAME,
                                                                             "textarea"))
    _type(reason_box, reason)
    _wait(driver, "the typed values in the form", lambda d: (
        _field(d, "Run Name").find_element(By.TAG_NAME, "input").get_attribute("value")
        == run_name
        and _field(d, "reason (Optional)").find_element(By.TAG_NAME, "textarea")
        .get_attribute("value") == reason
        and _field(d, "spec_path (Optional)").find_element(By.TAG_NAME, "textarea")
        .get_attribute("value") == spec_path
    ))
    _shot(driver, "03-run-form")


def _watch_run(driver: WebDriver, run_name: str, reason: str) -> str:
    """From the deployment page after submitting: open the run, wait for Completed; its id."""
    _wait_refreshing(driver, f"a link to the new run {run_name}",
                     lambda d: _visible(d, f"//a[normalize-space()={_literal(run_name)}]")).click()
    _wait(driver, "the run's page", lambda d: "/runs/flow-run/" in d.current_url)
    # The badge next to the run's name in the page heading (breadcrumb "Runs / <name>"), not
    # one left over from the previous page while the app re-renders.
    badge = (f"//nav[.//*[normalize-space(text())={_literal(run_name)}]]"
             "/following::*[contains(concat(' ', @class, ' '), ' state-badge ')][1]")
    deadline = time.monotonic() + RUN_WAIT_S
    refreshed = time.monotonic()
    state = ""
    while state != "Completed":
        assert state not in FINAL_STATES, f"the run ended {state} (see {ARTIFACTS})"
        if time.monotonic() > deadline:
            pytest.fail(f"run {run_name} still {state!r} after {RUN_WAIT_S} s")
        if time.monotonic() - refreshed > 30:  # the page polls by itself; this is a fallback
            driver.refresh()
            refreshed = time.monotonic()
        time.sleep(2)
        state = _wait(driver, "the run's state badge", lambda d: _visible(d, badge)).text.strip()
    _wait_refreshing(
        driver, "the run's log line with the reason typed in the form",
        lambda d: f"Started because: {reason}" in d.find_element(By.TAG_NAME, "body").text,
    )
    _shot(driver, "04-run-completed")
    return driver.current_url.split("/runs/flow-run/", 1)[1].split("?", 1)[0]


def _api_run(api_url: str, run_name: str) -> dict:
    runs = httpx.post(
        f"{api_url}/flow_runs/filter", json={"flow_runs": {"name": {"any_": [run_name]}}},
        timeout=30,
    ).raise_for_status().json()
    assert len(runs) == 1, f"expected one flow run named {run_name}, the API has {len(runs)}"
    return runs[0]


@pytest.mark.timeout(STACK_START_S + SCHEDULER_WAIT_S + RUN_WAIT_S + 10 * UI_WAIT_S)
def test_a_person_starts_a_manual_training_run_from_the_ui(local_stack, browser):
    token = uuid.uuid4().hex[:8]
    run_name = f"browser-{token}"
    reason = f"started from the UI by the browser test {token}"

    _see_deployments(browser, local_stack.ui_url)
    _see_nightly_next_run(browser)
    _fill_custom_run(browser, run_name, local_stack.spec_path, reason)
    browser.find_element(By.XPATH, "//button[@type='submit' and normalize-space()='Submit']") \
        .click()
    run_id = _watch_run(browser, run_name, reason)

    run = _api_run(local_stack.api_url, run_name)
    manual = httpx.get(
        f"{local_stack.api_url}/deployments/name/training/training-manual", timeout=30
    ).raise_for_status().json()
    assert run["id"] == run_id
    assert run["deployment_id"] == manual["id"]
    assert run["parameters"]["reason"] == reason
    assert run["parameters"]["spec_path"] == local_stack.spec_path
    assert run["state_type"] == "COMPLETED"
