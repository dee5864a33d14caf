"""The law forms: formulas, analytic derivatives, compute-optimal closed forms."""

import numpy as np
import pytest

from scaling.errors import UsageError
from scaling.fitting.laws import LAW_NAMES, Inputs, Law, get_law

CHINCHILLA = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
THETAS = {  # internal parameters to check derivatives at
    "chinchilla": [0.5, 6.0, 7.0, 0.34, 0.37],
    "chinchilla_tied": [0.5, 6.0, 7.0, 0.35],
    "kaplan_nd": [30.0, 25.0, 0.076, 0.095],
    "kaplan_n": [30.0, 0.076],
    "kaplan_d": [30.0, 0.095],
    "kaplan_c": [60.0, 0.05],
    "saturating_n": [0.5, 6.0, 0.34],
    "saturating_d": [0.6, 7.0, 0.28],
    "saturating_c": [0.4, 3.0, 0.05],
    "data_constrained": [0.5, 6.0, 7.0, 0.34, 0.37, 2.7, 1.6],
}


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(0)
    N = 10 ** rng.uniform(7, 10, 60)
    D = 10 ** rng.uniform(9, 12, 60)
    return Inputs.make(N=N, D=D, U=D / 10 ** rng.uniform(0, 1.5, 60))


def test_registry_names_and_unknown_law():
    assert set(LAW_NAMES) == set(THETAS)
    for name in LAW_NAMES:
        law = get_law(name)
        assert law.name == name and len(law.param_names) == len(THETAS[name])
        assert set(law.units) == set(law.param_names)
    with pytest.raises(UsageError, match="unknown law 'gpt4'"):
        get_law("gpt4")


def test_formulas():
    N, D = np.array([1e8, 7e10]), np.array([2e9, 1.4e12])
    chin = get_law("chinchilla").predict(CHINCHILLA, N=N, D=D)
    expected = 1.69 + 406.4 / N**0.34 + 410.7 / D**0.28
    np.testing.assert_allclose(chin, expected, rtol=1e-12)
    # Chinchilla 70B on 1.4T tokens with the paper's rounded parameters: ~1.94 nats/token
    assert chin[1] == pytest.approx(1.936, abs=0.002)
    kaplan = {"N_c": 8.8e13, "D_c": 5.4e13, "alpha_N": 0.076, "alpha_D": 0.095}
    nd = get_law("kaplan_nd").predict(kaplan, N=N, D=D)
    np.testing.assert_allclose(nd, ((8.8e13 / N) ** (0.076 / 0.095) + 5.4e13 / D) ** 0.095, rtol=1e-12)
    c = get_law("kaplan_c").predict({"C_c": 2.3e8 * 8.64e19, "alpha_C": 0.05}, N=N, D=D)
    np.testing.assert_allclose(c, (2.3e8 * 8.64e19 / (6 * N * D)) ** 0.05, rtol=1e-12)
    # any two of N, D, C; scalars broadcast against arrays
    np.testing.assert_allclose(get_law("chinchilla").predict(CHINCHILLA, N=N, C=6 * N * D), chin, rtol=1e-12)
    assert get_law("chinchilla").predict(CHINCHILLA, N=1e9, D=[1e10, 1e11]).shape == (2,)


def test_data_constrained_reduces_to_chinchilla_without_repeats():
    law = get_law("data_constrained")
    params = {**CHINCHILLA, "R_D_star": 15.4, "R_N_star": 5.3}
    N, D = np.array([1e8, 1e9]), np.array([1e10, 1e12])  # models no larger than their data's N_opt
    n_eff, d_eff = law.effective_sizes(params, N=N, D=D, U=D * 10)
    np.testing.assert_allclose(n_eff, N, rtol=1e-12)
    np.testing.assert_allclose(d_eff, D, rtol=1e-12)
    fresh = law.predict(params, N=N, D=D, U=D * 10)  # unique data to spare: D' = D, N' = N
    np.testing.assert_allclose(fresh, get_law("chinchilla").predict(CHINCHILLA, N=N, D=D), rtol=1e-12)
    # 4 epochs of U: D' = U (1 + R* (1 - exp(-3 / R*))) < D, so the loss is higher than on fresh data
    n_eff, d_eff = law.effective_sizes(params, N=N, D=D, U=D / 4)
    np.testing.assert_allclose(d_eff, D / 4 * (1 + 15.4 * (1 - np.exp(-3 / 15.4))), rtol=1e-12)
    assert np.all(law.predict(params, N=N, D=D, U=D / 4) > fresh)
    # a model far larger than N_opt of its data: its excess parameters are worth less (N' < N)
    n_eff, _ = law.effective_sizes(params, N=[1e12], D=[1e10], U=[1e11])
    assert 0 < n_eff[0] < 1e12
    with pytest.raises(UsageError, match="U \\(unique tokens"):
        law.predict(params, N=N, D=D)


@pytest.mark.parametrize("name", LAW_NAMES)
def test_analytic_derivatives_match_finite_differences(name, inputs):
    law = get_law(name)
    theta = np.array([THETAS[name], np.array(THETAS[name]) * 1.02])  # a batch of two
    value, jac = law.jacobian(theta, inputs)
    value_fd, jac_fd = Law.jacobian(law, theta, inputs)  # the generic central differences
    np.testing.assert_allclose(value, value_fd, rtol=1e-12)
    np.testing.assert_allclose(jac, jac_fd, rtol=1e-6, atol=1e-8 * np.abs(jac).max())
    c = np.random.default_rng(1).normal(size=value.shape)
    hess = law.weighted_hessian(theta, inputs, c)
    np.testing.assert_allclose(
        hess, Law.weighted_hessian(law, theta, inputs, c), rtol=1e-4, atol=1e-6 * np.abs(hess).max()
    )
    single_value, single_jac = law.jacobian(theta[0], inputs)
    np.testing.assert_allclose(single_jac, jac[0])


@pytest.mark.parametrize(
    "name, params",
    [
        ("chinchilla", CHINCHILLA),
        ("chinchilla_tied", {"E": 1.87, "A": 520.6, "B": 1488.0, "alpha": 0.353}),
        ("kaplan_nd", {"N_c": 8.8e13, "D_c": 5.4e13, "alpha_N": 0.076, "alpha_D": 0.095}),
    ],
)
def test_compute_optimal_is_the_minimum_along_each_budget(name, params):
    law = get_law(name)
    optimal = law.compute_optimal(params)
    assert optimal.a + optimal.b == pytest.approx(1.0)
    for C in (1e19, 1e22, 5.76e23):
        N = np.geomspace(1e5, 1e14, 200001)
        loss = law.predict(params, N=N, C=C)
        best = N[np.argmin(loss)]
        assert optimal.G * (C / 6) ** optimal.a == pytest.approx(best, rel=1e-3)
    assert get_law("kaplan_n").compute_optimal({"N_c": 1e13, "alpha_N": 0.07}) is None


def test_chinchilla_closed_form_reproduces_known_allocations():
    # Epoch's refit: about 17.6 tokens per parameter for 175B; the rounded paper parameters about 133
    for params, ratio in (
        ({"E": 1.817, "A": 482.0, "B": 2085.4, "alpha": 0.3478, "beta": 0.3658}, 17.6),
        (CHINCHILLA, 133.0),
    ):
        o = get_law("chinchilla").compute_optimal(params)
        C = 6 * (175e9 / o.G) ** (1 / o.a)  # the budget whose optimal N is 175B
        assert (C / 6) ** o.b / o.G / 175e9 == pytest.approx(ratio, rel=0.02)


def test_too_few_distinct_sizes_is_a_usage_error():
    law = get_law("chinchilla")
    with pytest.raises(UsageError, match="2 distinct values of N"):
        law.check_data(Inputs.make(N=[1e8, 1e8, 1e8], D=[1e9, 2e9, 3e9]))
