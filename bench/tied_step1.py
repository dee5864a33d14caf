"""Step 1 of the downstream fit: one exponent for N and D (law chinchilla_tied) against two (chinchilla,
Bhagia et al.'s), when a small ladder extrapolates to larger models.

The `ladder` method of `scaling.fitting.downstream` ties the exponents. The evidence on the OLMo task ladder
is analysis/olmo_task_ladder.py; this bench checks that the choice is no artefact of that one data set: on
the vendored LM-loss ladders (data/README.md) each law is fitted on the smaller models and predicts the
larger ones, and the mean |relative error| of the predicted loss is compared, both laws in the same process:

- OLMo ladder C4 loss (Bhagia et al. 2024): fitted on 190M-1B at 1, 2, 5, 10x Chinchilla tokens (the
  paper's ladder), predicting the 3B runs and OLMo 2 7B and 13B;
- Gadre et al. 2024 (three corpora, c4_original, rpj, rw_original): fitted on the models below 1B,
  predicting the 1.3B and 6.7B runs;
- Chinchilla (Hoffmann et al. 2022, Epoch's extraction): fitted on the models below 1B, predicting the rest.

With `--repo PATH` (an OLMo-ladder checkout or git directory, see analysis/olmo_task_ladder.py) it also
predicts the 8 task losses (bits per byte) of 7B and 13B from the paper's ladder.
Prints each case and `ratio=` (geometric mean over cases of tied error / free error; below 1: tied better).

Run: .venv/bin/python bench/tied_step1.py [--repo PATH] (seconds).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from scaling.errors import ScalingWarning
from scaling.fitting.procedure import fit

ROOT = Path(__file__).resolve().parents[1]
LAWS = ("chinchilla", "chinchilla_tied")
BELOW = 1e9  # Gadre, Chinchilla: fit on the models below 1B parameters


def error(train: pd.DataFrame, test: pd.DataFrame, law: str) -> float:
    """Mean |relative error| of `law` fitted on `train`, predicting the loss of `test`."""
    result = fit(train[["N", "D", "C", "loss"]], law)
    pred = result.predict(N=test["N"].to_numpy(float), D=test["D"].to_numpy(float))
    return float(np.mean(np.abs(pred - test["loss"].to_numpy(float)) / test["loss"].to_numpy(float)))


def with_c(table: pd.DataFrame) -> pd.DataFrame:
    return table.assign(C=6.0 * table["N"] * table["D"])


def cases(repo: str | None) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """name -> (fitted runs, predicted runs), each with N, D, C, loss."""
    out = {}
    olmo = with_c(pd.read_csv(ROOT / "data" / "olmo_ladder_c4.csv"))
    ladder = olmo["role"].eq("ladder") & olmo["chinchilla_multiple"].isin([1, 2, 5, 10])
    small = ladder & ~olmo["size"].eq("3B") & ~olmo["run"].str.endswith("rerun")
    larger = ~small & (ladder | olmo["role"].eq("target"))
    out["OLMo C4 loss: 190M-1B -> 3B, 7B, 13B"] = (olmo[small], olmo[larger])
    gadre = with_c(pd.read_csv(ROOT / "data" / "gadre2024_overtraining_c4.csv"))
    for corpus, runs in gadre.groupby("dataset"):
        out[f"Gadre {corpus}: < 1B -> 1.3B, 6.7B"] = (runs[runs["N"] < BELOW], runs[runs["N"] >= BELOW])
    chin = pd.read_csv(ROOT / "data" / "chinchilla_epoch_fig4.csv")
    chin = chin.rename(columns={"Model Size": "N", "Training FLOP": "C"})
    chin = chin.assign(D=chin["C"] / (6 * chin["N"]))
    out["Chinchilla: < 1B -> >= 1B"] = (chin[chin["N"] < BELOW], chin[chin["N"] >= BELOW])
    if repo:
        sys.path.insert(0, str(ROOT / "analysis"))
        import olmo_task_ladder as olmo_tasks

        source = olmo_tasks.Repo(repo)
        runs = olmo_tasks.ladder(source, ["190M", "370M", "760M", "1B"])
        for task in olmo_tasks.TASKS:
            train = pd.DataFrame([
                {"N": olmo_tasks.SIZES[name.split("-")[0]], "D": olmo_tasks.tokens(f)[-1],
                 "loss": float(task.columns(f)[0][-5:].mean())}
                for name, f in runs.items()
            ])
            test = pd.DataFrame([
                {"N": n, "D": d, "loss": float(task.columns(source.read(file))[0][-5:].mean())}
                for n, d, file in olmo_tasks.TARGETS.values()
            ])
            out[f"OLMo {task.name} task loss: ladder -> 7B, 13B"] = (with_c(train), with_c(test))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", help="OLMo-ladder checkout or git directory: add the 8 task losses")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", ScalingWarning)  # exponents at a bound on small ladders are expected
    ratios = {}
    print(f"{'case':<48s} {'free (chinchilla)':>18s} {'tied':>10s}")
    for name, (train, test) in cases(args.repo).items():
        free, tied = (error(train, test, law) for law in LAWS)
        ratios[name] = tied / free
        print(f"{name:<48s} {free:18.2%} {tied:10.2%}   ({len(train)} fitted, {len(test)} predicted)")
    lm = [r for name, r in ratios.items() if "task loss" not in name]
    print(f"LM-loss ladders: tied / free mean error, geometric mean {np.exp(np.mean(np.log(lm))):.3f}")
    values = list(ratios.values())
    print(f"tied better in {sum(r < 1 for r in values)} of {len(values)} cases; "
          f"ratio={np.exp(np.mean(np.log(values))):.3f} (tied / free mean error, geometric mean over cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
