"""biaslearn: networks with frozen random weights and learned biases (Williams et al.)."""
from . import data, nets, report, results, train  # noqa: F401
from .nets import RandomMLP, RandomRNN, device  # noqa: F401
from .train import Config, run  # noqa: F401

__version__ = "0.1.0"
