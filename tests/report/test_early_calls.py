"""The early regime call replayed on a scripted study's stored curves (``tune report
--early-calls``): which trials it would have stopped after 3 epochs, and whether the full runs
agree."""

from __future__ import annotations

from tests.support.scripted import ScriptedTrainer, lost_causes, scripted_study
from tune.engine.diagnosis import (
    BALANCED,
    OVER_REGULARIZED,
    UNDER_REGULARIZED,
    Thresholds,
)
from tune.report.early_calls import replay, summary


def test_replay_calls_the_lost_causes_early_and_agrees_with_their_full_runs() -> None:
    study = scripted_study(
        [{"dropout": d} for d in (0.0, 0.2, 0.5, 0.8, 0.95)], ScriptedTrainer(script=lost_causes)
    )
    rows = {row.trial: row for row in replay(study.trials, Thresholds(), num_classes=10)}
    assert [(rows[n].early, rows[n].final) for n in range(5)] == [
        (UNDER_REGULARIZED, UNDER_REGULARIZED), (None, UNDER_REGULARIZED), (None, BALANCED),
        (None, OVER_REGULARIZED), (OVER_REGULARIZED, OVER_REGULARIZED),
    ]
    assert summary(list(rows.values())) == {"trials": 5, "called": 2, "agreed": 2}
