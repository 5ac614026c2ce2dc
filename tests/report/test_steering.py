"""The regime map and the recommendation on scripted studies: the real objective records each
trial's regime from curves shaped by one knob, in milliseconds, without TensorFlow or an MLflow
store."""

from __future__ import annotations

import optuna
import pytest

from tests.support.scripted import ScriptedTrainer, regularized_curves, scripted_study
from tune.contract import DEFAULT_OBJECTIVE, Params
from tune.engine.config import DOMAINS
from tune.engine.diagnosis import BALANCED, OVER_REGULARIZED, UNDER_REGULARIZED
from tune.report.steering import (
    KEEP,
    LESS,
    MORE,
    NONE,
    KnobMap,
    Recommendation,
    knob_maps,
    recommend,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)
PATIENCE = {"type": "int", "low": 0, "high": 10}


def steer(study: optuna.Study) -> tuple[dict[str, KnobMap], Recommendation]:
    maps = knob_maps(study.trials)
    return {knob.name: knob for knob in maps}, recommend(study.trials, DEFAULT_OBJECTIVE, maps)


def test_a_study_across_the_regimes_maps_the_balanced_band_and_keeps_the_best_inside_it() -> None:
    dropouts = [0.05, 0.15, 0.25, 0.35, 0.45, 0.5, 0.6, 0.75, 0.85, 0.95]
    maps, advice = steer(scripted_study([{"dropout": d} for d in dropouts]))
    dropout = maps["dropout"]
    assert dropout.under == [0.05, 0.15, 0.25] and dropout.over == [0.75, 0.85, 0.95]
    assert dropout.band == (0.35, 0.6)
    assert dropout.trend == pytest.approx(0.95, abs=0.05)
    assert advice.regime == BALANCED and advice.verdict == KEEP
    (move,) = advice.moves
    assert (move.name, move.action, move.current) == ("dropout", "keep", 0.5)
    assert "0.35 .. 0.6" in advice.text()


@pytest.mark.parametrize(("dropouts", "regime", "verdict", "action", "edge"), [
    ([0.0, 0.1, 0.2, 0.25], UNDER_REGULARIZED, MORE, "raise", "0.25"),
    ([0.75, 0.8, 0.9, 0.95], OVER_REGULARIZED, LESS, "lower", "0.75"),
])
def test_a_study_stuck_in_one_regime_says_which_way_to_widen_the_range(
    dropouts: list[float], regime: str, verdict: str, action: str, edge: str
) -> None:
    maps, advice = steer(scripted_study([{"dropout": d} for d in dropouts]))
    assert maps["dropout"].band is None and maps["dropout"].trend is None
    assert advice.regime == regime and advice.verdict == verdict
    (move,) = advice.moves
    assert move.action == action and f"beyond the searched {edge}" in move.target
    assert f"all {len(dropouts)} trials {regime}" in move.evidence


def _by_patience(params: Params) -> dict[str, list[float]]:
    """Early stopping as the only regularizer: long patience (or none, 0) overfits."""
    patience = int(params["early_stopping_patience"])
    return regularized_curves(0.1 if patience == 0 or patience > 6 else 0.5)


def test_patience_reads_the_other_way_round_and_zero_is_the_weakest() -> None:
    """Less patience is more regularization; an under-regularized best is told to lower it, towards
    the band the study found below it, and off (0) counts as the weakest setting."""
    values = [{"dropout": 0.0, "early_stopping_patience": p} for p in (0, 10, 9, 8, 4, 3)]
    trainer = ScriptedTrainer(script=_by_patience)
    maps, _ = steer(scripted_study(values, trainer, early_stopping_patience=PATIENCE))
    patience = maps["early_stopping_patience"]
    assert [value for value, _ in patience.points][:2] == [0, 10], (
        "weakest first: off, then the longest"
    )
    assert patience.band == (4, 3) and patience.trend == pytest.approx(0.83, abs=0.01)
    assert DOMAINS["early_stopping_patience"].strength(0) < DOMAINS[
        "early_stopping_patience"
    ].strength(10)


def test_an_under_regularized_best_is_sent_to_the_band_the_study_found() -> None:
    """The objective here rewards the overfitting trials, so the best is under-regularized while
    balanced trials exist at higher dropout: the move points into their band."""
    def overfit_is_lower(params: Params) -> dict[str, list[float]]:
        curves = regularized_curves(float(params["dropout"]))
        if float(params["dropout"]) < 0.3:
            curves["val_data_loss"] = [value - 1.0 for value in curves["val_data_loss"]]
        return curves

    study = scripted_study(
        [{"dropout": d} for d in (0.1, 0.2, 0.4, 0.5, 0.8)],
        ScriptedTrainer(script=overfit_is_lower),
    )
    _, advice = steer(study)
    assert advice.regime == UNDER_REGULARIZED and advice.verdict == MORE
    (move,) = advice.moves
    assert move.action == "raise" and move.target == "the balanced band 0.4 .. 0.5"
    assert "rank correlation" in move.evidence


def test_no_completed_trial_gives_no_recommendation() -> None:
    advice = recommend([], DEFAULT_OBJECTIVE, [])
    assert advice.verdict == NONE and advice.trial is None and "no completed trial" in advice.text()


def test_no_move_is_recommended_past_what_a_knob_allows() -> None:
    """Over-regularized at dropout 0 and patience 1: dropout cannot go below 0, so only a longer
    patience is named for less regularization."""
    values = [
        {"dropout": 0.0, "early_stopping_patience": 1},
        {"dropout": 0.0, "early_stopping_patience": 1},
    ]
    trainer = ScriptedTrainer(script=lambda params: regularized_curves(0.9))
    _, advice = steer(scripted_study(values, trainer, early_stopping_patience=PATIENCE))
    assert advice.verdict == LESS
    (move,) = advice.moves
    assert (move.name, move.action) == ("early_stopping_patience", "raise")
