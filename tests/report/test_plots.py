from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from PIL import Image

from tune.contract import DEFAULT_OBJECTIVE, OBJECTIVES, VAL_ACCURACY
from tune.engine.diagnosis import REGIMES, diagnose
from tune.report.curves import (
    REGIME_COLOURS,
    curves_side_by_side,
    learning_curve_figure,
    save_figure,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def overfit_curves(epochs: int = 12) -> dict[str, list[float]]:
    """Validation loss bottoms out at epoch 5 while the clean training loss keeps falling."""
    epoch = np.arange(1, epochs + 1)
    train_loss, val_loss = 2.0 * np.exp(-0.35 * epoch), 0.9 + 0.015 * (epoch - 5) ** 2
    train_acc, val_acc = 1 - 0.75 * np.exp(-0.35 * epoch), 0.65 - 0.01 * np.abs(epoch - 5)
    return {
        "loss": list(train_loss + 0.1), "accuracy": list(train_acc - 0.05),
        "data_loss": list(train_loss * 1.1), "val_loss": list(val_loss + 0.1),
        "val_data_loss": list(val_loss), "val_accuracy": list(val_acc),
        "clean_train_loss": list(train_loss), "clean_train_accuracy": list(train_acc),
    }


def line(axes: Axes, label: str) -> Line2D:
    (found,) = [drawn for drawn in axes.get_lines() if drawn.get_label() == label]
    return found


def gap_shadings(axes: Axes) -> list[PolyCollection]:
    return [c for c in axes.collections if c.get_label() == "generalization gap"]


def figure(curves: dict[str, list[float]], title: str = "trial 3") -> Figure:
    return learning_curve_figure(
        curves, title=title, diagnosis=diagnose(curves), objective=DEFAULT_OBJECTIVE
    )


def test_two_panels_with_every_curve_styled_as_specified() -> None:
    fig = figure(overfit_curves())
    accuracy, loss = fig.axes
    assert accuracy.get_ylabel() == "accuracy" and loss.get_ylabel().startswith("loss")
    assert line(accuracy, "train (with dropout/aug)").get_linestyle() == "--"
    assert line(loss, "val (with penalty)").get_linestyle() == ":"
    assert line(loss, "validation").get_ydata()[4] == pytest.approx(0.9)
    assert {"clean train", "validation"} <= {drawn.get_label() for drawn in accuracy.get_lines()}


def test_epochs_are_labelled_one_to_n() -> None:
    accuracy, loss = figure(overfit_curves(12)).axes
    assert list(line(loss, "clean train").get_xdata()) == list(range(1, 13))
    assert loss.get_xlim() == (0.5, 12.5)
    assert all(float(tick).is_integer() for tick in accuracy.get_xticks())


def test_best_epoch_line_marks_lowest_validation_loss() -> None:
    for axes in figure(overfit_curves()).axes:
        assert list(line(axes, "best epoch 5").get_xdata()) == [5, 5]


def test_best_epoch_line_follows_an_accuracy_objective() -> None:
    curves = overfit_curves()
    curves["val_accuracy"][8] = 0.9
    fig = learning_curve_figure(
        curves, title="t", diagnosis=diagnose(curves), objective=OBJECTIVES[VAL_ACCURACY]
    )
    for axes in fig.axes:
        assert list(line(axes, "best epoch 9").get_xdata()) == [9, 9]


def test_diagnosis_colours_the_title_and_shades_the_gap() -> None:
    curves = overfit_curves()
    diagnosis = diagnose(curves)
    fig = learning_curve_figure(
        curves, title="trial 3", diagnosis=diagnosis, objective=DEFAULT_OBJECTIVE
    )
    title = fig.get_suptitle()
    assert diagnosis.regime == "under-regularized" and title == "trial 3 — under-regularized"
    assert to_hex(fig._suptitle.get_color()) == REGIME_COLOURS["under-regularized"]
    (shading,) = gap_shadings(fig.axes[1])
    assert to_hex(shading.get_facecolor()[0], keep_alpha=False) == REGIME_COLOURS[diagnosis.regime]


def test_one_epoch_curve_shows_markers(tmp_path: Path) -> None:
    curves = {key: values[:1] for key, values in overfit_curves().items()}
    fig = learning_curve_figure(
        curves, title="pruned", diagnosis=diagnose(curves), objective=DEFAULT_OBJECTIVE
    )
    accuracy, loss = fig.axes
    assert "inconclusive" in fig.get_suptitle()
    assert line(loss, "clean train").get_marker() == "o"
    low, high = accuracy.get_xlim()
    assert [tick for tick in accuracy.get_xticks() if low <= tick <= high] == [1.0]
    assert save_figure(fig, tmp_path / "one.png").stat().st_size > 5_000


def test_side_by_side_puts_one_trial_per_column() -> None:
    overfit = overfit_curves()
    flat = {key: [0.25 if "accuracy" in key else 2.0] * 6 for key in overfit}
    fig = curves_side_by_side([
        ("best", overfit, diagnose(overfit)),
        ("most overfit", overfit, diagnose(overfit)),
        ("most underfit", flat, diagnose(flat)),
    ], DEFAULT_OBJECTIVE)
    assert len(fig.axes) == 6
    titles = [axes.get_title() for axes in fig.axes[:3]]
    assert titles == [
        "best — under-regularized",
        "most overfit — under-regularized",
        "most underfit — over-regularized",
    ]
    assert [axes.get_ylabel() for axes in fig.axes[3:]] == ["loss (crossentropy)"] * 3
    assert list(line(fig.axes[4], "best epoch 5").get_xdata()) == [5, 5]
    assert [len(gap_shadings(axes)) for axes in fig.axes[3:]] == [1, 1, 1]


def test_side_by_side_needs_a_trial() -> None:
    with pytest.raises(ValueError, match="no trials"):
        curves_side_by_side([], DEFAULT_OBJECTIVE)


def test_save_figure_writes_a_real_png(tmp_path: Path) -> None:
    curves = overfit_curves()
    fig = learning_curve_figure(
        curves, title="trial 3", diagnosis=diagnose(curves), objective=DEFAULT_OBJECTIVE
    )
    path = save_figure(fig, tmp_path / "nested" / "trial3.png")
    assert path == tmp_path / "nested" / "trial3.png"
    assert path.read_bytes()[:8] == PNG_SIGNATURE and path.stat().st_size > 20_000
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (1100, 450)
    assert fig.axes == []


def test_every_regime_has_a_colour() -> None:
    assert set(REGIME_COLOURS) == set(REGIMES)
    assert len(set(REGIME_COLOURS.values())) == len(REGIMES)


@pytest.mark.integration
def test_drawing_needs_neither_pyplot_nor_tensorflow(tmp_path: Path) -> None:
    code = (
        "import sys\nfrom tune.contract import DEFAULT_OBJECTIVE, METRICS\n"
        "from tune.engine.diagnosis import Diagnosis\n"
        "from tune.report.curves import learning_curve_figure, save_figure\n"
        "c = {k: [1.0, 0.8, 0.7] if 'loss' in k else [0.5, 0.6, 0.7] for k in METRICS}\n"
        "d = Diagnosis('balanced', 'r', {})\n"
        "f = learning_curve_figure(c, title='x', diagnosis=d, objective=DEFAULT_OBJECTIVE)\n"
        f"save_figure(f, {str(tmp_path / 'x.png')!r})\n"
        "print(sorted(m for m in ('matplotlib.pyplot', 'tensorflow', 'optuna', 'mlflow')"
        " if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert loaded.stdout.strip() == "[]"
    assert (tmp_path / "x.png").read_bytes()[:8] == PNG_SIGNATURE
