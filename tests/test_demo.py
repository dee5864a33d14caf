"""The demo: its sweep is an IsoFLOP design (sizes geometric, one compute per budget), and a report of runs
laid out like the demo's shows what the demo promises (three approaches, three regimes, the true E beside
the fitted one, the 175B extrapolation named as such, no false overfitting onset). The report is built
from run folders written here from a known law, so the test takes seconds, not the demo's minutes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from scaling.fitting.laws import get_law
from scaling.report.document import write_report
from scaling.shapes import Shape, n_params
from scaling.study.allocation import isoflop_groups
from scaling.training.config import CONFIG_DIR, compose_run_config

ENTROPY_RATE = 1.8899  # the synthetic source's true irreducible loss, nats/token
# A law with the true E whose compute-optimal N sits inside the demo's sizes at its budgets.
LAW = {"E": ENTROPY_RATE, "A": 80.0, "B": 100.0, "alpha": 0.5, "beta": 0.5}


def demo_points() -> list[tuple[float, float]]:
    """(C FLOPs, target N params) of every run of sweeps/sweep/demo.yaml."""
    params = OmegaConf.load(CONFIG_DIR / "sweep" / "demo.yaml").hydra.sweeper.params
    budgets = [float(c) for c in str(params["sweep.compute"]).split(",")]
    sizes = [float(n) for n in str(params["model.target_params"]).split(",")]
    return [(c, n) for c in budgets for n in sizes]


def test_demo_sweep_is_isoflop_with_geometric_sizes():
    points = demo_points()
    sizes = sorted({n for _, n in points})
    assert len(sizes) >= 5  # a minimum with 2 sizes on each side needs 5
    ratios = np.diff(np.log(sizes))
    assert np.allclose(ratios, ratios[0])  # exactly geometric targets
    rows = []
    for C, target in points[:: len(sizes) + 1] + points[len(sizes) - 1 :: len(sizes)]:  # a diagonal sample
        cfg = compose_run_config(["+sweep=demo", f"sweep.compute={C}", f"model.target_params={target}"])
        N = n_params(Shape(cfg.model.n_layer, cfg.model.d_model, cfg.model.n_head))
        assert cfg.model.n_layer == 1 and cfg.data.name == "synthetic"
        assert abs(N / target - 1) <= 0.1
        rows.append({"C": 6.0 * N * cfg.train.tokens, "target": C})
    table = pd.DataFrame(rows)
    assert np.allclose(table["C"], table["target"], rtol=0.01)  # one IsoFLOP profile per budget


def write_run(folder: Path, N: float, D: float, rng: np.random.Generator) -> None:
    """A run folder of the demo's kind: curves from LAW with a little evaluation noise, never rising."""
    folder.mkdir(parents=True)
    tokens = np.linspace(D / 8, D, 8)
    val = get_law("chinchilla").predict(LAW, N=N, D=tokens) + rng.normal(0, 0.002, tokens.size)
    with open(folder / "metrics.jsonl", "w") as f:
        for i, (t, v) in enumerate(zip(tokens, val, strict=True)):
            row = {"step": (i + 1) * 25, "tokens": t, "flops": 6 * N * t, "lr": 3e-3, "train_loss": v + 0.01,
                   "val_loss": v, "elapsed_s": i + 1.0, "tokens_per_s": 1e4}  # fmt: skip
            f.write(json.dumps(row) + "\n")
    summary = {"status": "completed", "n_params": N, "n_params_total": N + 9000, "n_layer": 1,
               "d_model": 64, "n_head": 8, "n_ctx": 32, "tokens": D, "unique_tokens": 4.5e6,
               "flops": 6 * N * D, "train_loss": float(val[-1]) + 0.01, "val_loss": float(val[-1]),
               "seed": 0, "wall_s": 1.0, "entropy_rate": ENTROPY_RATE}  # fmt: skip
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "config.yaml").write_text("data:\n  name: synthetic\ntrain:\n  seed: 0\n")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "runs"
    rng = np.random.default_rng(0)
    for i, (C, N) in enumerate(demo_points()):
        write_run(root / f"run{i}", N, C / (6.0 * N), rng)
    return write_report(root, root.parent / "report", bootstrap=50, dpi=150, title="the demo sweep")


def test_demo_report_shows_every_approach_regime_and_the_true_e(report):
    text = report.markdown.read_text()
    for approach in ("Approach 1: envelope", "Approach 2: IsoFLOP", "Approach 3: parametric fit"):
        assert f"| {approach} |" in text
    assert "isoflop_profiles" in report.figures and "training_curves" in report.figures
    labels = report.analysis.regimes
    assert set(labels["regime"]) == {"overfitting", "balanced", "underfitting"}
    assert labels["onset_tokens"].isna().all()  # held-out loss never rose: no onset, noise or not
    assert "true irreducible loss is known" in text and f"{ENTROPY_RATE:.4g} nats/token" in text
    fitted_e = report.analysis.fit.params["E"]
    assert math.isclose(fitted_e, ENTROPY_RATE, rel_tol=0.01)
    (title,) = [line for line in text.splitlines() if line.startswith("## Prediction")]
    assert "orders of magnitude in N" in title
    assert "**on `data.name=synthetic`**" in text


def test_demo_runs_form_one_isoflop_profile_per_budget(report):
    table = report.analysis.table
    assert len(isoflop_groups(table)) == len({c for c, _ in demo_points()})
