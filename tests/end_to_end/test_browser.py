"""A study reviewed the way people review one: in a real browser (headless Chromium), through the
MLflow UI that `tune ui` starts and the Optuna dashboard that `tune dashboard` starts.

The study is a scripted one (the real journal, MLflow store and report, without training), so
what the pages show is what `tune run` writes. Screenshots go to mlruns/screenshots/.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.support.paths import ROOT
from tests.support.processes import answers, free_port, wait_for
from tests.support.scripted import EPOCHS, ScriptedTrainer, describe_scripted
from tests.support.spaces import tiny_space, write_space
from tune.commands.run import RunOverrides, run_study
from tune.contract import TrialAttr
from tune.tracking.tracker import LEARNING_CURVE_FILE, REGIME_TAG, run_page, runs_page

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"no Chromium at {CHROMIUM}: `apt-get install chromium` (.ci/run does)",
    ),
]
STUDY = "browsed"
TRIALS = 4
SCREENSHOTS = ROOT / "mlruns" / "screenshots"
LOAD_MS = 45_000  # a first page of the MLflow UI loads its whole bundle; CI machines are busy


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("browsed")
    env = {**os.environ, "TUNE_STORE_DIR": str(root / "mlruns"), "MLFLOW_TRACKING_URI": ""}
    space = write_space(
        root / "space.yaml",
        tiny_space(
            study={
                "name": STUDY,
                "trials": TRIALS,
                "sampler": {"type": "random", "seed": 1},
                "pruner": {"type": "none"},
            },
            training={"epochs": EPOCHS},
            regularization={
                "l2_conv": 0.0,
                "l2_dense": 0.001,
                "dropout": {"type": "float", "low": 0.0, "high": 0.99},
            },
        ),
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUNE_STORE_DIR", env["TUNE_STORE_DIR"])
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.delenv("TUNE_STORAGE", raising=False)
        optuna_study = run_study(
            space,
            RunOverrides(),
            storage=None,
            tracking_uri=None,
            echo=lambda line: None,
            trainer=ScriptedTrainer(),
            describer=describe_scripted,
        )
    uri = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    yield {"root": root, "env": env, "study": optuna_study, "uri": uri, "client": MlflowClient(uri)}


@contextmanager
def serving(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A `tune` server command as a user runs it, stopped with SIGTERM as `kill` would."""
    with open(log, "wb") as out:
        tune = subprocess.Popen(
            [sys.executable, "-m", "tune", *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield tune
    finally:
        tune.send_signal(signal.SIGTERM)
        assert tune.wait(timeout=30) == 128 + signal.SIGTERM


@pytest.fixture(scope="module")
def servers(study: dict) -> Iterator[dict]:
    """Both servers start together: their start-up is most of this module's time."""
    ui_port, dashboard_port = free_port(), free_port()
    logs = study["root"] / "ui.log", study["root"] / "dashboard.log"
    with (
        serving(
            ["ui", "--port", str(ui_port), "--tracking-uri", study["uri"]], study["env"], logs[0]
        ),
        serving(["dashboard", "--port", str(dashboard_port)], study["env"], logs[1]),
    ):
        urls = {"ui": f"http://127.0.0.1:{ui_port}", "dashboard": f"http://127.0.0.1:{dashboard_port}"}
        wait_for(lambda: answers(f"{urls['ui']}/health"), 90, "the MLflow UI")
        wait_for(lambda: answers(f"{urls['dashboard']}/dashboard"), 30, "the Optuna dashboard")
        yield {**urls, "ui_log": logs[0]}


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1600, "height": 1000})  # type: ignore[attr-defined]
    yield context.new_page()
    context.close()


def shot(page: object, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))  # type: ignore[attr-defined]


def tidy(page: object) -> None:
    """Out of the screenshots' way: MLflow's assistant panel and its banner about shared views."""
    for button in (
        "mlflow.assistant.chat_panel.close",
        "mlflow.experiment_page.shared_view.dismiss",
    ):
        found = page.locator(f'button[data-component-id="{button}"]')  # type: ignore[attr-defined]
        if found.count():
            found.first.click()


def printed_runs_page(log: Path) -> str:
    """`tune ui` prints each study's runs page before the server starts."""
    wait_for(
        lambda: f"{STUDY}: http" in log.read_text(), 60, "`tune ui` to print the study's runs page"
    )
    return re.search(rf"{STUDY}: (\S+)", log.read_text()).group(1)  # type: ignore[union-attr]


def test_the_mlflow_ui_lands_on_the_trials_with_their_numbers(
    study: dict, servers: dict, page: object
) -> None:
    client, optuna_study = study["client"], study["study"]
    experiment = client.get_experiment_by_name(STUDY)
    url = printed_runs_page(servers["ui_log"])
    assert url == runs_page(servers["ui"], experiment.experiment_id)
    page.goto(url)
    (parent,) = client.search_runs([experiment.experiment_id], "tags.`tune.role` = 'study'")
    page.get_by_text(parent.info.run_name).wait_for(timeout=LOAD_MS)
    tidy(page)
    page.locator(
        'button[data-component-id*="runnamecellrenderer"]'
    ).first.click()  # unfold the parent
    names = [
        f"{STUDY} #{t.number} {t.state.name} {t.user_attrs['regime']}" for t in optuna_study.trials
    ]
    for name in names:
        page.get_by_text(name).wait_for()
    shot(page, "mlflow-runs")
    body = page.inner_text("body")
    for column in (
        "objective",
        "best_val_accuracy",
        "best_epoch",
        "best_gap_loss",
        "dropout",
    ):  # the first columns
        assert column in body, f"column {column} on the runs page"


def test_a_trial_page_shows_its_curves_parameters_regime_and_learning_curve(
    study: dict, servers: dict, page: object
) -> None:
    client, best = study["client"], study["study"].best_trial
    run = client.get_run(best.user_attrs[TrialAttr.RUN_ID])
    page.goto(run_page(servers["ui"], run.info.experiment_id, run.info.run_id))
    page.get_by_text(REGIME_TAG).first.wait_for(timeout=LOAD_MS)
    tidy(page)
    body = page.inner_text("body")
    assert run.info.run_name in body and run.data.tags[REGIME_TAG] in body and "dropout" in body
    shot(page, "mlflow-trial")
    page.get_by_role("tab", name="Model metrics").click()
    for metric in (
        "val_data_loss",
        "clean_train_loss",
        "gap_loss",
    ):  # per epoch: a line chart over steps
        page.get_by_placeholder("Search metric charts").fill(metric)
        page.get_by_text(metric, exact=True).first.wait_for()
        page.get_by_text("Step", exact=True).first.wait_for()
    shot(page, "mlflow-trial-charts")
    page.get_by_role("tab", name="Artifacts").click()
    page.get_by_text(LEARNING_CURVE_FILE).first.click()
    page.locator("img[src^='blob:']").first.wait_for()  # the PNG, fetched and shown
    shot(page, "mlflow-trial-learning-curve")


def test_the_parent_run_lists_the_report_and_its_plots(
    study: dict, servers: dict, page: object
) -> None:
    client = study["client"]
    experiment = client.get_experiment_by_name(STUDY)
    (parent,) = client.search_runs([experiment.experiment_id], "tags.`tune.role` = 'study'")
    page.goto(run_page(servers["ui"], experiment.experiment_id, parent.info.run_id))
    page.get_by_text("Best trial").first.wait_for(timeout=LOAD_MS)
    tidy(page)
    page.get_by_role("tab", name="Artifacts").click()
    page.get_by_text("report", exact=True).first.click()
    plots = [
        a.path.removeprefix("report/")
        for a in client.list_artifacts(parent.info.run_id, "report")
        if a.path.endswith(".png")
    ]
    assert plots, "the report has plots"
    for plot in plots:
        page.get_by_text(plot, exact=True).first.wait_for()
    page.get_by_text("report.html", exact=True).first.click()
    page.frame_locator("iframe").first.get_by_text(
        f"Study report: {STUDY}"
    ).wait_for()  # the report itself, rendered
    shot(page, "mlflow-parent-report")


def test_the_dashboard_shows_the_study(study: dict, servers: dict, page: object) -> None:
    page.goto(f"{servers['dashboard']}/dashboard")
    page.get_by_text(STUDY).first.click(timeout=LOAD_MS)
    page.get_by_text(f"Best Trial (number={study['study'].best_trial.number})").wait_for()
    shot(page, "optuna-dashboard")
