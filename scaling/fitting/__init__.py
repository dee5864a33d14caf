"""Law forms and how they are fitted, one concern a module:

laws (the forms), optimal (the compute-optimal split), data (the runs a fit reads), objective (the robust
loss), solvers (global search, Newton, L-BFGS, the classic grid), bootstrap (resampled refits), intervals
(percentile and loss intervals), result (`FitResult` and its JSON), procedure (`fit`, joint or two-stage),
likelihood (the likelihood-ratio test), backtest (single hold-out and rolling), choice (the law choice's
result), select (law choice by rolling backtest) and downstream (task accuracy from a ladder: task loss,
then a sigmoid).
"""
