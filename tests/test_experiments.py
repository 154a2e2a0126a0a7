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


def test_width_learning_rates_are_the_validation_winners():
    """WIDTH_LR holds, per regime and selection width, the best learning rate of the committed
    validation runs (every grid complete; a winner on the edge of its grid would mean a grid too small)."""
    best = defaultdict(lambda: (None, -1.0))
    for c in experiments.width_selection("paper"):
        assert c.split == "val" and c.dataset == "mnist" and c.seed == 0
        r = run(c, compute=False)
        assert r is not None, f"selection run missing from results/: {c}"
        k = (experiments.regime(c), c.n_hidden)
        if r["metrics"]["eval_acc"] > best[k][1]:
            best[k] = (c.lr, r["metrics"]["eval_acc"])
    chosen = {(reg, n): lr for reg, table in experiments.WIDTH_LR["paper"].items() for n, lr in table.items()}
    assert chosen == {k: lr for k, (lr, _) in best.items()}


def test_width_sweep_reuses_figure_1_and_caps_full_training():
    cfgs = experiments.width("paper")
    ff = set(experiments.feedforward("paper", range(3), ("mnist", "fashion_mnist")))
    assert {c for c in cfgs if c.experiment == "feedforward"} == ff
    for r, cap in experiments.MAX_WIDTH.items():
        assert max(c.n_hidden for c in cfgs if experiments.regime(c) == r) == cap
    assert max(c.n_hidden for c in cfgs if experiments.regime(c) == "bias") == max(experiments.WIDTHS["paper"])
    assert {c.mode for c in cfgs if c.n_hidden < 10} == {"full"}  # SMALL_FULL: for the matched widths
    assert all(c.cache_dtype == ("bfloat16" if c.n_hidden > 32_000 else "float32") for c in cfgs)
    assert all(c.epochs == 20 and c.split == "test" for c in cfgs)
    gauss = [c for c in cfgs if c.init == "gaussian"]
    assert gauss and all(c.mode == "bias" and c.scale == 1.0 for c in gauss)
    # the masking control: a learned mask and a rerun of bias-only on the same weights, per seed
    mask = experiments.width_mask("paper")
    assert {(c.mode, c.rerun) for c in mask} == {("bias", 0), ("mask", 0), ("bias", 1)}
    assert {c for c in mask if c.mode == "bias" and c.rerun == 0} <= set(cfgs)
