"""biaslearn: networks with frozen random weights and learned biases (Williams et al.).

Modules load on first use (so ``python -m biaslearn.results`` runs its module once):
``bl.run``, ``bl.collect`` (experiments), ``bl.Config`` (train), ``bl.device`` (runtime), and
every submodule by name (``bl.data``, ``bl.nets``, ...).
"""
import importlib

__version__ = "0.1.0"
_NAMES = {"run": "experiments", "collect": "experiments", "Config": "train", "device": "runtime",
          "RandomMLP": "nets", "RandomRNN": "nets"}


def __getattr__(name):
    if name in _NAMES:
        return getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    try:
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as e:
        if e.name != f"{__name__}.{name}":
            raise  # a package the submodule needs is missing: say so
        raise AttributeError(f"module 'biaslearn' has no attribute {name!r}") from None
