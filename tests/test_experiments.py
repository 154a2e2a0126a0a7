"""The presets say what the book claims they say, and the chosen learning rates are the
winners of the committed validation runs."""
from collections import defaultdict

import pytest

from biaslearn import experiments, run
from biaslearn.data import PAPER_TASKS


def test_feedforward_preset_is_the_papers_experiment():
    cfgs = experiments.feedforward("paper")
    assert len(cfgs) == 7 * 2 * 5
    assert {c.dataset for c in cfgs} == set(PAPER_TASKS)
    for c in cfgs:
        assert (c.n_hidden, c.epochs, c.init, c.scale, c.out_bias) == (32_000, 20, "uniform", 0.1, False)
        assert c.split == "test" and c.n_train == 0 and c.lr == experiments.LR[c.mode]


def test_selection_never_uses_the_test_set():
    assert all(c.split == "val" and c.val_size > 0 for c in experiments.feedforward_selection("paper"))


def test_chosen_learning_rates_are_the_validation_winners():
    best = defaultdict(lambda: (None, -1.0))
    cfgs = experiments.feedforward_selection("paper")
    for c in cfgs:
        r = run(c, compute=False)
        assert r is not None, f"selection run missing from results/: {c}"
        if r["metrics"]["eval_acc"] > best[c.mode][1]:
            best[c.mode] = (c.lr, r["metrics"]["eval_acc"])
    assert {m: lr for m, (lr, _) in best.items()} == experiments.LR


@pytest.mark.parametrize("preset", sorted(experiments.PRESETS))
def test_every_preset_has_a_quick_scale(preset):
    make, runner = experiments.PRESETS[preset]
    assert len(make("quick")) > 0 and callable(runner)
