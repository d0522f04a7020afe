"""pretroost.serve in a real browser: Debian's headless Chromium, driven by selenium, types
formulas, presses Predict, reads the table, sorts it, downloads nothing, and saves a screenshot.

Skips, with the reason, where selenium, ``/usr/bin/chromium`` or ``/usr/bin/chromedriver`` is
missing (``.ci/run`` installs the browser with apt-get) or the browser does not start.
``PRETROOST_SERVE_SCREENSHOT=docs/serve.png`` also writes the shipped ``expt-gap`` model's
screenshot there (how the documentation's picture is made;
``PRETROOST_SERVE_TOY_SCREENSHOT`` does the same for the toy model)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("uvicorn", reason="the 'serve' extra is not installed")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")

from serving import BROWSER_FORMULAS, running_server  # noqa: E402

from pretroost.serve.app import create_app  # noqa: E402
from pretroost.serve.models import ModelEntry, ModelRegistry  # noqa: E402

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
WIDTH = 1280


@pytest.fixture(scope="module")
def browser():
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.is_file():
            pytest.skip(f"{path} is missing: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={WIDTH},900", "--hide-scrollbars", "--force-device-scale-factor=1"):  # fmt: skip
        options.add_argument(arg)
    try:
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    except WebDriverException as exc:
        pytest.skip(f"headless Chromium did not start: {exc.msg}")
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def test_a_person_types_formulas_and_reads_the_table(browser, trees_folder, domain_model, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    plain = ModelRegistry.from_sources([str(trees_folder)], shipped=False)
    title = "toy alloy strength (MPa): a random forest on 60 Fe-Ni-Cr-C alloys"
    registry = ModelRegistry(
        [ModelEntry("alloy-strength", "(test)", f"{title}, with domain checks"),
         ModelEntry("alloy-strength-plain", "(test)", title)],
        loaded={"alloy-strength": domain_model, "alloy-strength-plain": plain.get("alloy-strength")},
    )  # fmt: skip
    app = create_app(registry, allowed_hosts=["127.0.0.1"])
    with running_server(app) as url:
        browser.get(url + "/")
        Select(browser.find_element(By.ID, "model")).select_by_value("alloy-strength")
        box = browser.find_element(By.ID, "formulas")
        box.clear()
        box.send_keys("\n".join(BROWSER_FORMULAS))
        browser.find_element(By.ID, "predict").click()
        WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.ID, "table")))

        rows = browser.find_elements(By.CSS_SELECTOR, "#table tbody tr")
        assert [
            r.find_element(By.CSS_SELECTOR, "td.formula").text for r in rows
        ] == BROWSER_FORMULAS
        assert "error-row" in rows[-1].get_attribute("class")  # Xx2O: its error in place
        assert "Xx2O" in rows[-1].text and rows[-1].find_element(By.CSS_SELECTOR, "td.error").text
        headers = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "#table thead th")]
        assert any(h.startswith("Prediction") for h in headers) and any(
            "In domain" in h for h in headers
        )
        cobalt = rows[BROWSER_FORMULAS.index("Fe0.70Co0.20Cr0.10")]
        assert "never seen in training" in cobalt.text
        assert browser.find_element(By.ID, "counts").text.startswith("6 of 7 predicted")
        assert browser.find_elements(By.CSS_SELECTOR, "#chart svg circle")

        # sort by prediction, highest first: the numbers in the column come out descending
        header = next(h for h in browser.find_elements(By.CSS_SELECTOR, "#table thead th")
                      if h.text.startswith("Prediction"))  # fmt: skip
        header.click()
        header.click()
        col = int(header.get_attribute("data-col"))
        rows = browser.find_elements(By.CSS_SELECTOR, "#table tbody tr")
        values = [float(r.find_elements(By.TAG_NAME, "td")[col].text) for r in rows[:6]]
        assert values == sorted(values, reverse=True)
        assert "error-row" in rows[-1].get_attribute("class")  # rows without a value: last
        browser.find_element(By.CSS_SELECTOR, "button.toggle[data-order=input]").click()
        assert browser.find_element(By.CSS_SELECTOR, "div.svg[data-order=input]").is_displayed()
        browser.find_element(By.CSS_SELECTOR, "button.toggle[data-order=value]").click()
        header = browser.find_element(By.CSS_SELECTOR, "#table thead th[data-col='0']")
        header.click()  # back to input order for the picture

        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(WIDTH, min(int(height) + 140, 2400))  # + the window's frame
        browser.execute_script("window.scrollTo(0, 0)")
        shot = tmp_path / "serve.png"
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    target = os.environ.get("PRETROOST_SERVE_TOY_SCREENSHOT")
    if target:
        shutil.copyfile(shot, target)


#: band gaps a chemist might ask for, one metal, one element outside the training data, one typo
GAP_FORMULAS = ["GaN", "TiO2", "ZnO", "CdTe", "Si", "Cu", "Bi2Te3", "PuO2", "NaCl", "Xy2"]


def test_the_shipped_band_gap_model_in_the_page(browser, tmp_path):
    """The shipped ``expt-gap`` through the page as ``pretroost serve`` offers it: gaps, their
    std, the metal probability and the domain columns per row; the docs' picture
    (``PRETROOST_SERVE_SCREENSHOT=docs/serve.png``)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    registry = ModelRegistry.from_sources(["expt-gap"])
    app = create_app(registry, allowed_hosts=["127.0.0.1"])
    with running_server(app) as url:
        browser.set_window_size(WIDTH, 900)
        browser.get(url + "/")
        Select(browser.find_element(By.ID, "model")).select_by_value("expt-gap")
        box = browser.find_element(By.ID, "formulas")
        box.clear()
        box.send_keys("\n".join(GAP_FORMULAS))
        browser.find_element(By.ID, "predict").click()
        WebDriverWait(browser, 60).until(ec.presence_of_element_located((By.ID, "table")))
        rows = browser.find_elements(By.CSS_SELECTOR, "#table tbody tr")
        assert [r.find_element(By.CSS_SELECTOR, "td.formula").text for r in rows] == GAP_FORMULAS
        headers = " ".join(
            h.text for h in browser.find_elements(By.CSS_SELECTOR, "#table thead th")
        )
        assert "Prediction" in headers and "metal" in headers.lower() and "In domain" in headers
        assert "error-row" in rows[-1].get_attribute("class")  # Xy2: its error in place
        assert "Pu not in training data" in rows[GAP_FORMULAS.index("PuO2")].text
        assert browser.find_element(By.ID, "counts").text.startswith("9 of 10 predicted")
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(WIDTH, min(int(height) + 140, 2400))
        browser.execute_script("window.scrollTo(0, 0)")
        shot = tmp_path / "serve.png"
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    target = os.environ.get("PRETROOST_SERVE_SCREENSHOT")
    if target:
        shutil.copyfile(shot, target)
