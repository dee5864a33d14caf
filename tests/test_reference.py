"""One home for C = 6 N D and for the reference models (scaling.reference)."""

import numpy as np
import pandas as pd
import pytest

from scaling.reference import (
    CHINCHILLA_70B,
    CHINCHILLA_BUDGET,
    GPT3_175B,
    params_for_compute,
    tokens_for_compute,
    training_flops,
)
from scaling.shapes import PRESETS, n_params


def test_training_flops_and_its_inverses():
    exact = training_flops(85_000_000, 2_000_000)  # whole counts stay whole (a run summary's flops)
    assert exact == 1_020_000_000_000_000 and isinstance(exact, int)
    # whole N and D read from a CSV are int64 columns; 6 x 70B x 1.4T would overflow int64 (9.2e18)
    table = pd.DataFrame({"N": [70_000_000_000], "D": [1_400_000_000_000]})
    assert training_flops(table["N"], table["D"]).iloc[0] == pytest.approx(5.88e23)
    N, D = np.array([1e8, 7e10]), np.array([2e9, 1.4e12])
    C = training_flops(N, D)
    np.testing.assert_allclose(C, 6 * N * D)
    np.testing.assert_allclose(tokens_for_compute(C, N), D)
    np.testing.assert_allclose(params_for_compute(C, D), N)


def test_reference_models():
    gpt3, chinchilla = GPT3_175B.C, CHINCHILLA_70B.C
    assert gpt3 == pytest.approx(3.15e23) and chinchilla == pytest.approx(5.88e23)
    assert n_params(PRESETS[GPT3_175B.preset]) == pytest.approx(GPT3_175B.N, rel=0.01)
    assert CHINCHILLA_BUDGET < CHINCHILLA_70B.C  # the stated budget, not 6 N D of the rounded N and D
