"""A real smoke sweep seen through optuna-dashboard: each trial's files uploaded as artifacts, the study's note,
and `aesweep dashboard` opened in a real headless browser (Debian's chromium and chromedriver, via selenium)."""

import shutil
import subprocess
import sys

import pytest
from helpers import REPO, SUBPROCESS_ENV, train_py
from optuna.artifacts import get_all_artifact_meta

from aesweep.storage import open_sweep_study

STUDY = "smoke-dashboard"
N_TRIALS = 2
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    """`python train.py -m sweep=smoke` with 2 trials, its study in a journal of its own."""
    root = tmp_path_factory.mktemp("dashboard")
    done = train_py("-m", "sweep=smoke", f"hydra.sweeper.n_trials={N_TRIALS}", f"hydra.sweeper.study_name={STUDY}",
                    f"hydra.sweeper.storage={root / 'optuna' / 'journal.log'}", f"hydra.sweep.dir={root / 'sweep'}",
                    "trainer.threads=1")
    assert done.returncode == 0, done.stderr
    return root / "sweep"


def test_every_trial_carries_its_pictures_record_and_history_as_artifacts(sweep_dir):
    study = open_sweep_study(sweep_dir)
    artifacts = sweep_dir.parent / "optuna" / "artifacts"

    for trial in study.trials:
        files = {meta.filename: meta for meta in get_all_artifact_meta(trial, storage=study._storage)}
        assert sorted(files) == ["confusion.png", "history.csv", "metrics.json", "reconstructions.png"]
        assert files["confusion.png"].mimetype == "image/png"
        uploaded = (artifacts / files["metrics.json"].artifact_id).read_bytes()
        assert uploaded == (sweep_dir / str(trial.number) / "metrics.json").read_bytes()


def test_the_study_note_and_attributes_say_command_budget_and_baseline(sweep_dir):
    from optuna_dashboard import get_note

    study = open_sweep_study(sweep_dir)
    note = get_note(study)

    assert study.user_attrs["command"].startswith("python train.py -m ")
    assert f"hydra.sweeper.n_trials={N_TRIALS}" in study.user_attrs["command"]
    assert study.user_attrs["budget"] == f"{N_TRIALS} trials; each data.subset=512 trainer.epochs=2"
    assert study.user_attrs["baseline"].startswith("Baseline: none measured (no study 'baseline'")
    assert f"**Command** `{study.user_attrs['command']}`" in note
    assert f"**Budget** {study.user_attrs['budget']}" in note
    assert "**Objective** val.mapped_acc (maximize)" in note


@pytest.fixture
def dashboard_url(sweep_dir):
    """`aesweep dashboard SWEEP_DIR --port 0` running; the URL it printed."""
    process = subprocess.Popen([sys.executable, "-m", "aesweep", "dashboard", str(sweep_dir), "--port", "0"],
                               cwd=REPO, env=SUBPROCESS_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), process.stderr.read() if process.poll() is not None else url
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; "
                    ".ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_the_dashboard_shows_the_sweeps_trials_and_a_trials_pictures_in_a_browser(sweep_dir, dashboard_url, browser,
                                                                                  tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 30)
    study_url = dashboard_url

    browser.get(study_url.rsplit("/studies/", 1)[0])  # the study list
    study_link = wait.until(seen.element_to_be_clickable((By.PARTIAL_LINK_TEXT, STUDY)))
    study_link.click()
    wait.until(seen.url_to_be(study_url))

    browser.find_element(By.CSS_SELECTOR, "a[href$='/smartSelection']").click()  # the page with the trial table
    rows = wait.until(lambda driver: [row for table in driver.find_elements(By.TAG_NAME, "table")
                                      if "Number" in table.text
                                      for row in table.find_elements(By.CSS_SELECTOR, "tbody tr")])
    assert len(rows) == N_TRIALS
    assert [row.find_elements(By.TAG_NAME, "td")[0].text for row in rows] == [str(n) for n in range(N_TRIALS)]

    browser.find_element(By.CSS_SELECTOR, "a[href$='/trials']").click()  # trial 0 is shown first
    wait.until(seen.text_to_be_present_in_element((By.TAG_NAME, "body"), "reconstructions.png"))
    decoded_width = "return arguments[0].complete && arguments[0].naturalWidth"
    loaded = wait.until(lambda driver: [width
                                        for image in driver.find_elements(By.CSS_SELECTOR, "img[src*='/artifacts/']")
                                        if (width := driver.execute_script(decoded_width, image))])
    assert len(loaded) == 2  # confusion.png and reconstructions.png, decoded by the browser
    assert browser.save_screenshot(str(tmp_path / "dashboard.png"))
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000


def test_the_url_printed_opens_the_sweeps_study(sweep_dir, dashboard_url):
    study = open_sweep_study(sweep_dir)

    assert study.study_name == STUDY
    assert dashboard_url.endswith(f"/dashboard/studies/{study._study_id}")
