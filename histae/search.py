"""histae sweeper's search mode: settings asked of Optuna, each trial's jobs run like a grid's.

``hydra.sweeper.search`` (a ``hparams_search=<name>`` config sets it) turns a sweep into a
search. Its ``params`` are the search space in Hydra's override grammar (``interval(1e-4, 1e-2)``,
``tag(log, interval(...))``, ``tag(int, interval(8, 64))`` for integers, ``choice(...)``,
``range(...)``); a swept ``trainer.seed=1,2,3`` is
replicates, as in a grid: each trial is one setting, run once per seed in value-named folders
(``lr-0.001234_seed-1``), and its value is the mean of the seeds' final validation ``metric``.

The study lives in the sweep folder (Optuna's journal, ``optuna.journal``), so rerunning the
command continues it to ``n_trials`` in all: a trial left running by a kill is resumed with the
same setting, in its own folders, from their checkpoints; finished trials are never rerun.
``trials.csv``, ``best.yaml`` and ``importance.csv`` (:mod:`histae.importance`) are rewritten
after every trial.

Optuna is imported only here, only when a search runs: it is an optional extra
(``pip install -e ".[search]"``), and Hydra imports every plugin module on every start.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import statistics
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from omegaconf import OmegaConf

from histae.importance import IMPORTANCE_CSV, importance_csv, param_importance
from histae.report.history import TRIALS_CSV

log = logging.getLogger(__name__)

INSTALL = 'pip install -e ".[search]"'
JOURNAL = "optuna.journal"
BEST_YAML = "best.yaml"
STUDY_NAME = "histae"
FLOAT_DIGITS = 4  # significant digits a sampled float runs (and is named) with
SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "none")


class SearchRefused(ValueError):
    """The search cannot start as given; nothing was written."""


def import_optuna() -> Any:
    """Optuna, or a one-line error naming the command that installs it."""
    try:
        import optuna
    except ImportError:
        raise SearchRefused(
            f"hydra.sweeper.search needs optuna, which is not installed: {INSTALL}"
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # histae says what each trial did
    return optuna


@dataclass(frozen=True)
class Dimension:
    """One key of the search space: a set of values (``choice``, a non-integer ``range``), an
    integer range or interval, or a float interval (``log`` when tagged so)."""

    key: str
    kind: str  # "categorical", "int" or "float"
    choices: tuple[str, ...] = ()  # categorical: each value as the override writes it
    low: float = 0.0
    high: float = 0.0
    step: int | None = None
    log: bool = False

    @classmethod
    def of(cls, override: Override) -> Dimension:
        """The dimension a sweep override describes; a non-sweep value is refused."""
        key = override.get_key_element()
        value = override.value()
        log_scale = "log" in getattr(value, "tags", set())
        if isinstance(value, IntervalSweep):
            assert value.start is not None and value.end is not None
            # Hydra's grammar makes an interval's ends floats: integers are asked for by tag.
            if "int" in value.tags:
                low, high = math.ceil(value.start), math.floor(value.end)
                return cls(key, "int", low=low, high=high, log=log_scale)
            return cls(key, "float", low=float(value.start), high=float(value.end), log=log_scale)
        if isinstance(value, RangeSweep):
            values = list(override.sweep_iterator())
            if values and all(isinstance(v, int) for v in (value.start, value.stop, value.step)):
                return cls(key, "int", low=values[0], high=values[-1], step=int(value.step))
        if isinstance(value, ChoiceSweep | RangeSweep):
            choices = tuple(override.sweep_string_iterator())
            if not choices:
                raise SearchRefused(f"search space {key}: no values")
            return cls(key, "categorical", choices=choices)
        raise SearchRefused(
            f"search space {key}={override.input_line.partition('=')[2]}: not a range; use "
            "interval(a, b), tag(log, interval(a, b)), choice(a, b, ...) or range(a, b, step)"
        )

    def suggest(self, trial: Any) -> str:
        """Ask ``trial`` for this key's value; the override value the jobs run with.

        A float is run at :data:`FLOAT_DIGITS` significant digits, so the folder name, the job
        and best.yaml all show the value that ran. Asking a trial that already holds the key
        (a resumed trial) returns the value it was given.
        """
        if self.kind == "categorical":
            return str(trial.suggest_categorical(self.key, list(self.choices)))
        if self.kind == "int":
            step = self.step or 1
            return str(
                trial.suggest_int(self.key, int(self.low), int(self.high), step=step, log=self.log)
            )
        value = trial.suggest_float(self.key, self.low, self.high, log=self.log)
        return f"{value:.{FLOAT_DIGITS}g}"

    def describe(self) -> str:
        """The dimension in words, for the study's record (a rerun must search the same space)."""
        if self.kind == "categorical":
            return f"{self.key}: choice({', '.join(self.choices)})"
        scale = "log " if self.log else ""
        step = f" step {self.step}" if self.step else ""
        return f"{self.key}: {scale}{self.kind} [{self.low:g}, {self.high:g}]{step}"


def parse_space(params: Mapping[str, Any], parser: OverridesParser) -> list[Dimension]:
    """The search space from ``hydra.sweeper.search.params`` (``key: "interval(0, 1)"``)."""
    dims = []
    for key, text in params.items():
        try:
            (override,) = parser.parse_overrides([f"{key}={text}"])
        except Exception as err:
            raise SearchRefused(f"search space {key}={text}: {err}") from None
        if not override.is_sweep_override():
            raise SearchRefused(
                f"search space {key}={text}: one value, nothing to search; put fixed values "
                "on the command line or in the config"
            )
        dims.append(Dimension.of(override))
    return dims


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """A trial's value over its seeds and their sample standard deviation (None for one seed).

    >>> mean_std([1.0, 2.0, 3.0])
    (2.0, 1.0)
    >>> mean_std([0.5])
    (0.5, None)
    """
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else None)


@dataclass
class TrialOutcome:
    """How a trial's jobs ended: its value (the seeds' mean), or why it has none."""

    values: list[float]
    pruned: str | None = None  # which job the pruner stopped, and where
    error: str | None = None  # a failed or diverged job, or a refused config
    held: bool = False  # another histae holds a job of it (the same sweep run twice)


def trials_csv(trials: Sequence[Any], dims: Sequence[Dimension]) -> str:
    """``trials.csv``: one row per trial, in order: number, state, value, std, seeds, each
    searched key's value as run, the job folders, and a note: a failed trial's error, where a
    pruned one was stopped. Only a complete trial has a value (Optuna gives a pruned trial its
    last intermediate value: one seed's, mid-way, not comparable)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(
        ["number", "state", "value", "std", "seeds", *(d.key for d in dims), "folders", "note"]
    )
    for t in trials:
        ran = dict(_split(o) for o in t.user_attrs.get("settings", []))
        std = t.user_attrs.get("std")
        writer.writerow(
            [
                t.number,
                t.state.name,
                "" if t.value is None or t.state.name != "COMPLETE" else repr(t.value),
                "" if std is None else repr(std),
                t.user_attrs.get("seeds", ""),
                *(ran.get(d.key, "") for d in dims),
                ";".join(t.user_attrs.get("folders", [])),
                t.user_attrs.get("error")
                or (f"pruned: {t.user_attrs['pruned']}" if "pruned" in t.user_attrs else ""),
            ]
        )
    return buf.getvalue()


def best_record(
    trial: Any, fixed: Sequence[str], seeds: Sequence[str], metric: str, direction: str
) -> dict[str, Any]:
    """``best.yaml``: the best trial, its value and spread, and the overrides that rerun it."""
    overrides = [*fixed, *trial.user_attrs.get("settings", [])]
    record: dict[str, Any] = {
        "trial": trial.number,
        "metric": metric,
        "direction": direction,
        "value": trial.value,
        "std": trial.user_attrs.get("std"),
        "seeds": list(seeds),
        "overrides": overrides,
        "command": "python -m histae " + " ".join(overrides),
        "folders": trial.user_attrs.get("folders", []),
    }
    if len(seeds) > 1:
        record["command_seeds"] = "python -m histae -m hydra.sweeper.search=null " + " ".join(
            [*overrides, f"trainer.seed={','.join(seeds)}"]
        )
    return record


def best_yaml(record: Mapping[str, Any]) -> str:
    """``best.yaml``'s text, with a comment saying how to use it."""
    head = "# The best trial of this search; rerun its setting with `command`.\n"
    return head + OmegaConf.to_yaml(OmegaConf.create(dict(record)))


def _split(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


def finite(value: Any) -> float | None:
    """``value`` as a float when it is a finite number, else None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


class Search:
    """One search, driven by histae's sweeper (its launcher, checks and report).

    ``fixed`` are the command line's plain overrides (every job gets them), ``seeds`` the values
    of a swept ``trainer.seed`` (empty: no seed override), ``dims`` the space.
    """

    def __init__(self, sweeper: Any, arguments: Sequence[str]) -> None:
        from histae.labels import REPLICATE_KEY
        from histae.report.build import lead_metric
        from histae.report.measures import DEFAULT_LEAD

        self.sweeper = sweeper
        config = sweeper.search
        self.sweep_dir = Path(sweeper.config.hydra.sweep.dir)
        parser = OverridesParser.create(config_loader=sweeper.hydra_context.config_loader)
        grid = [f"{k}={v}" for k, v in sweeper.params.items()] + list(arguments)
        self.fixed: list[str] = []
        self.seeds: list[str] = []
        cli_dims: list[Dimension] = []
        for override in parser.parse_overrides(grid):
            if not override.is_sweep_override():
                self.fixed.append(override.input_line)
            elif override.get_key_element() == REPLICATE_KEY:
                self.seeds = list(override.sweep_string_iterator())
            else:  # a range typed on the command line joins the space (and wins over the config's)
                cli_dims.append(Dimension.of(override))
        dims = {d.key: d for d in parse_space(config.get("params") or {}, parser)}
        dims.update({d.key: d for d in cli_dims})
        for key in {_split(o)[0] for o in self.fixed}:  # a value given on the command line wins
            dims.pop(key, None)
        if not dims:
            raise SearchRefused(
                "hydra.sweeper.search.params is empty: give the space, e.g. "
                "optimizer.lr: tag(log, interval(1e-4, 1e-2))"
            )
        self.dims = list(dims.values())
        self.metric = str(config.get("metric") or sweeper.report_lead or DEFAULT_LEAD)
        try:
            lead = lead_metric(self.metric)
        except ValueError as err:
            raise SearchRefused(f"hydra.sweeper.search.metric: {err}") from None
        if self.metric == "hist_tv":  # the report computes it; the jobs never log it
            raise SearchRefused("hydra.sweeper.search.metric: hist_tv is not logged by the jobs")
        default = "maximize" if lead.higher_is_better else "minimize"
        self.direction = str(config.get("direction") or default)
        self.n_trials = int(config.get("n_trials", 10))
        self.max_failures = int(config.get("max_failures", 3))
        self.sampler = str(config.get("sampler", "tpe"))
        self.pruner = str(config.get("pruner") or "none")
        self.seed = int(config.get("seed", 0))
        self.pruner_startup_trials = int(config.get("pruner_startup_trials", 5))
        for key, value, valid in (
            ("direction", self.direction, ("minimize", "maximize")),
            ("sampler", self.sampler, SAMPLERS),
            ("pruner", self.pruner, PRUNERS),
        ):
            if value not in valid:
                raise SearchRefused(
                    f"hydra.sweeper.search.{key}={value}: must be one of {', '.join(valid)}"
                )
        if self.n_trials < 1 or self.max_failures < 0:
            raise SearchRefused(
                "hydra.sweeper.search: n_trials must be at least 1 and max_failures at least 0"
            )
        self.optuna = import_optuna()
        self.launched = 0  # jobs handed to the launcher so far (Hydra numbers them)

    # -- the jobs of a trial

    def job_overrides(self, settings: Sequence[str]) -> list[list[str]]:
        """Each seed's job of a trial: the fixed overrides, the setting, the seed, its folder."""
        from histae.labels import REPLICATE_KEY, folder_value, short_keys

        keys = [d.key for d in self.dims] + ([REPLICATE_KEY] if self.seeds else [])
        short = short_keys(keys)
        base = "_".join(f"{short[k]}-{folder_value(v)}" for k, v in map(_split, settings))
        if not self.seeds:
            return [[*self.fixed, *settings, f"hydra.sweep.subdir={base}"]]
        return [
            [
                *self.fixed,
                *settings,
                f"{REPLICATE_KEY}={seed}",
                f"hydra.sweep.subdir={base}_{short[REPLICATE_KEY]}-{folder_value(seed)}",
            ]
            for seed in self.seeds
        ]

    def check(self) -> None:
        """Compose and check a job at the space's first values before anything is written: a
        typo in a key or a fixed value refuses the search whole."""
        first = []
        for d in self.dims:
            value = d.choices[0] if d.kind == "categorical" else d.low
            if d.kind == "int":
                value = str(int(d.low))
            elif d.kind == "float":
                value = f"{d.low:.{FLOAT_DIGITS}g}"
            first.append(f"{d.key}={value}")
        self.sweeper.overrides = [self.job_overrides(first)]
        self.sweeper.check_jobs(self.sweep_dir)

    # -- the study

    def open_study(self) -> Any:
        """The study in the sweep folder's journal, made or loaded; a rerun must ask the same
        question (metric, direction, space) of it."""
        optuna = self.optuna
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        storage = JournalStorage(JournalFileBackend(str(self.sweep_dir / JOURNAL)))
        exists = STUDY_NAME in optuna.get_all_study_names(storage)
        before = (
            len(optuna.load_study(study_name=STUDY_NAME, storage=storage).trials) if exists else 0
        )
        # A fresh sampler on a rerun would start its random draws over: seeded by how many
        # trials exist, a rerun continues with new settings instead of repeating the first ones.
        seed = self.seed + before
        sampler = (
            optuna.samplers.TPESampler(seed=seed)
            if self.sampler == "tpe"
            else optuna.samplers.RandomSampler(seed=seed)
        )
        pruner = (
            optuna.pruners.MedianPruner(n_startup_trials=self.pruner_startup_trials)
            if self.pruner == "median"
            else optuna.pruners.NopPruner()
        )
        # Loaded, not created again: creating an existing study would still append to the journal.
        study = (
            optuna.load_study(
                study_name=STUDY_NAME, storage=storage, sampler=sampler, pruner=pruner
            )
            if exists
            else optuna.create_study(
                study_name=STUDY_NAME,
                storage=storage,
                sampler=sampler,
                pruner=pruner,
                direction=self.direction,
            )
        )
        question = {
            "metric": self.metric,
            "direction": self.direction,
            "space": [d.describe() for d in self.dims],
            "seeds": self.seeds,
        }
        asked = study.user_attrs.get("question")
        if asked is None:
            study.set_user_attr("question", question)
        elif asked != question:
            differs = next(k for k in question if asked.get(k) != question[k])
            raise SearchRefused(
                f"{self.sweep_dir} holds a search with another {differs} ({asked.get(differs)}, "
                f"now {question[differs]}): use another hydra.sweep.dir"
            )
        return study

    def run(self) -> list[Any]:
        """Run trials until the study holds ``n_trials`` finished ones; the trials."""
        from histae.jobdir import MULTIRUN, JobStopped

        self.check()
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        study = self.open_study()  # first: a rerun asking another question leaves the folder be
        record = self.sweeper._record()
        if record.hydra.sweeper.report_lead is None:  # a rewritten report ranks as the search did
            record.hydra.sweeper.report_lead = self.metric
        # as resolved, for the report's history (the config may leave them to their defaults)
        record.hydra.sweeper.search.metric = self.metric
        record.hydra.sweeper.search.direction = self.direction
        OmegaConf.save(record, self.sweep_dir / MULTIRUN)
        TrialState = self.optuna.trial.TrialState
        finished = [t for t in study.trials if t.state.is_finished()]
        log.info(
            f"search: {self.n_trials} trials in all ({len(finished)} finished before), "
            f"{max(1, len(self.seeds))} job(s) each, {self.direction} {self.metric}; "
            f"study in {self.sweep_dir / JOURNAL}"
        )
        try:
            # Trials a killed run left running: their settings again, in their own folders.
            for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                if len([t for t in study.trials if t.state.is_finished()]) >= self.n_trials:
                    break
                self.run_trial(study, self.optuna.trial.Trial(study, frozen._trial_id))
            while True:
                trials = study.trials
                failures = sum(t.state == TrialState.FAIL for t in trials)
                if failures > self.max_failures:
                    break
                if sum(t.state.is_finished() for t in trials) >= self.n_trials:
                    break
                self.run_trial(study, study.ask())
        except (JobStopped, KeyboardInterrupt) as stopped:
            stopped.sweep_dir = self.sweep_dir  # type: ignore[union-attr]
            raise
        finally:
            self.write_outputs(study)
            if self.sweeper.report:
                self.sweeper._write_report(self.sweep_dir, self.sweeper.report_lead or self.metric)
        return self.conclude(study)

    def run_trial(self, study: Any, trial: Any) -> None:
        """Run one trial's jobs and tell the study how it ended."""
        from hydra.core.utils import JobStatus

        from histae.hydra_compat import job_error
        from histae.jobdir import FolderInUse, JobPruned, error_line

        TrialState = self.optuna.trial.TrialState
        settings = [f"{d.key}={d.suggest(trial)}" for d in self.dims]
        jobs = self.job_overrides(settings)
        folders = [_split(job[-1])[1] for job in jobs]
        trial.set_user_attr("settings", settings)
        trial.set_user_attr("folders", folders)
        trial.set_user_attr("seeds", ",".join(self.seeds))
        shown = ", ".join(settings)
        log.info(f"trial {trial.number}: {shown} ({len(jobs)} job{'s' * (len(jobs) != 1)})")
        outcome = TrialOutcome(values=[])
        try:
            self.sweeper.overrides = [jobs]
            self.sweeper.check_jobs(self.sweep_dir)
        except Exception as err:  # a sampled value the config refuses is this trial's failure
            outcome.error = error_line(err)
            jobs = []
        # Hydra's basic launcher runs jobs in this process: one at a time, each validation goes
        # to the pruner. Other launchers run the trial's jobs together, elsewhere, to their end.
        in_process = type(self.sweeper.launcher).__name__ == "BasicLauncher"
        groups = [[job] for job in jobs] if in_process else ([jobs] if jobs else [])
        quiet = self.sweeper.launch_lines_filter() if in_process else None
        launcher_log = logging.getLogger(type(self.sweeper.launcher).__module__)
        ran: list[str] = []  # the folders of the jobs launched (a pruned trial skips the rest)
        for index, group in enumerate(groups):
            ran += [_split(job[-1])[1] for job in group]
            if quiet is not None:  # "trial k: ..." names the job instead
                launcher_log.addFilter(quiet)
            try:
                with self._pruning(trial, index) if in_process else nullcontext():
                    results = self.sweeper.launcher.launch(group, initial_job_idx=self.launched)
            finally:
                if quiet is not None:
                    launcher_log.removeFilter(quiet)
            self.launched += len(group)
            for result in results:
                error = job_error(result) if result.status == JobStatus.FAILED else None
                summary = result.return_value if error is None else None
                if isinstance(error, JobPruned):
                    outcome.pruned = f"{error.job_dir.name} at {error.inputs} inputs"
                elif isinstance(error, FolderInUse):
                    outcome.held = True
                elif error is not None or result.status == JobStatus.FAILED:
                    outcome.error = error_line(error) if error else "failed"
                elif not isinstance(summary, dict) or summary.get("status") != "done":
                    outcome.error = "diverged"
                else:
                    value = finite(((summary.get("final") or {}).get("val") or {}).get(self.metric))
                    if value is None:
                        outcome.error = f"no final {self.metric}"
                    else:
                        outcome.values.append(value)
            if outcome.pruned or outcome.error or outcome.held:
                break  # the trial's other seeds would not change how it ended
        if outcome.held:
            log.warning(
                f"trial {trial.number}: a job is held by another histae in this sweep folder; "
                "left running for it"
            )
            return
        trial.set_user_attr("folders", ran)
        if outcome.error:
            trial.set_user_attr("error", outcome.error)
            study.tell(trial.number, state=TrialState.FAIL)
            log.error(f"trial {trial.number} failed: {outcome.error}")
        elif outcome.pruned:
            trial.set_user_attr("pruned", outcome.pruned)
            study.tell(trial.number, state=TrialState.PRUNED)
            log.info(f"trial {trial.number} pruned: {outcome.pruned}")
        else:
            mean, std = mean_std(outcome.values)
            trial.set_user_attr("std", std)
            study.tell(trial.number, mean)
            spread = f" ± {std:.3g} (std over {len(outcome.values)} seeds)" if std else ""
            best = study.best_trial
            log.info(
                f"trial {trial.number}: {self.metric} {mean:.4g}{spread}; best so far trial "
                f"{best.number} ({best.value:.4g})"
            )
        self.write_outputs(study)

    def _pruning(self, trial: Any, index: int) -> Any:
        """The pruner listening to job ``index`` of ``trial``: each seed's validations are
        their own steps (``index * budget + inputs``), so seed k is compared with seed k of the
        other trials."""
        from histae.pruning import reporting_to

        budget = max(e.budget for e in self.sweeper.estimates)

        def report(job_dir: Path, inputs: int, metrics: Mapping[str, float]) -> bool:
            value = finite(metrics.get(self.metric))
            if value is None:
                return False
            trial.report(value, index * budget + int(inputs))
            return bool(trial.should_prune())

        return reporting_to(report)

    # -- outputs

    def write_outputs(self, study: Any) -> None:
        """``trials.csv``, ``best.yaml`` (once a trial has completed) and ``importance.csv``
        (once enough have), each whole or not at all."""
        from histae.atomic import write_text

        trials = study.trials
        write_text(self.sweep_dir / TRIALS_CSV, trials_csv(trials, self.dims))
        complete = [t for t in trials if t.state == self.optuna.trial.TrialState.COMPLETE]
        if complete:
            record = best_record(
                study.best_trial, self.fixed, self.seeds, self.metric, self.direction
            )
            write_text(self.sweep_dir / BEST_YAML, best_yaml(record))
        importances = param_importance(self.optuna, trials, self.direction)
        if importances:
            write_text(self.sweep_dir / IMPORTANCE_CSV, importance_csv(importances))

    def conclude(self, study: Any) -> list[Any]:
        """Say how the search ended; raise the sweeper's failure when the failure budget ran
        out (the search stopped early) and name the command that continues it."""
        from histae.progress import rerun_command
        from hydra_plugins.histae_sweeper.histae_sweeper import SweepFailed

        TrialState = self.optuna.trial.TrialState
        trials = study.trials
        failed = [t for t in trials if t.state == TrialState.FAIL]
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        if len(failed) > self.max_failures:
            raise SweepFailed(
                f"search stopped: {len(failed)} trials failed, more than "
                f"hydra.sweeper.search.max_failures={self.max_failures} (last: trial "
                f"{failed[-1].number}: {failed[-1].user_attrs.get('error', 'failed')}); see "
                f"{self.sweep_dir / TRIALS_CSV}; to go on, raise it: "
                f"{rerun_command('hydra.sweep.dir', self.sweep_dir)} "
                f"hydra.sweeper.search.max_failures={len(failed)}",
                diverged_only=False,
            )
        summary = (
            f"search done: {len(complete)} of {len(trials)} trials complete"
            + (f", {len(failed)} failed" if failed else "")
            + f"; {self.sweep_dir / TRIALS_CSV}"
        )
        if complete:
            best = study.best_trial
            summary += (
                f"; best trial {best.number} ({self.metric} {best.value:.4g}): "
                f"{', '.join(best.user_attrs.get('settings', []))}; {self.sweep_dir / BEST_YAML}"
            )
        log.info(summary)
        return trials


def run_search(sweeper: Any, arguments: Sequence[str]) -> list[Any]:
    """The sweeper's search mode: :class:`Search` with its space, run to ``n_trials``."""
    return Search(sweeper, arguments).run()


__all__ = [
    "BEST_YAML",
    "INSTALL",
    "JOURNAL",
    "TRIALS_CSV",
    "Dimension",
    "Search",
    "SearchRefused",
    "best_record",
    "best_yaml",
    "import_optuna",
    "mean_std",
    "parse_space",
    "run_search",
    "trials_csv",
]
