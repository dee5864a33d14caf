"""Training side: one GPT run from a config to a run folder, and sweeps of them (torch, Hydra).

Imports nothing from the analysis side (runs, fitting, study, report).
"""
