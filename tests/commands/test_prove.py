"""``tune prove`` on tiny synthetic data: a scripted study, real retrains. The study's budget is a
total that a rerun carries on, an interrupted prove trains only the seeds it had not finished,
a finished one trains nothing more, and the table's numbers are the registered models' own; the
table itself and the retrains' progress bar on hand-made input."""

from __future__ import annotations

import io
import json
import re
import statistics
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState, create_trial
from rich.console import Console
from typer.testing import CliRunner

from tests.support.scripted import ScriptedTrainer, describe_scripted
from tests.support.spaces import tiny_space, write_space
from tune.cli import app
from tune.commands.progress import RetrainProgress
from tune.commands.prove import prove_space
from tune.commands.run import RunOverrides, run_study
from tune.contract import RETRAIN_SECONDS, TEST_ACCURACY, TrialAttr
from tune.engine.budget import SPENT_SECONDS_ATTR, study_budget
from tune.engine.config import StudySettings
from tune.engine.objective import INTERRUPTED
from tune.paths import mlflow_database, report_dir
from tune.report.comparison import ArmSummary
from tune.report.proof import Proof, proof_json, proof_markdown, verdict
from tune.runtime.storage import open_storage
from tune.tracking.tracker import PARENT_TAG, ROLE_TAG, SEED_TAG

pytestmark = pytest.mark.integration  # real retrains: TensorFlow in this process

STUDY, SEEDS, TRIALS = "proof", 2, 3
BASELINE_MODEL = f"{STUDY}-baseline"
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # anything but a tab or a newline


class StopAfter:
    """An echo that keeps every line and raises KeyboardInterrupt right after the first one that
    starts with ``prefix``: Ctrl-C between two seeds."""

    def __init__(self, prefix: str | None = None) -> None:
        self.prefix, self.lines = prefix, list[str]()

    def __call__(self, line: str) -> None:
        self.lines.extend(line.splitlines())
        if self.prefix is not None and line.startswith(self.prefix):
            raise KeyboardInterrupt


def retrain_runs(client: MlflowClient) -> list[Run]:
    experiment = client.get_experiment_by_name(STUDY)
    return client.search_runs([experiment.experiment_id], f"tags.`{ROLE_TAG}` = 'retrain'")


def comparison_runs(client: MlflowClient) -> list[Run]:
    experiment = client.get_experiment_by_name(STUDY)
    return client.search_runs([experiment.experiment_id], f"tags.`{ROLE_TAG}` = 'compare'")


def versions(client: MlflowClient, name: str) -> dict[str, int]:
    """Run id to version number, for every version registered under ``name``."""
    return {v.run_id: int(v.version) for v in client.search_model_versions(f"name='{name}'")}


def snapshot(client: MlflowClient, trainer: ScriptedTrainer) -> dict:
    """What the stores hold now, and how many trials the scripted trainer has run."""
    study = optuna.load_study(study_name=STUDY, storage=open_storage(None))
    return {
        "trials": len(study.trials),
        "trained_trials": len(trainer.calls),
        "spent_seconds": study.user_attrs.get(SPENT_SECONDS_ATTR),
        "retrains": {run.info.run_id: run.info.status for run in retrain_runs(client)},
        "comparisons": {run.info.run_id: run.info.status for run in comparison_runs(client)},
        "baseline_versions": versions(client, BASELINE_MODEL),
        "best_versions": versions(client, STUDY),
    }


@pytest.fixture(scope="module")
def proved(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """``tune run --trials 2``, then ``tune prove --trials 3 --seeds 2`` stopped right after its
    first retrain, then run again, then once more after it finished."""
    root = tmp_path_factory.mktemp("prove")
    space = write_space(
        root / "space.yaml",
        tiny_space(
            study={
                "name": STUDY,
                "trials": 20,
                "sampler": {"type": "random", "seed": 1},
                "pruner": {"type": "none"},
            },
            data={"source": "synthetic:400", "validation_size": 100, "clean_train_size": 100},
            training={"epochs": 2},
            regularization={
                "l2_conv": 0.0,
                "l2_dense": 0.001,
                "dropout": {"type": "float", "low": 0.0, "high": 0.9},
            },
        ),
    )
    trainer = ScriptedTrainer()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUNE_STORE_DIR", str(root / "mlruns"))
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.delenv("TUNE_STORAGE", raising=False)
        client = MlflowClient(f"sqlite:///{mlflow_database().resolve()}")
        run_study(
            space,
            RunOverrides(trials=2),
            storage=None,
            tracking_uri=None,
            echo=lambda line: None,
            trainer=trainer,
            describer=describe_scripted,
        )

        def prove(echo: StopAfter) -> Proof:
            return prove_space(
                space,
                RunOverrides(trials=TRIALS),
                seeds=SEEDS,
                storage=None,
                tracking_uri=None,
                echo=echo,
                trainer=trainer,
                describer=describe_scripted,
            )

        stopped = StopAfter(f"{BASELINE_MODEL} seed 0:")
        with pytest.raises(KeyboardInterrupt):
            prove(stopped)
        after_stop = snapshot(client, trainer)
        resumed = StopAfter()
        proof = prove(resumed)
        after_resume = snapshot(client, trainer)
        again = StopAfter()
        proof_again = prove(again)
        yield {
            "client": client,
            "lines": {"stopped": stopped.lines, "resumed": resumed.lines, "again": again.lines},
            "snapshots": [after_stop, after_resume, snapshot(client, trainer)],
            "proofs": [proof, proof_again],
            "folder": report_dir(STUDY),
        }


def test_the_study_budget_is_a_total_that_a_rerun_carries_on(proved: dict) -> None:
    after_stop, after_resume, after_again = proved["snapshots"]
    assert (after_stop["trials"], after_stop["trained_trials"]) == (TRIALS, TRIALS), (
        "tune run's 2 trials count: prove ran the 1 left"
    )
    lines = proved["lines"]
    assert f"phase 1/3 study {STUDY!r}: 1 of {TRIALS} trials left" in lines["stopped"]
    assert f"phase 1/3 study done: {TRIALS} of {TRIALS} trials spent" in lines["stopped"]
    for rerun in ("resumed", "again"):
        assert (
            f"phase 1/3 study {STUDY!r}: budget spent ({TRIALS} of {TRIALS} trials spent); "
            "skipped" in lines[rerun]
        )
    assert after_resume["trials"] == after_again["trials"] == TRIALS
    assert after_again["trained_trials"] == TRIALS
    spent = after_stop["spent_seconds"]
    assert spent > 0 and after_again["spent_seconds"] == spent, "a skipped phase spends nothing"
    assert proved["proofs"][0].study_seconds == spent


def test_an_interrupted_prove_resumed_trains_only_the_seeds_it_had_not_finished(
    proved: dict,
) -> None:
    after_stop, after_resume, _ = proved["snapshots"]
    ((first, status),) = after_stop["retrains"].items()
    assert status == "FINISHED" and after_stop["baseline_versions"] == {first: 1}
    assert after_stop["best_versions"] == {}
    assert list(after_stop["comparisons"].values()) == ["KILLED"]

    assert after_resume["comparisons"] == dict.fromkeys(after_stop["comparisons"], "FINISHED"), (
        "the interrupted comparison run is carried on, not another"
    )
    assert list(after_resume["retrains"].values()) == ["FINISHED"] * (2 * SEEDS)
    assert after_resume["baseline_versions"][first] == 1 and len(
        after_resume["baseline_versions"]
    ) == len(after_resume["best_versions"]) == SEEDS
    resumed = proved["lines"]["resumed"]
    assert sum("(finished before: reused, not trained again)" in line for line in resumed) == 1
    (first_line,) = [line for line in resumed if line.startswith(f"{BASELINE_MODEL} seed 0: ")]
    assert first_line.endswith("(finished before: reused, not trained again)")
    assert "phase 2/3 retrains: seed 000 baseline, 2 seeds" in resumed
    assert "phase 3/3 retrains: best config, 2 seeds" in resumed


def test_a_prove_run_again_after_it_finished_trains_nothing_more(proved: dict) -> None:
    _, after_resume, after_again = proved["snapshots"]
    assert after_again == after_resume
    again = proved["lines"]["again"]
    assert sum("(finished before: reused, not trained again)" in line for line in again) == 4
    first, second = proved["proofs"]
    assert proof_json(first) == proof_json(second)


def test_the_table_holds_the_registered_models_test_accuracies_seed_by_seed(proved: dict) -> None:
    client, folder = proved["client"], proved["folder"]
    written = json.loads((folder / "prove.json").read_text())
    runs = {run.info.run_id: run for run in retrain_runs(client)}
    (comparison,) = comparison_runs(client)
    for arm, model in (("reference", BASELINE_MODEL), ("tuned", STUDY)):
        registered = {
            int(runs[run_id].data.tags[SEED_TAG]): runs[run_id]
            for run_id in versions(client, model)
        }
        assert sorted(registered) == list(range(SEEDS))
        assert all(
            run.data.tags[PARENT_TAG] == comparison.info.run_id for run in registered.values()
        )
        accuracies = [registered[seed].data.metrics[TEST_ACCURACY] for seed in range(SEEDS)]
        assert [row[arm] for row in written["seeds"]] == pytest.approx(accuracies, abs=1e-12)
        assert written[arm]["mean"] == pytest.approx(statistics.mean(accuracies))
        assert written[arm]["spread"] == pytest.approx(statistics.stdev(accuracies))
        seconds = sum(run.data.metrics[RETRAIN_SECONDS] for run in registered.values())
        assert written["seconds"][f"{arm}_retrains"] == pytest.approx(seconds)
    assert written["seeds"][0]["seed"] == 0 and written["reference"]["label"] == "seed 000 baseline"
    assert written["difference"] == pytest.approx(
        written["tuned"]["mean"] - written["reference"]["mean"]
    )
    table = (folder / "prove.md").read_text()
    for row in written["seeds"]:
        assert f"| {row['seed']} | {row['reference']:.4f} | {row['tuned']:.4f} |" in table
    assert table in "\n".join(proved["lines"]["again"]), "printed as written"
    logged = {artifact.path for artifact in client.list_artifacts(comparison.info.run_id)}
    assert {"prove.md", "prove.json", "comparison.md", "comparison.png"} <= logged


def test_without_a_terminal_prove_prints_plain_lines(proved: dict) -> None:
    for lines in proved["lines"].values():
        assert lines and not [line for line in lines if CONTROL.search(line)]


def test_the_budget_counts_the_trials_that_ended_on_their_own_and_the_spent_seconds() -> None:
    study = optuna.create_study()
    for state, attrs in [
        (TrialState.COMPLETE, {}),
        (TrialState.PRUNED, {}),
        (TrialState.FAIL, {TrialAttr.FAILURE: "training diverged"}),
        (TrialState.FAIL, {TrialAttr.FAILURE: INTERRUPTED}),
        (TrialState.FAIL, {TrialAttr.FAILURE: "its worker died"}),  # retried by the next one
        (TrialState.COMPLETE, {TrialAttr.RETRY_OF: 4}),
    ]:
        value = 1.0 if state == TrialState.COMPLETE else None
        study.add_trial(create_trial(state=state, value=value, user_attrs=attrs))
    study.set_user_attr(SPENT_SECONDS_ATTR, 100.0)
    budget = study_budget(StudySettings(trials=6, timeout=300), study)
    assert (budget.spent_trials, budget.trials_left, budget.seconds_left) == (4, 2, 200.0)
    assert not budget.exhausted
    assert study_budget(StudySettings(trials=4), study).exhausted
    assert study_budget(StudySettings(trials=9, timeout=100), study).exhausted
    fresh = study_budget(StudySettings(trials=5), None)
    assert (fresh.trials_left, fresh.seconds_left, fresh.exhausted) == (5, None, False)


def arm(label: str, accuracies: list[float], seconds: float) -> ArmSummary:
    count = len(accuracies)
    return ArmSummary(
        label, accuracies, [1.0] * count, [0.1] * count, ["balanced"] * count, [seconds] * count
    )


def test_the_proof_table_on_hand_made_numbers() -> None:
    proof = Proof(
        "hand",
        arm("seed 000 baseline", [0.70, 0.72, 0.71], 100.0),
        arm("best config", [0.75, 0.73, 0.77], 120.0),
        study_seconds=3600.0,
    )
    found = verdict(proof.reference.test_accuracies, proof.tuned.test_accuracies)
    assert found.reference_mean == pytest.approx(0.71)
    assert found.tuned_mean == pytest.approx(0.75)
    assert found.reference_spread == pytest.approx(0.01)  # sample std: sqrt(0.0002 / 2)
    assert found.tuned_spread == pytest.approx(0.02)
    assert found.difference == pytest.approx(0.04)
    assert found.every_seed_above
    assert not verdict([0.70, 0.74], [0.73, 0.80]).every_seed_above, "0.73 is below 0.74"
    assert verdict([0.7], [0.8]).tuned_spread is None

    written = proof_json(proof)
    assert written["seeds"][1] == {"seed": 1, "reference": 0.72, "tuned": 0.73}
    assert written["every_tuned_seed_above_every_reference_seed"] is True
    assert written["seconds"] == {
        "study": 3600.0,
        "reference_retrains": 300.0,
        "tuned_retrains": 360.0,
        "total": 4260.0,
    }
    assert proof_markdown(proof).splitlines() == [
        "# hand: test accuracy over 3 seeds",
        "",
        "| seed | seed 000 baseline | best config |",
        "| --- | --- | --- |",
        "| 0 | 0.7000 | 0.7500 |",
        "| 1 | 0.7200 | 0.7300 |",
        "| 2 | 0.7100 | 0.7700 |",
        "| mean ± std | 0.7100 ± 0.0100 | 0.7500 ± 0.0200 |",
        "",
        "- difference of the means (best config minus seed 000 baseline): +0.0400",
        "- every best config seed above every seed 000 baseline seed: yes",
        "- std: sample standard deviation over seeds (n - 1)",
        "",
        "| phase | wall time |",
        "| --- | --- |",
        "| study | 3600 s |",
        "| seed 000 baseline retrains | 300 s |",
        "| best config retrains | 360 s |",
        "| total | 4260 s |",
    ]


def show_two_seeds(progress: RetrainProgress) -> None:
    """What a retrain tells its progress: two seeds of two epochs each."""
    with progress.seeds("proof-best", 2):
        for seed in range(2):
            progress.seed(seed)
            for epoch in (1, 2):
                progress.epoch(epoch, 2, "val_data_loss", 1.0 / (epoch + seed))
            progress.seed_done(f"proof-best seed {seed}: done")


def test_a_retrains_progress_is_plain_lines_without_a_terminal() -> None:
    lines: list[str] = []
    show_two_seeds(RetrainProgress(lines.append))
    assert lines == ["proof-best seed 0: done", "proof-best seed 1: done"]


def test_on_a_terminal_a_retrain_shows_a_bar_over_its_seeds_and_the_running_seeds_epochs() -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=160, color_system=None)
    show_two_seeds(RetrainProgress(console=console))
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.getvalue()).replace("\r", "\n")
    rows = text.splitlines()
    assert any(
        row.startswith("seed 0 ") and "2/2" in row and "val_data_loss=0.5000" in row
        for row in rows
    ), text
    assert any(
        row.startswith("seed 1 ") and "2/2" in row and "val_data_loss=0.3333" in row
        for row in rows
    ), text
    (last,) = [row for row in rows if row.startswith("seeds ")][-1:]
    assert "2/2" in last and last.endswith("proof-best")
    assert "proof-best seed 1: done" in rows


def test_prove_refuses_a_missing_space_file_before_touching_a_store(
    stores: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUNE_TF_LOGS_UNFILTERED", "1")  # keep pytest's own stderr
    result = CliRunner().invoke(app, ["prove", str(tmp_path / "missing.yaml"), "--seeds", "2"])
    assert result.exit_code == 2 and "missing.yaml" in result.output
    assert not stores.exists()
