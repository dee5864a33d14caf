"""The one-command report (`scaling report`), one module per concern, in the order a report is made:

    pipeline       `analyse`: runs -> every result a report shows (`Analysis`), each computed once
    style          the figures' shared look, and the law's curves every figure draws the same way
    figures        figures of the run table and its fit (loss against C, N, D; the (N, D) plane; residuals;
                   learning curves)
    study_figures  figures of what the runs tell (IsoFLOP profiles, allocations, backtest, a planned sweep)
    document       the markdown sections and `write_report`, which writes a report folder
"""
