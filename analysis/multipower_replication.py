"""Replication of the Multi-Power Law's schedule transfer (Luo et al. 2025, arXiv:2503.12811).

Data: the loss curves Luo et al. released with their code, github.com/thu-yao-01-luo/MultiPowerLaw
(loss_curve_repo/csv_{25,100,400}/*.csv: step, lr, loss every 128 steps after a 2160-step linear warmup,
peak LR 3e-4). Not vendored here: clone it (`git clone https://github.com/thu-yao-01-luo/MultiPowerLaw`)
and pass `--repo PATH` (a checkout, or a bare git directory).

Per size, as their main.py and src/config.py do: fit the law on 3 schedules (cosine_24000, constant_24000,
wsdcon_9) and predict the curves of the 6 others (constant_72000, cosine_72000, wsd_20000_24000,
wsdld_20000_24000, wsdcon_3, wsdcon_18); the error of a curve is their PredE, mean |pred - loss| / loss over
its points. Printed beside their README's table (mean test PredE 0.00110 / 0.00142 / 0.00168 for 25M / 100M
/ 400M). Exit status 1 unless each size's mean test error is within 1.5x of the published one and no test
curve is above 1 %.

Also (issue 23's "two runs per size"): fit on the shortest and the longest cosine only (and on the longest
alone) and predict every other curve and its final loss, beside reading the longest cosine curve at the
other runs' final steps.

The curves enter through a curve table (scaling.runs.curves), as a user's would: the logged rows, plus
LR-only rows at the corners of each schedule (end of warmup, start of a decay, the step of wsdcon's drop)
so that the linear interpolation between rows is exact there; between logged rows a cosine or exponential
decay is interpolated linearly (below 1e-9 relative LR error at 128-step spacing).

Run: .venv/bin/python analysis/multipower_replication.py --repo PATH [--sizes 25,100,400] (about 1 min).
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from scaling.fitting.curves import fit_curves
from scaling.runs.curves import load_curves

FIT_SET = ("cosine_24000", "constant_24000", "wsdcon_9")
TEST_SET = ("constant_72000", "cosine_72000", "wsd_20000_24000", "wsdld_20000_24000", "wsdcon_3", "wsdcon_18")
PUBLISHED_PREDE = {"25": 0.00110, "100": 0.00142, "400": 0.00168}  # README "Evaluation Metrics", PredE
PEAK, WARMUP = 3e-4, 2160  # their data_loader: linear warmup 0 -> 3e-4 over 2160 steps
SIZES_M = {"25": 25e6, "100": 100e6, "400": 400e6}  # N as the folder names them (only its ratio matters)
WITHIN, WORST = 1.5, 0.01


def corners(name: str) -> list[tuple[int, float]]:
    """(step, lr) rows where the schedule's formula (their src/lr_schedules.py) has a kink or a jump."""
    rows = [(WARMUP - 1, PEAK)]  # their warmup reaches the peak at step 2159 (np.linspace(0, peak, 2160))
    if name.startswith("wsdcon"):  # two stages: 3e-4 until step 8000, then int(suffix) * 1e-5
        rows += [(7999, PEAK), (8000, int(name.split("_")[1]) * 1e-5)]
    elif name.startswith("wsd"):  # stable until step 20000, then the decay
        rows += [(20000, PEAK)]
    return rows


class Repo:
    """The released curves, from a checkout or a bare git directory."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        checkout = self.path / "loss_curve_repo"
        self.bare = not checkout.is_dir()
        if self.bare and not (self.path / "HEAD").is_file():
            raise SystemExit(f"error: {path} is neither a MultiPowerLaw checkout nor its git directory "
                             "(git clone https://github.com/thu-yao-01-luo/MultiPowerLaw)")

    def curve(self, size: str, name: str) -> pd.DataFrame:
        rel = f"loss_curve_repo/csv_{size}/{name}.csv"
        if self.bare:
            text = subprocess.run(["git", "--git-dir", str(self.path), "show", f"HEAD:{rel}"],
                                  check=True, capture_output=True, text=True).stdout
        else:
            text = (self.path / rel).read_text()
        frame = pd.read_csv(io.StringIO(text))
        return frame[frame["step"] < 24000] if frame["step"].max() == 24000 else frame  # as their loader

    def published(self, size: str) -> dict[str, float]:
        """Per-curve PredE of their own fit, from their logs/{size}.log (empty if it is missing)."""
        rel = f"logs/{size}.log"
        if self.bare:
            done = subprocess.run(["git", "--git-dir", str(self.path), "show", f"HEAD:{rel}"],
                                  capture_output=True, text=True)
            text = done.stdout if done.returncode == 0 else ""
        else:
            text = (self.path / rel).read_text() if (self.path / rel).is_file() else ""
        out, name = {}, None
        for line in text.splitlines():
            if line.endswith(".csv"):
                name = line.rsplit(":", 1)[-1][:-4]
            elif ":prede: " in line and name:
                out[name] = float(line.rsplit(" ", 1)[-1])
        return out


def curve_table(repo: Repo, size: str, names: tuple[str, ...]) -> pd.DataFrame:
    """A curve table (run, N, step, tokens, lr, loss) of the named runs; tokens = step (batch unknown)."""
    parts = []
    for name in names:
        logged = repo.curve(size, name)[["step", "lr", "loss"]]
        extra = pd.DataFrame([(s, lr, np.nan) for s, lr in corners(name) if s not in set(logged["step"])],
                             columns=["step", "lr", "loss"])
        rows = pd.concat([logged, extra]).sort_values("step")
        parts.append(rows.assign(run=name, N=SIZES_M[size], tokens=rows["step"]))
    return pd.concat(parts)[["run", "N", "step", "tokens", "lr", "loss"]]


def load(table: pd.DataFrame, folder: Path, tag: str):
    path = folder / f"{tag}.csv"
    table.to_csv(path, index=False)
    return load_curves(path)


def errors(fit, curves) -> dict[str, tuple[float, float]]:
    """Per curve: (mean relative error over its points = their PredE, relative error of the final point)."""
    out = {}
    for c in curves:
        pred = fit.predict(c.schedule, c.steps, c.N)
        rel = np.abs(pred - c.loss) / c.loss
        out[c.run] = (float(rel.mean()), float(rel[-1]))
    return out


def joint(repo: Repo, sizes: list[str]) -> int:
    """mpl_n on the 3 fit schedules of every size together; per size, the mean test PredE."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        train = [c for size in sizes for c in load(curve_table(repo, size, FIT_SET), folder, f"fit{size}")]
        fit = fit_curves(train, law="mpl_n")
        print(fit.describe())
        for size in sizes:
            test = errors(fit, load(curve_table(repo, size, TEST_SET), folder, f"test{size}"))
            mean = float(np.mean([m for m, _ in test.values()]))
            print(f"  {size}M (mpl_n, joint): mean test PredE {mean:.5f} (published per-size fit "
                  f"{PUBLISHED_PREDE[size]:.5f}); worst {max(m for m, _ in test.values()):.5f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", required=True, help="MultiPowerLaw checkout or bare git directory")
    parser.add_argument("--sizes", default="25,100,400")
    parser.add_argument("--law", default="mpl", help="the law to check (annealing_area: the alternative)")
    parser.add_argument("--joint", action="store_true", help="instead: mpl_n fitted on the fit schedules of "
                        "all sizes at once, its test errors per size (reported, not checked)")
    args = parser.parse_args()
    repo = Repo(args.repo)
    if args.joint:
        return joint(repo, args.sizes.split(","))
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for size in args.sizes.split(","):
            fit_curves_ = load(curve_table(repo, size, FIT_SET), folder, f"fit{size}")
            test_curves = load(curve_table(repo, size, TEST_SET), folder, f"test{size}")
            fit = fit_curves(fit_curves_, law=args.law)
            print(f"== {size}M: fit on {', '.join(FIT_SET)}")
            print(fit.describe())
            test = errors(fit, test_curves)
            theirs = repo.published(size)
            for kind, check in (("fit ", errors(fit, fit_curves_)), ("test", test)):
                for run, (mean, final) in check.items():
                    shown = f"{theirs[run]:.5f}" if run in theirs else "   -   "
                    print(f"  {kind} {run:<20} PredE {mean:.5f} (theirs {shown})  final point {final:.5f}")
            mean_test = float(np.mean([m for m, _ in test.values()]))
            worst = max(m for m, _ in test.values())
            published = PUBLISHED_PREDE[size]
            print(f"  mean test PredE {mean_test:.5f} (published {published:.5f}, ratio "
                  f"{mean_test / published:.2f}); worst test curve {worst:.5f}")
            if mean_test > WITHIN * published:
                failures.append(f"{size}M: mean test PredE {mean_test:.5f} > {WITHIN} x {published}")
            if worst > WORST:
                failures.append(f"{size}M: a test curve's PredE {worst:.5f} > {WORST}")

            everything = (*FIT_SET, *TEST_SET)
            longest = load(curve_table(repo, size, ("cosine_72000",)), folder, f"long{size}")
            pair = load(curve_table(repo, size, ("cosine_24000", "cosine_72000")), folder, f"pair{size}")
            others = [c for c in load(curve_table(repo, size, everything), folder, f"all{size}")
                      if c.run not in ("cosine_24000", "cosine_72000")]
            short = [c for c in pair if c.run == "cosine_24000"]
            for label, train, held in (("2 cosines (24k, 72k)", pair, others),
                                       ("1 cosine (72k)", longest, [*short, *others])):
                check = errors(fit_curves(train, law=args.law), held)
                finals = [f for _, f in check.values()]
                curve_mean = np.mean([m for m, _ in check.values()])
                print(f"  from {label}: held-out curves mean PredE {curve_mean:.5f}; final losses mean "
                      f"{np.mean(finals):.5f}, worst {max(finals):.5f} ({len(held)} runs)")
            long_curve = longest[0]
            c24 = short[0]
            read = np.interp(c24.steps[-1], long_curve.steps, long_curve.loss)
            print(f"  reading cosine_72000's curve at step {c24.steps[-1]:g}: {read:.4f} vs cosine_24000's "
                  f"final {c24.loss[-1]:.4f} (error {abs(read - c24.loss[-1]) / c24.loss[-1]:.5f})")
    for line in failures:
        print(f"FAIL {line}")
    print("replication " + ("failed" if failures else "passed"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
