"""Search mode of histae's sweeper (``hparams_search=``): the space, the study in the sweep folder,
seeds as replicates, failures, resume after SIGKILL, pruning, trials.csv and best.yaml."""

from __future__ import annotations

import csv
import hashlib
import os
import signal
import sys
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from histae.atomic import FAULT_ENV
from histae.jobdir import JobDir, read_metrics, read_status
from histae.search import (
    BEST_YAML,
    INSTALL,
    JOURNAL,
    TRIALS_CSV,
    Dimension,
    SearchRefused,
    import_optuna,
    parse_space,
)
from tests.helpers import TINY, histae

optuna = pytest.importorskip("optuna")
TrialState = optuna.trial.TrialState

TINY_SEARCH = ["-m", *TINY, "hparams_search=tiny"]


def load_study(sweep: Path):
    """The study a search left in its sweep folder."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(sweep / JOURNAL)))
    return optuna.load_study(study_name="histae", storage=storage)


def read_trials_csv(sweep: Path) -> list[dict[str, str]]:
    with open(sweep / TRIALS_CSV, newline="") as f:
        return list(csv.DictReader(f))


def fake_train(
    monkeypatch: pytest.MonkeyPatch, fail_above: float = 1.0, stop_at: int | None = None
) -> list[str]:
    """Replace training with a job that ends at once: its hist_w1 (and retrieval_rank_joint) is
    ``100 * lr + seed``, a job with ``lr > fail_above`` raises (a runtime failure), and the
    ``stop_at``-th job (from 0) is stopped as by SIGTERM. Returns the folders it ran."""
    import histae.train
    from histae.jobdir import JobStopped

    ran: list[str] = []

    def worker(cfg, job_dir, on_start=None, record_failure=False, overrides=()):
        job = JobDir(job_dir)
        job.path.mkdir(parents=True, exist_ok=True)
        on_start()
        ran.append(job.path.name)
        if len(ran) - 1 == stop_at:
            job.write_status("stopped")
            raise JobStopped(signal.SIGTERM, job.path, 0)
        lr = float(cfg.optimizer.lr)
        if lr > fail_above:
            job.write_status("failed", error="RuntimeError: boom")
            raise RuntimeError("boom")
        job.write_status("done")
        value = 100 * lr + int(cfg.trainer.seed)
        final = {"hist_w1": value, "retrieval_rank_joint": value}
        return {"status": "done", "final": {"val": final}}

    monkeypatch.setattr(histae.train, "train", worker)
    return ran


# -- the space


def space(**params: str) -> list[Dimension]:
    return parse_space(params, OverridesParser.create())


def test_the_space_is_written_in_hydras_override_grammar() -> None:
    lr, directions, bins, size, scale = space(
        **{
            "optimizer.lr": "tag(log, interval(1e-4, 1e-2))",
            "loss.directions": "choice(8, 32, 128)",
            "loss.bins": "range(50, 201, 50)",
            "model.code_size": "tag(int, interval(8, 64))",
            "loss.sigma": "range(0.5, 2.0, 0.5)",
        }
    )
    assert (lr.kind, lr.low, lr.high, lr.log) == ("float", 1e-4, 1e-2, True)
    assert (directions.kind, directions.choices) == ("categorical", ("8", "32", "128"))
    assert (bins.kind, bins.low, bins.high, bins.step) == ("int", 50, 200, 50)
    assert (size.kind, size.low, size.high, size.log) == ("int", 8, 64, False)
    assert (scale.kind, scale.choices) == ("categorical", ("0.5", "1.0", "1.5"))


def test_a_float_runs_at_four_significant_digits_and_a_resumed_trial_keeps_its_values() -> None:
    (lr,) = space(**{"optimizer.lr": "tag(log, interval(1e-4, 1e-2))"})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    value = lr.suggest(trial)
    assert value == f"{trial.params['optimizer.lr']:.4g}"
    # The same trial asked again (a resume) gets the value it was given, not a new draw.
    again = optuna.trial.Trial(study, trial._trial_id)
    assert lr.suggest(again) == value


def test_a_fixed_value_or_a_broken_range_is_refused_in_one_line() -> None:
    with pytest.raises(SearchRefused, match="one value, nothing to search"):
        space(**{"optimizer.lr": "0.001"})
    with pytest.raises(SearchRefused, match=r"search space optimizer\.lr=interval"):
        space(**{"optimizer.lr": "interval(1e-4"})


def test_missing_optuna_names_the_install_command(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna raises ImportError
    with pytest.raises(SearchRefused) as err:
        import_optuna()
    assert str(err.value) == f"hydra.sweeper.search needs optuna, which is not installed: {INSTALL}"
    assert INSTALL == 'pip install -e ".[search]"'


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("hydra.sweeper.search.metric=nope", "hydra.sweeper.search.metric: lead metric must be"),
        ("hydra.sweeper.search.sampler=grid", "hydra.sweeper.search.sampler=grid: must be one of"),
        ("optimizer.lrr=choice(1,2)", "optimizer.lrr"),
    ],
)
def test_a_bad_search_is_refused_before_anything_is_written(
    run_cli, capsys, tmp_path, override, message
) -> None:
    sweep = tmp_path / "sweep"
    assert run_cli(*TINY_SEARCH, override, f"hydra.sweep.dir={sweep}") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not sweep.exists()


# -- trials, seeds, failures (training replaced by a job that ends at once)


@pytest.mark.slow  # 6 jobs and their report: about 6 s of CPU
def test_seeds_are_replicates_of_each_trial(run_cli, monkeypatch, tmp_path) -> None:
    ran = fake_train(monkeypatch)
    sweep = tmp_path / "sweep"
    code = run_cli(
        *TINY_SEARCH,
        "hydra.sweeper.search.n_trials=2",
        "trainer.seed=1,2,3",
        f"hydra.sweep.dir={sweep}",
    )
    assert code == 0
    study = load_study(sweep)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    for trial in study.trials:
        (setting,) = trial.user_attrs["settings"]
        lr = setting.removeprefix("optimizer.lr=")
        assert trial.user_attrs["folders"] == [f"lr-{lr}_seed-{s}" for s in (1, 2, 3)]
        assert trial.value == pytest.approx(100 * float(lr) + 2)  # the mean of seeds 1, 2, 3
        assert trial.user_attrs["std"] == pytest.approx(1.0)
    assert sorted(ran) == sorted(f for t in study.trials for f in t.user_attrs["folders"])
    rows = read_trials_csv(sweep)
    assert [r["seeds"] for r in rows] == ["1,2,3"] * 2
    assert [float(r["std"]) for r in rows] == pytest.approx([1.0, 1.0])


def test_a_failed_trial_is_recorded_and_the_search_goes_on(run_cli, monkeypatch, tmp_path) -> None:
    fake_train(monkeypatch, fail_above=0.002)
    sweep = tmp_path / "sweep"
    code = run_cli(
        *TINY_SEARCH,
        "hydra.sweeper.search.n_trials=4",
        "hydra.sweeper.search.max_failures=4",
        f"hydra.sweep.dir={sweep}",
    )
    assert code == 0
    trials = load_study(sweep).trials
    states = [t.state for t in trials]
    assert len(trials) == 4 and TrialState.FAIL in states and TrialState.COMPLETE in states
    for trial in trials:
        lr = float(trial.user_attrs["settings"][0].removeprefix("optimizer.lr="))
        assert (trial.state == TrialState.FAIL) == (lr > 0.002)
        if trial.state == TrialState.FAIL:
            assert trial.user_attrs["error"] == "RuntimeError: boom"
    rows = read_trials_csv(sweep)
    assert [r["state"] for r in rows] == [s.name for s in states]
    assert all(r["note"] == "RuntimeError: boom" for r in rows if r["state"] == "FAIL")
    best = OmegaConf.load(sweep / BEST_YAML)
    assert best.trial in [t.number for t in trials if t.state == TrialState.COMPLETE]


@pytest.mark.slow  # two searches and reports: about 5 s of CPU
def test_the_search_stops_past_its_failure_budget(run_cli, capsys, monkeypatch, tmp_path) -> None:
    fake_train(monkeypatch, fail_above=0.001)
    sweep = tmp_path / "sweep"
    args = [*TINY_SEARCH, "hydra.sweeper.search.n_trials=3", f"hydra.sweep.dir={sweep}"]
    assert run_cli(*args, "hydra.sweeper.search.max_failures=0") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "more than hydra.sweeper.search.max_failures=0" in err[0], err
    trials = load_study(sweep).trials
    assert len(trials) < 3 and trials[-1].state == TrialState.FAIL
    assert sum(t.state == TrialState.FAIL for t in trials) == 1
    # Raising the budget continues the same study to its total.
    assert run_cli(*args, "hydra.sweeper.search.max_failures=3") == 0
    assert len(load_study(sweep).trials) == 3


def test_a_rerun_must_ask_the_same_question(run_cli, capsys, monkeypatch, tmp_path) -> None:
    fake_train(monkeypatch)
    sweep = tmp_path / "sweep"
    args = [*TINY_SEARCH, "hydra.sweeper.search.n_trials=1", f"hydra.sweep.dir={sweep}"]
    assert run_cli(*args) == 0
    capsys.readouterr()
    files = _hashes(sweep)
    assert run_cli(*args, "hydra.sweeper.search.metric=psnr") == 1
    assert _hashes(sweep) == files  # multirun.yaml too: the refused command wrote nothing
    err = capsys.readouterr().err
    assert "holds a search with another metric (hist_w1, now psnr)" in err
    assert len(load_study(sweep).trials) == 1


# -- real tiny jobs


@pytest.mark.slow
def test_a_four_trial_search_writes_four_trials_and_best_yaml(run_cli, tmp_path) -> None:
    sweep = tmp_path / "sweep"
    assert run_cli(*TINY_SEARCH, f"hydra.sweep.dir={sweep}") == 0
    trials = load_study(sweep).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    rows = read_trials_csv(sweep)
    assert [int(r["number"]) for r in rows] == [0, 1, 2, 3]
    for row, trial in zip(rows, trials, strict=True):
        assert float(row["value"]) == trial.value
        assert read_status(sweep / row["folders"])["status"] == "done"
    best = OmegaConf.load(sweep / BEST_YAML)
    best_trial = min(trials, key=lambda t: t.value)
    assert best.value == best_trial.value and best.metric == "hist_w1"
    assert list(best.overrides) == [
        *TINY,
        "hparams_search=tiny",
        *best_trial.user_attrs["settings"],
    ]
    assert best.command == "python -m histae " + " ".join(best.overrides)
    page = (sweep / "report" / "index.html").read_text()
    assert 'src="search.png"' in page  # the report's optimisation history
    assert "4 jobs: 4 done" in page and " of 1 jobs" not in page  # not the command's grid
    assert (sweep / "report" / "search.png").read_bytes().startswith(b"\x89PNG")


def _hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.slow
def test_a_search_killed_mid_trial_resumes_that_trial_in_its_own_folders(tmp_path) -> None:
    sweep = tmp_path / "sweep"
    args = [
        *TINY_SEARCH,
        "hydra.sweeper.search.n_trials=2",
        "trainer.seed=1,2",
        f"hydra.sweep.dir={sweep}",
    ]
    # Each tiny job writes its checkpoint twice (96 and 192 inputs): the 8th write is the second
    # trial's second seed at its end, so the kill leaves that job with its first checkpoint.
    proc = histae(*args, env={FAULT_ENV: "checkpoint.pt:KILL:8"})
    proc.wait(timeout=600)
    assert proc.returncode == -signal.SIGKILL
    before = load_study(sweep).trials
    assert [t.state for t in before] == [TrialState.COMPLETE, TrialState.RUNNING]
    first, killed = before
    untouched = {f: _hashes(sweep / f) for f in first.user_attrs["folders"]}
    interrupted = killed.user_attrs["folders"][1]
    assert read_status(sweep / interrupted)["status"] == "running"  # the kill left it so

    proc = histae(*args)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    after = load_study(sweep).trials
    assert [t.state for t in after] == [TrialState.COMPLETE] * 2
    assert after[1].user_attrs["settings"] == killed.user_attrs["settings"]
    assert after[1].user_attrs["std"] is not None
    folders = sorted(p.name for p in sweep.iterdir() if (p / "status.json").is_file())
    assert folders == sorted(first.user_attrs["folders"] + killed.user_attrs["folders"])
    assert {f: _hashes(sweep / f) for f in untouched} == untouched
    log = (sweep / interrupted / "histae.log").read_text()
    assert "resuming at 96 inputs" in log
    rows = read_metrics(sweep / interrupted / "metrics.csv")
    assert [r["inputs"] for r in rows if r["split"] == "val"] == [96, 192]


@pytest.mark.slow
def test_the_median_pruner_stops_a_poor_trial_at_a_validation(run_cli, tmp_path) -> None:
    sweep = tmp_path / "sweep"
    # Pixel L1 learns at lr 0.01 and barely moves at 1e-5; the random sampler at seed 0 asks
    # 0.01 first, then 1e-5, which is worse than the median at the first validation.
    code = run_cli(
        *TINY_SEARCH,
        "loss=l1",
        "hydra.sweeper.search.n_trials=2",
        "hydra.sweeper.search.sampler=random",
        "hydra.sweeper.search.pruner_startup_trials=1",
        "optimizer.lr=choice(0.00001, 0.01)",  # typed ranges join (and win over) the config's
        f"hydra.sweep.dir={sweep}",
    )
    assert code == 0
    good, poor = load_study(sweep).trials
    assert good.user_attrs["settings"] == ["optimizer.lr=0.01"]
    assert poor.user_attrs["settings"] == ["optimizer.lr=1e-05"]
    assert (good.state, poor.state) == (TrialState.COMPLETE, TrialState.PRUNED)
    assert poor.user_attrs["pruned"] == "lr-1e-05 at 96 inputs"
    assert [r["note"] for r in read_trials_csv(sweep)] == ["", "pruned: lr-1e-05 at 96 inputs"]
    assert [r["value"] for r in read_trials_csv(sweep)][1] == ""  # no value mid-way
    status = read_status(sweep / "lr-1e-05")
    assert status["status"] == "stopped"
    assert status["error"] == "pruned by the search at 96 inputs"
    rows = read_metrics(sweep / "lr-1e-05" / "metrics.csv")
    assert max(r["inputs"] for r in rows) == 96


@pytest.mark.slow
def test_under_joblib_a_trials_seeds_run_together_and_its_value_is_their_mean(
    run_cli, tmp_path
) -> None:
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    sweep = tmp_path / "sweep"
    code = run_cli(
        *TINY_SEARCH,
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "hydra.sweeper.search.n_trials=1",
        "trainer.seed=1,2",
        f"hydra.sweep.dir={sweep}",
    )
    assert code == 0
    (trial,) = load_study(sweep).trials
    assert trial.state == TrialState.COMPLETE
    finals = [read_metrics(sweep / f / "metrics.csv")[-1] for f in trial.user_attrs["folders"]]
    values = [row["hist_w1"] for row in finals]
    assert all(row["split"] == "val" and row["inputs"] == 192 for row in finals)
    # metrics.csv holds the values rounded; the trial has the jobs' own
    assert trial.value == pytest.approx(sum(values) / 2, rel=1e-4)
    assert trial.user_attrs["std"] == pytest.approx(abs(values[0] - values[1]) / 2**0.5, rel=1e-2)


def test_a_value_typed_on_the_command_line_fixes_a_searched_key(run_cli, monkeypatch, tmp_path):
    fake_train(monkeypatch)
    sweep = tmp_path / "sweep"
    code = run_cli(
        *TINY_SEARCH,
        "hydra.sweeper.search.n_trials=2",
        "optimizer.lr=0.003",  # fixed: the space keeps only the typed range below
        "loss.bins=choice(50,100)",
        f"hydra.sweep.dir={sweep}",
    )
    assert code == 0
    for trial in load_study(sweep).trials:
        assert list(trial.params) == ["loss.bins"]
        (folder,) = trial.user_attrs["folders"]
        assert folder in ("bins-50", "bins-100")
        assert trial.value == pytest.approx(100 * 0.003 + 1)  # the fake value at the default seed


def test_the_history_draws_complete_trials_and_the_best_so_far(tmp_path) -> None:
    from histae.report.history import plot_history, read_trials

    (tmp_path / TRIALS_CSV).write_text(
        "number,state,value,std,seeds,optimizer.lr,folders,note\n"
        '0,COMPLETE,0.3,0.01,"1,2",0.001,a;b,\n'
        '1,PRUNED,,,"1,2",0.002,c,pruned: c at 96 inputs\n'
        '2,COMPLETE,0.2,,"1,2",0.003,d;e,\n'
        '3,FAIL,,,"1,2",0.004,,RuntimeError: boom\n'
    )
    trials = read_trials(tmp_path)
    assert [(t.number, t.state, t.value) for t in trials] == [
        (0, "COMPLETE", 0.3),
        (1, "PRUNED", None),
        (2, "COMPLETE", 0.2),
        (3, "FAIL", None),
    ]
    best = plot_history(trials, "hist_w1", False, tmp_path / "search.png")
    assert best == [0.3, 0.3, 0.2, 0.2]
    assert plot_history(trials, "psnr", True, tmp_path / "up.png") == [0.3, 0.3, 0.3, 0.3]
    assert (tmp_path / "search.png").read_bytes().startswith(b"\x89PNG")
    assert read_trials(tmp_path / "nowhere") == []
    # from elsewhere: a FIFO (open() would wait for a writer for ever) or a link is no table
    fifo, link = tmp_path / "fifo", tmp_path / "link"
    fifo.mkdir(), link.mkdir()
    os.mkfifo(fifo / TRIALS_CSV)
    (link / TRIALS_CSV).symlink_to(tmp_path / TRIALS_CSV)
    assert read_trials(fifo) == [] and read_trials(link) == []


def test_a_search_stopped_by_sigterm_resumes_the_same_trial(run_cli, monkeypatch, tmp_path):
    ran = fake_train(monkeypatch, stop_at=1)  # the second trial's job is stopped
    sweep = tmp_path / "sweep"
    args = [*TINY_SEARCH, "hydra.sweeper.search.n_trials=3", f"hydra.sweep.dir={sweep}"]
    assert run_cli(*args) == 128 + signal.SIGTERM
    before = load_study(sweep).trials
    assert [t.state for t in before] == [TrialState.COMPLETE, TrialState.RUNNING]
    assert run_cli(*args) == 0
    after = load_study(sweep).trials
    assert [t.state for t in after] == [TrialState.COMPLETE] * 3  # the total, not 3 more
    assert after[1].user_attrs["settings"] == before[1].user_attrs["settings"]
    # the stopped trial ran again in its folder; the finished one was not rerun
    assert ran == [
        before[0].user_attrs["folders"][0],
        before[1].user_attrs["folders"][0],
        before[1].user_attrs["folders"][0],
        after[2].user_attrs["folders"][0],
    ]


def test_the_colour_search_composes_and_runs_its_seeds(run_cli, monkeypatch, tmp_path) -> None:
    ran = fake_train(monkeypatch)
    sweep = tmp_path / "sweep"
    args = ["-m", "hparams_search=colour", "hydra.sweeper.search.n_trials=1"]
    assert run_cli(*args, f"hydra.sweep.dir={sweep}") == 0
    (trial,) = load_study(sweep).trials
    assert trial.state == TrialState.COMPLETE
    assert sorted(trial.params) == ["loss.directions", "optimizer.lr", "trainer.code_reg_weight"]
    assert [f.rsplit("_", 1)[1] for f in ran] == ["seed-1", "seed-2"]
    best = OmegaConf.load(sweep / BEST_YAML)
    assert best.metric == "retrieval_rank_joint" and best.direction == "minimize"
    config = OmegaConf.load(sweep / ran[0] / ".hydra" / "config.yaml")
    assert config.loss._target_ == "histae.colour.SlicedWassersteinLoss"


# -- parameter importance


def _study(seed: int, effect: float):
    """20 random trials over lr and d; the value is ``effect`` times a bowl in log10(lr) plus
    noise of 0.1, d does nothing (benchmarks/bench_importance.py measures the same at scale)."""
    import numpy as np

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    rng = np.random.default_rng(seed)

    def objective(trial) -> float:
        lr = trial.suggest_float("lr", 1e-4, 1e-2, log=True)
        trial.suggest_categorical("d", [8, 32, 128])
        return effect * (np.log10(lr) + 2.5) ** 2 + float(rng.normal(0, 0.1))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=20)
    return study


def test_importance_finds_the_key_that_sets_the_value_and_not_the_one_that_does_not() -> None:
    from histae.importance import MIN_TRIALS, param_importance

    study = _study(seed=2, effect=1.0)
    lr, d = param_importance(optuna, study.trials, "minimize")
    assert (lr.key, d.key) == ("lr", "d")  # most important first
    assert lr.share > 0.8 and lr.share + d.share == pytest.approx(1.0)
    assert lr.low <= lr.share <= lr.high and d.low <= d.share <= d.high
    assert lr.p <= 0.05 and lr.distinguishable
    assert d.p > 0.05 and not d.distinguishable
    # the same trials give the same numbers (the resampling is seeded)
    assert param_importance(optuna, study.trials, "minimize") == [lr, d]
    # values that no key sets: nothing stands out
    null = param_importance(optuna, _study(seed=2, effect=0.0).trials, "minimize")
    assert all(not imp.distinguishable for imp in null)
    assert param_importance(optuna, study.trials[: MIN_TRIALS - 1], "minimize") == []


@pytest.mark.slow  # 8 trials and two reports: about 6 s of CPU
def test_a_search_writes_importance_and_the_report_shows_it(run_cli, monkeypatch, tmp_path):
    from PIL import Image

    import histae.importance
    from histae.importance import IMPORTANCE_CSV, MIN_TRIALS, read_importance
    from histae.report import write_report

    fake_train(monkeypatch)  # a trial's value is 100 * lr + seed: loss.bins does nothing
    # the files and the page are the point here; the statistics' own test uses the full counts
    monkeypatch.setattr(histae.importance, "RESAMPLES", 10)
    monkeypatch.setattr(histae.importance, "PERMUTATIONS", 20)
    sweep = tmp_path / "sweep"
    args = [*TINY_SEARCH, "loss.bins=choice(50,100)", f"hydra.sweeper.search.n_trials={MIN_TRIALS}"]
    assert run_cli(*args, "hydra.sweeper.search.sampler=random", f"hydra.sweep.dir={sweep}") == 0
    with open(sweep / IMPORTANCE_CSV, newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["key"] for r in rows) == ["loss.bins", "optimizer.lr"]
    assert {r["trials"] for r in rows} == {str(MIN_TRIALS)}
    read = read_importance(sweep)
    assert [imp.key for imp in read] == [r["key"] for r in rows]
    assert sum(imp.share for imp in read) == pytest.approx(1.0)
    page = (sweep / "report" / "index.html").read_text()
    assert '<table id="importance">' in page and "permutation test" in page
    for imp in read:
        assert f"<td>{imp.key}</td>" in page
    assert Image.open(sweep / "report" / "search.png").size[0] == 1100  # history + importance
    # a file from elsewhere that is not our table, or a link: no importance, the report whole
    (sweep / IMPORTANCE_CSV).write_text("key,share\nx,2\n")
    assert read_importance(sweep) == []
    (sweep / IMPORTANCE_CSV).unlink()
    (sweep / IMPORTANCE_CSV).symlink_to(tmp_path / "elsewhere.csv")
    (tmp_path / "elsewhere.csv").write_text("".join(",".join(r.values()) + "\n" for r in rows))
    assert read_importance(sweep) == []
    write_report(sweep)
    assert '<table id="importance">' not in (sweep / "report" / "index.html").read_text()
    assert Image.open(sweep / "report" / "search.png").size[0] == 700  # the history alone
