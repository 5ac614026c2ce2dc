"""``build_report``: the study's findings drawn into the report's files, so ``tune report`` and the
end of ``tune run`` write the same folder."""

from __future__ import annotations

from pathlib import Path

import optuna

from tune.engine.diagnosis import regime_counts
from tune.engine.study import study_objective
from tune.engine.trial_record import completed_trials, trial_diagnosis
from tune.report.figures import draw_plots
from tune.report.findings import (
    Report,
    distributions_of,
    effects_of,
    rows_of,
    showcase_trials,
)
from tune.report.interactive import write_interactive
from tune.report.page import report_page
from tune.report.steering import knob_maps, recommend


def build_report(study: optuna.Study, out_dir: Path) -> Report:
    """Write the PNG plots, ``interactive.html`` and ``report.html`` into ``out_dir``.

    Works for any study state, down to no trials at all: plots without data are replaced by a
    note saying why.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    trials = study.trials
    objective = study_objective(study)
    distributions = distributions_of(trials)
    rows = rows_of(trials, distributions, objective)
    counts = regime_counts(trial_diagnosis(trial) for trial in trials if trial.state.is_finished())
    effects = effects_of(completed_trials(trials), distributions)
    knobs = knob_maps(trials)
    recommendation = recommend(trials, objective, knobs)
    showcase = showcase_trials(study)
    images, skipped = draw_plots(
        study, objective, trials, distributions, effects, knobs, showcase, out_dir
    )
    interactive = write_interactive(study, distributions, out_dir / "interactive.html")
    html_path = out_dir / "report.html"
    report = Report(
        study.study_name,
        objective,
        rows,
        counts,
        effects,
        knobs,
        recommendation,
        html_path,
        [*images.values(), interactive, html_path],
    )
    html_path.write_text(report_page(report, images, skipped), encoding="utf-8")
    return report
