"""`scaling report`: the sections of report.md AND the numbers they state (checked against the fit file,
the run table and independent recomputations), the figures it links, clean overwrites, bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import TRUE, assert_usage_error, law_table
from matplotlib.image import imread

from scaling.errors import UsageError
from scaling.fitting.backtest import backtest
from scaling.fitting.laws import get_law
from scaling.fitting.result import load_fit
from scaling.report.document import write_report
from scaling.runs.table import load_runs
from scaling.study.prediction import predict

SECTIONS = (
    "## Data",
    "## Fit: chinchilla law",
    "## Compute-optimal allocation",
    "## Regimes",
    "## Prediction: GPT-3 175B",
    "## Backtest",
    "## Figures",
)
OVERFIT_RUN = "r5"  # its held-out loss turns up after 60 % of its tokens


def write_run(
    folder: Path, N: float, D: float, status: str = "completed", rise_from: float | None = None
) -> None:
    """A run folder per DESIGN's contract (summary.json, metrics.jsonl, config.yaml) from the law TRUE."""
    folder.mkdir(parents=True)
    tokens = np.linspace(D / 8, D, 8)
    val = get_law("chinchilla").predict(TRUE, N=N, D=tokens)
    if rise_from is not None:  # held-out loss rises after `rise_from` of the tokens, training loss falls
        val = np.where(tokens > rise_from * D, val + 2.0 * (tokens / D - rise_from), val)
    with open(folder / "metrics.jsonl", "w") as f:
        for i, (t, v) in enumerate(zip(tokens, val, strict=True)):
            row = {"step": (i + 1) * 10, "tokens": t, "flops": 6 * N * t, "lr": 1e-3, "train_loss": v - 0.01,
                   "val_loss": v, "elapsed_s": i + 1.0, "tokens_per_s": 1e4}  # fmt: skip
            f.write(json.dumps(row) + "\n")
    loss = float(val[-1]) if status == "completed" else float("nan")
    summary = {"status": status, "n_params": N, "n_params_total": N + 1000, "n_layer": 2, "d_model": 64,
               "n_head": 2, "n_ctx": 128, "tokens": D, "unique_tokens": 1e13, "flops": 6 * N * D,
               "train_loss": loss, "val_loss": loss, "seed": 0, "wall_s": 1.0}  # fmt: skip
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "config.yaml").write_text(f"train:\n  tokens: {int(D)}\n")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sweep") / "runs"
    table = law_table()
    for run, n, d, loss in zip(table["run"], table["N"], table["D"], table["loss"], strict=True):
        write_run(root / run, n, d, rise_from=0.6 if run == OVERFIT_RUN else None)
        summary = json.loads((root / run / "summary.json").read_text())
        summary["val_loss"] = loss if run != OVERFIT_RUN else summary["val_loss"]  # the table's noisy loss
        (root / run / "summary.json").write_text(json.dumps(summary))
    write_run(root / "diverged", 3e7, 1e9, status="diverged")
    return root


@pytest.fixture(scope="module")
def report(sweep):
    return write_report(sweep, sweep.parent / "report", bootstrap=100, dpi=150)


@pytest.fixture(scope="module")
def text(report) -> str:
    return report.markdown.read_text()


def row_of(text: str, first_cell: str) -> list[str]:
    """The cells of the markdown table row starting with `first_cell`."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r} in the report")


def test_report_has_every_section_in_order(text):
    positions = [text.index(section) for section in SECTIONS]
    assert positions == sorted(positions)


def test_data_summary_counts_every_run_folder(text, report):
    assert row_of(text, "runs used")[1].startswith("20 of 21 run folders (20 completed, 1 diverged)")
    assert (
        "4 distinct" in row_of(text, "model sizes N")[1]
        and "1.50 orders of magnitude" in row_of(text, "model sizes N")[1]
    )
    assert row_of(text, "learning curves")[1] == "20 runs"


def test_hyperparameters_not_recorded_when_the_saved_configs_lack_them(text):
    # these run folders' config.yaml holds train.tokens only (tests/test_hparams_recipe.py: recorded ones)
    assert row_of(text, "hyperparameters (peak LR, batch)")[1].startswith("not recorded (needs the runs'")


def test_fitted_parameters_and_intervals_are_those_of_the_written_fit(text, report):
    written = load_fit(report.out_dir / "fit.json")
    assert written.params == report.analysis.fit.params
    for name in ("E", "A", "B", "alpha", "beta"):
        cells = row_of(text, f"`{name}`")
        assert cells[1] == f"{written.params[name]:.4g}"
        assert float(cells[1]) == pytest.approx(written.params[name], rel=1e-3)
        lo, hi = (float(x) for x in re.findall(r"[-\d.e]+", cells[2]))
        assert (lo, hi) == pytest.approx(written.ci[name], rel=1e-3)
        assert lo <= written.params[name] <= hi
    # the data are the law TRUE with 0.5 % noise: the fit recovers it
    assert written.params["E"] == pytest.approx(TRUE["E"], abs=0.15)
    assert f"objective = {written.objective:.6g}" in text


def test_compute_optimal_exponents_by_approach(text, report):
    allocations = report.analysis.allocations
    assert sorted(allocations) == [1, 2, 3]  # the grid has IsoFLOP anti-diagonals
    for approach, name in (
        (1, "Approach 1: envelope"),
        (2, "Approach 2: IsoFLOP"),
        (3, "Approach 3: parametric fit"),
    ):
        cells = row_of(text, name)
        assert cells[1] == f"{allocations[approach].a:.4f}" and cells[3] == f"{allocations[approach].b:.4f}"
    a = TRUE["beta"] / (TRUE["alpha"] + TRUE["beta"])
    assert float(row_of(text, "Approach 3: parametric fit")[1]) == pytest.approx(a, abs=0.06)


def test_regimes_counts_and_the_measured_overfit(text, report):
    labels = pd.read_csv(report.out_dir / "regimes.csv")
    for regime, count in labels["regime"].value_counts().items():
        assert f"{count} {regime}" in text
    overfit = labels[labels["run"].map(lambda run: Path(run).name) == OVERFIT_RUN].iloc[0]
    assert overfit["regime"] == "overfitting" and overfit["onset_tokens"] > 0
    assert any(f"| {overfit['onset_tokens']:.3g} |".replace("e+", "e") in line for line in text.splitlines())
    # every run's row states the loss it lost against the compute-optimal allocation at its compute
    header = row_of(text, "N (params)")
    lost_column = header.index("loss lost vs compute-optimal (nats/token)")
    first = labels.sort_values(["N", "D"]).iloc[0]
    cells = row_of(text, f"{first['N']:.3g}".replace("e+", "e"))
    assert cells[lost_column] == f"{first['loss_lost']:.3g}" and first["loss_lost"] >= 0


def test_175b_prediction_is_what_the_written_fit_predicts(text, report):
    written = load_fit(report.out_dir / "fit.json")
    again = predict(written, N="gpt3_175b", D="300B")
    cells = row_of(text, "**loss (nats/token)**")
    assert cells[1].startswith(f"**{again.loss:.4g}** 95 % [")
    assert again.loss_ci is not None
    assert cells[1] == f"**{again.loss:.4g}** 95 % [{again.loss_ci[0]:.4g}, {again.loss_ci[1]:.4g}]"
    assert row_of(text, "C = 6ND (FLOPs)")[1] == f"{again.C:.3g}".replace("e+", "e")
    assert row_of(text, "PF-days")[1] == f"{again.pf_days:,.0f}"
    assert row_of(text, "weights fp32 / bf16 (GB)")[1].startswith(f"{again.memory.weights_fp32:.4g}")
    assert 690 < again.memory.weights_fp32 < 710  # GPT-3 175B in fp32: about 700 GB


def test_backtest_error_matches_a_fresh_backtest_of_the_run_table(text, report):
    again = backtest(load_runs(report.out_dir / "runs.csv"), holdout_top=0.2)
    assert f"mean absolute relative error of {again.mean_abs_rel_error:.2%}**" in text
    assert len(again.runs) == len(report.analysis.backtest.runs) >= 3 and again.mean_abs_rel_error < 0.05
    assert f"mean error of {again.mean_abs_rel_error:.2%}" in text  # restated next to the 175B prediction


def test_every_figure_is_linked_and_written_as_png_and_pdf(text, report):
    links = re.findall(r"\]\(figures/([\w]+)\.png\)", text)
    assert set(links) == set(report.figures) and len(links) == 9  # every figure: these data support all
    for name in links:
        png = report.out_dir / "figures" / f"{name}.png"
        assert f"([PDF](figures/{name}.pdf))" in text
        assert (report.out_dir / "figures" / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"
        height, width = imread(png).shape[:2]
        assert width >= 150 * 5 and height >= 150 * 3.5  # at least 5 x 3.5 inches at 150 dpi


def test_rerun_replaces_the_report_whole_and_keeps_it_when_the_input_is_bad(report, tmp_path, cli):
    out = report.out_dir
    (out / "figures" / "stale.png").write_bytes(b"old")
    csv = tmp_path / "runs.csv"
    table = law_table(seed=3).iloc[::2]  # no IsoFLOP profile of 3 sizes left, no run folders
    table.rename(columns={"N": "size", "D": "tokens"})[["size", "tokens", "loss"]].to_csv(csv, index=False)
    argv = [
        "report",
        str(csv),
        "--out",
        str(out),
        "--map",
        "N=size,D=tokens",
        "--bootstrap",
        "20",
        "--dpi",
        "150",
    ]
    status, printed, _ = cli(*argv)
    assert status == 0
    printed = printed.strip().splitlines()
    assert printed[-1] == f"report: {out / 'report.md'}"
    assert "not drawn: training_curves (no run folder with a metrics.jsonl)" in printed
    figures = {p.name for p in (out / "figures").iterdir()}
    assert "stale.png" not in figures and "training_curves.png" not in figures
    assert "isoflop_profiles.png" not in figures and "loss_vs_compute.pdf" in figures
    assert [p for p in out.parent.iterdir() if p.name.startswith(".")] == []  # no staging folder left
    before = (out / "report.md").read_bytes()
    assert "Not drawn, because the data do not support them" in before.decode()

    csv.write_text("size,loss\n1e7,3.0\n2e7,2.9\n")  # no second of N, D, C
    assert_usage_error(cli("report", csv, "--out", out), "needs columns")
    assert (out / "report.md").read_bytes() == before


def test_refuses_an_out_folder_that_is_not_a_report(tmp_path):
    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(UsageError, match="other than a report"):
        write_report(law_table(), foreign)
    assert (foreign / "thesis.tex").read_text() == "precious"


def test_a_figure_the_data_cannot_support_is_left_out_with_its_reason(tmp_path):
    table = law_table()
    jitter = np.linspace(1.0, 1.3, len(table))  # no two runs share a size N or a token budget D
    table = table.assign(N=table["N"] * jitter, D=table["D"] * jitter[::-1])
    table = table.assign(C=6 * table["N"] * table["D"])
    report = write_report(table, tmp_path / "out", law="kaplan_c", bootstrap=0, dpi=150)
    why = "no runs share a value of {} across two or more values of {}"
    assert report.skipped["figure loss_vs_params"] == why.format("D", "N")
    assert report.skipped["figure loss_vs_tokens"] == why.format("N", "D")
    assert report.skipped["figure nd_plane"] == "the kaplan_c law is not a law in N and D"
    assert "loss_vs_params" not in report.figures and "residuals" in report.figures
    assert "- loss_vs_params: no runs share a value of D" in report.markdown.read_text()


def test_a_bug_in_a_figure_is_raised_not_reported_as_not_drawn(tmp_path, monkeypatch):
    from scaling.report import figures as plots

    def broken(*args, **kwargs):
        raise ValueError("a bug in the figure code")

    monkeypatch.setattr(plots, "plot_loss_vs_compute", broken)  # the first figure: fails before the rest
    with pytest.raises(ValueError, match="a bug in the figure code"):
        write_report(law_table(), tmp_path / "out", bootstrap=0, dpi=150)
    assert list(tmp_path.iterdir()) == []  # no report and no staging folder left behind
