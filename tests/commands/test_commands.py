"""The ``tune run`` and ``tune export`` recipes with a scripted trainer: the real journal, MLflow
and report, in seconds instead of the minutes real training takes."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import numpy as np
import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState, create_trial

from tests.support.paths import ROOT
from tests.support.scripted import EPOCHS, ScriptedTrainer, curves_from, describe_scripted
from tests.support.spaces import tiny_space, write_space
from tune.commands import run as run_module
from tune.commands.export import export_best, exported_configs
from tune.commands.run import RunOverrides, resolve_space, run_study
from tune.contract import DEFAULT_OBJECTIVE, Params, Splits
from tune.data.sources import load_dataset
from tune.data.splits import Dataset
from tune.engine.config import Origin, load_space
from tune.engine.study import SPACE_ATTR
from tune.errors import SpaceError, StudyError
from tune.paths import mlflow_database, report_dir
from tune.runtime.storage import open_storage
from tune.tracking.tracker import ROLE_TAG

STUDY = "scripted"
TRIALS = 5


class Untouchable:
    """Stands in for the test split: any use of it fails the run that was handed it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def _touched(self, *args: object, **kwargs: object) -> NoReturn:
        raise AssertionError(f"tuning touched the test split ({self.name})")

    __getattr__ = __getitem__ = __len__ = __iter__ = __array__ = __bool__ = _touched


def without_test_split(dataset: Dataset) -> Dataset:
    return dataclasses.replace(dataset, x_test=Untouchable("x_test"), y_test=Untouchable("y_test"))


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """One scripted study shared by the tests below, in stores of its own, with a dataset whose
    test split fails whatever touches it."""
    root = tmp_path_factory.mktemp("scripted")
    loaded: list[Dataset] = []

    def load_guarded(source: str) -> Dataset:
        loaded.append(without_test_split(load_dataset(source)))
        return loaded[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUNE_STORE_DIR", str(root / "mlruns"))
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.delenv("TUNE_STORAGE", raising=False)
        patch.setattr(run_module, "load_dataset", load_guarded)
        yield {**run_scripted(root), "loaded": loaded}


def run_scripted(root: Path) -> dict:
    space = write_space(
        root / "space.yaml",
        tiny_space(
            study={
                "name": STUDY,
                "trials": TRIALS,
                "sampler": {"type": "random", "seed": 1},
                "pruner": {"type": "none"},
            },
            training={"epochs": EPOCHS},
            regularization={
                "l2_conv": 0.0,
                "l2_dense": 0.001,
                "dropout": {"type": "float", "low": 0.0, "high": 0.99},
            },
            diagnosis={"min_epochs": 4},
        ),
    )
    trainer = ScriptedTrainer(diverges_after=lambda params: 1 if params["dropout"] < 0.01 else None)
    lines: list[str] = []
    study = run_study(
        space,
        RunOverrides(),
        storage=None,
        tracking_uri=None,
        echo=lines.append,
        trainer=trainer,
        describer=describe_scripted,
    )
    return {"space": space, "study": study, "lines": lines, "trainer": trainer,
            "client": MlflowClient(f"sqlite:///{mlflow_database().resolve()}")}


def runs(client: MlflowClient, role: str) -> list:
    experiment = client.get_experiment_by_name(STUDY)
    return client.search_runs([experiment.experiment_id], f"tags.`{ROLE_TAG}` = '{role}'")


def test_run_study_trains_each_trial_once_and_records_it(finished: dict) -> None:
    study = finished["study"]
    assert len(study.trials) == TRIALS and study.trials[0].params == {"dropout": 0.5}
    assert [params["dropout"] for params, _ in finished["trainer"].calls] == [
        t.params["dropout"] for t in study.trials
    ]
    sampler_seed = 1
    assert [settings.seed for _, settings in finished["trainer"].calls] == [
        sampler_seed + n for n in range(TRIALS)
    ]
    states = [trial.state for trial in study.trials]
    assert states.count(TrialState.FAIL) == 1 and states.count(TrialState.COMPLETE) == TRIALS - 1
    (failed,) = [trial for trial in study.trials if trial.state == TrialState.FAIL]
    assert "only 1 epoch recorded (at least 4 needed)" in failed.user_attrs["diagnosis"]["reason"]
    trial_lines = [line for line in finished["lines"] if line.startswith("trial ")]
    assert len(trial_lines) == TRIALS and "*best*" in " ".join(trial_lines)
    (parent,) = runs(finished["client"], "study")
    assert parent.info.status == "FINISHED"
    children = runs(finished["client"], "trial")
    assert sorted(int(run.data.tags["tune.trial_number"]) for run in children) == list(
        range(TRIALS)
    )
    assert (report_dir(STUDY) / "report.html").exists()
    assert any(line.startswith(f"study {STUDY}: {TRIALS} trials") for line in finished["lines"])


def test_tuning_never_touches_the_test_split(finished: dict) -> None:
    """The claim users show their teams: the whole run went by with an untouchable test split."""
    (dataset,) = finished["loaded"]
    with pytest.raises(AssertionError, match="touched the test split"):
        len(dataset.x_test)
    assert not any("test" in field.name for field in dataclasses.fields(Splits))
    assert len(finished["study"].trials) == TRIALS


def test_export_writes_the_best_completed_trial_fixed(finished: dict, tmp_path: Path) -> None:
    study = finished["study"]
    (out,) = export_best(STUDY, storage=None, tracking_uri=None, out=tmp_path / "best.yaml")
    text = out.read_text()
    assert text.startswith(
        f"# Rank 1 of study '{STUDY}': trial {study.best_trial.number}, "
        f"{DEFAULT_OBJECTIVE.metric}={study.best_value:.4f}"
    )
    exported = load_space(out)
    assert (
        exported.searched() == {} and exported.params()["dropout"] == study.best_params["dropout"]
    )
    assert exported.study.name == f"{STUDY}-best" and exported.study.trials == 1
    curves = study.best_trial.user_attrs["curves"]
    best = curves[DEFAULT_OBJECTIVE.metric].index(min(curves[DEFAULT_OBJECTIVE.metric]))
    assert exported.origin == Origin(
        study=STUDY,
        trial=study.best_trial.number,
        rank=1,
        objective=study.best_value,
        val_accuracy=curves["val_accuracy"][best],
        best_epoch=best + 1,
        regime=study.best_trial.user_attrs["regime"],
        reason=study.best_trial.user_attrs["diagnosis"]["reason"],
    )
    (parent,) = runs(finished["client"], "study")
    assert "export/best.yaml" in [
        a.path for a in finished["client"].list_artifacts(parent.info.run_id, "export")
    ]


def test_top_k_exports_the_best_completed_trials_in_order_as_json(
    finished: dict, tmp_path: Path
) -> None:
    study = finished["study"]
    paths = export_best(
        STUDY, storage=None, tracking_uri=None, out=tmp_path / "top", top_k=10, fmt="json"
    )
    complete = sorted(
        (t for t in study.trials if t.state == TrialState.COMPLETE), key=lambda t: t.value
    )
    assert [path.name for path in paths] == [f"{STUDY}-best.json"] + [
        f"{STUDY}-rank{r}.json" for r in range(2, len(complete) + 1)
    ]
    exported = [load_space(path) for path in paths]
    assert [config.origin.trial for config in exported] == [trial.number for trial in complete]
    assert [config.origin.rank for config in exported] == list(range(1, len(complete) + 1))
    assert [config.params()["dropout"] for config in exported] == [
        trial.params["dropout"] for trial in complete
    ]
    assert json.loads(paths[0].read_text())["origin"]["objective"] == complete[0].value


def test_pruned_and_failed_trials_are_never_exported(finished: dict) -> None:
    study = optuna.create_study()
    study.set_user_attr(SPACE_ATTR, finished["study"].user_attrs[SPACE_ATTR])
    distribution = optuna.distributions.FloatDistribution(0.0, 0.99)
    for state, dropout, values in [
        (TrialState.PRUNED, 0.1, {0: 0.01}),
        (TrialState.FAIL, 0.2, {0: 0.02}),
    ]:
        study.add_trial(
            create_trial(
                state=state,
                params={"dropout": dropout},
                distributions={"dropout": distribution},
                intermediate_values=values,
            )
        )
    with pytest.raises(StudyError, match="no completed trial yet \\(2 trials in all\\)"):
        exported_configs(study, 1)
    study.add_trial(
        create_trial(value=0.9, params={"dropout": 0.4}, distributions={"dropout": distribution})
    )
    (config,) = exported_configs(study, 3)
    assert config.origin.trial == 2 and config.params()["dropout"] == 0.4
    assert (config.origin.regime, config.origin.best_epoch, config.origin.val_accuracy) == (
        "inconclusive",
        None,
        None,
    )


@pytest.mark.parametrize(("overrides", "problem"), [
    (RunOverrides(trials=0), "study.trials: Input should be greater than or equal to 1"),
    (RunOverrides(timeout=0), "study.timeout: Input should be greater than 0"),
    (RunOverrides(seed=-5), "study.sampler.seed: Input should be greater than or equal to 0"),
])
def test_command_line_values_meet_the_schemas_limits(overrides: RunOverrides, problem: str) -> None:
    with pytest.raises(SpaceError, match=f"^command-line option: {problem}$"):
        resolve_space(ROOT / "search_spaces" / "quick.yaml", overrides)


def accuracy_disagrees_with_loss(params: Params) -> dict[str, list[float]]:
    """More dropout: worse validation loss but better validation accuracy; within a trial the loss
    is best at epoch 2 and the accuracy at epoch 6, so an objective mix-up shows everywhere."""
    dropout, epoch = float(params["dropout"]), np.arange(EPOCHS)
    return curves_from(np.full(EPOCHS, 0.8), 1.0 + dropout + 0.05 * (epoch - 1) ** 2,
                       np.full(EPOCHS, 0.7), 0.5 + 0.3 * dropout - 0.01 * np.abs(epoch - 5))


def test_an_accuracy_objective_ranks_exports_and_reports_by_validation_accuracy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TUNE_STORE_DIR", str(tmp_path / "mlruns"))
    monkeypatch.delenv("TUNE_STORAGE", raising=False)
    raw = tiny_space(
        study={
            "name": "by-accuracy",
            "objective": "val_accuracy",
            "trials": 4,
            "sampler": {"type": "random", "seed": 3},
            "pruner": {"type": "none"},
            "baseline": False,
        },
        training={"epochs": EPOCHS},
        regularization={"dropout": {"type": "float", "low": 0.0, "high": 0.9}},
    )
    raw["study"].pop("direction", None)
    space = write_space(tmp_path / "space.yaml", raw)
    trainer = ScriptedTrainer(script=accuracy_disagrees_with_loss)
    lines: list[str] = []
    study = run_study(
        space,
        RunOverrides(),
        storage=None,
        tracking_uri=None,
        echo=lines.append,
        trainer=trainer,
        describer=describe_scripted,
    )
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    for trial in study.trials:
        assert trial.value == max(accuracy_disagrees_with_loss(trial.params)["val_accuracy"])
    best = max(study.trials, key=lambda trial: trial.params["dropout"])
    assert study.best_trial.number == best.number
    assert f"best: trial {best.number}, val_accuracy {best.value:.3g}" in "\n".join(lines)
    paths = export_best(
        "by-accuracy", storage=None, tracking_uri=None, out=tmp_path / "top", top_k=4
    )
    exported = [load_space(path) for path in paths]
    assert [config.origin.objective for config in exported] == sorted(
        (t.value for t in study.trials), reverse=True
    )
    assert exported[0].origin.best_epoch == 6 and exported[0].study.objective == "val_accuracy"
    assert (
        paths[0]
        .read_text()
        .startswith(f"# Rank 1 of study 'by-accuracy': trial {best.number}, val_accuracy=")
    )

    raw["study"]["objective"] = "val_data_loss"
    with pytest.raises(StudyError, match="optimizes val_accuracy, not val_data_loss"):
        run_study(
            write_space(space, raw),
            RunOverrides(),
            storage=None,
            tracking_uri=None,
            echo=lines.append,
            trainer=trainer,
            describer=describe_scripted,
        )
    reopened = optuna.load_study(study_name="by-accuracy", storage=open_storage(None))
    assert (
        len(reopened.trials) == 4
        and reopened.user_attrs[SPACE_ATTR]["study"]["objective"] == "val_accuracy"
    )


def test_a_run_whose_every_trial_failed_says_why_and_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUNE_STORE_DIR", str(tmp_path / "mlruns"))
    monkeypatch.delenv("TUNE_STORAGE", raising=False)
    space = write_space(
        tmp_path / "space.yaml",
        tiny_space(study={"name": "doomed", "trials": 2, "pruner": {"type": "none"}}),
    )
    lines: list[str] = []
    trainer = ScriptedTrainer(diverges_after=lambda params: 1)
    with pytest.raises(
        StudyError,
        match=r"^all 2 trials of this run failed; the last: "
        r"training diverged in epoch 2/3: loss=nan$",
    ):
        run_study(
            space,
            RunOverrides(),
            storage=None,
            tracking_uri=None,
            echo=lines.append,
            trainer=trainer,
            describer=describe_scripted,
        )
    assert sum("FAIL" in line and "(training diverged in epoch 2/3" in line for line in lines) == 2
    client = MlflowClient(f"sqlite:///{mlflow_database().resolve()}")
    experiment = client.get_experiment_by_name("doomed")
    (parent,) = client.search_runs([experiment.experiment_id], f"tags.`{ROLE_TAG}` = 'study'")
    assert parent.info.status == "FAILED"
    children = client.search_runs([experiment.experiment_id], f"tags.`{ROLE_TAG}` = 'trial'")
    assert [run.data.tags["tune.failure"] for run in children] == [
        "training diverged in epoch 2/3: loss=nan"
    ] * 2
