"""The tasks chapter's package code: task generators, the reaching plant, the fast RNN path, the fixed-point
finder, and one tiny run of each task through the real entry point."""
import math

import numpy as np
import pytest
import torch

from biaslearn import fixedpoints as fp
from biaslearn import nets, report, tasks
from biaslearn.config import ConfigError


# --- 3-bit flip-flop -------------------------------------------------------------------------------------------

def test_flipflop_shapes_pulse_statistics_and_targets():
    x, y = tasks.flipflop(2000, seed=3, split="train", T=50)
    assert x.shape == y.shape == (2000, 50, 3)
    pulses = x != 0
    assert set(torch.unique(x).tolist()) == {-1.0, 0.0, 1.0}
    assert abs(pulses.float().mean().item() - tasks.FF_P) < 0.003              # 300,000 Bernoulli(0.05) draws
    assert abs((x[pulses] > 0).float().mean().item() - 0.5) < 0.01              # signs balanced
    # the target is the sign of the last pulse, 0 before the first
    n, c = 7, 1
    last = 0.0
    for t in range(50):
        if x[n, t, c] != 0:
            last = float(x[n, t, c])
        assert y[n, t, c] == last
    # splits and seeds draw different trials; the same (seed, split) the same trials
    assert torch.equal(tasks.flipflop(5, 3, "val", 50)[0], tasks.flipflop(5, 3, "val", 50)[0])
    assert not torch.equal(tasks.flipflop(5, 3, "val", 50)[0], tasks.flipflop(5, 3, "test", 50)[0])


def test_the_hand_written_latch_scores_perfectly_and_a_constant_scores_chance():
    x, y = tasks.flipflop(500, seed=0, split="test", T=50)
    assert tasks.flipflop_accuracy(tasks.flipflop_solution(x), x, y) == 1.0
    assert abs(tasks.flipflop_accuracy(torch.ones_like(y), x, y) - 0.5) < 0.03
    held = tasks.held(x, y)
    assert not held[x != 0].any() and not held[y == 0].any() and held.any()


# --- Delayed match-to-sample --------------------------------------------------------------------------------------

def test_dms_follows_neurogyms_timing_inputs_and_labels():
    P = tasks.dms_periods()
    assert [s.stop - s.start for s in P.values()] == [3, 5, 10, 5, 9]           # neurogym's ms / dt = 100 ms
    x, y, match = tasks.dms(4000, seed=1, split="train")
    assert x.shape == (4000, 32, 3) and y.shape == (4000, 32) and match.shape == (4000,)
    assert (x[:, :P["decision"].start, 0] == 1).all() and (x[:, P["decision"], 0] == 0).all()
    assert (x[:, P["delay"], 1:] == 0).all() and (x[:, P["fixation"], 1:] == 0).all()
    noise = x[:, P["sample"], 1:] - x[:, P["sample"], 1:].round()               # stimuli are 0 or 1 plus noise
    assert abs(noise.std().item() - 0.1) < 0.005
    assert abs(match.float().mean().item() - 0.5) < 0.03
    assert (y[:, :P["decision"].start] == 0).all()
    assert torch.equal(y[:, P["decision"].start], torch.where(match, 1, 2))


def test_the_hand_written_dms_solution_scores_perfectly():
    x, y, match = tasks.dms(1000, seed=2, split="test")
    out = tasks.dms_solution(x)
    assert tasks.dms_accuracy(out, match) == 1.0
    assert torch.equal(out.argmax(2), y)                                         # right at every step
    assert abs(tasks.dms_accuracy(torch.zeros_like(out).index_fill_(2, torch.tensor([1]), 1.0), match) - 0.5) < 0.05


# --- Reaching: the plant and the trials --------------------------------------------------------------------------

def test_a_constant_force_gives_the_analytic_trajectory():
    """m dv/dt = u - k v from rest: v(t) = (u/k)(1 - e^(-kt/m)), p(t) = (u/k) t - (u/k)(m/k)(1 - e^(-kt/m))."""
    T, u0 = 60, torch.tensor([2.0, -0.5], dtype=torch.float64)
    u = u0.expand(1, T, 2).clone()
    p, v = tasks.plant(u)
    t = tasks.REACH_DT * torch.arange(1, T + 1, dtype=torch.float64)[:, None]   # after each step
    m, k = tasks.MASS, tasks.DAMPING
    decay = 1 - torch.exp(-k * t / m)
    assert torch.allclose(v[0], (u0 / k) * decay, atol=1e-12)
    assert torch.allclose(p[0], (u0 / k) * t - (u0 / k) * (m / k) * decay, atol=1e-12)


def test_the_plant_kernel_equals_stepping_the_exact_update():
    u = torch.randn(3, 40, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    a = math.exp(-tasks.DAMPING * tasks.REACH_DT / tasks.MASS)
    p, v, P = torch.zeros(3, 2, dtype=torch.float64), torch.zeros(3, 2, dtype=torch.float64), []
    for t in range(40):
        f = u[:, t] / tasks.DAMPING
        p = p + f * tasks.REACH_DT + (tasks.MASS / tasks.DAMPING) * (1 - a) * (v - f)
        v = a * v + (1 - a) * f
        P.append(p)
    assert torch.allclose(tasks.plant(u)[0], torch.stack(P, 1), atol=1e-12)


def test_reach_trials_and_a_hand_written_controller():
    b = tasks.reach(16, angles=tasks.TRAINED, delay=20)
    T = tasks.REACH_T
    assert b["x"].shape == (16, T, 3) and b["desired"].shape == (16, T, 2) and b["mask"].shape == (16, T)
    assert torch.allclose(b["target"].norm(dim=1), torch.ones(16))
    assert (b["x"][:, :tasks.REACH_HOLD, :2] == 0).all() and (b["x"][:, tasks.REACH_HOLD:, :2] != 0).any()
    go = tasks.REACH_HOLD + 20
    assert (b["x"][:, :go, 2] == 0).all() and (b["x"][:, go:, 2] == 1).all()
    assert not b["mask"][:, go:go + tasks.REACH_MOVE].any() and b["mask"][:, :go].all()
    held = tasks.reach(4000, seed=0, split="test", angles=tasks.HELD_OUT)
    ang = torch.rad2deg(torch.atan2(held["target"][:, 1], held["target"][:, 0])) % 45
    assert torch.allclose(ang, torch.full_like(ang, 22.5), atol=1e-3)           # rotated by 22.5 degrees
    # zero force leaves the hand at the centre: error 1 radius; a PD controller with the state reaches
    assert tasks.reach_error(tasks.plant(torch.zeros(16, T, 2))[0], b) == pytest.approx(1.0)
    a = math.exp(-tasks.DAMPING * tasks.REACH_DT / tasks.MASS)
    p, v, U = torch.zeros(16, 2), torch.zeros(16, 2), []
    for t in range(T):
        goal = b["target"] if t >= go else torch.zeros(16, 2)
        f = (40.0 * (goal - p) - 10.0 * v) / tasks.DAMPING                      # u / k
        U.append(f * tasks.DAMPING)
        p = p + f * tasks.REACH_DT + (tasks.MASS / tasks.DAMPING) * (1 - a) * (v - f)
        v = a * v + (1 - a) * f
    assert tasks.reach_error(tasks.plant(torch.stack(U, 1))[0], b) < 0.01


# --- The fast path and the fixed points --------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["bias", "full"])
def test_the_fused_rnn_equals_the_plain_network_outputs_and_gradients(mode):
    a = nets.RandomRNN(3, 24, 2, mode, seed=5, init="gaussian", scale=1.0, gain=1.5)
    b = nets.RandomRNN(3, 24, 2, mode, seed=5, init="gaussian", scale=1.0, gain=1.5)
    x = torch.randn(4, 30, 3, generator=torch.Generator().manual_seed(1))
    ya, yb = a(x), tasks.forward(b, x)
    assert torch.allclose(ya, yb, atol=1e-6)
    ya.square().sum().backward()
    yb.square().sum().backward()
    for name in ("b",) + (("W_rec", "W_in", "W_out") if mode == "full" else ()):
        assert torch.allclose(getattr(a, name).grad, getattr(b, name).grad, rtol=1e-4, atol=1e-6), name
    assert torch.allclose(tasks.forward(b, x, states=True), a.states(x), atol=1e-6)


def test_the_finder_recovers_a_linear_systems_fixed_point():
    g = torch.Generator().manual_seed(0)
    A = 0.3 * torch.randn(5, 5, generator=g, dtype=torch.float64) / math.sqrt(5)
    c = torch.randn(5, generator=g, dtype=torch.float64)
    out = fp.analyse(lambda h: h @ A.T + c, torch.randn(20, 5, generator=g, dtype=torch.float64), 1.0,
                     lambda h: fp.autograd_jacobian(lambda v: v @ A.T + c, h), q_tol=1e-10, iters=3000, lr=3e-2)
    truth = torch.linalg.solve(torch.eye(5, dtype=torch.float64) - A, c)
    assert len(out["points"]) == 1 and np.allclose(out["points"][0], truth.numpy(), atol=1e-4)
    assert out["stable"].tolist() == [True]
    assert np.isclose(out["radius"][0], np.abs(np.linalg.eigvals(A.numpy())).max())


def test_the_finder_separates_a_stable_and_an_unstable_relu_fixed_point():
    """h -> relu(2h - 1): fixed points 0 (slope 0, stable) and 1 (slope 2, unstable)."""
    W, c = torch.tensor([[2.0]]), torch.tensor([-1.0])
    F = lambda h: torch.relu(h @ W.T + c)                                          # noqa: E731
    starts = torch.linspace(-0.5, 2.0, 26)[:, None]
    out = fp.analyse(F, starts, 1.0, lambda h: fp.relu_jacobian(W, c, h), polish=lambda h: fp.polish_relu(W, c, h))
    order = np.argsort(out["points"][:, 0])
    assert np.allclose(out["points"][order, 0], [0.0, 1.0], atol=1e-6)
    assert out["stable"][order].tolist() == [True, False] and out["n_unstable"][order].tolist() == [0, 1]


def test_rnn_fixed_points_of_a_hand_built_network():
    """W_rec = 0.5 I, b = 1, no input: the one fixed point h* = 2 (every unit), stable (eigenvalues 0.5)."""
    net = nets.RandomRNN(1, 6, 1, "bias", seed=0)
    with torch.no_grad():
        net.W_rec.copy_(0.5 * torch.eye(6))
        net.b.copy_(torch.ones(6))
    H = torch.rand(50, 6, generator=torch.Generator().manual_seed(0)) * 3
    out = fp.rnn_fixed_points(net, H, n_starts=10, seed=0, iters=200)
    assert len(out["points"]) == 1 and np.allclose(out["points"][0], 2.0, atol=1e-6)
    assert out["stable"].tolist() == [True] and np.isclose(out["radius"][0], 0.5)


# --- Configs and runs ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fields, message", [
    ({"task": "juggling"}, "task='juggling': use one of"),
    ({"mode": "mask"}, "mode='mask': use one of"),
    ({"gain": 0.0}, "gain > 0"),
    ({"steps": -1}, "steps >= 0"),
    ({"T": 1}, "T >= 2"),
    ({"fp_starts": -1}, "fp_starts >= 0"),
])
def test_bad_task_configs_are_refused_with_what_is_allowed(fields, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        tasks.TaskConfig(**fields)


@pytest.mark.parametrize("task, mode, extra", [
    ("flipflop", "bias", {"n_memories", "n_stable", "n_fixed", "accuracy"}),
    ("flipflop", "readout", {"accuracy"}),
    ("dms", "full", {"accuracy", "fixation_acc"}),
    ("reach", "bias", {"error", "error_heldout", "steps_to_criterion", "reached", "error_zero_force"}),
])
def test_each_task_runs_end_to_end_at_a_tiny_scale(task, mode, extra):
    cfg = tasks.TaskConfig(task=task, mode=mode, n_hidden=8, steps=3, n_eval=8, eval_every=1, T=10, fp_starts=4)
    r = tasks.run(cfg, device="cpu")
    assert {"score", "n_trainable"} | extra <= set(r["metrics"])
    assert len(r["curve"]["val_score"]) == 4
    n_params = {"bias": 8, "readout": 8 * tasks.N_IO[task][1]}
    if mode in n_params:
        assert r["metrics"]["n_trainable"] == n_params[mode]
    if task == "reach":
        assert r["arrays"]["hand_heldout"].shape == (8, tasks.REACH_T, 2)
        assert r["metrics"]["steps_to_criterion"] in (0.0, 1.0, 2.0, 3.0)


def test_a_fully_trained_network_learns_delayed_match_to_sample():
    """A learning floor: 64 units, 300 Adam steps, far above chance (0.5) on test trials."""
    cfg = tasks.TaskConfig(task="dms", mode="full", n_hidden=64, steps=300, lr=3e-3, gain=1.5, n_eval=256)
    assert tasks.run(cfg, device="cpu")["metrics"]["accuracy"] >= 0.9


def test_the_chapter_tables_summarise_stored_runs_and_say_what_is_missing():
    import pandas as pd
    df = pd.DataFrame({"task": ["reach"] * 4, "mode": ["bias", "bias", "full", "full"], "n_hidden": [8] * 4,
                       "seed": [0, 1, 0, 1], "lr": [1e-2, 3e-2, 1e-3, 3e-3], "stored": [True, True, True, False],
                       "score": [0.5, 0.7, 0.9, float("nan")], "log10_steps": [3.0, 2.0, 1.0, float("nan")]})
    sel = tasks.selection(df)
    assert sel["chosen"].tolist() == ["", "chosen, on the edge of the grid", "chosen, on the edge of the grid", ""]
    assert sel["validation score"].tolist()[-1] == "not run"
    done = tasks.stored(df)
    assert len(done) == 3 and tasks.steps_ratio(done) == pytest.approx(10 ** 1.5)
    t = tasks.by_width(done, "score", ("bias", "full"))
    assert t.loc[0, "bias: median [IQR]"] == "0.600 [0.550 to 0.650]" and t.loc[0, "full: every seed"] == "0.9"
    assert report.med_iqr([]) == "-" and tasks.stored(pd.DataFrame()).empty
    assert report.med_iqr([1.0, float("nan"), 2.0, 3.0, None], 1) == "2.0 [1.5 to 2.5]"  # NaN and None left out
    assert "tasks_selection --scale paper" in tasks.status(pd.DataFrame(), "reach")
