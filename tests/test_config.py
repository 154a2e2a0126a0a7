"""One config base validates every config type the same way (config.Base)."""
import dataclasses

import pytest

from biaslearn import results
from biaslearn.config import Base, ConfigError
from biaslearn.experiments import CONFIG_TYPES, RUNNERS
from biaslearn.multitask import SwapConfig
from biaslearn.seq import SeqConfig
from biaslearn.theory import FitConfig, MatchConfig, RNNConfig, TheoryConfig
from biaslearn.train import Config

TYPES = [Config, SeqConfig, TheoryConfig, MatchConfig, FitConfig, RNNConfig]


def test_every_config_type_has_a_runner_and_one_base():
    assert set(CONFIG_TYPES.values()) == set(RUNNERS) >= set(TYPES) | {SwapConfig}
    for t in CONFIG_TYPES.values():
        assert issubclass(t, Base), f"{t.__name__} does not derive config.Base"
        assert "__post_init__" not in vars(t), f"{t.__name__} validates itself: use Base.check / CHOICES"


@pytest.mark.parametrize("cls, field", [(Config, "lr"), (SeqConfig, "lr"), (TheoryConfig, "eps"),
                                        (MatchConfig, "off_bias"), (FitConfig, "lr"), (RNNConfig, "gain")])
def test_an_int_where_a_float_is_expected_gives_the_same_key(cls, field):
    a, b = cls(**{field: 1}), cls(**{field: 1.0})
    assert a == b and isinstance(getattr(a, field), float) and results.key(a) == results.key(b)


@pytest.mark.parametrize("cls, kwargs, message", [
    (FitConfig, {"n_hidden": 100.0}, "FitConfig.n_hidden must be int, got 100.0"),
    (FitConfig, {"mode": "mask"}, "FitConfig.mode='mask': use one of ('bias', 'full', 'readout')"),
    (FitConfig, {"lr": 0}, "FitConfig needs lr > 0"),
    (TheoryConfig, {"draws": True}, "TheoryConfig.draws must be int, got True"),
    (RNNConfig, {"learn_h0": 1}, "RNNConfig.learn_h0 must be bool, got 1"),
    (SeqConfig, {"mode": "mask"}, "SeqConfig.mode='mask'"),
    (SeqConfig, {"free_steps": 5000}, "free_steps <= n_val + context"),
    (MatchConfig, {"activation": "gelu"}, "MatchConfig.activation='gelu': use one of"),
    (Config, {"seed": "0"}, "Config.seed must be int, got '0'"),
    (Config, {"epochs": -1}, "Config needs epochs >= 0"),
    (Config, {"mask_slope": 200.0}, "mask_slope 0, or > 1 with mode 'mask'"),
    (Config, {"mode": "mask", "mask_slope": 0.5}, "mask_slope 0, or > 1 with mode 'mask'"),
])
def test_bad_values_name_the_field_and_what_is_allowed(cls, kwargs, message):
    with pytest.raises(ConfigError) as e:
        cls(**kwargs)
    assert message in str(e.value)


@pytest.mark.parametrize("cls", TYPES)
def test_unknown_keys_are_rejected_with_the_allowed_names(cls):
    with pytest.raises(ConfigError, match=r"unknown \w+ keys \['widht'\]: the allowed keys are \['experiment'"):
        cls.from_dict({"widht": 3})
    with pytest.raises(ConfigError, match="unknown"):
        cls().replace(widht=3)


@pytest.mark.parametrize("cls", TYPES)
def test_from_dict_round_trips_the_stored_form(cls):
    cfg = cls()
    assert cls.from_dict(results.canonical(cfg)) == cfg
    assert dataclasses.is_dataclass(cfg) and cfg.__dataclass_params__.frozen


def test_swap_config_round_trips_its_nested_runs():
    runs = (Config(dataset="mnist", n_hidden=8), Config(dataset="fashion_mnist", n_hidden=8))
    cfg = SwapConfig(runs=runs)
    assert SwapConfig.from_dict(results.canonical(cfg)) == cfg
