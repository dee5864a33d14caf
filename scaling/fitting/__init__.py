"""Law forms and how they are fitted, one concern a module:

laws (the forms), data (the runs a fit reads), objective (the robust loss), solvers (global search, Newton,
L-BFGS, the classic grid), procedure (`fit`, joint or two-stage), bootstrap (resampled refits), intervals
(percentile and loss intervals), result (`FitResult` and its JSON), optimal (the compute-optimal split),
likelihood (the likelihood-ratio test), backtest (extrapolation checks) and select (law choice).
"""
