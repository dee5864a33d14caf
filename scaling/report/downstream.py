"""The downstream tasks of a report: one figure per task and the section's table.

Each task's figure has two panels: accuracy against the loss its sigmoid reads (task loss, or LM loss in one
step), every checkpoint with the fitted sigmoid and the chance level; and accuracy against training compute C,
the runs' final points with the prediction along the largest run's tokens per parameter (its 95 % band,
and dotted, the prediction +- the run-to-run spread: an interval inside them is within noise) out to
`EXTEND` times the ladder's compute. Units: C FLOPs, N params, accuracy a fraction.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from scaling.errors import FigureNotSupported
from scaling.reference import training_flops
from scaling.report.style import SIZE_CMAP, add_size_colorbar, log_axes, new_figure, size_norm, styled
from scaling.study.downstream import DownstreamFit, TaskResult
from scaling.units import format_quantity

EXTEND = 30.0  # the compute panel runs to this multiple of the largest run's C
GRID = 40  # points of the predicted accuracy against C


def figure_name(index: int) -> str:
    """The file stem of the i-th task's figure (task names may hold slashes and spaces)."""
    return f"downstream_{index + 1}"


def figure_title(result: TaskResult) -> str:
    via = "task loss" if result.fit.two_step else "LM loss"
    return f"Downstream task {result.task}: accuracy against {via} (sigmoid) and against compute"


@styled
def plot_task(result: TaskResult) -> Figure:
    """Accuracy against the fitted loss with the sigmoid, and against C with the prediction (module doc)."""
    points, fit = result.points, result.fit
    if points is None:
        raise FigureNotSupported("the task's checkpoints are not at hand (a fit read from JSON)")
    fig, (left, right) = new_figure(ncols=2, width=9.6, height=4.0)
    norm = size_norm(points.N)
    final = points.final
    x = points.x
    left.scatter(x[~final], points.accuracy[~final], c=points.N[~final], cmap=SIZE_CMAP, norm=norm, s=9,
                 alpha=0.5, edgecolors="none", label="earlier checkpoint")
    left.scatter(x[final], points.accuracy[final], c=points.N[final], cmap=SIZE_CMAP, norm=norm, s=22,
                 edgecolors="0.2", linewidths=0.5, zorder=3, label="final")
    ratio = result.largest_D / result.largest_N
    c_top = float(training_flops(result.largest_N, result.largest_D)) * EXTEND
    far = fit.predict(np.sqrt(c_top / (6 * ratio)), np.sqrt(c_top / (6 * ratio)) * ratio)
    far_x = far.task_loss if fit.two_step else float(fit.step1.predict(N=[far.N], D=[far.D])[0])
    span = np.linspace(min(float(x.min()), far_x), float(x.max()), 200)
    pad = 0.05 * float(np.ptp(span) or 1.0)
    span = np.linspace(span[0] - pad, span[-1] + pad, 200)
    left.plot(span, fit.sigmoid(span), color="0.15", label="fitted sigmoid")
    left.axhline(fit.chance, color="0.5", ls="--", lw=0.8, label=f"chance {fit.chance:.3g}")
    left.set_xlabel("task loss (as logged)" if fit.two_step else "LM loss (nats/token)")
    left.set_ylabel("accuracy")
    left.set_title(f"{result.task}: accuracy against {'task' if fit.two_step else 'LM'} loss")
    left.legend(loc="best")

    C = training_flops(points.N, points.D)
    right.scatter(C[final], points.accuracy[final], c=points.N[final], cmap=SIZE_CMAP, norm=norm, s=22,
                  edgecolors="0.2", linewidths=0.5, zorder=3, label="final points")
    grid = np.geomspace(float(C[final].min()) / 1.5, c_top, GRID)
    n_grid = np.sqrt(grid / (6 * ratio))
    predictions = [fit.predict(n, n * ratio) for n in n_grid]
    right.plot(grid, [p.accuracy for p in predictions], color="0.15",
               label=f"predicted at {ratio:.3g} tokens/param")
    if all(p.accuracy_ci is not None for p in predictions):
        lo, hi = zip(*(p.accuracy_ci for p in predictions), strict=True)
        right.fill_between(grid, lo, hi, color="0.15", alpha=0.15, lw=0, label="95 % interval")
    right.errorbar([far.N * far.D * 6], [far.accuracy], fmt="D", color="#c0392b", ms=5, zorder=4,
                   yerr=None if far.accuracy_ci is None else [[far.accuracy - far.accuracy_ci[0]],
                                                              [far.accuracy_ci[1] - far.accuracy]],
                   label=f"prediction: {format_quantity(far.N)} params, {format_quantity(far.D)} tokens")
    right.axhline(fit.chance, color="0.5", ls="--", lw=0.8)
    if fit.noise is not None:  # an interval inside these lines is within noise
        central = np.array([p.accuracy for p in predictions])
        for sign in (-1, 1):
            right.plot(grid, central + sign * fit.noise, color="#2471a3", ls=":", lw=1.0,
                       label=f"prediction ± run-to-run spread {fit.noise:.3f}" if sign > 0 else None)
    log_axes(right)
    right.set_xlabel("training compute C = 6ND (FLOPs)")
    right.set_ylabel("accuracy")
    right.set_title("accuracy against compute")
    right.legend(loc="best")
    add_size_colorbar(fig, [left, right], norm)
    return fig


def section(result: DownstreamFit | None, skipped: str | None) -> str:
    """The report's markdown section on the downstream tasks ('' when the runs carry none)."""
    if result is None:
        return "" if skipped is None else f"## Downstream tasks\n\nNot fitted: {skipped}\n"
    rows = []
    for t in result.tasks:
        at = t.at_largest()
        where = f"{format_quantity(t.largest_N)}, {format_quantity(t.largest_D)}"
        rows.append(
            f"| {t.task} | `{t.columns.accuracy}` | "
            + (f"`{t.columns.task_loss}`" if t.columns.task_loss else "LM loss (one step)")
            + f" | {t.fit.n_runs} | {t.fit.n_points} "
            f"| {at.accuracy:.4f} / {t.largest_accuracy:.4f} ({where}) "
            f"| {'unknown' if t.fit.noise is None else f'{t.fit.noise:.4f}'} |"
        )
    text = [
        "## Downstream tasks\n",
        "Each task's accuracy fitted in two steps, (N, D) -> task loss -> accuracy (a sigmoid), or "
        "through the LM loss where no task loss is logged (`scaling downstream`, "
        "docs/downstream.md). Spread: the standard deviation of the final accuracy over reruns of one "
        "(N, D).\n",
        "| task | accuracy column | fitted through | runs | checkpoints | fitted / seen at the largest run "
        "(N, D) | run-to-run spread |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]
    if result.skipped:
        text.append("\nNot fitted:\n\n" + "\n".join(f"- {k}: {v}" for k, v in result.skipped.items()))
    return "\n".join(text) + "\n"
