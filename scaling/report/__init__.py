"""Figures and the one-command report (`scaling report`)."""
