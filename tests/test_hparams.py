"""scaling hparams: per-setting optima and the lr_opt / B_opt laws, recovered from a planted grid."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from helpers import assert_usage_error

from scaling.errors import ScalingWarning, UsageError
from scaling.study.hparams import HparamLaws, fit_hparams, hparam_table, setting_optimum

LR = (0.3, -0.3, 0.1)  # planted lr_opt = 0.3 N^-0.3 D^0.1
BATCH = (2.0, 0.1, 0.4)  # planted B_opt = 2 N^0.1 D^0.4 tokens
SETTINGS = [(1e6, 2e8), (1e6, 1e9), (4e6, 4e8), (4e6, 2e9), (1.6e7, 8e8), (1.6e7, 5e9)]


def planted(N: float, D: float, lr: float, batch: float, noise: float = 0.0, rng=None) -> float:
    """A Chinchilla loss plus a tilted bowl in (log lr, log batch) around the planted optimum."""
    x = math.log(lr / (LR[0] * N ** LR[1] * D ** LR[2]))
    y = math.log(batch / (BATCH[0] * N ** BATCH[1] * D ** BATCH[2]))
    base = 1.7 + 400 / N ** 0.34 + 410 / D ** 0.28
    loss = base * (1 + 0.02 * x * x + 0.01 * y * y + 0.005 * x * y)
    return loss * (1 + noise * rng.standard_normal()) if noise else loss


def grid(settings=SETTINGS, lrs=7, batches=7, noise=0.0, shift=0.0) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for N, D in settings:
        # centred near the optimum but off its grid points, so the surface must interpolate
        lr0 = LR[0] * N ** LR[1] * D ** LR[2] * 1.3 * math.exp(shift)
        b0 = BATCH[0] * N ** BATCH[1] * D ** BATCH[2] / 1.25
        for i in range(lrs):
            for j in range(batches):
                lr, b = lr0 * 2.0 ** (i - lrs // 2), b0 * 2.0 ** (j - batches // 2)
                rows.append({"N": N, "D": D, "lr": lr, "batch_tokens": b,
                             "loss": planted(N, D, lr, b, noise, rng)})
    return pd.DataFrame(rows)


def test_planted_optima_and_laws_recovered():
    laws = fit_hparams(grid(), bootstrap=200)
    for s in laws.settings:
        assert s.method == "surface"
        assert s.lr == pytest.approx(LR[0] * s.N ** LR[1] * s.D ** LR[2], rel=0.02)
        assert s.batch == pytest.approx(BATCH[0] * s.N ** BATCH[1] * s.D ** BATCH[2], rel=0.02)
        assert s.loss <= s.best_loss  # the surface's optimum beats the best grid point
    assert (laws.lr.coef, laws.lr.exp_N, laws.lr.exp_D) == pytest.approx(LR, rel=0.03, abs=0.01)
    assert (laws.batch.coef, laws.batch.exp_N, laws.batch.exp_D) == pytest.approx(BATCH, rel=0.03, abs=0.01)
    lo, hi = laws.lr.ci["exp_N"]
    assert lo - 1e-6 <= LR[1] <= hi + 1e-6  # noise-free: the interval shrinks to the planted value


def test_noisy_grid_law_within_its_interval():
    laws = fit_hparams(grid(noise=0.001), bootstrap=300)
    lo, hi = laws.lr.ci["exp_N"]
    assert lo < hi and lo - 0.02 <= LR[1] <= hi + 0.02
    assert laws.batch.exp_D == pytest.approx(BATCH[2], abs=0.1)


def test_json_round_trip():
    laws = fit_hparams(grid(), bootstrap=50)
    doc = json.loads(json.dumps(laws.to_json()))
    assert doc["format"] == "scaling.hparams/1"
    assert set(doc["lr"]) == {"coef", "exp_N", "exp_D", "ci"} and set(doc["batch"]) == set(doc["lr"])
    assert HparamLaws.from_json(doc) == laws
    with pytest.raises(UsageError, match="format"):
        HparamLaws.from_json({**doc, "format": "scaling.fit/1"})


def test_optimum_outside_grid_warns_and_uses_best_run():
    table = grid(settings=SETTINGS[:1], shift=3.0)  # optimum far below the lowest LR of the grid
    with pytest.warns(ScalingWarning, match="outside the grid"):
        s = setting_optimum(hparam_table(table))
    assert s.method == "best run" and s.lr == pytest.approx(table["lr"].min())


def test_batch_from_batch_size_and_n_ctx():
    table = grid()
    table["batch_size"], table["n_ctx"] = table.pop("batch_tokens") / 64, 64
    laws = fit_hparams(table, bootstrap=0)
    assert laws.batch.exp_D == pytest.approx(BATCH[2], abs=0.01) and laws.lr.ci == {}


def test_collinear_settings_fit_N_alone():
    table = grid(settings=[(1e6, 2e7), (4e6, 8e7), (1.6e7, 3.2e8)])
    with pytest.warns(ScalingWarning, match="one line"):
        laws = fit_hparams(table, bootstrap=0)
    assert laws.lr.exp_D == 0.0
    assert laws.lr.exp_N == pytest.approx(LR[1] + LR[2], abs=0.02)  # D = 20 N folds D's exponent into N's


def test_bad_inputs_one_line_each(tmp_path, cli):
    cases = {
        "one setting": grid(settings=SETTINGS[:1]),
        "single LR": grid(lrs=1),
        "batch larger": grid().assign(batch_tokens=lambda t: t["D"] * 2),
        "no lr": grid().drop(columns="lr"),
    }
    expected = {"one setting": "two or more", "single LR": "single learning rate",
                "batch larger": "larger than their tokens", "no lr": "learning-rate column"}
    for name, table in cases.items():
        path = tmp_path / f"{name.replace(' ', '_')}.csv"
        table.to_csv(path, index=False)
        result = cli("hparams", path)
        assert_usage_error(result)
        assert expected[name] in result.err


def test_cli_writes_json_and_figure(tmp_path, cli):
    path, out, png = tmp_path / "grid.csv", tmp_path / "laws.json", tmp_path / "landscape.png"
    grid().to_csv(path, index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ScalingWarning)
        result = cli("hparams", path, "--json", out, "--figure", png, "--bootstrap", "100")
    assert result.status == 0, result.err
    assert "lr_opt = " in result.out and f"wrote {out}" in result.out
    doc = json.loads(out.read_text())
    assert doc["lr"]["exp_N"] == pytest.approx(LR[1], abs=0.01) and len(doc["settings"]) == len(SETTINGS)
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_D_rounded_to_steps_is_one_setting():
    table = grid()
    table["D"] *= 1 + 0.003 * (np.log2(table["batch_tokens"]) % 3)  # each batch rounds D a little differently
    laws = fit_hparams(table, bootstrap=0)
    assert len(laws.settings) == len(SETTINGS)
    assert laws.lr.exp_N == pytest.approx(LR[1], abs=0.01)


def test_two_batches_fit_lr_at_the_best_batch_and_two_settings_have_no_interval():
    table = grid(settings=SETTINGS[::2][:2], batches=2)
    with pytest.warns(ScalingWarning, match="no intervals"):
        laws = fit_hparams(table, bootstrap=100)
    assert laws.lr.ci == {}
    for s in laws.settings:  # the other batch's losses do not bend the curve in log lr
        runs = table[np.isclose(table["N"], s.N) & np.isclose(table["D"], s.D)]
        b = runs.sort_values("loss")["batch_tokens"].iloc[0]
        y = math.log(b / (BATCH[0] * s.N ** BATCH[1] * s.D ** BATCH[2]))
        x_opt = -0.005 * y / (2 * 0.02)  # the planted bowl's minimum in log lr at that batch
        assert s.lr == pytest.approx(LR[0] * s.N ** LR[1] * s.D ** LR[2] * math.exp(x_opt), rel=0.02)


def test_best_run_at_the_grid_edge_warns():
    # as a real tiny sweep gave: loss still falling at the highest LR, steeply on the low side, so that the
    # curve's minimum lies just inside the grid
    table = pd.DataFrame({"N": 4e4, "D": 4e5, "lr": [0.003, 0.006, 0.012], "batch_tokens": 1024,
                          "loss": [2.18, 2.078, 2.052]})
    with pytest.warns(ScalingWarning, match="edge in lr"):
        s = setting_optimum(hparam_table(table))
    assert s.method == "surface" and 0.006 < s.lr < 0.012


def test_cli_optimum_outside_the_grid_is_one_warning_line_per_setting(tmp_path, cli):
    path, out = tmp_path / "edge.csv", tmp_path / "laws.json"
    grid(shift=3.0).to_csv(path, index=False)  # every setting's optimum far below its lowest LR
    result = cli("hparams", path, "--bootstrap", "0", "--json", out)
    assert result.status == 0, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == len(SETTINGS) and "Traceback" not in result.err
    assert all(line.startswith("warning: setting N = ") and "the optimum lies outside the grid in lr "
               "(extend the grid); using its best run" in line for line in lines)
    assert {s["method"] for s in json.loads(out.read_text())["settings"]} == {"best run"}


def _steplaw_repo(root, scatter: float):
    """A folder shaped like github.com/step-law/steplaw (data/*.csv in their columns) holding planted grids:
    bs in sequences of 2048 tokens, `smooth loss` the planted loss, each setting's optimal LR moved by
    exp(scatter x a normal draw), which no law of N and D can predict."""
    rng = np.random.default_rng(3)
    frames = {}
    for name in ("dense", "moe"):
        rows = []
        for N, D in SETTINGS:
            move = math.exp(scatter * rng.standard_normal())
            lr0 = LR[0] * N ** LR[1] * D ** LR[2] * move
            b0 = BATCH[0] * N ** BATCH[1] * D ** BATCH[2]
            for i in range(-3, 4):
                for j in range(-3, 4):
                    lr, b = lr0 * 1.3 * 2.0 ** (i / 2), b0 / 1.25 * 2.0 ** (j / 2)
                    loss = planted(N, D, lr / move, b)
                    rows.append({"h": 64, "numh": 4, "numl": 2, "lr": lr, "bs": b / 2048, "D": D, "N": N,
                                 "loss": loss * 1.001, "smooth loss": loss, "Na": N, "seq_len": 2048})
        frames[name] = pd.DataFrame(rows)
    (root / "data").mkdir(parents=True)
    data = root / "data"
    frames["dense"].drop(columns=["Na", "seq_len"]).to_csv(data / "dense_lr_bs_loss.csv", index=False)
    frames["moe"].to_csv(data / "moe_lr_bs_loss.csv", index=False)
    return root


@pytest.mark.parametrize("scatter, status", [(0.0, 0), (1.0, 1)])
def test_steplaw_analysis_passes_a_predictable_grid_and_fails_an_unpredictable_one(tmp_path, scatter, status):
    import subprocess
    import sys
    from pathlib import Path

    repo = _steplaw_repo(tmp_path / "steplaw", scatter)
    script = Path(__file__).resolve().parents[1] / "analysis" / "steplaw_hparams.py"
    done = subprocess.run([sys.executable, str(script), "--repo", str(repo)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == status, done.stdout[-3000:] + done.stderr[-3000:]
    assert ("MISSED" in done.stdout) == bool(status) and "fixed recipe mean" in done.stdout


def test_steplaw_analysis_refuses_a_folder_without_their_data(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "analysis" / "steplaw_hparams.py"
    done = subprocess.run([sys.executable, str(script), "--repo", str(tmp_path)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    want = (f"error: {tmp_path} is neither a steplaw checkout nor its git directory "
            "(git clone https://github.com/step-law/steplaw)")
    assert done.stderr.strip().splitlines() == [want]
