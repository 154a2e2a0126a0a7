"""Bias-only RNNs on harder tasks: memory (3-bit flip-flop), working memory (delayed match-to-sample) and
motor control (centre-out reaching with a point mass). The reviewers' question (issue 18).

    flipflop(n, seed, split, T)   3-bit flip-flop trials (Sussillo & Barak, 2013): inputs, targets (n, T, 3)
    flipflop_solution(x)          a hand-written latch: the sign of each channel's last pulse
    dms(n, seed, split)           delayed match-to-sample trials as neurogym's DelayMatchSample defines them
    dms_solution(x)               a hand-written solution (compares the mean sample and test inputs)
    reach(n, seed, split, ...)    centre-out reaching trials: target + go-cue inputs, desired hand positions
    plant(u)                      the point mass driven by forces u (n, T, 2): exact zero-order-hold steps
    TaskConfig, run(cfg)          one run: a nets.RandomRNN trained by Adam on fresh trials, scored on held-out
                                  trials (flip-flop: plus its fixed points, fixedpoints.rnn_fixed_points)
    forward(net, x)               net(x) through PyTorch's fused ReLU RNN kernel (tested against nets.RandomRNN)
    stored, status, selection, by_width, steps_ratio  what the chapter reads from collected runs

Trials come from the generator (seed, "<task>/<split>"): "train" (a fresh batch every step), "val" (choosing
learning rates; also the curve) and "test" (the scores). Every network is nets.RandomRNN with Gaussian weights
N(0, 1 / fan_in) and recurrent weights N(0, gain^2 / n) (TaskConfig.gain); no output bias, h_{-1} = 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from . import fixedpoints, nets, report
from .config import Base
from .runtime import generator

TASKS = ("flipflop", "dms", "reach")
MODES = ("bias", "full", "readout")

# --- 3-bit flip-flop ------------------------------------------------------------------------------------------
FF_BITS = 3          # input and output channels
FP_ITERS = 1000      # Adam iterations of the fixed-point search (then polished exactly: fixedpoints.polish_relu)
FP_MAX = 64          # at most this many distinct fixed points classified (eigenvalues) per network
FF_P = 0.05          # probability of a pulse on a channel at a step (sign +-1 with probability 1/2 each)


def _gen(seed: int, task: str, split: str) -> torch.Generator:
    return generator(seed, f"{task}/{split}")


def flipflop(n: int, seed: int = 0, split: str = "train", T: int = 100, p: float = FF_P,
             g: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` trials of T steps: inputs x (n, T, 3), +-1 pulses with probability p per channel and step, else 0;
    targets y (n, T, 3): the sign of the channel's last pulse (at or before t), 0 before its first pulse."""
    g = g or _gen(seed, "flipflop", split)
    pulse = torch.rand(n, T, FF_BITS, generator=g) < p
    sign = torch.where(torch.rand(n, T, FF_BITS, generator=g) < 0.5, -1.0, 1.0)
    x = pulse * sign                                                    # (n, T, 3)
    return x, flipflop_solution(x)


def flipflop_solution(x: torch.Tensor) -> torch.Tensor:
    """The latch written by hand: y_t = the last non-zero x_s (s <= t) of each channel, 0 before any."""
    y, state = torch.zeros_like(x), torch.zeros_like(x[:, 0])
    for t in range(x.shape[1]):
        state = torch.where(x[:, t] != 0, torch.sign(x[:, t]), state)
        y[:, t] = state
    return y


def held(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The (trial, step, channel) entries where a bit is held: after the channel's first pulse and not at a pulse."""
    return (y != 0) & (x == 0)


def flipflop_accuracy(out: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> float:
    """The fraction of held entries whose output has the held bit's sign (chance: 0.5)."""
    m = held(x, y)
    return float((torch.sign(out[m]) == y[m]).float().mean())


# --- Delayed match-to-sample (neurogym.envs.native.delaymatchsample.DelayMatchSample, its defaults) -----------
DMS_DT = 100                                                            # ms per step
DMS_TIMING = {"fixation": 300, "sample": 500, "delay": 1000, "test": 500, "decision": 900}   # ms
DMS_SIGMA = 1.0      # neurogym's sigma: input noise s.d. sigma / sqrt(dt) = 0.1 per step on the stimulus channels
DMS_RING = 2         # stimulus channels: cos(theta_k - theta) / 2 + 1/2 at theta_k = 0, pi; theta in {0, pi}


def dms_periods() -> dict:
    """{period: slice of steps} in neurogym's order."""
    out, t = {}, 0
    for k, ms in DMS_TIMING.items():
        out[k] = slice(t, t + ms // DMS_DT)
        t += ms // DMS_DT
    return out


def dms(n: int, seed: int = 0, split: str = "train", g: torch.Generator | None = None):
    """``n`` trials: inputs x (n, T, 3) = (fixation, stimulus 1, stimulus 2), targets (n, T) class per step
    (0 fixate; in the decision period 1 match, 2 non-match), and match (n,) bool. As neurogym: the fixation input
    is 1 except in the decision period; the sample (and the test) stimulus is on in its period with noise."""
    g = g or _gen(seed, "dms", split)
    P = dms_periods()
    T = P["decision"].stop
    theta = torch.linspace(0, 2 * math.pi, DMS_RING + 1)[:-1]           # (ring,)
    match = torch.rand(n, generator=g) < 0.5
    sample = theta[torch.randint(DMS_RING, (n,), generator=g)]
    test = torch.where(match, sample, torch.remainder(sample + math.pi, 2 * math.pi))
    x = torch.zeros(n, T, 1 + DMS_RING)
    x[:, :, 0] = 1.0
    x[:, P["decision"], 0] = 0.0
    stim = lambda a: torch.cos(theta[None] - a[:, None]) * 0.5 + 0.5    # noqa: E731  (n, ring)
    x[:, P["sample"], 1:] = stim(sample)[:, None]
    x[:, P["test"], 1:] = stim(test)[:, None]
    sigma = DMS_SIGMA / math.sqrt(DMS_DT)
    for k in ("sample", "test"):
        s = P[k]
        x[:, s, 1:] += sigma * torch.randn(n, s.stop - s.start, DMS_RING, generator=g)
    y = torch.zeros(n, T, dtype=torch.long)
    y[:, P["decision"]] = torch.where(match, 1, 2)[:, None]
    return x, y, match


def dms_solution(x: torch.Tensor) -> torch.Tensor:
    """Logits (n, T, 3) written by hand: fixate until the decision period, then "match" iff the stronger
    stimulus channel is the same in the sample and the test period (means over each period)."""
    P = dms_periods()
    a = x[:, P["sample"], 1:].mean(1).argmax(1)
    b = x[:, P["test"], 1:].mean(1).argmax(1)
    out = torch.zeros(x.shape[0], x.shape[1], 3)
    out[:, :, 0] = 1.0
    dec = torch.where(a == b, 1, 2)
    out[:, P["decision"]] = torch.nn.functional.one_hot(dec, 3).float()[:, None]
    return out


def dms_accuracy(out: torch.Tensor, match: torch.Tensor) -> float:
    """The fraction of trials whose decision is right: "match" iff the match output exceeds the non-match
    output, each averaged over the decision period (chance: 0.5)."""
    d = out[:, dms_periods()["decision"]].mean(1)                      # (n, 3)
    return float(((d[:, 1] > d[:, 2]) == match).float().mean())


# --- Centre-out reaching: a planar point mass -------------------------------------------------------------------
REACH_DT = 0.05        # s per step
MASS = 1.0             # kg
DAMPING = 1.0          # N s / m: m dv/dt = u - k v (the mass coasts to a stop in m / k = 1 s)
RADIUS = 1.0           # m: targets on a circle around the start
REACH_HOLD = 10        # steps before the target appears (0.5 s)
REACH_DELAY = (10, 30) # steps from target onset to the go cue, uniform over this range inclusive (0.5-1.5 s)
REACH_MOVE = 20        # steps after the go cue without a position target (1 s to get there)
REACH_T = 80           # steps per trial (4 s): at least 20 steps holding at the target
REACH_FINAL = 10       # the final error is read over the last 10 steps
EFFORT = 1e-3          # loss = mean ||p - p*||^2 + EFFORT * mean ||u||^2
N_TARGETS = 8
TRAINED = tuple(2 * math.pi * k / N_TARGETS for k in range(N_TARGETS))          # 0, 45, ... 315 degrees
HELD_OUT = tuple(a + math.pi / N_TARGETS for a in TRAINED)                        # rotated by 22.5 degrees


def plant_kernels(T: int, dt: float = REACH_DT, m: float = MASS, k: float = DAMPING) -> tuple[torch.Tensor, torch.Tensor]:
    """The point mass m dv/dt = u - k v from rest, the force held over each step (zero-order hold) and
    integrated exactly, is linear in the forces: p_t = sum_{s<=t} G_p[t - s] u_s, v_t likewise with G_v.
    With a = exp(-k dt / m), a force held for one step gives v = (1 - a) u / k and p = (dt - (m/k)(1 - a)) u / k;
    coasting j steps after it, v decays by a^j and p gains (m/k)(1 - a^j) v. Returns the (T, T) lower-triangular
    matrices K_p, K_v (float64) with K[t, s] = G[t - s]."""
    a = math.exp(-k * dt / m)
    j = torch.arange(T, dtype=torch.float64)
    gv = (1 - a) * a ** j / k
    gp = (dt - (m / k) * (1 - a)) / k + (m / k) * (1 - a ** j) * (1 - a) / k
    lag = j[:, None] - j[None, :]                                           # t - s
    low = lag >= 0
    idx = lag.clamp_min(0).long()
    return torch.where(low, gp[idx], 0.0), torch.where(low, gv[idx], 0.0)


def plant(u: torch.Tensor, dt: float = REACH_DT, m: float = MASS, k: float = DAMPING) -> tuple[torch.Tensor, torch.Tensor]:
    """Hand positions and velocities (n, T, 2) of the point mass driven by forces u (n, T, 2) from rest at the
    origin (plant_kernels): p_t, v_t after u_t has acted for one step (REACH_DT s)."""
    Kp, Kv = (K.to(u.dtype).to(u.device) for K in plant_kernels(u.shape[1], dt, m, k))
    return torch.einsum("ts,nsd->ntd", Kp, u), torch.einsum("ts,nsd->ntd", Kv, u)


def reach(n: int, seed: int = 0, split: str = "train", angles=TRAINED, delay=None,
          g: torch.Generator | None = None) -> dict:
    """``n`` reaching trials: inputs x (n, T, 3) = (cos theta, sin theta from target onset on; go cue: 1 from the
    go step on), desired positions (n, T, 2) (the origin before go, the target from go + REACH_MOVE on), a mask
    (n, T) of the steps with a desired position, the target (n, 2), the go step (n,). Targets uniformly from
    ``angles``; the delay uniform over REACH_DELAY (or fixed at ``delay`` steps); with n a multiple of
    len(angles) and a fixed delay, every target in turn (the trajectories drawn on the page)."""
    g = g or _gen(seed, "reach", split)
    ang = torch.tensor(angles, dtype=torch.float32)
    if delay is None:
        idx = torch.randint(len(ang), (n,), generator=g)
        d = torch.randint(REACH_DELAY[0], REACH_DELAY[1] + 1, (n,), generator=g)
    else:
        idx, d = torch.arange(n) % len(ang), torch.full((n,), delay)
    theta = ang[idx]
    target = RADIUS * torch.stack([torch.cos(theta), torch.sin(theta)], 1)   # (n, 2)
    t = torch.arange(REACH_T)[None]                                          # (1, T)
    go = REACH_HOLD + d                                                      # (n,)
    shown = (t >= REACH_HOLD).float()[..., None]
    x = torch.cat([shown * torch.stack([torch.cos(theta), torch.sin(theta)], 1)[:, None],
                   (t >= go[:, None]).float()[..., None]], 2)               # (n, T, 3)
    there = (t >= (go + REACH_MOVE)[:, None])
    desired = there[..., None] * target[:, None]                             # (n, T, 2)
    mask = (t < go[:, None]) | there
    return {"x": x, "desired": desired, "mask": mask, "target": target, "go": go}


def reach_loss(u: torch.Tensor, trials: dict) -> torch.Tensor:
    p, _ = plant(u)
    err = ((p - trials["desired"]) ** 2).sum(2)                              # (n, T)
    m = trials["mask"].float()
    return (err * m).sum() / m.sum() + EFFORT * (u ** 2).sum(2).mean()


def reach_error(p: torch.Tensor, trials: dict) -> float:
    """Mean distance of the hand from the target over the last REACH_FINAL steps (units of RADIUS): 1 for a
    hand that never leaves the centre (zero force), 0 for a perfect reach."""
    d = (p[:, -REACH_FINAL:] - trials["target"][:, None]).norm(dim=2)
    return float(d.mean() / RADIUS)


# --- One run ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TaskConfig(Base):
    experiment: str = "tasks"        # folder under results/
    task: str = "flipflop"           # "flipflop", "dms" (delayed match-to-sample), "reach" (centre-out reaching)
    mode: str = "bias"               # "bias" (hidden biases only), "full" (everything), "readout" (W_out only), Adam
    n_hidden: int = 256              # width (units)
    gain: float = 1.0                # W_rec ~ N(0, gain^2 / n_hidden); W_in, W_out ~ N(0, 1 / fan_in)
    seed: int = 0                    # draws the weights, the initial biases and every trial
    steps: int = 2000                # Adam steps, each on a fresh batch of training trials
    batch_size: int = 16             # trials per step
    lr: float = 1e-3                 # peak learning rate, cosine decay to 0
    clip: float = 1.0                # gradient norm clipped to this
    T: int = 50                      # flip-flop steps per trial (the other tasks' lengths are fixed above)
    split: str = "test"              # the trials scored: "test", or "val" to choose settings
    n_eval: int = 512                # trials scored
    eval_every: int = 50             # steps between evaluations on validation trials (the curve; reach: criterion)
    criterion: float = 0.1           # reach: the final error (units of the radius) that counts as learned
    fp_starts: int = 128             # flip-flop: starts of the fixed-point search (0: no search)

    CHOICES = {"task": TASKS, "mode": MODES, "split": ("test", "val")}

    def check(self):
        return [(self.n_hidden >= 1 and self.gain > 0, "n_hidden >= 1, gain > 0"),
                (self.steps >= 0 and self.lr > 0 and self.clip > 0, "steps >= 0, lr > 0, clip > 0"),
                (min(self.batch_size, self.n_eval, self.eval_every) >= 1 and self.T >= 2,
                 "batch_size, n_eval, eval_every >= 1, T >= 2"),
                (self.criterion > 0 and self.fp_starts >= 0, "criterion > 0, fp_starts >= 0")]


N_IO = {"flipflop": (FF_BITS, FF_BITS), "dms": (1 + DMS_RING, 3), "reach": (3, 2)}  # task -> (inputs, outputs)


def trials(cfg: TaskConfig, n: int, split: str, g: torch.Generator | None = None) -> dict:
    """A batch of ``n`` trials of the config's task as a dict with "x" and what its loss and score need."""
    if cfg.task == "flipflop":
        x, y = flipflop(n, cfg.seed, split, cfg.T, g=g)
        return {"x": x, "y": y}
    if cfg.task == "dms":
        x, y, match = dms(n, cfg.seed, split, g=g)
        return {"x": x, "y": y, "match": match}
    return reach(n, cfg.seed, split, g=g)


def loss_fn(cfg: TaskConfig, out: torch.Tensor, b: dict) -> torch.Tensor:
    """Flip-flop: mean squared error to the held bits (0 before a channel's first pulse); DMS: cross-entropy
    of the class at every step (as neurogym's supervised examples); reach: the plant's position error and effort."""
    if cfg.task == "flipflop":
        return ((out - b["y"]) ** 2).mean()
    if cfg.task == "dms":
        return torch.nn.functional.cross_entropy(out.reshape(-1, 3), b["y"].reshape(-1))
    return reach_loss(out, b)


@torch.no_grad()
def score(cfg: TaskConfig, net, b: dict) -> dict:
    """The task's scores on a batch: "score" (higher is better: accuracy, or 1 - reach error) and the rest."""
    out = forward(net, b["x"])
    if cfg.task == "flipflop":
        return {"score": flipflop_accuracy(out, b["x"], b["y"]), "mse": float(((out - b["y"]) ** 2).mean())}
    if cfg.task == "dms":
        fix = dms_periods()["decision"].start
        return {"score": dms_accuracy(out, b["match"]),
                "fixation_acc": float((out[:, :fix].argmax(2) == 0).float().mean())}
    p, _ = plant(out)
    err = reach_error(p, b)
    return {"score": 1 - err, "error": err, "effort": float((out ** 2).sum(2).mean())}


def forward(net: nets.RandomRNN, x: torch.Tensor, states: bool = False) -> torch.Tensor:
    """net(x) (or net.states(x) with ``states``) from h_{-1} = 0, through PyTorch's fused ReLU RNN (the kernel
    behind torch.nn.RNN): the same recurrence h_t = relu(W_rec h_{t-1} + W_in x_t + b), one call instead of a
    Python loop over time (3x faster at small widths here); a test checks it against nets.RandomRNN, outputs
    and gradients."""
    n = net.W_rec.shape[0]
    h0 = torch.zeros(1, x.shape[0], n, dtype=x.dtype, device=x.device)
    H = torch._VF.rnn_relu(x, h0, [net.W_in, net.W_rec, net.b, torch.zeros_like(net.b)],
                           True, 1, 0.0, net.training, False, True)[0]     # (batch, time, n_hidden)
    return H if states else H @ net.W_out.T


def _to(b: dict, dev) -> dict:
    return {k: v.to(dev) for k, v in b.items()}


def run(cfg: TaskConfig, device: str = "auto", progress: bool = False) -> dict:
    """Train one network; returns {"metrics", "curve", "device", "arrays"} (see results.save).

    metrics: score, val_score_mean (the mean validation score over training: presets.TASK_TIEBREAK) and the task's own (flip-flop: accuracy, chance 0.5, the fixed points; DMS: accuracy, chance
    0.5, fixation_acc; reach: error, error_heldout, error_zero_force = 1, steps_to_criterion (the first
    evaluation at which the validation error is below ``criterion``; the step budget if never), reached)."""
    from tqdm.auto import tqdm

    dev = nets.device(device)
    n_in, n_out = N_IO[cfg.task]
    net = nets.RandomRNN(n_in, cfg.n_hidden, n_out, cfg.mode, cfg.seed, init="gaussian", scale=1.0,
                         gain=cfg.gain).to(dev)
    params = [p for name, p in net.named_parameters() if name != "h0"]  # h_{-1} = 0 in every mode
    val = _to(trials(cfg, min(cfg.n_eval, 256), "val"), dev)
    g = _gen(cfg.seed, cfg.task, "train")
    curve = {"step": [], "train_loss": [], "val_score": []}
    opt = torch.optim.Adam(params, lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 0.5 * (1 + math.cos(math.pi * k / max(cfg.steps, 1))))
    block, reached_at = [], None
    for step in tqdm(range(cfg.steps + 1), desc=f"{cfg.task} {cfg.mode} n={cfg.n_hidden} seed={cfg.seed}",
                     disable=not progress, leave=False):
        if step % cfg.eval_every == 0 or step == cfg.steps:
            s = score(cfg, net, val)["score"]
            curve["step"].append(step)
            curve["train_loss"].append(float(np.mean(block)) if block else float("nan"))
            curve["val_score"].append(s)
            block = []
            if reached_at is None and cfg.task == "reach" and 1 - s < cfg.criterion:
                reached_at = step
        if step == cfg.steps:
            break
        b = _to(trials(cfg, cfg.batch_size, "train", g), dev)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(cfg, forward(net, b["x"]), b)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.clip)
        opt.step()
        sched.step()
        block.append(min(loss.item(), 1e12))
    ev = _to(trials(cfg, cfg.n_eval, cfg.split), dev)
    sc = score(cfg, net, ev)
    metrics = {"n_trainable": sum(p.numel() for p in params), **sc, "chance": 0.5,
               "val_score_mean": float(np.mean(curve["val_score"]))}   # how soon it learned: the rate tie-break
    arrays = {}
    if cfg.task == "flipflop":
        metrics["accuracy"] = sc["score"]
        metrics.update(_flipflop_analysis(cfg, net, ev, arrays))
    elif cfg.task == "dms":
        metrics["accuracy"] = sc["score"]
        with torch.no_grad():
            arrays["out"] = net(ev["x"][:8]).cpu().numpy()
        arrays["x"] = ev["x"][:8].cpu().numpy()
    else:
        del metrics["chance"]
        done = reached_at is not None
        steps = reached_at if done else cfg.steps
        metrics.update(error_zero_force=1.0, reached=float(done), steps_to_criterion=float(steps),
                       log10_steps=math.log10(max(steps, 1)))
        held_out = _to(reach(cfg.n_eval, cfg.seed, cfg.split + "/heldout", angles=HELD_OUT), dev)
        h = score(cfg, net, held_out)
        metrics.update(error_heldout=h["error"], score_heldout=h["score"])
        for name, angles in (("trained", TRAINED), ("heldout", HELD_OUT)):   # one trial per target, mid delay
            b = _to(reach(N_TARGETS, cfg.seed, "show", angles=angles, delay=sum(REACH_DELAY) // 2), dev)
            with torch.no_grad():
                p, _ = plant(net(b["x"]))
            arrays[f"hand_{name}"] = p.cpu().numpy()                           # (8, T, 2)
            arrays[f"target_{name}"] = b["target"].cpu().numpy()
    return {"metrics": metrics, "curve": curve, "device": str(dev), "arrays": arrays}


def _flipflop_analysis(cfg: TaskConfig, net, ev: dict, arrays: dict) -> dict:
    """Fixed points at zero input from visited test states; the trajectories and points in the states' top three
    principal components (arrays); metrics: n_fixed, n_stable, n_memories (distinct 3-bit readouts, every bit
    |y| > 0.5, among the stable points: 8 for a network that built the eight attractors)."""
    with torch.no_grad():
        H = net.states(ev["x"][:64])                                           # (64, T, n_hidden)
    flat = H.reshape(-1, H.shape[-1])
    mean = flat.mean(0)
    _, _, Vt = torch.linalg.svd(flat - mean, full_matrices=False)
    pcs = Vt[:3]                                                               # (3, n_hidden)
    arrays["traj_pc"] = ((H[:8] - mean) @ pcs.T).cpu().numpy()                 # (8, T, 3)
    arrays["x"] = ev["x"][:8].cpu().numpy()
    with torch.no_grad():
        arrays["out"] = (H[:8] @ net.W_out.T).cpu().numpy()
    if not cfg.fp_starts:
        return {}
    fp = fixedpoints.rnn_fixed_points(net, flat.detach(), cfg.fp_starts, cfg.seed, iters=FP_ITERS, max_points=FP_MAX)
    pts = torch.as_tensor(fp["points"], dtype=flat.dtype, device=flat.device).reshape(-1, flat.shape[1])
    y = (pts @ net.W_out.detach().T).cpu().numpy()                            # (k, 3)
    arrays.update(fp_pc=((pts - mean) @ pcs.T).cpu().numpy(), fp_stable=fp["stable"], fp_radius=fp["radius"],
                  fp_q=fp["q"], fp_out=y)
    memo = {tuple(np.sign(r).astype(int)) for r, s in zip(y, fp["stable"]) if s and np.all(np.abs(r) > 0.5)}
    return {"n_fixed": len(pts), "n_stable": int(np.sum(fp["stable"])), "n_memories": len(memo)}


# --- What the chapter reads from the runs ------------------------------------------------------------------------

def stored(df):
    """The stored runs of a collected table, or an empty table with its usual columns (a preset whose rates are
    not chosen yet has no configs at all)."""
    import pandas as pd

    if not len(df):
        return pd.DataFrame(columns=["task", "mode", "n_hidden", "seed", "lr", "stored", "config", "result"])
    return df[df["stored"]].reset_index(drop=True)


def status(df, preset: str) -> str:
    """report.missing's note, or, when the preset has no config yet (no rate chosen), the commands that make them."""
    from . import report

    if len(df):
        return report.missing(df)
    return (f"Preset {preset} has no run yet: its learning rates are not chosen (presets.TASK_LR has no entry for "
            f"it). Compute the grid, record its winners in presets.TASK_LR, then compute the runs:\n"
            f"  python -m biaslearn.experiments tasks_selection --scale paper\n"
            f"  python -m biaslearn.experiments {preset} --scale paper")


def by_width(done, metric: str, modes, digits: int = 3):
    """A table: a row per width, for each mode the median [IQR] of ``metric`` over seeds and every seed's value."""
    import pandas as pd

    rows = []
    for n in sorted(set(done["n_hidden"])):
        row = {"width": n}
        for m in modes:
            v = done[(done["n_hidden"] == n) & (done["mode"] == m)].sort_values("seed")
            vals = v[metric].tolist() if metric in v else []
            row[f"{m}: median [IQR]"] = report.med_iqr(vals, digits)
            row[f"{m}: every seed"] = ", ".join(f"{x:.{digits}g}" for x in vals) or "-"
        rows.append(row)
    return pd.DataFrame(rows)


def selection(df):
    """The runs of tasks_selection as a table: a row per run (task, mode, width, rate, validation score or "not
    run", mean validation score over training), "chosen" marking the winner of each (task, mode, width) by score,
    ties split by that mean (report.winners, presets.TASK_TIEBREAK), and saying so when it sits on an edge of its
    grid."""
    import pandas as pd

    from . import report

    from .presets import TASK_TIEBREAK

    cols = ["task", "mode", "width", "learning rate", "validation score", "mean score over training", "chosen"]
    if not len(df):
        return pd.DataFrame(columns=cols)
    by = ("task", "mode", "n_hidden")
    best = report.winners(df, by, "score", TASK_TIEBREAK) if "score" in df else {}
    grids = df.groupby(list(by))["lr"].apply(list).to_dict()
    rows = []
    for _, r in df.iterrows():
        key = tuple(r[k] for k in by)
        chosen = bool(r["stored"]) and best.get(key) == r["lr"]
        mark = ("chosen" + (", on the edge of the grid" if report.on_edge(r["lr"], grids[key]) else "")) if chosen else ""
        rows.append({"task": r["task"], "mode": r["mode"], "width": r["n_hidden"], "learning rate": f"{r['lr']:g}",
                     "validation score": report.num(r["score"]) if r["stored"] else "not run",
                     "mean score over training": report.num(r[TASK_TIEBREAK]) if r["stored"] and pd.notna(r.get(TASK_TIEBREAK))
                     else "-", "chosen": mark})
    return pd.DataFrame(rows, columns=cols)


def steps_ratio(done) -> float | None:
    """Geometric mean of the bias-only runs' steps to criterion over the fully trained runs' (None without both)."""
    g = {m: done[done["mode"] == m]["log10_steps"].tolist() if "log10_steps" in done else [] for m in ("bias", "full")}
    if not g["bias"] or not g["full"]:
        return None
    return float(10 ** (np.mean(g["bias"]) - np.mean(g["full"])))
