"""How often the search's parameter importance test finds a key that matters, and how often it
flags one that does not, at several PED-ANOVA target quantiles (``histae.importance``).

Six studies of 20 random trials over two keys: ``lr`` (log-uniform) sets the value as
``(log10(lr) + 2.5) ** 2`` plus Gaussian noise of 0.1 (about 5% of its range), ``d`` (a choice of
three) does nothing; six more where neither key does anything. Prints, per target quantile, the
studies where ``lr`` had p <= 0.05 and the keys without an effect that had. Not a timing: the
numbers depend only on the seeds.

    python benchmarks/bench_importance.py
"""

from __future__ import annotations

import numpy as np
import optuna

import histae.importance as importance

STUDIES = 6


def study(seed: int, effect: float) -> optuna.Study:
    """20 random trials; the value is ``effect`` times a bowl in log10(lr) plus noise."""
    s = optuna.create_study(direction="minimize", sampler=optuna.samplers.RandomSampler(seed=seed))
    rng = np.random.default_rng(seed)

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-4, 1e-2, log=True)
        trial.suggest_categorical("d", [8, 32, 128])
        return effect * (np.log10(lr) + 2.5) ** 2 + float(rng.normal(0, 0.1))

    s.optimize(objective, n_trials=20)
    return s


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    importance.RESAMPLES = 1  # the interval is not measured here
    studies = [(study(seed, 1.0), study(seed, 0.0)) for seed in range(STUDIES)]
    for quantile in (0.1, 0.25, 0.4):
        importance.TARGET_QUANTILE = quantile
        found, false = 0, 0
        for real, null in studies:
            p = {i.key: i.p for i in importance.param_importance(optuna, real.trials, "minimize")}
            q = {i.key: i.p for i in importance.param_importance(optuna, null.trials, "minimize")}
            found += p["lr"] <= importance.ALPHA
            false += (p["d"] <= importance.ALPHA) + sum(v <= importance.ALPHA for v in q.values())
        print(
            f"target quantile {quantile:.2f}: lr found in {found} of {STUDIES} studies; "
            f"keys without an effect at p <= {importance.ALPHA}: {false} of {3 * STUDIES}"
        )


if __name__ == "__main__":
    main()
