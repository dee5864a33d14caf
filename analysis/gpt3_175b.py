"""GPT-3 175B through the Chinchilla law: its loss as trained (300B tokens), the compute-optimal data for
its size, how far outside the fitted range that lies, and why published answers differ by 7x.

    .venv/bin/python analysis/gpt3_175b.py [--sweep SWEEP_DIR_OR_CSV] [--bootstrap K] [--out DIR]

Fits the Chinchilla law to Chinchilla's 245 runs as extracted by Epoch AI (dropping the 5 highest-loss
runs, as Besiroglu et al. did) and, with --sweep, to a sweep of ours; then predicts GPT-3 175B (96
layers, d_model 12288, ctx 2048) under each parameter set: Hoffmann et al.'s rounded published values,
Epoch's published refit, our refit, and our sweep's fit. Prints a Markdown report (and with --out writes
gpt3_175b.md and gpt3_175b.json). Units: N parameters, D tokens, C FLOPs, loss nats/token.
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path

from scaling.errors import ScalingWarning
from scaling.fitting.backtest import backtest
from scaling.fitting.procedure import fit
from scaling.fitting.result import FitResult
from scaling.io import atomic_write_json, atomic_write_text
from scaling.reference import GPT3_175B, HOFFMANN_2022
from scaling.runs.table import load_runs
from scaling.study.prediction import fitted_range, predict

ROOT = Path(__file__).resolve().parents[1]
CHINCHILLA_CSV = ROOT / "data" / "chinchilla_epoch_fig4.csv"
CHINCHILLA_COLUMNS = {"N": "Model Size", "C": "Training FLOP"}
PUBLISHED = {
    "Hoffmann et al. (rounded, published)": HOFFMANN_2022,
    "Besiroglu et al. (Epoch refit, published)": {
        "E": 1.817, "A": 482.0, "B": 2085.4, "alpha": 0.3478, "beta": 0.3658,
    },
}
# Hoffmann et al. Table 3 (Approach 1, N_opt and D_opt both ~ C^0.5, ~20 tokens per parameter): 175B.
TABLE3_TOKENS, TABLE3_FLOPS = 3.7e12, 3.85e24
HOLDOUT_TOP = 0.2  # backtest: fit on the runs below the top 20 % of compute, predict those


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", help="a sweep folder or run-table CSV of ours to fit as well")
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for 95 %% intervals")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="also write gpt3_175b.md and gpt3_175b.json here")
    return parser.parse_args(argv)


def fitted_sets(args: argparse.Namespace) -> list[dict]:
    """Every parameter set with the data it came from (None for published sets not refitted here)."""
    chinchilla = load_runs(CHINCHILLA_CSV, CHINCHILLA_COLUMNS, drop_top_loss=5)
    sets = [
        {"name": name, "fit": FitResult.from_json({"law": "chinchilla", "params": p}), "data": chinchilla}
        for name, p in PUBLISHED.items()
    ]
    ours = fit(chinchilla, law="chinchilla", bootstrap=args.bootstrap, seed=args.seed)
    sets.append({"name": "our refit of the Chinchilla data", "fit": ours, "data": chinchilla, "refit": True})
    if args.sweep:
        table = load_runs(args.sweep)
        sweep_fit = fit(table, law="chinchilla", bootstrap=args.bootstrap, seed=args.seed)
        sets.append({"name": f"our sweep ({args.sweep})", "fit": sweep_fit, "data": table, "refit": True})
    return sets


def analyse(args: argparse.Namespace) -> dict:
    results = []
    for entry in fitted_sets(args):
        data_range = fitted_range(entry["data"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ScalingWarning)  # extrapolation is the point; it is reported
            as_trained = predict(entry["fit"], N=GPT3_175B.N, D=GPT3_175B.D, data_range=data_range)
            optimal = predict(entry["fit"], N=GPT3_175B.N, optimal=True, data_range=data_range)
        co = entry["fit"].compute_optimal
        error = reach = None
        if entry.get("refit"):
            check = backtest(entry["data"], "chinchilla", holdout_top=HOLDOUT_TOP)
            error, reach = check.mean_abs_rel_error, float(check.runs["C"].max() / check.cutoff_C)
        results.append({
            "name": entry["name"],
            "params": dict(entry["fit"].params),
            "compute_optimal": co.to_json(),
            "a": co.a,
            # tokens per parameter of the compute-optimal run at 1B (inside the data) and at 175B
            "tokens_per_param_1b": float(co.D_opt_for_params(1e9)) / 1e9,
            "tokens_per_param_175b": float(co.D_opt_for_params(GPT3_175B.N)) / GPT3_175B.N,
            "data_range": data_range,
            "as_trained": as_trained.to_json(),
            "optimal": optimal.to_json(),
            "backtest_mean_abs_rel_error": error,
            "backtest_extrapolation_C": reach,  # largest held-out C / largest C fitted on
        })
    return {"gpt3": {"N": GPT3_175B.N, "D": GPT3_175B.D}, "table3": {"D": TABLE3_TOKENS, "C": TABLE3_FLOPS},
            "holdout_top": HOLDOUT_TOP, "sets": results}


def decades(factor: float) -> str:
    return f"{math.log10(factor):+.1f}"


def report(doc: dict) -> str:
    sets = doc["sets"]
    budget = sets[0]["as_trained"]
    m = budget["memory_gb"]
    lines = [
        "# GPT-3 175B through the Chinchilla law",
        "",
        f"GPT-3 175B as trained: N = 175B parameters, D = 300B tokens, C = 6ND = {budget['C']:.3g} FLOPs "
        f"({budget['flops_with_attention']:.3g} with attention) = {budget['pf_days']:.4g} PF-days "
        f"(~{budget['gpu_days']:.3g} H100-days at {budget['mfu']:.0%} MFU). Weights "
        f"{m['weights_fp32']:.0f} GB fp32 / {m['weights_bf16']:.0f} GB bf16; mixed-precision Adam state "
        f"{m['training_mixed_adam']:.0f} GB = {m['gpus_80gb']} x 80 GB GPUs before activations.",
        "",
        "## Predictions (loss in nats/token; 95 % bootstrap interval where the set was fitted here)",
        "",
        "| parameter set | E | A | B | alpha | beta | a = beta/(alpha+beta) | loss at 300B | regime at 300B "
        "| D_opt(175B) | tokens/param | C_opt | loss at D_opt |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in sets:
        p, t, o = s["params"], s["as_trained"], s["optimal"]
        lines.append(
            f"| {s['name']} | {p['E']:.4g} | {p['A']:.4g} | {p['B']:.4g} | {p['alpha']:.4g} "
            f"| {p['beta']:.4g} | {s['a']:.3f} | {t['loss']:.4f}{_ci(t['loss_ci'])} | {t['regime']} "
            f"| {o['D'] / 1e12:.3g}T{_ci(o['D_ci'], 1e12, 'T')} | {o['tokens_per_param']:.3g} "
            f"| {o['C']:.3g} | {o['loss']:.4f} |"
        )
    lines.append(
        f"| Hoffmann et al. Table 3 (Approach 1) | | | | | | ~0.50 | | | {TABLE3_TOKENS / 1e12:.3g}T "
        f"| {TABLE3_TOKENS / GPT3_175B.N:.3g} | {TABLE3_FLOPS:.3g} | |"
    )
    lines += [
        "",
        "## How far outside the fitted range",
        "",
        "| data | runs' N (params) | runs' C (FLOPs) | 175B vs largest N | C(300B) vs largest C "
        "| C_opt vs largest C | backtest: mean abs. relative error |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in sets:
        if s["backtest_mean_abs_rel_error"] is None:
            continue
        r = s["data_range"]
        t, o = s["as_trained"]["extrapolation"], s["optimal"]["extrapolation"]
        lines.append(
            f"| {s['name']} | {r['N'][0]:.3g} - {r['N'][1]:.3g} | {r['C'][0]:.3g} - {r['C'][1]:.3g} "
            f"| {t['N']:.3g}x ({decades(t['N'])} decades) | {t['C']:.3g}x ({decades(t['C'])}) "
            f"| {o['C']:.3g}x ({decades(o['C'])}) | {s['backtest_mean_abs_rel_error']:.2%} "
            f"({decades(s['backtest_extrapolation_C'])} decades of C) |"
        )
    lines += [
        "",
        f"The backtest fits the law to the runs below the top {doc['holdout_top']:.0%} of compute and "
        "predicts the held-out top, an extrapolation of the decades of C shown in brackets; 175B lies "
        "about one decade beyond Chinchilla's largest model (and several beyond a CPU sweep). Read the "
        "intervals as the fit's noise, not as a guarantee that the law holds that far out.",
        "",
        "## Why the compute-optimal token counts differ",
        "",
        *explain(sets),
    ]
    return "\n".join(lines) + "\n"


def explain(sets: list[dict]) -> list[str]:
    rounded, epoch = sets[0], sets[1]

    def slope(p):  # d log(D_opt / N) / d log N in Approach 3: (alpha - beta) / beta
        return (p["alpha"] - p["beta"]) / p["beta"]

    r1, e1 = rounded["tokens_per_param_1b"], epoch["tokens_per_param_1b"]
    r2, e2 = rounded["tokens_per_param_175b"], epoch["tokens_per_param_175b"]
    ours = sets[2]
    pr, pe, po = rounded["params"], epoch["params"], ours["params"]
    spread = ""
    if ours["optimal"]["D_ci"]:
        lo, hi = ours["optimal"]["D_ci"]
        spread = (
            f"Its 95 % bootstrap interval, {lo / 1e12:.3g}T to {hi / 1e12:.3g}T tokens, shows how loosely "
            "the runs pin the exponents: resampling them moves a = beta/(alpha+beta) enough to shift the "
            "answer by trillions of tokens."
        )
    return [
        "Approach 3 minimises E + A/N^alpha + B/D^beta subject to C = 6ND, giving N_opt = G (C/6)^a "
        "with a = beta/(alpha+beta). Inverted for a given N, the optimal data grow as "
        "D_opt ~ N^(alpha/beta), so tokens per parameter scale as N^((alpha-beta)/beta): the answer "
        "hinges on the *ratio* of two small, poorly determined exponents.",
        "",
        f"- Hoffmann et al.'s published values are rounded: beta = {pr['beta']} against alpha = "
        f"{pr['alpha']} (a = {rounded['a']:.3f}), so tokens per parameter grow as N^{slope(pr):+.3f}: "
        f"{r1:.3g} at 1B, {r2:.3g} at 175B ({rounded['optimal']['D'] / 1e12:.3g}T tokens).",
        f"- Epoch's refit of the same data has beta = {pe['beta']} slightly above alpha = {pe['alpha']} "
        f"(a = {epoch['a']:.3f}): tokens per parameter are nearly flat, N^{slope(pe):+.3f}, {e1:.3g} at "
        f"1B and {e2:.3g} at 175B ({epoch['optimal']['D'] / 1e12:.3g}T tokens).",
        f"- Inside the data (1B) the two sets differ {r1 / e1:.2g}x. The exponent gap "
        f"{slope(pr) - slope(pe):.3f} compounds over the {math.log10(175):.1f} decades from 1B to 175B into "
        f"another {(r2 / e2) / (r1 / e1):.2g}x: in all {r2 / e2:.2g}x. The rounded beta = 0.28 against "
        "0.366 is what moves the answer from ~3T to ~23T tokens.",
        "- Hoffmann et al.'s Table 3 comes from Approach 1 (training-curve envelopes), where N_opt and "
        "D_opt both grow as ~C^0.50: a constant ~20 tokens per parameter, "
        f"{TABLE3_TOKENS / 1e12:.3g}T tokens and {TABLE3_FLOPS:.3g} FLOPs for 175B. Epoch's refit agrees "
        "with it; the rounded Approach-3 parameters do not, one of the inconsistencies Besiroglu et al. "
        "(2024) point out.",
        f"- Our refit (same data, same summed Huber objective) gives alpha = {po['alpha']:.4g}, beta = "
        f"{po['beta']:.4g}, D_opt(175B) = {ours['optimal']['D'] / 1e12:.3g}T, reproducing Epoch's. "
        + spread,
    ]


def _ci(interval, scale: float = 1.0, unit: str = "") -> str:
    if not interval:
        return ""
    return f" [{interval[0] / scale:.3g}{unit}, {interval[1] / scale:.3g}{unit}]"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    doc = analyse(args)
    text = report(doc)
    print(text)
    if args.out:
        atomic_write_text(args.out / "gpt3_175b.md", text)
        atomic_write_json(args.out / "gpt3_175b.json", doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
