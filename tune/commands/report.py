"""``tune report`` and the end of ``tune run``: build the study report into its folder and attach
it to the study's parent run in MLflow with the best trial's numbers and a link to its run, so the
UI shows the diagnosis and the winner next to the trials; with ``--early-calls``, the early regime
call replayed on the stored curves beside it."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import cast

import optuna

from tune.contract import TrialAttr
from tune.engine.objective import trial_summary
from tune.engine.study import load_existing_study, stored_space, study_objective
from tune.engine.trial_record import best_completed, trial_curves
from tune.paths import report_dir
from tune.report.build import build_report
from tune.report.early_calls import JSON_FILE, TABLE_FILE, markdown, replay, summary
from tune.report.findings import Report
from tune.tracking.tracker import OBJECTIVE_METRIC, Tracker


def publish_report(study: optuna.Study, tracker: Tracker, parent_run_id: str | None) -> Report:
    report = build_report(study, report_dir(study.study_name))
    if parent_run_id is not None:
        for path in report.files:
            tracker.log_file(parent_run_id, path, "report")
        _publish_best(study, tracker, parent_run_id)
        tracker.show_params(
            sorted(
                {name for trial in study.get_trials(deepcopy=False) for name in trial.distributions}
            )
        )
    return report


def _publish_best(study: optuna.Study, tracker: Tracker, parent_run_id: str) -> None:
    """The study's best, whichever worker ran it: Optuna's record is the authority, so the best
    tag on the trial runs is set right here too."""
    objective = study_objective(study)
    best = best_completed(study.get_trials(deepcopy=False), objective)
    if best is None:
        return
    curves = trial_curves(best)
    summary = trial_summary(curves, objective) if curves else {}
    tracker.log_best(
        parent_run_id,
        best.number,
        best.user_attrs.get(TrialAttr.RUN_ID),
        {OBJECTIVE_METRIC: cast(float, best.value), **summary},
    )


def report_study(name: str, *, storage: str | None, tracking_uri: str | None) -> Report:
    study = load_existing_study(name, storage)
    tracker = Tracker(name, tracking_uri)
    return publish_report(study, tracker, tracker.latest_parent())


def write_early_calls(name: str, *, storage: str | None, classes: int) -> tuple[str, Path]:
    """The early-call table, written as JSON and Markdown into the study's report folder."""
    study = load_existing_study(name, storage)
    thresholds = stored_space(study).diagnosis
    rows = replay(study.trials, thresholds, classes)
    folder = report_dir(name)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / JSON_FILE).write_text(
        json.dumps(
            {
                "study": name,
                "early_epochs": thresholds.early_epochs,
                **summary(rows),
                "trials": [asdict(r) for r in rows],
            },
            indent=2,
        )
    )
    table = markdown(name, rows, thresholds)
    (folder / TABLE_FILE).write_text(table)
    return table, folder
