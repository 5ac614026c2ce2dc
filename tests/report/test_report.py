from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState
from PIL import Image

from tests.support.scripted import curves_from
from tune.engine.diagnosis import REGIMES, diagnose
from tune.engine.trial_record import NO_COMPLETED_TRIAL
from tune.report import text as text_module
from tune.report.build import build_report
from tune.report.findings import Report, showcase_trials
from tune.report.text import render_text

optuna.logging.set_verbosity(optuna.logging.WARNING)

EPOCH = np.arange(1, 16)
L2 = 10 ** np.linspace(-6, -1, 15)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PLOTS = (
    "optimization_history",
    "param_importances",
    "slices",
    "regime_map",
    "contour_lambda_dropout",
    "intermediate_values",
    "learning_curves",
)
DISTRIBUTIONS = {
    "l2_dense": FloatDistribution(1e-7, 1.0, log=True),
    "dropout": FloatDistribution(0.0, 0.6),
    "optimizer": CategoricalDistribution(["adam", "sgd"]),
    "batch_norm": CategoricalDistribution([True, False]),
    "learning_rate": FloatDistribution(1e-4, 1e-2, log=True),
}
# l2 index -> what the scripted curves make of it: 0-4 overfit (trial 0 most), 5-9 balanced
# (trial 7 best), 10-14 underfit (trial 14 least accurate).
BEST, MOST_OVERFIT, MOST_UNDERFIT = 7, 0, 14


def overfit_curves(strength: float) -> dict[str, list[float]]:
    return curves_from(2.0 * np.exp(-0.35 * EPOCH), 0.9 + strength * (EPOCH - 5) ** 2,
                       1 - 0.75 * np.exp(-0.35 * EPOCH), 0.65 - 0.01 * np.abs(EPOCH - 5))


def underfit_curves(train_acc: float) -> dict[str, list[float]]:
    flat = np.ones(len(EPOCH))
    return curves_from(2.0 * flat, 2.02 * flat, train_acc * flat, (train_acc - 0.01) * flat)


def balanced_curves(offset: float, accuracy_shift: float = 0.0) -> dict[str, list[float]]:
    decay = np.exp(-0.25 * EPOCH)
    return curves_from(0.6 + 1.2 * decay, 0.75 + offset + 1.1 * decay,
                       0.8 + accuracy_shift - 0.45 * decay, 0.74 - 0.41 * decay)


def scripted_curves(index: int) -> dict[str, list[float]]:
    if index < 5:
        return overfit_curves(0.015 * (1 + 0.2 * (4 - index)))
    if index < 10:
        return balanced_curves(0.02 * abs(index - BEST))
    return underfit_curves(0.25 - 0.02 * (index - 10))


def params_for(index: int) -> dict[str, Any]:
    return {"l2_dense": float(L2[index]), "dropout": round((index * 0.37) % 0.5, 3),
            "optimizer": ("adam", "sgd")[index % 2], "batch_norm": True, "learning_rate": 1e-3}


def add_trial(
    study: optuna.Study, params: dict[str, Any], curves: dict[str, list[float]],
    state: TrialState = TrialState.COMPLETE, **attrs: Any,
) -> None:
    """A finished trial recorded the way the objective records one."""
    user_attrs: dict[str, Any] = {"curves": curves, **attrs}
    if curves.get("val_data_loss"):
        diagnosis = diagnose(curves)
        user_attrs |= {"regime": diagnosis.regime,
                       "diagnosis": {"reason": diagnosis.reason, **diagnosis.numbers}}
    val = curves.get("val_data_loss", [])
    study.add_trial(optuna.trial.create_trial(
        params=params, distributions={name: DISTRIBUTIONS[name] for name in params},
        value=min(val) if state == TrialState.COMPLETE else None, state=state,
        user_attrs=user_attrs, intermediate_values=dict(enumerate(val)),
    ))


def scripted_study(name: str = "u-shape") -> optuna.Study:
    """15 complete trials along l2, then a pruned one and a failed one without curves."""
    study = optuna.create_study(study_name=name, direction="minimize")
    for index in range(15):
        add_trial(study, params_for(index), scripted_curves(index), baseline=index == 0)
    short = {key: values[:2] for key, values in overfit_curves(0.015).items()}
    add_trial(study, params_for(3), short, TrialState.PRUNED)
    add_trial(study, params_for(4), {}, TrialState.FAIL)
    return study


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    return build_report(scripted_study(), tmp_path_factory.mktemp("report"))


def html_text(report: Report) -> str:
    return report.html_path.read_text(encoding="utf-8")


def test_rows_follow_trial_numbers_with_regimes_and_marks(report: Report) -> None:
    rows = report.rows
    assert [row.number for row in rows] == list(range(17))
    expected = (["under-regularized"] * 5 + ["balanced"] * 5 + ["over-regularized"] * 5
                + ["inconclusive"] * 2)
    assert [row.regime for row in rows] == expected
    assert [row.number for row in rows if row.best] == [BEST]
    assert [row.number for row in rows if row.baseline] == [0]
    assert [row.state for row in rows[-2:]] == ["PRUNED", "FAIL"]
    assert rows[BEST].value == pytest.approx(0.75 + 1.1 * np.exp(-0.25 * 15))
    assert (rows[BEST].best_epoch, rows[BEST].epochs) == (15, 15)
    assert (rows[15].best_epoch, rows[15].epochs) == (2, 2)
    assert rows[16].epochs is None and rows[16].gap_loss is None


def test_params_are_formatted_short_with_log_ones_scientific(report: Report) -> None:
    text = report.rows[0].params_text
    assert text == {
        "l2_dense": "1.00e-06",
        "dropout": "0",
        "optimizer": "adam",
        "batch_norm": "True",
        "learning_rate": "1.00e-03",
    }
    assert report.rows[1].params_text["dropout"] == "0.37"
    assert report.rows[0].params["l2_dense"] == pytest.approx(1e-6)


def test_counts_cover_every_finished_trial(report: Report) -> None:
    assert report.counts == {"under-regularized": 5, "over-regularized": 5, "balanced": 5,
                             "inconclusive": 2}


def test_l2_effects_show_the_u_and_a_shrinking_gap(report: Report) -> None:
    bins = report.effects["l2_dense"]
    assert [item.n for item in bins] == [3, 3, 3, 3, 3]
    values = [item.mean_value for item in bins]
    assert values[0] > values[2] < values[-1]
    assert values[2] == min(values)
    gaps = [item.mean_gap for item in bins]
    assert all(earlier > later for earlier, later in itertools.pairwise(gaps))
    assert bins[0].regimes == {"under-regularized": 3, "over-regularized": 0, "balanced": 0,
                               "inconclusive": 0}
    assert bins[-1].regimes["over-regularized"] == 3
    assert bins[0].label == "1.00e-06 - 5.18e-06"


def test_categorical_and_single_valued_params_get_one_row_per_value(report: Report) -> None:
    optimizer = report.effects["optimizer"]
    assert [(item.label, item.n) for item in optimizer] == [("adam", 8), ("sgd", 7)]
    assert [(item.label, item.n) for item in report.effects["batch_norm"]] == [("True", 15)]
    (rate,) = report.effects["learning_rate"]
    assert (rate.label, rate.n, rate.low) == ("1.00e-03", 15, 1e-3)
    assert rate.mean_value == pytest.approx(np.mean([r.value for r in report.rows[:15]]))


def test_every_plot_and_page_is_written(report: Report) -> None:
    out = report.html_path.parent
    expected = {out / f"{name}.png" for name in PLOTS} | {out / "interactive.html",
                                                           out / "report.html"}
    assert set(report.files) == expected and len(report.files) == len(expected)
    for path in expected:
        assert path.stat().st_size > 5_000, path
    for name in PLOTS:
        path = out / f"{name}.png"
        assert path.read_bytes().startswith(PNG_SIGNATURE)
        with Image.open(path) as image:
            assert min(image.size) >= 300


def test_report_html_is_self_contained_and_summarizes(report: Report) -> None:
    page = html_text(report)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "http://" not in page and "https://" not in page
    assert "<link" not in page and "<script" not in page
    assert page.count('src="data:image/png;base64,') == len(PLOTS)
    assert "Study report: u-shape" in page
    for regime, count in report.counts.items():
        assert f"{regime}: {count}" in page
    assert "Best trial: 7" in page
    assert "increase lambda" in page and "decrease lambda" in page
    assert "no completed trial" not in page


def test_text_from_the_study_is_escaped(tmp_path: Path) -> None:
    study = optuna.create_study(study_name="<b>name</b>")
    page = html_text(build_report(study, tmp_path))
    assert "&lt;b&gt;name&lt;/b&gt;" in page and "<b>name</b>" not in page


def test_interactive_page_embeds_plotly_once_with_every_plot(report: Report) -> None:
    page = (report.html_path.parent / "interactive.html").read_text(encoding="utf-8")
    assert page.count("window.PlotlyConfig") == 1
    assert page.count('class="plotly-graph-div"') == 5
    assert "not drawn" not in page


def test_showcase_picks_best_most_overfit_and_most_underfit() -> None:
    chosen = showcase_trials(scripted_study())
    assert {title: trial.number for title, trial in chosen.items()} == {
        "best": BEST, "most overfit": MOST_OVERFIT, "most underfit": MOST_UNDERFIT}


def test_showcase_falls_back_to_all_trials_and_skips_duplicates() -> None:
    study = optuna.create_study()
    for index, (offset, shift) in enumerate([(0.0, -0.05), (0.1, 0.0), (0.05, 0.02)]):
        add_trial(study, params_for(index), balanced_curves(offset, shift))
    chosen = showcase_trials(study)
    assert {title: trial.number for title, trial in chosen.items()} == {
        "best": 0, "most overfit": 1}


def assert_degenerate_report(report: Report) -> str:
    page = html_text(report)
    assert NO_COMPLETED_TRIAL in page and "http://" not in page
    assert NO_COMPLETED_TRIAL in render_text(report)
    assert all(name not in path.name for name in PLOTS[:5] for path in report.files)
    return page


def test_empty_study_reports_no_completed_trial(tmp_path: Path) -> None:
    report = build_report(optuna.create_study(study_name="empty"), tmp_path)
    page = assert_degenerate_report(report)
    assert report.rows == [] and report.effects == {}
    assert report.counts == dict.fromkeys(REGIMES, 0)
    assert [path.name for path in report.files] == ["interactive.html", "report.html"]
    assert "0 trials" in page


def test_all_pruned_study_still_shows_what_the_pruner_saw(tmp_path: Path) -> None:
    study = optuna.create_study()
    for index in (0, 12):
        short = {key: values[:4] for key, values in scripted_curves(index).items()}
        add_trial(study, params_for(index), short, TrialState.PRUNED)
    report = build_report(study, tmp_path)
    assert_degenerate_report(report)
    assert [path.name for path in report.files] == ["intermediate_values.png",
                                                    "interactive.html", "report.html"]
    assert report.effects == {name: [] for name in params_for(0)}
    assert sum(report.counts.values()) == 2


def test_failed_trial_without_curves(tmp_path: Path) -> None:
    study = optuna.create_study()
    add_trial(study, params_for(0), {}, TrialState.FAIL)
    report = build_report(study, tmp_path)
    assert_degenerate_report(report)
    (row,) = report.rows
    assert (row.state, row.regime, row.value, row.epochs) == (
        "FAIL", "inconclusive", None, None)
    assert report.counts["inconclusive"] == 1


def test_single_trial_and_a_line_of_points(tmp_path: Path) -> None:
    """One trial cannot rank importances; four trials on one dropout value cannot be
    triangulated, so the contour falls back to its scatter."""
    study = optuna.create_study()
    add_trial(study, params_for(BEST), scripted_curves(BEST))
    single = build_report(study, tmp_path / "single")
    assert "param_importances: not drawn (needs at least 2 completed trials)" in html_text(single)
    assert "Best trial: 0" in html_text(single)
    for index in (1, 6, 12):
        add_trial(study, {**params_for(index), "dropout": params_for(BEST)["dropout"]},
                  scripted_curves(index))
    line = build_report(study, tmp_path / "line")
    assert (line.html_path.parent / "contour_lambda_dropout.png").stat().st_size > 5_000
    assert len(line.effects["dropout"]) == 1


def test_contour_is_skipped_without_dropout(tmp_path: Path) -> None:
    study = optuna.create_study()
    for index in (2, 7, 12):
        params = {key: value for key, value in params_for(index).items() if key != "dropout"}
        add_trial(study, params, scripted_curves(index))
    page = html_text(build_report(study, tmp_path))
    needs = "needs a numeric lambda (l1_conv, l1_dense, l2_conv, l2_dense) and dropout"
    assert f"contour_lambda_dropout: not drawn ({needs}" in page


def test_render_text_lists_counts_and_the_best_trials_first(
    report: Report, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(text_module, "TOP", 4)
    text = render_text(report)
    assert "17 trials (15 complete, 1 pruned, 1 fail)" in text
    assert ("regimes: under-regularized: 5, over-regularized: 5, balanced: 5, inconclusive: 2"
            in text)
    assert "best: trial 7" in text and "top 4 of 15 completed trials" in text
    table = [line.split() for line in text.splitlines() if line.strip()[:2].rstrip().isdigit()]
    assert [int(cells[0]) for cells in table[:4]] == [7, 6, 8, 5]
    assert table[0][1] == "*"
    assert max(len(line) for line in text.splitlines()) <= 100


def test_render_text_marks_the_baseline(report: Report) -> None:
    text = render_text(report)
    assert "top 15 of 15" in text
    assert any(line.split()[:2] == ["0", "b"] for line in text.splitlines() if line.strip())


@pytest.mark.integration
def test_importing_report_loads_neither_tensorflow_nor_mlflow() -> None:
    code = (
        "import sys, tune.report.build, tune.report.findings, tune.report.page, tune.report.text, "
        "tune.report.figures, tune.report.interactive; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'mlflow') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"
