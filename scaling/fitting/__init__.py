"""Law forms and how they are fitted: objective, solvers, bootstrap, backtest, law choice, intervals."""
