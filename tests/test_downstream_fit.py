"""Downstream accuracy (scaling.fitting.downstream): a synthetic ladder with a known task-loss law and a known
sigmoid is recovered, predictions carry intervals through both steps, reruns give the noise, bad input is
refused in one line, and fits survive JSON."""

import json
import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from scaling.errors import ScalingWarning, UsageError
from scaling.fitting.downstream import (
    BHAGIA2024,
    METHODS,
    Sigmoid,
    TaskFit,
    TaskMethod,
    TaskPoints,
    fit_task,
    step1_law,
)

SIZES = (1.9e8, 3.7e8, 7.6e8, 1.3e9)
MULTIPLES = (1, 2, 5, 10)  # x 20 tokens per parameter, as the OLMo ladder
LAW = {"E": 0.5, "A": 100.0, "B": 400.0, "alpha": 0.3, "beta": 0.3}  # task loss (bits per byte)
SIGMOID = Sigmoid(floor=0.25, ceiling=0.9, k=5.0, x0=1.1)
# the generating law and sigmoid exactly, nothing the ladder method adds (smoothing, skip, ideal point)
EXACT = TaskMethod("exact", smooth=1, skip=0.0, free_floor=False, anchor=False, law="chinchilla")


def task_loss(N, D):
    return LAW["E"] + LAW["A"] / np.asarray(N) ** LAW["alpha"] + LAW["B"] / np.asarray(D) ** LAW["beta"]


def ladder(noise=0.0, reruns=0, checkpoints=10, sigmoid=SIGMOID, seed=0, sizes=SIZES, rerun_noise=0.0):
    """A ladder: `checkpoints` evaluations per run (the last final), accuracy = sigmoid(task loss) + noise;
    `reruns` extra runs of the 1x setting of each size whose final accuracy differs by `rerun_noise` (sd)."""
    rng = np.random.default_rng(seed)
    rows = []
    for N in sizes:
        for m in MULTIPLES:
            for r in range(1 + (reruns if m == 1 else 0)):
                shift = rng.normal(0, rerun_noise) if r else 0.0
                for f in np.linspace(1 / checkpoints, 1, checkpoints):
                    D = f * m * 20 * N
                    x = task_loss(N, D) * (1 + 1e-3 * r)  # a rerun's task loss differs a little too
                    acc = float(sigmoid(x)) + rng.normal(0, noise) + (shift if f == 1 else 0.0)
                    rows.append((N, D, x, acc, f == 1, f"{N:g}-{m}x-{r}"))
    N, D, x, acc, final, run = map(np.array, zip(*rows, strict=True))
    return TaskPoints(
        task="synthetic", chance=0.25, N=N, D=D, accuracy=acc, task_loss=x, final=final, run=run
    )


def subset(points, keep):
    """The rows `keep` (a mask) of `points`."""
    return TaskPoints(
        task=points.task, chance=points.chance, N=points.N[keep], D=points.D[keep],
        accuracy=points.accuracy[keep], task_loss=points.task_loss[keep], final=points.final[keep],
        run=points.run[keep],
    )


def test_recovers_the_law_and_the_sigmoid():
    fitted = fit_task(ladder(), bootstrap=0, method=EXACT)
    assert fitted.two_step and fitted.step1.law == "chinchilla"
    for k, v in LAW.items():
        assert fitted.step1.params[k] == pytest.approx(v, rel=1e-3)
    s = fitted.sigmoid
    assert (s.floor, s.ceiling, s.k, s.x0) == pytest.approx((0.25, 0.9, 5.0, 1.1), rel=1e-4)
    target = fitted.predict(13e9, 5e12)
    assert target.task_loss == pytest.approx(task_loss(13e9, 5e12), rel=1e-6)
    assert target.accuracy == pytest.approx(float(SIGMOID(task_loss(13e9, 5e12))), abs=1e-4)


def test_step1_reads_the_mean_of_the_last_checkpoints():
    # each run's last 5 task losses scatter around the law at its final D, the last one 2 % high
    points = ladder()
    x = points.task_loss.copy()
    for run in np.unique(points.run):
        last = np.flatnonzero(points.run == run)[-5:]
        x[last] = task_loss(points.N[last[-1]], points.D[last[-1]]) * (1 + np.array([-2, -1, 0, 1, 2]) / 100)
    noisy = TaskPoints(task="t", chance=0.25, N=points.N, D=points.D, accuracy=points.accuracy, task_loss=x,
                       final=points.final, run=points.run)
    mean5 = TaskMethod("mean5", smooth=5, skip=0.0, law="chinchilla")
    assert fit_task(noisy, bootstrap=0, method=mean5).step1.params["E"] == pytest.approx(LAW["E"], rel=1e-3)
    last1 = fit_task(noisy, bootstrap=0, method=EXACT).step1  # the final checkpoint alone: 2 % high
    assert last1.predict(N=[1e9], D=[2e10])[0] == pytest.approx(1.02 * task_loss(1e9, 2e10), rel=2e-3)


def test_default_method_predicts_a_larger_model_within_its_interval():
    # Bhagia et al.'s ideal point (loss 0, accuracy 1) holds for a sigmoid that rises to 1
    truth_sigmoid = Sigmoid(floor=0.25, ceiling=1.0, k=4.0, x0=1.0)
    points = ladder(noise=0.005, sigmoid=truth_sigmoid)
    fitted = fit_task(points, bootstrap=40, seed=1)
    assert fitted.method == "ladder" and fitted.step1.law == "chinchilla_tied"
    p = fitted.predict(13e9, 5e12)
    truth = float(truth_sigmoid(task_loss(13e9, 5e12)))
    assert p.accuracy == pytest.approx(truth, abs=0.02)
    lo, hi = p.accuracy_ci
    assert lo <= truth <= hi and lo < p.accuracy < hi
    assert p.task_loss_ci[0] <= p.task_loss <= p.task_loss_ci[1]
    assert p.within_noise is None  # no reruns: no run-to-run spread to compare with


def test_published_method_fits_the_floor_and_uses_the_ideal_point():
    # the ideal point pulls the ceiling to 1 where the data alone say 0.9: the published method's bias
    fitted = fit_task(ladder(), bootstrap=0, method="bhagia2024")
    assert fitted.method == BHAGIA2024.name == "bhagia2024" and fitted.step1.law == "chinchilla"
    assert fitted.sigmoid.ceiling > 0.95
    assert fitted.n_points == 16 * 9  # each run's first 10 % (1 of 10 checkpoints) left out
    half = TaskMethod("half", smooth=3, skip=0.5, free_floor=True, anchor=True)
    assert fit_task(ladder(), bootstrap=0, method=half).n_points == 16 * 5
    assert fit_task(ladder(), bootstrap=0, method=EXACT).sigmoid.ceiling == pytest.approx(0.9, abs=1e-3)


def test_no_interval_when_step1_refits_fail():
    fitted = fit_task(ladder(noise=0.005), bootstrap=20)
    assert fitted.predict(13e9, 5e12).accuracy_ci is not None
    # more than 5 % of the resamples lost: the rest could miss a whole tail, as FitResult says
    failing = replace(fitted, step1=replace(fitted.step1, n_bootstrap_failed=5))
    p = failing.predict(13e9, 5e12)
    assert p.accuracy_ci is None and p.task_loss_ci is None and p.within_noise is None
    assert p.accuracy == fitted.predict(13e9, 5e12).accuracy
    assert "no intervals: 5 of 25 bootstrap refits failed" in failing.describe()


def test_reruns_give_the_noise_and_within_noise():
    points = ladder(noise=0.002, reruns=2, rerun_noise=0.01, seed=3)
    fitted = fit_task(points, bootstrap=30)
    assert fitted.noise is not None and 0.004 < fitted.noise < 0.02
    p = fitted.predict(13e9, 5e12)
    half = (p.accuracy_ci[1] - p.accuracy_ci[0]) / 2
    assert p.within_noise is (half <= fitted.noise)
    assert fit_task(ladder(), bootstrap=0).noise is None


def test_one_step_through_the_lm_loss():
    points = ladder()
    one = TaskPoints(
        task="t", chance=0.25, N=points.N, D=points.D, accuracy=points.accuracy, loss=points.task_loss,
        final=points.final, run=points.run,
    )
    fitted = fit_task(one, bootstrap=10)
    assert not fitted.two_step
    p = fitted.predict(13e9, 5e12)
    assert p.task_loss is None and p.task_loss_ci is None and p.accuracy_ci is not None
    assert "one step" in fitted.describe()


def test_json_round_trip():
    fitted = fit_task(ladder(noise=0.003, reruns=1, rerun_noise=0.01), bootstrap=15)
    doc = json.loads(json.dumps(fitted.to_json()))
    assert doc["format"] == "scaling.task_fit/1" and doc["method"] == "ladder"
    again = TaskFit.from_json(doc)
    assert again.predict(7e9, 4e12) == fitted.predict(7e9, 4e12)
    assert again.noise == fitted.noise and again.sigmoid == fitted.sigmoid
    pred = json.loads(json.dumps(fitted.predict(7e9, 4e12).to_json()))
    assert pred["format"] == "scaling.task_prediction/1"
    assert set(pred) >= {
        "task", "N", "D", "accuracy", "accuracy_ci", "task_loss", "task_loss_ci", "within_noise"
    }
    assert "TaskFit(task='synthetic'" in repr(fitted) and len(repr(fitted)) < 400
    assert "run-to-run spread of final accuracy" in fitted.describe()
    assert "95 % CI" in fitted.predict(7e9, 4e12).describe()
    with pytest.raises(UsageError, match="not a task fit"):
        TaskFit.from_json({"format": "scaling.fit/1"})
    with pytest.raises(UsageError, match="malformed task fit"):
        TaskFit.from_json({"format": "scaling.task_fit/1", "task": "t"})


def test_step1_law_falls_back_on_few_runs():
    four = ladder(sizes=SIZES[:2])  # 8 runs: the tied law (4 parameters) is identified
    assert fit_task(four, bootstrap=0).step1.law == "chinchilla_tied"
    points = ladder()
    one_each = [f"{n:g}-{m}x-0" for n, m in zip(SIZES, MULTIPLES, strict=True)]  # D/N grows with N
    diagonal = subset(points, np.isin(points.run, one_each))
    fitted = fit_task(diagonal, bootstrap=0)  # 4 runs: no point to spare for the 4 parameters of the tied law
    assert fitted.step1.law == "saturating_c" and fitted.n_runs == 4
    f = diagonal.final
    table = pd.DataFrame({"N": diagonal.N[f], "D": diagonal.D[f], "loss": diagonal.task_loss[f]})
    assert step1_law(table.assign(C=6 * table.N * table.D), METHODS["ladder"]) == "saturating_c"
    assert step1_law(table.assign(C=6 * table.N * table.D), EXACT) == "saturating_c"


# ---- bad input -------------------------------------------------------------------------------------------
def test_fewer_than_four_runs_refused():
    points = ladder()
    few = subset(points, np.isin(points.run, points.run[points.final][:3]))
    with pytest.raises(UsageError, match="3 distinct final .* at least 4 runs"):
        fit_task(few)


def test_reruns_do_not_count_as_runs():
    points = ladder(reruns=3, rerun_noise=0.01)
    few = subset(points, np.array([r.startswith(f"{SIZES[0]:g}-") and "-10x-" not in r for r in points.run]))
    assert len(set(few.run)) == 6  # 1x four times, 2x, 5x
    with pytest.raises(UsageError, match="3 distinct final"):
        fit_task(few)
    with pytest.raises(UsageError, match="no evaluations"):
        TaskPoints(task="t", chance=0.25, N=[], D=[], accuracy=[], task_loss=[])


def test_percent_accuracy_converted_with_a_warning():
    points = ladder()
    with pytest.warns(ScalingWarning, match="read as percent"):
        pct = TaskPoints(task="t", chance=0.25, N=points.N, D=points.D, accuracy=100 * points.accuracy,
                         task_loss=points.task_loss, final=points.final, run=points.run)
    assert np.allclose(pct.accuracy, points.accuracy)


@pytest.mark.parametrize("bad", [-0.1, 101.0, np.nan])
def test_accuracy_outside_range_refused(bad):
    points = ladder()
    acc = points.accuracy.copy()
    acc[3] = bad
    with pytest.raises(UsageError, match="accuracy"), warnings.catch_warnings():
        warnings.simplefilter("ignore", ScalingWarning)
        TaskPoints(task="t", chance=0.25, N=points.N, D=points.D, accuracy=acc, task_loss=points.task_loss)


def test_task_at_chance_is_not_yet_predictable():
    flat = Sigmoid(floor=0.25, ceiling=0.9, k=5.0, x0=-2.0)  # the rise is far below these losses
    with pytest.raises(UsageError, match="not yet predictable at these scales"):
        fit_task(ladder(noise=0.003, sigmoid=flat), bootstrap=0)


def test_reruns_that_agree_do_not_shrink_the_chance_margin():
    # identical reruns (spread 0) of a task 0.01 above chance: still not predictable
    barely = Sigmoid(floor=0.25, ceiling=0.26, k=5.0, x0=-2.0)
    with pytest.raises(UsageError, match="within 0.020 of chance"):
        fit_task(ladder(reruns=2, sigmoid=barely), bootstrap=0)


def test_other_bad_input():
    points = ladder()
    with pytest.raises(UsageError, match="task loss or the LM loss"):
        TaskPoints(task="t", chance=0.25, N=points.N, D=points.D, accuracy=points.accuracy)
    with pytest.raises(UsageError, match="`D` has 3 values"):
        TaskPoints(task="t", chance=0.25, N=points.N, D=points.D[:3], accuracy=points.accuracy,
                   task_loss=points.task_loss)
    with pytest.raises(UsageError, match="give `run`"):
        TaskPoints(task="t", chance=0.25, N=points.N, D=points.D, accuracy=points.accuracy,
                   task_loss=points.task_loss, final=points.final)
    with pytest.raises(UsageError, match="`chance` must be in"):
        TaskPoints(task="t", chance=1.5, N=points.N, D=points.D, accuracy=points.accuracy,
                   task_loss=points.task_loss)
    with pytest.raises(UsageError, match="`method` must be a TaskMethod or one of ladder, bhagia2024"):
        fit_task(points, method="magic")
    with pytest.raises(UsageError, match="`bootstrap` must be >= 0"):
        fit_task(points, bootstrap=-1)
    with pytest.raises(UsageError, match="N and D must be positive"):
        fit_task(points, bootstrap=0).predict(0, 1e12)
