"""Networks with frozen random weights and learned hidden biases.

Two architectures, as in the paper:

    RandomMLP   y = W_out sigma(W_in x + b)                      (one hidden layer; sigma = relu unless named)
    RandomRNN   h_t = relu(W_rec h_{t-1} + W_in x_t + b),  y_t = W_out h_t

Every tensor is drawn once from its own seeded generator, derived from (seed, name), so
adding a tensor never shifts another. Which tensors are learned is set by ``mode``:

    "bias"     only the hidden biases b               (the paper's networks)
    "full"     every weight and bias                   (the fully trained baseline)
    "readout"  only W_out (and c): random features / an echo-state network
    "mask"     only a score s_j per hidden unit; unit j is on iff s_j > 0 (a binary mask
               learned with a straight-through gradient; MLP only): the masking control

Frozen tensors are registered as buffers, not as parameters with requires_grad=False, so
``model.parameters()`` is exactly what is learned.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .runtime import device, generator  # noqa: F401  (nets.device: the same function)

MODES = {  # which tensors are trainable parameters in each mode
    "bias": {"b"},
    "full": {"W_in", "W_rec", "b", "W_out", "c", "h0"},
    "readout": {"W_out", "c"},
    "mask": {"s"},
}
INITS = ("uniform", "gaussian")
ACTIVATIONS = {"relu": torch.relu, "softplus": F.softplus, "tanh": torch.tanh,  # RandomMLP(activation=...)
               "step": lambda z: (z > 0).to(z.dtype)}  # zero gradient everywhere: Adam cannot move a step's bias


def draw(shape: tuple[int, ...], seed: int, name: str, init: str = "uniform",
         scale: float = 0.1, fan_in: int | None = None) -> torch.Tensor:
    """Draw a weight tensor on the CPU (so every device gets the same numbers).

    uniform:  U[-scale, scale]                 (the paper: scale = 0.1)
    gaussian: N(0, scale^2 / fan_in)           (scale = 1 is the usual 1/sqrt(fan-in))
    """
    g = generator(seed, name)
    if init == "uniform":
        return (torch.rand(shape, generator=g) * 2 - 1) * scale
    if init == "gaussian":
        fan_in = fan_in or shape[-1]
        return torch.randn(shape, generator=g) * (scale / math.sqrt(fan_in))
    raise ValueError(f"unknown init {init!r}: use one of {INITS}")


class _Random(nn.Module):
    """Shared bookkeeping: put each tensor in as a parameter or a buffer by ``mode``."""

    def __init__(self, mode: str):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}: use one of {sorted(MODES)}")
        self.mode = mode

    def _put(self, name: str, tensor: torch.Tensor) -> None:
        if name in MODES[self.mode]:
            self.register_parameter(name, nn.Parameter(tensor))
        else:
            self.register_buffer(name, tensor)

    def n_trainable(self) -> int:
        return sum(p.numel() for p in self.parameters())


class RandomMLP(_Random):
    """One hidden ReLU layer: x (batch, n_in) -> logits (batch, n_out).

    Hidden biases start from U[-0.1, 0.1] (their own generator); no output bias unless
    ``out_bias``. ``rerun`` k > 0 keeps the weights and draws another starting b (and s).
    ``activation``: a name in ACTIVATIONS (the paper's networks: "relu").
    """

    def __init__(self, n_in: int, n_hidden: int, n_out: int, mode: str = "bias",
                 seed: int = 0, init: str = "uniform", scale: float = 0.1,
                 out_bias: bool = False, rerun: int = 0, activation: str = "relu"):
        super().__init__(mode)
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}: use one of {sorted(ACTIVATIONS)}")
        self.act = ACTIVATIONS[activation]
        again = f"/rerun{rerun}" if rerun else ""  # rerun k: same weights, another starting b (and s)
        self._put("W_in", draw((n_hidden, n_in), seed, "W_in", init, scale))    # (n_hidden, n_in)
        self._put("b", draw((n_hidden,), seed, "b" + again, "uniform", 0.1))     # (n_hidden,)
        self._put("W_out", draw((n_out, n_hidden), seed, "W_out", init, scale))  # (n_out, n_hidden)
        if out_bias:
            self._put("c", torch.zeros(n_out))
        if mode == "mask":  # scores start positive (every unit on) in [0, 0.1]
            self._put("s", draw((n_hidden,), seed, "s" + again, "uniform", 0.05) + 0.05)

    slope = 0.0  # mask mode: 0 -> the hard mask (straight-through); > 0 -> the soft gate sigmoid(slope * s)

    def gate(self) -> torch.Tensor:
        """Mask mode: with ``slope`` 0 (the default, and always at test) the hard mask [s > 0] forward and
        the gradient of sigmoid(s) backward; with ``slope`` > 0 (training with a steepening schedule) the
        soft gate sigmoid(slope * s) both ways."""
        if self.slope > 0:
            return torch.sigmoid(self.slope * self.s)
        soft = torch.sigmoid(self.s)
        return (self.s > 0).to(soft.dtype) + soft - soft.detach()  # (n_hidden,)

    def features(self, pre: torch.Tensor) -> torch.Tensor:
        """Hidden activity from the pre-activations W_in x: sigma(pre + b), masked in "mask" mode."""
        h = self.act(pre + self.b)                           # (batch, n_hidden)
        return h * self.gate() if self.mode == "mask" else h

    def head(self, pre: torch.Tensor) -> torch.Tensor:
        """Logits from the pre-activations W_in x, (batch, n_hidden) -> (batch, n_out)."""
        y = self.features(pre) @ self.W_out.T
        return y + self.c if hasattr(self, "c") else y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x @ self.W_in.T)  # (batch, n_out)


class RandomRNN(_Random):
    """Vanilla ReLU RNN: x (batch, time, n_in) -> y (batch, time, n_out).

    h_t = relu(W_rec h_{t-1} + W_in x_t + b), h_{-1} = h0 (zeros, learned in "full" mode).
    ``gain`` g > 0: W_rec ~ N(0, g^2 / n_hidden) whatever ``init`` says (the generation chapter's gain law);
    None (the default) draws W_rec like the other weights, as every stored run did.
    """

    def __init__(self, n_in: int, n_hidden: int, n_out: int, mode: str = "bias",
                 seed: int = 0, init: str = "uniform", scale: float = 0.1,
                 out_bias: bool = False, gain: float | None = None):
        super().__init__(mode)
        if mode == "mask":
            raise ValueError("mode 'mask' is for RandomMLP only")
        if gain is not None and not gain > 0:
            raise ValueError(f"gain {gain!r}: give a positive number (or None)")
        self._put("W_in", draw((n_hidden, n_in), seed, "W_in", init, scale))
        self._put("W_rec", draw((n_hidden, n_hidden), seed, "W_rec", init, scale) if gain is None
                  else draw((n_hidden, n_hidden), seed, "W_rec", "gaussian", gain, n_hidden))
        self._put("b", draw((n_hidden,), seed, "b", "uniform", 0.1))
        self._put("W_out", draw((n_out, n_hidden), seed, "W_out", init, scale))
        self._put("h0", torch.zeros(n_hidden))
        if out_bias:
            self._put("c", torch.zeros(n_out))

    def states(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        """Hidden states (batch, time, n_hidden); the input drive W_in x_t + b is batched."""
        drive = x @ self.W_in.T + self.b  # (batch, time, n_hidden)
        h = self.h0.expand(x.shape[0], -1) if h is None else h
        out = []
        for t in range(x.shape[1]):
            h = torch.relu(h @ self.W_rec.T + drive[:, t])
            out.append(h)
        return torch.stack(out, dim=1)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        y = self.states(x, h) @ self.W_out.T  # (batch, time, n_out)
        return y + self.c if hasattr(self, "c") else y


def clip_grad_norm(params, max_norm: float) -> torch.Tensor:
    """torch.nn.utils.clip_grad_norm_ (the same two calls, so the same numbers whenever its norm is finite), but a
    norm that overflows is taken again with the gradients divided by their largest magnitude: a float32 sum of
    squares is infinite once a gradient passes ~1.8e19, and then torch scales every gradient by 0. An exploding
    network (the generation chapter's g = 2.0, whose activity grows ~(g/sqrt 2)^t) has such finite gradients at
    its first step. Returns the norm: infinite or NaN only when a gradient is."""
    from torch.nn.utils import clip_grads_with_norm_, get_total_norm

    params = list(params)
    grads = [p.grad for p in params if p.grad is not None]
    norm = get_total_norm(grads)
    if not torch.isfinite(norm) and all(torch.isfinite(g).all() for g in grads):
        top = max(g.abs().max() for g in grads)
        norm = top * get_total_norm([g / top for g in grads])
    clip_grads_with_norm_(params, max_norm, norm)
    return norm
