"""Seeds and devices: the one place each is decided.

    device(name)             "cuda" when present, else "cpu" (or as named)
    generator(seed, name)    a CPU random stream for tensor ``name`` of run ``seed``

Every random number of the book comes from ``generator(seed, name)``: one stream per name,
so adding a tensor never shifts another, and the same numbers on every device (drawn on
the CPU, then moved).
"""
from __future__ import annotations

import hashlib

import torch


def device(name: str = "auto") -> torch.device:
    """CUDA when present, else the CPU; or the device named ("cpu", "cuda", "cuda:1")."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def generator(seed: int, name: str) -> torch.Generator:
    """A CPU generator for tensor ``name`` of run ``seed``; independent of every other name."""
    digest = hashlib.sha256(f"{seed}/{name}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))
