"""``tune report`` and the end of ``tune run``: build the study report into its folder and attach
it to the study's parent run in MLflow, so the UI shows the diagnosis next to the trials."""

from __future__ import annotations

import optuna

from tune.engine.study import load_existing_study
from tune.paths import report_dir
from tune.report.analysis import Report, build_report
from tune.tracking.tracker import Tracker


def publish_report(study: optuna.Study, tracker: Tracker, parent_run_id: str | None) -> Report:
    report = build_report(study, report_dir(study.study_name))
    if parent_run_id is not None:
        for path in report.files:
            tracker.log_file(parent_run_id, path, "report")
    return report


def report_study(name: str, *, storage: str | None, tracking_uri: str | None) -> Report:
    study = load_existing_study(name, storage)
    tracker = Tracker(name, tracking_uri)
    return publish_report(study, tracker, tracker.latest_parent())
