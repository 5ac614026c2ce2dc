"""``tune prove``'s table: the reference config's and the tuned config's test accuracy seed by
seed, their means and spreads, the difference of the means, whether every tuned seed beats every
reference seed, and what each phase cost in wall time; as Markdown to read and JSON to keep.

The spread is the sample standard deviation (``mean_and_spread``'s, as in ``tune compare``).
"Every tuned seed above every reference seed" is the claim that survives a small number of
seeds: with three seeds each, a difference of the means can come from one lucky seed; a clean
separation cannot.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tune.contract import TEST_ACCURACY
from tune.report.comparison import ArmSummary, mean_and_spread, spread
from tune.report.formatting import markdown_table

TABLE_FILE, JSON_FILE = "prove.md", "prove.json"
SPREAD = "sample standard deviation over seeds (n - 1)"


@dataclass(frozen=True)
class Proof:
    """What ``tune prove`` measured: both configs' retrains (seeds 0, 1, ... in order) and the
    study phase's wall time (every ``tune prove`` of the study together)."""

    study: str
    reference: ArmSummary
    tuned: ArmSummary
    study_seconds: float


@dataclass(frozen=True)
class Verdict:
    """The tuned config against the reference, over the seeds' test accuracies."""

    reference_mean: float
    reference_spread: float | None
    tuned_mean: float
    tuned_spread: float | None
    difference: float  # tuned mean minus reference mean
    every_seed_above: bool  # the worst tuned seed beats the best reference seed


def verdict(reference: Sequence[float], tuned: Sequence[float]) -> Verdict:
    reference_mean, tuned_mean = statistics.mean(reference), statistics.mean(tuned)
    return Verdict(
        reference_mean,
        spread(reference),
        tuned_mean,
        spread(tuned),
        tuned_mean - reference_mean,
        min(tuned) > max(reference),
    )


def phase_seconds(proof: Proof) -> dict[str, float]:
    """Each phase's wall time over every run of ``tune prove`` that contributed to it: the study
    phase's spent seconds, and each config's retrains summed over its seeds (a seed found
    finished brings the seconds it took then)."""
    reference, tuned = sum(proof.reference.seconds), sum(proof.tuned.seconds)
    return {
        "study": proof.study_seconds,
        "reference_retrains": reference,
        "tuned_retrains": tuned,
        "total": proof.study_seconds + reference + tuned,
    }


def proof_json(proof: Proof) -> dict[str, Any]:
    found = verdict(proof.reference.test_accuracies, proof.tuned.test_accuracies)
    pairs = zip(proof.reference.test_accuracies, proof.tuned.test_accuracies)
    return {
        "study": proof.study,
        "metric": TEST_ACCURACY,
        "spread": SPREAD,
        "seeds": [
            {"seed": seed, "reference": reference, "tuned": tuned}
            for seed, (reference, tuned) in enumerate(pairs)
        ],
        "reference": {
            "label": proof.reference.label,
            "mean": found.reference_mean,
            "spread": found.reference_spread,
        },
        "tuned": {
            "label": proof.tuned.label,
            "mean": found.tuned_mean,
            "spread": found.tuned_spread,
        },
        "difference": found.difference,
        "every_tuned_seed_above_every_reference_seed": found.every_seed_above,
        "seconds": phase_seconds(proof),
    }


def proof_markdown(proof: Proof) -> str:
    reference, tuned = proof.reference, proof.tuned
    found = verdict(reference.test_accuracies, tuned.test_accuracies)
    seeds = len(reference.test_accuracies)
    per_seed = [
        [str(seed), f"{ours:.4f}", f"{theirs:.4f}"]
        for seed, (ours, theirs) in enumerate(zip(reference.test_accuracies, tuned.test_accuracies))
    ]
    accuracy = markdown_table(
        [
            ["seed", reference.label, tuned.label],
            *per_seed,
            [
                "mean ± std" if seeds > 1 else "mean",
                mean_and_spread(reference.test_accuracies),
                mean_and_spread(tuned.test_accuracies),
            ],
        ]
    )
    labels = {
        "study": "study",
        "reference_retrains": f"{reference.label} retrains",
        "tuned_retrains": f"{tuned.label} retrains",
        "total": "total",
    }
    timing = markdown_table(
        [
            ["phase", "wall time"],
            *([labels[key], f"{seconds:.0f} s"] for key, seconds in phase_seconds(proof).items()),
        ]
    )
    return "\n".join(
        [
            f"# {proof.study}: test accuracy over {seeds} seed{'s' * (seeds > 1)}",
            "",
            *accuracy,
            "",
            f"- difference of the means ({tuned.label} minus {reference.label}): "
            f"{found.difference:+.4f}",
            f"- every {tuned.label} seed above every {reference.label} seed: "
            f"{'yes' if found.every_seed_above else 'no'}",
            f"- std: {SPREAD}",
            "",
            *timing,
            "",
        ]
    )
