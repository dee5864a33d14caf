"""What a fit answers: compute-optimal allocation, regimes, predictions up to 175B, the next sweep."""
