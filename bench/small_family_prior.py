"""Benchmark: the prior on a saturating law's floor E for families of four sizes, left-one-source-out.

A family of four sizes leaves a three-parameter saturating law one degree of freedom; `scaling.fitting.
objective.e_prior` then holds log(E / smallest loss) near log E_PRIOR_RATIO (spread E_PRIOR_SPREAD, weight
E_PRIOR_WEIGHT). This checks those constants are not tuned to the families they fix: for each source of
bench/one_axis.py (OLMo, Gadre et al., Porian et al., Chinchilla, synthetic) held out in turn, the prior's
mean and spread are those of the other sources' full families (the design's saturating law fitted without
a prior), its weight the one of WEIGHTS with the lowest mean |error| on the other sources' windows, and the
held-out source's windows are predicted with it. A window: four consecutive sizes (budgets, for one N) of
a family, the next size predicted. `ratio=` is the mean |error| without the prior over the held-out
predictions divided by that with it (above 1: the prior helps).

Run: .venv/bin/python bench/small_family_prior.py   (about 3 min on one core)
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
from one_axis import GUIDE, Family, _inputs, families

from scaling.errors import ScalingWarning
from scaling.fitting import objective
from scaling.fitting.design import Design
from scaling.fitting.procedure import fit

WEIGHTS = (1e-6, 3e-6, 1e-5, 3e-5, 1e-4)  # the prior weights compared (objective units)


def source(family: Family) -> str:
    return "synthetic" if family.name.startswith("synthetic") else family.name.split("_")[0]


def windows(family: Family) -> list[Family]:
    """Every run of four consecutive sizes (budgets, for one N) of `family`, the next size predicted."""
    by = "D" if family.kind == "one N" else "N"
    runs = pd.concat([family.train, family.target.to_frame().T]).astype(float)
    xs = np.sort(runs[by].unique())
    out = []
    for i in range(len(xs) - 4):
        target = runs[runs[by] == xs[i + 4]].sort_values("C").iloc[-1]
        train = runs[runs[by].isin(xs[i : i + 4])].reset_index(drop=True)
        out.append(Family(f"{family.name}[{i}]", family.kind, train, target))
    return out


def law_of(family: Family) -> str:
    return Design.of(family.train).default_law or GUIDE[family.kind]


def error(family: Family, weight: float, ratio: float, spread: float) -> float:
    """The relative error at the target of the design's law fitted with the prior (weight, ratio, spread)."""
    objective.E_PRIOR_WEIGHT, objective.E_PRIOR_RATIO, objective.E_PRIOR_SPREAD = weight, ratio, spread
    result = fit(family.train, law=law_of(family))
    predicted = float(np.atleast_1d(result.predict(**_inputs(family.target)))[0])
    return predicted / float(family.target["loss"]) - 1


def main() -> None:
    warnings.simplefilter("ignore", ScalingWarning)
    start = time.perf_counter()
    full = [f for f in families() if not f.name.startswith("muennighoff")]  # refused: repeated data
    # log(E / smallest loss) of every full family, fitted without a prior (five sizes or more need none)
    floor = {}
    for f in full:
        objective.E_PRIOR_WEIGHT = 0.0
        result = fit(f.train, law=law_of(f))
        floor[f.name] = (source(f), np.log(result.params["E"] / f.train["loss"].min()))
    floors = pd.DataFrame.from_dict(floor, orient="index", columns=["source", "log_ratio"])
    wins = [(source(f), w) for f in full for w in windows(f)]
    rows = []
    for held in floors["source"].unique():
        others = floors[floors["source"] != held]["log_ratio"]
        ratio, spread = float(np.exp(others.mean())), float(others.std(ddof=1))
        train = [w for s, w in wins if s != held]
        score = {c: np.mean([abs(error(w, c, ratio, spread)) for w in train]) for c in WEIGHTS}
        weight = min(score, key=score.get)
        held_out = [(w.name, error(w, 0.0, ratio, spread), error(w, weight, ratio, spread))
                    for s, w in wins if s == held]  # fmt: skip
        rows += held_out
        e = np.abs([x[2] for x in held_out])
        print(f"held out {held}: prior E/smallest loss {ratio:.2f} x/ {np.exp(spread):.2f}, "
              f"weight {weight:g} "
              f"(other sources' mean |error| " + ", ".join(f"{c:g}: {x:.2%}" for c, x in score.items())
              + f"); held-out mean |error| {e.mean():.2%}, worst {e.max():.2%} over {e.size} windows")
    table = pd.DataFrame(rows, columns=["window", "without", "with"]).set_index("window")
    print(table.map(lambda x: f"{x:+.2%}").to_string())
    a = table.abs()
    print(f"all sources: E/smallest loss {np.exp(floors['log_ratio'].mean()):.2f} "
          f"x/ {np.exp(floors['log_ratio'].std(ddof=1)):.2f} over {len(floors)} families")
    print(f"left-one-source-out over {len(a)} windows: mean |error| without the prior "
          f"{a['without'].mean():.2%} "
          f"(worst {a['without'].max():.2%}), with it {a['with'].mean():.2%} (worst {a['with'].max():.2%})")
    print(f"ratio={a['without'].mean() / a['with'].mean():.3g} (error without the prior / with it)")
    print(f"wall {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
