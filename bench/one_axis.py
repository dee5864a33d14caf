"""Benchmark: predicting the largest model of one-axis families (one D, one N, one tokens/param ratio).

A family that varies one input only cannot identify a law in N and D; it is what most published model suites
are (one token budget for every size, a compute-optimal ladder at 20 tokens per parameter). Every law the
family can be fitted with predicts its largest model from the smaller ones, then `--law auto` does (its
final fit bootstrapped, 200 resamples, for the one-run 95 % prediction interval, printed with the
extrapolation error of `scaling.fitting.intervals` and, for comparison, without it: how often each contains
the truth and its median width). On a family of 4 sizes auto fits the design's law without a backtest; on
Muennighoff et al.'s families, which repeat their data 15-27 times, it refuses. The baseline is today's
auto: the same rolling backtest restricted to the laws before the saturating ones (OLD_LAWS), with main's
cut-offs (any cut-off with a run above it; now each must leave 3 distinct (N, D) points at or below it,
`scaling.fitting.backtest.MIN_FIT_POINTS`), run in this process on the same runs. `ratio=` is the
baseline's mean |error| over the families auto answers divided by auto's (above 1: auto predicts better).

Families (provenance of the published tables in data/README.md):
- olmo_<m>x: the OLMo ladder (Bhagia et al. 2024) at one Chinchilla multiple m: 190M-1B fitted, 3B predicted.
- gadre_<corpus>_<m>x: Gadre et al. 2024 at one multiple with at least five sizes; the largest predicted.
- muennighoff_<D>: Muennighoff et al. 2023, every size on one D tokens drawn from 100M unique tokens (the
  only one-D families of five or more sizes in their runs; they repeat their data 15-27 times).
- porian_<N>: Porian et al. 2024 (RefinedWeb, cosine decay), one model size at its eight budgets: one N,
  the largest D predicted (2x beyond the fitted ones).
- chinchilla_ratio: Chinchilla's runs (Epoch's extraction of fig. 4) at 15-25 tokens per parameter: the
  largest model predicted from the smaller ones.
- synthetic_<kind>_<seed>: Chinchilla's law as Epoch refit it, 0.5 % log-normal run-to-run noise, eight
  inputs from 2e7 to 7e8 parameters (or, for one N, 1e9 to 3e10 tokens) and the target 10x beyond the
  largest: one_d (100B tokens), one_ratio (20 tokens per parameter), one_n (a 1B model).

Run: .venv/bin/python bench/one_axis.py [--workers 2] [--only NAME]   (150 s CPU; 3-6 min on 2 shared cores)
"""

from __future__ import annotations

import argparse
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from scaling.errors import ScalingWarning, UsageError
from scaling.fitting import backtest, intervals
from scaling.fitting.intervals import loss_intervals
from scaling.fitting.laws import get_law
from scaling.fitting.procedure import fit
from scaling.fitting.select import candidate_laws, choose_law
from scaling.reference import EPOCH_PRIOR

DATA = Path(__file__).resolve().parents[1] / "data"
OLD_LAWS = (  # the catalogue of main before the saturating laws: today's auto
    "chinchilla", "chinchilla_tied", "kaplan_nd", "kaplan_n", "kaplan_d", "kaplan_c", "data_constrained",
)  # fmt: skip
BOOTSTRAP = 200  # the final fit's resamples, as `scaling fit --law auto --bootstrap 200`
NOISE = 0.005  # synthetic run-to-run noise of log(loss)
GUIDE = {"one D": "saturating_n", "one N": "saturating_d", "one ratio": "saturating_c"}  # docs/fitting.md


@dataclass(frozen=True)
class Family:
    name: str
    kind: str  # "one D", "one N", "one ratio"
    train: pd.DataFrame  # N params, D tokens, C FLOPs, loss nats/token (U unique tokens where given)
    target: pd.Series  # the largest run, predicted


def _family(name: str, kind: str, runs: pd.DataFrame, by: str = "N") -> Family:
    """The family `runs` with its largest run by `by` as the target, the runs below it as the training set."""
    runs = runs.astype(float)  # int64 N D overflows past 9e18 FLOPs
    runs = runs.assign(C=6 * runs["N"] * runs["D"]).sort_values([by, "C"]).reset_index(drop=True)
    top = runs[by].max()
    return Family(name, kind, runs[runs[by] < top].reset_index(drop=True), runs.iloc[-1])


def families() -> list[Family]:
    out = []
    olmo = pd.read_csv(DATA / "olmo_ladder_c4.csv")
    for m, runs in olmo[olmo["role"] == "ladder"].groupby("chinchilla_multiple"):
        out.append(_family(f"olmo_{m:g}x", "one ratio", runs[["N", "D", "loss"]]))
    gadre = pd.read_csv(DATA / "gadre2024_overtraining_c4.csv")
    for (corpus, m), runs in gadre.groupby(["dataset", "chinchilla_multiple"]):
        if runs["N"].nunique() >= 5:
            out.append(_family(f"gadre_{corpus.split('_')[0]}_{m:g}x", "one ratio", runs[["N", "D", "loss"]]))
    datablations = pd.read_csv(DATA / "muennighoff_datablations_c4.csv")
    for D in (1.5e9, 2.7e9):
        runs = datablations[(datablations["D"] == D) & (datablations["U"] == 1e8)]
        out.append(_family(f"muennighoff_{D / 1e9:g}B", "one D", runs[["N", "D", "U", "loss"]]))
    porian = pd.read_csv(DATA / "porian2024_isoflop.csv")
    cosine = porian[(porian["dataset"] == "RefinedWeb") & (porian["setup"] == "cosine_decay")]
    for N in (57384960, 108462080, 220872704):
        runs = cosine[cosine["N"] == N][["N", "D", "loss"]]
        out.append(_family(f"porian_{N / 1e6:.0f}M", "one N", runs, "D"))
    chin = pd.read_csv(DATA / "chinchilla_epoch_fig4.csv")
    chin = pd.DataFrame({"N": chin["Model Size"], "D": chin["Training FLOP"] / (6 * chin["Model Size"]),
                         "loss": chin["loss"]})  # fmt: skip
    ratio = chin["D"] / chin["N"]
    out.append(_family("chinchilla_ratio", "one ratio", chin[(ratio >= 15) & (ratio <= 25)]))
    inputs = np.append(np.geomspace(2e7, 7e8, 8), 7e9)
    for seed in range(3):
        noise = np.exp(np.random.default_rng(seed).normal(0, NOISE, inputs.size))
        for kind, N, D, by in (
            ("one_d", inputs, np.full_like(inputs, 1e11), "N"),
            ("one_ratio", inputs, 20 * inputs, "N"),
            ("one_n", np.full_like(inputs, 1e9), inputs * 43, "D"),  # 8.6e8-3e10 tokens, 3e11 target
        ):
            loss = get_law("chinchilla").predict(EPOCH_PRIOR, N=N, D=D) * noise
            runs = pd.DataFrame({"N": N, "D": D, "loss": loss})
            label = {"one_d": "one D", "one_ratio": "one ratio", "one_n": "one N"}[kind]
            out.append(_family(f"synthetic_{kind}_{seed}", label, runs, by))
    return out


def _inputs(row: pd.Series) -> dict:
    return {k: float(row[k]) for k in ("N", "D", "U") if k in row and pd.notna(row[k])}


def _auto(family: Family, laws, min_fit_points: int) -> dict:
    """`--law auto` with the candidate `laws` (None: every law) and rolling cut-offs that leave
    `min_fit_points` distinct (N, D) points at or below them: its choice, error, one-run interval."""
    kept = backtest.MIN_FIT_POINTS
    backtest.MIN_FIT_POINTS = min_fit_points  # read by rolling_cutoffs at each call
    try:
        choice = choose_law(family.train, laws=laws)
    except UsageError as exc:
        return {"law": f"refused: {exc}", "error": np.nan, "inside": None}
    finally:
        backtest.MIN_FIT_POINTS = kept
    result = fit(choice.fit_table(family.train), law=choice.law, bootstrap=BOOTSTRAP, seed=0)
    result = replace(result, selection=choice)  # as fit_auto records it: its backtest widens the interval
    at = _inputs(family.target)
    truth = float(family.target["loss"])
    predicted = float(np.atleast_1d(result.predict(**at))[0])
    out = {"law": f"{choice.law} ({choice.subset})" + (", not compared" if choice.uncompared else ""),
           "error": predicted / truth - 1, "rate": choice.best.extrapolation_rate}
    for key, extrapolation in (("", True), ("boot_", False)):  # with the extrapolation error and without
        band = loss_intervals(result, **at, extrapolation=extrapolation)
        found = band.run_lo is not None and np.isfinite(band.run_lo[0])
        lo, hi = (float(band.run_lo[0]), float(band.run_hi[0])) if found else (np.nan, np.nan)
        out.update({f"{key}inside": bool(lo <= truth <= hi) if found else None,
                    f"{key}band": (lo, hi) if found else None, f"{key}width": (hi - lo) / predicted,
                    "note": band.note})  # fmt: skip
    return out


def evaluate(family: Family) -> dict:
    """Every law's error at the target (or why it cannot be fitted), auto's and the baseline's."""
    warnings.simplefilter("ignore", ScalingWarning)
    t0 = time.process_time()
    rows = []
    for law in candidate_laws(family.train):
        try:
            result = fit(family.train, law=law)
        except UsageError as exc:
            rows.append((law, None, str(exc)))
            continue
        predicted = float(np.atleast_1d(result.predict(**_inputs(family.target)))[0])
        rows.append((law, predicted / float(family.target["loss"]) - 1, None))
    # today's auto tried every old law whose columns the table has, identified by the runs or not
    has_u = "U" in family.train and bool(family.train["U"].notna().all())
    old = tuple(law for law in OLD_LAWS if has_u or "U" not in get_law(law).inputs)
    # today's auto knew no repetition rule: it fitted the one-D families that repeat their data (their U
    # column only feeds data_constrained, which one D cannot identify)
    today = replace(family, train=family.train.drop(columns="U", errors="ignore"))
    return {"rows": rows, "auto": _auto(family, None, backtest.MIN_FIT_POINTS),
            "baseline": _auto(today, old, 1),
            "cpu_s": time.process_time() - t0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="processes, one family each (default 2)")
    parser.add_argument("--only", default="", help="evaluate the families whose name starts with this")
    args = parser.parse_args()
    start = time.perf_counter()
    todo = [f for f in families() if f.name.startswith(args.only)]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        results = list(pool.map(evaluate, todo))
    summary = []
    for family, res in zip(todo, results, strict=True):
        t, train = family.target, family.train
        print(f"\n== {family.name} ({family.kind}): fit on {len(train)} runs (N {train['N'].min():.3g}-"
              f"{train['N'].max():.3g}, D {train['D'].min():.3g}-{train['D'].max():.3g}), predict "
              f"N {t['N']:.3g}, D {t['D']:.3g}, loss {t['loss']:.4f} nats/token   [{res['cpu_s']:.0f} s CPU]")
        for law, error, why in res["rows"]:
            print(f"  {law:<16s} " + (f"{error:+8.2%}" if why is None else f"not fitted: {why}"))
        for label in ("auto", "baseline"):
            a = res[label]
            band = "" if a.get("band") is None else f"[{a['band'][0]:.4f}, {a['band'][1]:.4f}]"
            inside = {None: "no interval", True: "contains the truth", False: "MISSES the truth"}[a["inside"]]
            note = f" ({a['note']})" if a.get("note") and a["inside"] is None else ""
            alone = "" if a.get("boot_band") is None else (
                f"; bootstrap and noise alone [{a['boot_band'][0]:.4f}, {a['boot_band'][1]:.4f}]")
            print(f"  {label:<9s} {a['law']}: {a['error']:+.2%}; one-run 95 % PI {band} {inside}{note}"
                  + alone)
        guide = next(abs(error) for law, error, _ in res["rows"] if law == GUIDE[family.kind])
        a = res["auto"]
        summary.append((family.kind, abs(a["error"]), abs(res["baseline"]["error"]), a["inside"],
                        a.get("width", np.nan), a.get("boot_inside"), a.get("boot_width", np.nan), guide))
    table = pd.DataFrame(summary, columns=["kind", "auto", "baseline", "inside", "width", "boot_inside",
                                           "boot_width", "guide"])  # fmt: skip
    refused = table["auto"].isna()
    answered = table[~refused]
    print(f"\nmean |error| at the largest model over the {len(answered)} families auto answers "
          f"(it refuses {int(refused.sum())}: data repeated past 4 epochs), by kind of family:")
    print(answered.groupby("kind")[["auto", "baseline"]].mean().map(lambda x: f"{x:.2%}").to_string())
    print(f"auto: mean {answered['auto'].mean():.2%}, worst {answered['auto'].max():.2%}")
    for key, words in (("", "with the extrapolation error"), ("boot_", "bootstrap and noise alone")):
        covered = answered[f"{key}inside"].dropna()
        print(f"  one-run 95 % PI ({words}) contains the truth in {int(covered.sum())} of {covered.size} "
              f"families with one (coverage {covered.mean():.0%}; {len(answered) - covered.size} without: "
              f"bootstrap unreliable), median width {answered[f'{key}width'].median():.1%} of the prediction")
    rates = pd.Series({f.name: r["auto"].get("rate") for f, r in zip(todo, results, strict=True)}).dropna()
    published = rates[~rates.index.str.startswith("synthetic")]
    print(f"extrapolation rate auto's backtests measured (log error per e-fold beyond the fitted runs): "
          f"median {published.median():.4f} over the {len(published)} published families "
          f"({published.min():.4f}-{published.max():.4f}), {rates.median():.4f} with the synthetic ones; "
          f"the prior is {intervals.EXTRAPOLATION_RATE}")
    base = answered["baseline"]
    print(f"baseline (today's auto) on the same families: mean {base.mean():.2%}, worst {base.max():.2%}; "
          f"on all {len(table)}: mean {table['baseline'].mean():.2%}")
    guide, there = table.loc[refused, "guide"], table.loc[refused, "baseline"]
    if len(guide):
        print(f"where auto refuses, the law fitting.md names for the kind of family (it warns): mean |error| "
              f"{guide.mean():.2%}, worst {guide.max():.2%} (baseline there: {there.mean():.2%})")
    print(f"ratio={base.mean() / answered['auto'].mean():.3g} (baseline error / auto error)")
    print(f"wall {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
