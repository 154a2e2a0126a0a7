"""The signals of the recurrent chapters: the Lorenz integrator against a high-accuracy solve and
against its equations, the sines against their formula, determinism from the seed, and windows
that never share a sample."""
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from biaslearn import dynamics as d


def reference(n, dt, x0):
    """Lorenz by scipy's DOP853 at tolerances far below RK4's error, on the same grid."""
    sol = solve_ivp(lambda t, x: d.lorenz_rhs(x), (0, dt * (n - 1)), x0, method="DOP853",
                    t_eval=dt * np.arange(n), rtol=1e-12, atol=1e-12)
    return sol.y.T


def test_lorenz_matches_a_high_accuracy_solve_at_fourth_order():
    x0, ref = (1.0, 1.0, 1.0), reference(101, 0.02, (1.0, 1.0, 1.0))   # two time units
    err = {k: np.abs(d.lorenz(101, 0.02, x0, substeps=k) - ref).max() for k in (2, 4)}
    assert err[4] < 1e-4                      # the book's step 0.005: |x| up to ~25, so ~1e-6 relative
    assert 12 < err[2] / err[4] < 20          # halving the step divides the error by 2^4 = 16: RK4


def test_lorenz_satisfies_its_equations():
    z = d.lorenz(400, 0.001, (1.0, 2.0, 20.0), substeps=2, transient=5.0)
    deriv = (z[2:] - z[:-2]) / (2 * 0.001)                           # central difference, O(dt^2)
    rhs = d.lorenz_rhs(z[1:-1])
    assert np.abs(deriv - rhs).max() < 1e-3 * np.abs(rhs).max()


def test_lorenz_transient_is_whole_samples_and_state_is_not_mutated():
    x0 = np.array([1.0, 1.0, 1.0])
    long = d.lorenz(60, 0.02, x0)
    assert np.array_equal(d.lorenz(10, 0.02, x0, transient=1.0), long[50:60])
    assert np.array_equal(x0, [1.0, 1.0, 1.0]) and np.array_equal(long[0], x0)


def test_lorenz_stays_on_the_attractor():
    z = d.lorenz(3000, d.LORENZ_DT, d.LORENZ_X0, transient=d.LORENZ_TRANSIENT)
    assert np.abs(z[:, :2]).max() < 30 and 0 < z[:, 2].min() and z[:, 2].max() < 55
    assert (z[:, 0] > 0).mean() > 0.2 and (z[:, 0] < 0).mean() > 0.2   # visits both wings


@pytest.mark.parametrize("kwargs", [dict(n=0), dict(dt=0.0), dict(substeps=0), dict(transient=-1.0)])
def test_lorenz_bad_arguments(kwargs):
    args = dict(n=10, dt=0.01, x0=(1.0, 1.0, 1.0)) | kwargs
    with pytest.raises(ValueError):
        d.lorenz(**args)


def test_sines_on_the_exact_grid():
    x = d.sines(1001, 0.1, (0.3, 1.0, 2.0))
    t = 100.0  # sample 1000, computed independently of arange
    assert x[1000] == pytest.approx(np.sin(t + 0.3) + 0.6 * np.sin(2.3 * t + 1.0) + 0.3 * np.sin(3.7 * t + 2.0), abs=1e-12)


@pytest.mark.parametrize("task,noise", [("sines", 0.0), ("lorenz", 1.0)])
def test_series_is_deterministic_in_the_seed(task, noise):
    a, b, c = (d.series(task, s, (50, 30, 50), 5, noise) for s in (3, 3, 4))
    for w in ("train", "val", "test"):
        assert np.array_equal(a[w], b[w])
        assert not np.allclose(a[w], c[w])


def test_windows_do_not_overlap_and_tile_the_signal():
    sl = d.windows([105, 35, 105])
    idx = [set(range(s.start, s.stop)) for s in sl]
    assert all(not (idx[i] & idx[j]) for i in range(3) for j in range(i + 1, 3))
    assert set.union(*idx) == set(range(245)) and [len(i) for i in idx] == [105, 35, 105]


def test_pairs_stay_inside_their_window():
    """Windows of a ramp: every input and target of a window's pairs is a sample of that window."""
    ramp = np.arange(245.0)
    for s in d.windows([105, 35, 105]):
        X, Y = d.pairs(ramp[s], context=5)
        assert X.shape == (len(ramp[s]) - 5, 5, 1) and Y.shape == (len(ramp[s]) - 5, 1)
        assert X.min() >= s.start and Y.max() <= s.stop - 1
        assert np.array_equal(Y[:, 0], X[:, -1, 0] + 1)                   # the next value
        assert np.array_equal(X[:, :, 0], X[:, :1, 0] + np.arange(5))    # five consecutive values


def test_pairs_need_more_samples_than_the_context():
    with pytest.raises(ValueError, match="no pair"):
        d.pairs(np.zeros(5), context=5)


def test_series_windows_noise_and_normalisation():
    n_pairs, context = (400, 100, 400), 5
    s = d.series("lorenz", 0, n_pairs, context, noise=1.0)
    sl = s["slices"]
    assert (sl["train"].stop, sl["val"].stop) == (sl["val"].start, sl["test"].start)   # train | val | test
    assert [len(s[w]) for w in ("train", "val", "test")] == [p + context for p in n_pairs]
    assert np.array_equal(s["train"], s["clean"]["train"])              # noise never on the training window
    resid = (s["test"] - s["clean"]["test"]) * s["std"]                 # back in signal units
    assert 0.9 < resid.std() < 1.1                                      # N(0, 1) noise
    assert np.allclose(s["train"].mean(0), 0, atol=1e-9) and np.allclose(s["train"].std(0), 1)


def test_unknown_task():
    with pytest.raises(ValueError, match="unknown task"):
        d.series("henon", 0, (10, 10, 10))


def test_coarse_sines_are_the_same_waves_sampled_every_half_time_unit():
    """Same phases per seed: the coarse training window is the fine signal at every fifth sample (before
    normalisation, which each window's task does with its own training statistics)."""
    fine, coarse = d.series("sines", 2, (600, 10, 10), 5), d.series("sines_coarse", 2, (100, 10, 10), 5)
    raw_f = fine["train"] * fine["std"] + fine["mean"]
    raw_c = coarse["train"] * coarse["std"] + coarse["mean"]
    assert d.SINES_COARSE_DT == 5 * d.SINES_DT
    assert np.allclose(raw_c[:, 0], raw_f[::5][:len(raw_c), 0], atol=1e-12)


def test_coarse_step_puts_persistence_under_half_the_variance():
    """The reason for the coarse task: lag-1 autocorrelation <= 0.75, so "no change" explains (about
    2 rho - 1 of the variance) at most half of it; at the paper's step it explains 97%."""
    assert d.sines_autocorrelation(0.0) == pytest.approx(1.0)
    assert d.sines_autocorrelation(d.SINES_DT) == pytest.approx(0.9858, abs=1e-4)
    rho = d.sines_autocorrelation(d.SINES_COARSE_DT)
    assert rho == pytest.approx(0.6895, abs=1e-4) and 2 * rho - 1 <= 0.5
    assert d.SINES_COARSE_DT < np.pi / max(d.SINES_OMEGA)          # under the Nyquist limit of the fastest wave
    for seed in range(5):
        s = d.series("sines_coarse", seed, (2000, 1000, 2000), 5)
        for w in ("train", "test"):
            assert d.lag1(s[w])[0] == pytest.approx(rho, abs=0.01)
            x = s[w][:, 0]
            r2 = 1 - ((x[1:] - x[:-1]) ** 2).sum() / ((x[1:] - x[1:].mean()) ** 2).sum()
            assert r2 == pytest.approx(2 * rho - 1, abs=0.02) and r2 <= 0.5


def test_lag1_per_coordinate():
    t = np.arange(1000.0)
    x = np.stack([np.cos(0.1 * t), np.cos(0.5 * t)], 1)
    assert np.allclose(d.lag1(x), np.cos([0.1, 0.5]), atol=1e-2)
