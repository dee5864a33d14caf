"""Design diagnostics (which laws the runs identify), honest intervals, and the warnings for tables that
are not one law: each fires where it should and stays quiet on the vendored published tables."""

import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from helpers import assert_usage_error, law_table

from scaling.errors import ScalingWarning, UsageError
from scaling.fitting.choice import CandidateScore, LawChoice
from scaling.fitting.design import ALONG_DESIGN, IDENTIFIED, NOT_IDENTIFIED, Design
from scaling.fitting.intervals import loss_intervals
from scaling.fitting.laws import get_law
from scaling.fitting.procedure import fit
from scaling.fitting.result import FitResult
from scaling.fitting.select import candidate_laws
from scaling.runs.table import load_runs
from scaling.study.prediction import predict

CHINCHILLA = ("data/chinchilla_epoch_fig4.csv", {"N": "Model Size", "C": "Training FLOP"})
TRUE = {"E": 1.8, "A": 400.0, "B": 410.0, "alpha": 0.34, "beta": 0.28}


def family(N, D, noise=0.005, seed=0, E=1.8) -> pd.DataFrame:
    N, D = np.broadcast_arrays(np.asarray(N, float), np.asarray(D, float))
    loss = get_law("chinchilla").predict({**TRUE, "E": E}, N=N, D=D)
    noisy = loss * np.exp(np.random.default_rng(seed).normal(0, noise, N.size))
    return pd.DataFrame({"N": N, "D": D, "loss": noisy})


def one_ratio() -> pd.DataFrame:
    """The OLMo ladder's runs at 1x Chinchilla's ratio: N and D collinear (20 tokens/param)."""
    olmo = pd.read_csv("data/olmo_ladder_c4.csv")
    return olmo[olmo["chinchilla_multiple"] == 1][["N", "D", "loss"]].reset_index(drop=True)


SIZES = np.geomspace(1e7, 1e10, 12)


def test_design_kinds_and_what_they_identify():
    grid = Design.of(load_runs(*CHINCHILLA))
    assert grid.rank == 2 and grid.kind == "grid" and grid.identifies_allocation
    assert all(grid.status(law) == IDENTIFIED for law in ("chinchilla", "kaplan_n", "kaplan_c"))
    one_d = Design.of(load_runs(family(SIZES, 3e11)))
    assert (one_d.rank, one_d.kind, one_d.varying) == (1, "one_D", ("N", "C"))
    assert one_d.status("chinchilla") == NOT_IDENTIFIED and one_d.status("kaplan_n") == IDENTIFIED
    assert one_d.status("kaplan_d") == NOT_IDENTIFIED and not one_d.identifies_allocation
    # D read off a figure to 1 %: still one D (distinct values, but no spread against that of N)
    wobble = Design.of(load_runs(family(SIZES, 3e11 * np.exp(np.random.default_rng(1).normal(0, 0.01, 12)))))
    assert wobble.distinct["D"] == 12 and wobble.kind == "one_D"
    ratio = Design.of(load_runs(one_ratio()))
    assert ratio.kind == "one_ratio" and set(ratio.varying) == {"N", "D", "C"}
    assert ratio.status("chinchilla") == ALONG_DESIGN and "chinchilla" not in ratio.laws()
    assert {"kaplan_n", "kaplan_d", "kaplan_c"} <= set(ratio.laws())
    one_n = Design.of(load_runs(family(1e8, np.geomspace(1e9, 1e11, 8))))
    assert one_n.kind == "one_N" and one_n.status("kaplan_d") == IDENTIFIED
    assert Design.of(load_runs(family([1e8, 1e8], [1e9, 1e9]))).rank == 0
    assert Design.from_json(ratio.to_json()) == ratio
    for name in ("olmo_ladder_c4", "gadre2024_overtraining_c4", "muennighoff_datablations_c4",
                 "porian2024_isoflop"):
        assert Design.of(load_runs(f"data/{name}.csv")).rank == 2, name


def test_a_law_the_runs_cannot_identify_is_refused_naming_the_design_and_the_laws_that_fit():
    with pytest.raises(UsageError, match=r"one D: .* needs at least 2 distinct values of D\. Laws these runs "
                                         r"identify: kaplan_n, kaplan_c, saturating_n, saturating_c"):
        fit(family(SIZES, 3e11), law="chinchilla")
    wobble = family(SIZES, 3e11 * np.exp(np.random.default_rng(1).normal(0, 0.01, 12)))
    with pytest.raises(UsageError, match="one D.*needs N and D to vary independently"):
        fit(wobble, law="chinchilla_tied")
    assert fit(wobble, law="kaplan_n").design.kind == "one_D"


def test_a_collinear_fit_warns_and_has_no_allocation_anywhere(tmp_path):
    with pytest.warns(ScalingWarning, match="one tokens-per-parameter ratio.*predictions along that line"):
        result = fit(one_ratio(), law="chinchilla_tied", bootstrap=20)
    assert result.compute_optimal is None and result.bootstrap_optimal is None and "a" not in result.ci
    assert "not identified by these runs" in result.describe()
    again = FitResult.from_json(result.to_json())
    assert again.design == result.design and again.compute_optimal is None
    with pytest.raises(UsageError, match="not identified by these runs"):
        predict(replace(result, converged=True), N="7B", optimal=True)
    grid = fit(load_runs(*CHINCHILLA, drop_top_loss=5))
    assert grid.compute_optimal is not None and grid.identifies_allocation


def test_cli_collinear_ladder_allocate_regimes_predict(tmp_path, cli):
    path = tmp_path / "ratio.csv"
    one_ratio().to_csv(path, index=False)
    for approach in ("1", "3"):
        assert_usage_error(cli("allocate", path, "--approach", approach), "not identified by these runs",
                           "one tokens-per-parameter ratio", warnings=True)
    out = cli("regimes", path)
    assert out.status == 0 and "law view: none, not identified by these runs" in out.out
    assert "underfitting" not in out.out.lower() and "optimal" not in out.out.split("\n", 1)[1]


def test_bad_input_one_error_line_each(tmp_path, cli):
    cases = {
        "one_run": (family([1e8], [1e9]), "one point"),
        "one_point": (family([1e8] * 4, [1e9] * 4, seed=3), "one point"),
        "equal_losses": (law_table().assign(loss=3.0), "losses are equal"),
    }
    for name, (table, fragment) in cases.items():
        path = tmp_path / f"{name}.csv"
        table.to_csv(path, index=False)
        assert_usage_error(cli("fit", path), fragment)
        assert_usage_error(cli("fit", path, "--law", "kaplan_n"), fragment)
    for name, table, axis in (("one_size", family(1e8, np.geomspace(1e9, 1e11, 8)), "N"),
                              ("one_budget", family(SIZES, 3e11), "D")):
        path = tmp_path / f"{name}.csv"
        table.to_csv(path, index=False)
        assert_usage_error(cli("fit", path), f"needs at least 2 distinct values of {axis}",
                           "Laws these runs identify")


def test_auto_considers_only_identified_laws_and_claims_no_comparison_it_did_not_make():
    assert "chinchilla" not in candidate_laws(load_runs(one_ratio()))
    one_d = candidate_laws(load_runs(family(SIZES, 3e11)))
    assert {"kaplan_n", "kaplan_c"} <= set(one_d) and not {"chinchilla", "kaplan_d", "kaplan_nd"} & set(one_d)
    score = CandidateScore("kaplan_n", 0, 0.01, (0.01, 0.012), 0.9, 0.5, 6)
    alone = LawChoice("kaplan_n", 0, (score,), (1e19, 1e20))
    assert "clearly below" not in alone.reason and "was no candidate" in alone.reason
    failed = CandidateScore("chinchilla", 0, np.inf, (), None, None, 0, failed="too few runs")
    assert "was not scored" in LawChoice("kaplan_n", 0, (score, failed), (1e19, 1e20)).reason


def test_intervals_contain_their_point_or_say_why_not():
    result = fit(law_table(), law="chinchilla", bootstrap=50)
    bands = loss_intervals(result, N=1e9, D=2e10)
    point = result.predict(N=1e9, D=2e10)
    assert bands.note is None and bands.mean_lo[0] <= point[0] <= bands.mean_hi[0]
    # refits that settled elsewhere (all E 20 % higher): the interval would exclude the point
    shifted = result.bootstrap_params.copy()
    shifted[:, 0] *= 1.2
    bands = loss_intervals(replace(result, bootstrap_params=shifted), N=1e9, D=2e10)
    assert np.isnan(bands.mean_lo[0]) and "do not surround" in bands.note
    failing = replace(result, n_bootstrap_failed=10)  # 10 of 60 > 5 %
    assert "unreliable" in failing.bootstrap_unreliable
    bands = loss_intervals(failing, N=1e9, D=2e10)
    assert bands.mean_lo is None and bands.run_lo is None and "10 of 60" in bands.note
    assert "no intervals: 10 of 60 bootstrap refits failed" in failing.describe()
    described = predict(failing, N=1e9, D=2e10).describe()
    assert "no interval: 10 of 60" in described and "95 %" not in described.split("loss", 1)[1].split("\n")[0]


def test_predict_and_plan_refuse_an_unconverged_fit_unless_allowed(tmp_path, cli):
    result = replace(fit(law_table(), law="chinchilla"), converged=False)
    path = tmp_path / "fit.json"
    from scaling.fitting.result import save_fit

    save_fit(result, path)
    assert_usage_error(cli("predict", path, "--params", "1B", "--tokens", "20B"), "did NOT converge",
                       "--allow-unconverged")
    allowed = cli("predict", path, "--params", "1B", "--tokens", "20B", "--allow-unconverged")
    assert allowed.status == 0
    assert "warning: predicting from a chinchilla fit that did NOT converge" in allowed.err
    assert_usage_error(cli("plan", "--budget", "1e19", "--target-params", "1B", "--target-tokens", "20B",
                           "--prior", path, "--out", tmp_path / "sweep" / "next.yaml"),
                       "did not converge", "--allow-unconverged")


def _warnings_of(call) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return [str(w.message) for w in caught if issubclass(w.category, ScalingWarning)]


def test_perplexity_and_bits_warnings_fire_and_stay_quiet():
    table = family(SIZES, np.geomspace(1e9, 1e12, 12))
    perplexity = table.assign(loss=np.exp(2 * table.loss))
    assert any("perplexities" in m for m in _warnings_of(lambda: load_runs(perplexity)))
    named = table.rename(columns={"loss": "val_bpb"})
    assert any("named like bits" in m for m in _warnings_of(lambda: load_runs(named, {"loss": "val_bpb"})))
    for source in (CHINCHILLA, ("data/porian2024_isoflop.csv", None), ("data/olmo_ladder_c4.csv", None),
                   ("data/muennighoff_datablations_c4.csv", None), (table, None)):
        assert not any("perplexit" in m or "bits" in m for m in _warnings_of(lambda s=source: load_runs(*s)))


def test_compute_disagreeing_with_6nd_warns_and_stays_quiet():
    table = family(SIZES, np.geomspace(1e9, 1e12, 12))
    off = _warnings_of(lambda: load_runs(table.assign(C=18 * table.N * table.D)))
    assert any("C differs from 6 N D by more than 5%" in m and "factor 3" in m for m in off)
    for source in ((table.assign(C=6.1 * table.N * table.D), None), ("data/porian2024_isoflop.csv", None),
                   CHINCHILLA, ("data/gadre2024_overtraining_c4.csv", None)):
        assert not any("6 N D" in m for m in _warnings_of(lambda s=source: load_runs(*s)))


def test_two_corpora_in_one_table_warn_and_one_law_does_not():
    N, D = (x.ravel() for x in np.meshgrid(np.geomspace(1e7, 1e9, 6), np.geomspace(1e9, 1e11, 5)))
    mixed = pd.concat([family(N, D, seed=2), family(N, D, seed=3, E=2.6)], ignore_index=True)
    assert any("two families" in m for m in _warnings_of(lambda: fit(mixed)))
    gadre = pd.read_csv("data/gadre2024_overtraining_c4.csv")
    for table in (family(N, D, seed=2), load_runs(*CHINCHILLA), load_runs("data/olmo_ladder_c4.csv"),
                  load_runs(gadre[gadre["dataset"] == "rpj"]), law_table()):
        assert not any("two families" in m for m in _warnings_of(lambda t=table: fit(t)))


def test_a_one_dimensional_fit_predicts_along_its_line_only():
    result = fit(one_ratio(), law="kaplan_c")
    assert result.design.off_design(7e9, 140e9) is None  # 20 tokens/param, 2x past the largest run
    on_line = predict(result, N="7B", D="140B")
    assert 2.0 < on_line.loss < 3.0
    for N, D in (("175B", "300B"), ("7B", "30B")):
        with pytest.raises(UsageError, match=r"lies off the runs' design .*one tokens-per-parameter ratio.*"
                                             r"predict along it \(D = "):
            predict(result, N=N, D=D)
    one_d = fit(family(SIZES, 3e11), law="kaplan_n")
    assert one_d.design.off_design(7e10, 3e11) is None and one_d.design.off_design(7e10, 1.4e12) is not None


def test_report_of_a_collinear_ladder_prints_no_allocation_regime_or_plane(tmp_path, cli):
    path = tmp_path / "ratio.csv"
    one_ratio().to_csv(path, index=False)
    done = cli("report", path, "--out", tmp_path / "report", "--bootstrap", "0")
    assert done.status == 0, done.err[-2000:]
    report = (tmp_path / "report" / "report.md").read_text()
    allocation = report.split("## Compute-optimal allocation", 1)[1].split("\n## ", 1)[0]
    assert "is not identified by these runs" in allocation and "|" not in allocation  # no table of numbers
    regimes = report.split("## Regimes", 1)[1].split("\n## ", 1)[0]
    assert "law view (against the compute-optimal D_opt(C)) is not identified" in regimes
    assert "| underfitting |" not in regimes and "| overfitting |" not in regimes
    assert "- nd_plane: the runs lie on one line" in report


def test_report_of_a_four_size_ladder_with_law_auto_claims_no_comparison(tmp_path, cli):
    path = tmp_path / "ratio.csv"
    ladder = one_ratio()
    ladder[ladder["N"] < 3e9].to_csv(path, index=False)  # the OLMo 1x ladder's 4 sizes 190M-1B, reruns too
    done = cli("report", path, "--out", tmp_path / "report", "--law", "auto", "--bootstrap", "50")
    assert done.status == 0, done.err[-2000:]
    report = (tmp_path / "report" / "report.md").read_text()
    choice = report.split("## Law choice and calibrated intervals", 1)[1].split("\n## ", 1)[0]
    assert "saturating_c fitted on all runs without a comparison" in choice
    assert "no law was compared" in choice and "fitted each candidate" not in choice and "|" not in choice
    allocation = report.split("## Compute-optimal allocation", 1)[1].split("\n## ", 1)[0]
    assert "is not identified by these runs" in allocation and "|" not in allocation
