"""The balanced band across training-set sizes (``tune run --data-sizes``), on scripted studies in
which more data acts as extra regularization, as it does in training."""

from __future__ import annotations

from pathlib import Path

import optuna

from tests.support.scripted import ScriptedTrainer, regularized_curves, scripted_study
from tune.report.data_sizes import (
    FIGURE_FILE,
    size_markdown,
    size_rows,
    size_study_name,
    write_size_report,
)

DROPOUTS = [0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95]


def study_at(size: int) -> optuna.Study:
    """Curves as if 4x the data added 0.2 of dropout's worth of regularization."""
    extra = 0.2 if size > 1000 else 0.0
    trainer = ScriptedTrainer(
        script=lambda params: regularized_curves(float(params["dropout"]) + extra)
    )
    return scripted_study([{"dropout": d} for d in DROPOUTS], trainer)


def test_the_band_slides_towards_weaker_settings_as_data_grows(tmp_path: Path) -> None:
    studies = {4000: study_at(4000), 1000: study_at(1000)}
    (small, large) = size_rows(studies)["dropout"]
    assert (small.size, large.size) == (1000, 4000)
    assert small.knob.band == (0.35, 0.65) and large.knob.band == (0.15, 0.45)
    assert small.best_value == 0.45 and large.best_value == 0.25
    table = size_markdown("demo", size_rows(studies))
    assert "| dropout | 1000 | 0.35 .. 0.65 | 0.45 | balanced | 10 |" in table
    assert "| dropout | 4000 | 0.15 .. 0.45 | 0.25 | balanced | 10 |" in table
    files = write_size_report("demo", studies, tmp_path)
    assert {path.name for path in files} == {"data_sizes.md", FIGURE_FILE}
    assert (tmp_path / FIGURE_FILE).read_bytes().startswith(b"\x89PNG")
    assert size_study_name("demo", 5000) == "demo-n5000"
