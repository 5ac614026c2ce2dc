"""Which way to move each regularizer: where along each knob a study's trials turn from under- to
balanced to over-regularized, and what that says about the best trial.

Read from the study's own trials (their params and stored regimes), no new training. A knob is
any searched hyperparameter whose ``Domain`` says which way it regularizes; values are compared by
``Domain.strength``, so "stronger" means the same for a lambda, a dropout rate and a patience.
A move is recommended only where the study supports it: along that knob, stronger settings ended
closer to over-regularized (a positive rank correlation between strength and regime), or every
trial ended in the best trial's regime, so the searched range stops short of the balanced band.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

from optuna.trial import FrozenTrial
from scipy.stats import spearmanr

from tune.contract import Objective
from tune.engine.config import DOMAINS, Domain
from tune.engine.diagnosis import (
    BALANCED,
    INCONCLUSIVE,
    OVER_REGULARIZED,
    UNDER_REGULARIZED,
)
from tune.engine.trial_record import best_completed, completed_trials, trial_regime
from tune.report.formatting import fmt

# Where a regime lies on the way from too little to too much regularization.
_SCORE = {UNDER_REGULARIZED: -1, BALANCED: 0, OVER_REGULARIZED: 1}
# Fewer measured trials than this along a knob support no trend.
_MIN_TRIALS = 3
MORE, LESS, KEEP, NONE = (
    "more regularization",
    "less regularization",
    "this is the balanced band",
    "no recommendation",
)


@dataclass(frozen=True)
class KnobMap:
    """One knob's trials from weakest to strongest setting: ``points`` are (value, regime) of the
    trials with a clear regime, ``band`` the lowest and highest value of a balanced trial, and
    ``trend`` the rank correlation between strength and regime (+1: stronger always ends nearer
    over-regularized), None where the trials cannot tell. A knob that regularizes is a number or a
    bool, which ``float`` covers."""

    name: str
    points: list[tuple[float, str]]
    band: tuple[float, float] | None
    trend: float | None

    def band_intervals(self) -> list[tuple[float, float]]:
        """The band as value ranges to shade: one, or for patience with off (0) at its weak end,
        off itself and everything from the strong end up."""
        if self.band is None:
            return []
        weak, strong = self.band
        if DOMAINS[self.name].strength(weak) == -math.inf:
            return [(weak, weak)] + (
                [(strong, max(value for value, _ in self.points))] if strong != weak else []
            )
        low, high = sorted(self.band)
        return [(low, high)]

    @property
    def under(self) -> list[float]:
        return [value for value, regime in self.points if regime == UNDER_REGULARIZED]

    @property
    def over(self) -> list[float]:
        return [value for value, regime in self.points if regime == OVER_REGULARIZED]


@dataclass(frozen=True)
class Move:
    """``action`` is "raise" or "lower" for a move, "keep" inside the balanced band."""

    name: str
    action: str
    current: float
    target: str
    evidence: str

    def text(self) -> str:
        return (
            f"{self.action} {self.name} ({fmt(self.current)} -> {self.target})"
            if self.action != "keep"
            else f"keep {self.name} ({fmt(self.current)}, {self.target})"
        )


@dataclass(frozen=True)
class Recommendation:
    trial: int | None
    regime: str
    verdict: str
    moves: list[Move]
    note: str

    def text(self) -> str:
        moves = ", ".join(move.text() for move in self.moves)
        return f"{self.verdict}: {moves}" if moves else f"{self.verdict}: {self.note}"


def knob_maps(trials: Sequence[FrozenTrial]) -> list[KnobMap]:
    """Every searched knob that regularizes, in the order the study first suggested them."""
    names = dict.fromkeys(name for trial in trials for name in trial.params)
    measured = [trial for trial in completed_trials(trials) if trial_regime(trial) in _SCORE]
    return [
        _knob_map(name, measured) for name in names if name in DOMAINS and DOMAINS[name].regularizes
    ]


def _knob_map(name: str, measured: Sequence[FrozenTrial]) -> KnobMap:
    strength = DOMAINS[name].strength
    points = sorted(
        ((trial.params[name], trial_regime(trial)) for trial in measured if name in trial.params),
        key=lambda point: strength(point[0]),
    )
    balanced = [value for value, regime in points if regime == BALANCED]
    band = (balanced[0], balanced[-1]) if balanced else None
    return KnobMap(
        name, points, band, _trend([strength(v) for v, _ in points], [_SCORE[r] for _, r in points])
    )


def _trend(strengths: Sequence[float], scores: Sequence[int]) -> float | None:
    """Spearman's rank correlation; None for too few trials or where either side never varies
    (the correlation is undefined there)."""
    if len(strengths) < _MIN_TRIALS or len(set(strengths)) < 2 or len(set(scores)) < 2:
        return None
    return float(spearmanr(strengths, scores).statistic)


def recommend(
    trials: Sequence[FrozenTrial], objective: Objective, maps: Sequence[KnobMap]
) -> Recommendation:
    """For the best completed trial: which way its regime says to go, and the knobs along which
    the study's own trials back that move."""
    best = best_completed(trials, objective)
    if best is None:
        return Recommendation(None, INCONCLUSIVE, NONE, [], "no completed trial yet")
    regime = trial_regime(best)
    mine = [knob for knob in maps if knob.name in best.params]
    if regime == BALANCED:
        moves = [
            Move(
                k.name,
                "keep",
                best.params[k.name],
                f"balanced band {span_text(k.name, k.band)}",
                _counts(k),
            )
            for k in mine
            if k.band is not None
        ]
        return Recommendation(best.number, regime, KEEP, moves, "no knob has a balanced band")
    if regime not in _SCORE:
        return Recommendation(
            best.number, regime, NONE, [], "the best trial's curves are inconclusive"
        )
    wanted = 1 if regime == UNDER_REGULARIZED else -1
    moves = [
        move
        for knob in mine
        if (move := _move(knob, best.params[knob.name], wanted, regime)) is not None
    ]
    note = "along no searched knob do the trials' regimes follow its strength"
    return Recommendation(best.number, regime, MORE if wanted > 0 else LESS, moves, note)


def _move(knob: KnobMap, current: float, wanted: int, regime: str) -> Move | None:
    """``wanted`` +1 for stronger regularization. Backed by a positive trend, or by every trial
    on this knob sharing the best trial's regime (the balanced band lies past the searched
    range)."""
    domain = DOMAINS[knob.name]
    stuck = all(point_regime == regime for _, point_regime in knob.points)
    if not (stuck or (knob.trend is not None and knob.trend > 0)) or not _has_room(
        domain, current, wanted
    ):
        return None
    action = "raise" if wanted * domain.regularizes > 0 else "lower"
    if stuck:
        edge = max if action == "raise" else min
        target = (
            f"beyond the searched {fmt(edge(value for value, _ in knob.points))}: widen the range"
        )
    elif (
        knob.band is not None
        and wanted * (domain.strength(_nearest(knob.band, wanted)) - domain.strength(current)) > 0
    ):
        target = f"the balanced band {span_text(knob.name, knob.band)}"
    else:
        target = f"{'above' if action == 'raise' else 'below'} {fmt(current)}"
    evidence = (
        f"all {len(knob.points)} trials {regime}"
        if stuck
        else f"rank correlation of strength with regime {knob.trend:+.2f} over {len(knob.points)} "
        "trials"
    )
    return Move(knob.name, action, current, target, f"{evidence}; {_counts(knob)}")


def _has_room(domain: Domain, current: float, wanted: int) -> bool:
    """Whether an allowed value regularizes more (``wanted`` +1) or less than ``current``: dropout
    0 cannot be lowered, nor a patience of 1 shortened."""
    limits = (
        [False, True]
        if domain.kind is bool
        # every knob that regularizes has a lower limit
        else [cast(float, domain.low), math.inf if domain.high is None else domain.high, 1]
    )
    return any(wanted * (domain.strength(limit) - domain.strength(current)) > 0 for limit in limits)


def _nearest(band: tuple[float, float], wanted: int) -> float:
    """The end of the band a move in direction ``wanted`` reaches first (band is weak..strong)."""
    return band[0] if wanted > 0 else band[1]


def span_text(name: str, band: tuple[float, float] | None) -> str:
    """``band`` runs from its weakest to its strongest setting; written low .. high, and for
    patience, whose weakest setting is off (0), as "off or >= N"."""
    if band is None:
        return "-"
    weak, strong = band
    if DOMAINS[name].strength(weak) == -math.inf:
        return "off (0)" if strong == weak else f"off (0) or >= {fmt(strong)}"
    low, high = sorted(band)
    return fmt(low) if low == high else f"{fmt(low)} .. {fmt(high)}"


def _counts(knob: KnobMap) -> str:
    regimes: Mapping[str, int] = {
        regime: sum(r == regime for _, r in knob.points) for regime in _SCORE
    }
    return ", ".join(f"{count} {regime}" for regime, count in regimes.items() if count)
