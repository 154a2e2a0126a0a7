"""The networks: what is learned, what is frozen, how weights are drawn, and the fast path."""
import copy
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from biaslearn import nets, runtime, train


@pytest.mark.parametrize("mode,expected", [("bias", 300), ("readout", 3000), ("full", 50 * 300 + 300 + 3000),
                                           ("mask", 300)])
def test_trainable_parameter_count(mode, expected):
    assert nets.RandomMLP(50, 300, 10, mode).n_trainable() == expected


def test_bias_mode_learns_only_hidden_biases():
    model = nets.RandomMLP(20, 64, 10, "bias", seed=3)
    assert [n for n, _ in model.named_parameters()] == ["b"]
    frozen = {k: v.clone() for k, v in model.named_buffers()}
    b0 = model.b.detach().clone()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    x, y = torch.rand(128, 20), torch.randint(0, 10, (128,))
    for _ in range(20):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    for k, v in model.named_buffers():
        assert torch.equal(v, frozen[k]), f"{k} changed during bias-only training"
    assert not torch.equal(model.b, b0)


def test_rnn_bias_mode_learns_only_biases():
    rnn = nets.RandomRNN(3, 40, 2, "bias")
    assert [n for n, _ in rnn.named_parameters()] == ["b"]
    assert rnn.n_trainable() == 40
    assert rnn(torch.rand(5, 7, 3)).shape == (5, 7, 2)


def test_rnn_matches_step_by_step_equation():
    rnn = nets.RandomRNN(2, 16, 1, "full", seed=1)
    x = torch.rand(3, 6, 2)
    h = torch.zeros(3, 16)
    for t in range(6):
        h = torch.relu(h @ rnn.W_rec.T + x[:, t] @ rnn.W_in.T + rnn.b)
    assert torch.allclose(rnn(x)[:, -1], h @ rnn.W_out.T, atol=1e-6)


def test_weights_are_seeded_uniform_and_independent_per_tensor():
    a, b = nets.RandomMLP(784, 500, 10, seed=0), nets.RandomMLP(784, 500, 10, seed=0)
    assert torch.equal(a.W_in, b.W_in) and torch.equal(a.W_out, b.W_out)
    assert not torch.equal(a.W_in, nets.RandomMLP(784, 500, 10, seed=1).W_in)
    assert a.W_in.abs().max() <= 0.1 and a.W_in.abs().max() > 0.099
    assert abs(a.W_in.mean().item()) < 2e-3
    # adding an output bias draws nothing new from the other tensors' streams
    assert torch.equal(nets.RandomMLP(784, 500, 10, seed=0, out_bias=True).W_in, a.W_in)


def test_gaussian_init_scale():
    w = nets.draw((2000, 400), 0, "W_in", "gaussian", 1.0)
    assert abs(w.std().item() - 1 / 20) < 1e-3


@pytest.mark.parametrize("kwargs,error", [
    (dict(mode="weights"), "unknown mode"),
    (dict(init="cauchy"), "unknown init"),
])
def test_bad_network_arguments(kwargs, error):
    with pytest.raises(ValueError, match=error):
        nets.RandomMLP(4, 4, 2, **kwargs)


def test_rnn_has_no_mask_mode():
    with pytest.raises(ValueError, match="RandomMLP only"):
        nets.RandomRNN(4, 4, 2, "mask")


def test_mask_is_hard_forward_and_learns_only_scores():
    """Mask mode: unit j counts iff s_j > 0 (exactly, in the forward pass); only s is learned."""
    model = nets.RandomMLP(20, 64, 10, "mask", seed=1)
    assert [n for n, _ in model.named_parameters()] == ["s"] and (model.s > 0).all()
    with torch.no_grad():
        model.s[::2] = -1.0
    x = torch.rand(8, 20)
    h = torch.relu(x @ model.W_in.T + model.b) * (model.s > 0)
    torch.testing.assert_close(model(x), h @ model.W_out.T)
    F.cross_entropy(model(x), torch.randint(0, 10, (8,))).backward()
    assert model.s.grad.abs().sum() > 0  # switched-off units still get a gradient (straight-through)


def test_soft_mask_is_a_sigmoid_of_slope_and_training_ends_hard(tmp_path):
    """slope > 0: the gate is sigmoid(slope * s) (gradient through it); slope 0: the hard mask. A soft-mask
    run's schedule ends at the configured slope and its test score uses the hard mask."""
    model = nets.RandomMLP(20, 64, 10, "mask", seed=1)
    with torch.no_grad():
        model.s[::2] = -0.05
    model.slope = 50.0
    torch.testing.assert_close(model.gate(), torch.sigmoid(50.0 * model.s))
    model.slope = 0.0
    torch.testing.assert_close(model.gate().detach(), (model.s > 0).float())
    cfg = train.Config(dataset="synthetic", mode="mask", n_hidden=32, epochs=2, lr=1e-2, mask_slope=200.0)
    seen = []
    real = nets.RandomMLP.head

    def spy(self, pre):
        seen.append(self.slope)
        return real(self, pre)
    nets.RandomMLP.head = spy
    try:
        r = train.train(cfg, progress=False)
    finally:
        nets.RandomMLP.head = real
    steps = [v for v in seen if v > 0]
    assert steps[0] == 1.0 and abs(steps[-1] - 200.0) < 1e-9 and all(a < b for a, b in zip(steps, steps[1:]))
    assert seen[-1] == 0.0  # the last evaluation: hard mask
    assert r["metrics"]["active_fraction"] == pytest.approx(
        float(np.mean(np.unpackbits(r["arrays"]["active"])[:32].astype(bool))))


def test_rerun_keeps_weights_and_redraws_the_learned_vector():
    a, b = nets.RandomMLP(20, 64, 10, "mask", seed=1), nets.RandomMLP(20, 64, 10, "mask", seed=1, rerun=1)
    assert torch.equal(a.W_in, b.W_in) and torch.equal(a.W_out, b.W_out)
    assert not torch.equal(a.b, b.b) and not torch.equal(a.s, b.s) and (b.s > 0).all()


@pytest.mark.parametrize("mode", ["readout", "mask", "bias"])
def test_cached_head_equals_plain_network(mode):
    """Readout and mask runs train from cached rows of W_in x through RandomMLP.head: the same
    loss and gradients as the plain network."""
    x, y = torch.rand(40, 30), torch.randint(0, 10, (40,))
    nets_ = [nets.RandomMLP(30, 100, 10, mode, seed=4) for _ in range(2)]
    F.cross_entropy(nets_[0](x), y).backward()
    F.cross_entropy(nets_[1].head(train.project(x, nets_[1].W_in)), y).backward()
    for (n, p0), (_, p1) in zip(nets_[0].named_parameters(), nets_[1].named_parameters()):
        torch.testing.assert_close(p0.grad, p1.grad, rtol=1e-5, atol=1e-7, msg=n)


@pytest.mark.parametrize("cuda,expected", [(True, "cuda"), (False, "cpu")])
def test_auto_device_is_cuda_when_present_else_cpu(monkeypatch, cuda, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert nets.device("auto") == torch.device(expected)
    assert nets.device() == torch.device(expected)
    assert nets.device("cpu") == torch.device("cpu")  # a named device wins over what is present


def test_named_device_is_parsed():
    assert nets.device is runtime.device
    assert nets.device("cuda:1") == torch.device("cuda", 1)
    assert nets.device("cuda").index is None
    with pytest.raises(RuntimeError, match="device"):
        nets.device("gpu")


def test_weights_are_the_same_on_every_device_and_ignore_the_global_seed():
    """Weights come from their own CPU generators (nets.draw): neither the device nor
    torch.manual_seed changes them, and a model on device("cpu") computes the same outputs."""
    torch.manual_seed(123)
    a = nets.RandomMLP(30, 50, 10, "bias", seed=5)
    torch.manual_seed(456)
    b = nets.RandomMLP(30, 50, 10, "bias", seed=5).to(nets.device("cpu"))
    for (k, v), (_, w) in zip(a.state_dict().items(), b.state_dict().items()):
        assert w.device.type == "cpu" and torch.equal(v, w), k
    x = torch.rand(8, 30)
    assert torch.equal(a(x), b(x))
    if torch.cuda.is_available():
        c = nets.RandomMLP(30, 50, 10, "bias", seed=5).to(nets.device("cuda"))
        assert all(torch.equal(v, w.cpu()) for v, w in zip(a.state_dict().values(), c.state_dict().values()))


def test_generator_is_one_fixed_stream_per_seed_and_name():
    g = nets.generator(0, "W_in")
    assert g.device.type == "cpu"
    # pinned: the first 8 bytes (little-endian) of sha256("0/W_in"); the stored runs were drawn with it
    assert g.initial_seed() == 118486069948480480
    same = torch.rand(1000, generator=nets.generator(0, "W_in"))
    assert torch.equal(torch.rand(1000, generator=g), same)
    assert not torch.equal(torch.rand(1000, generator=nets.generator(0, "W_out")), same)
    assert not torch.equal(torch.rand(1000, generator=nets.generator(1, "W_in")), same)
    # and what nets.draw makes of it: U[-0.1, 0.1] from that stream
    torch.testing.assert_close(nets.draw((4,), 0, "b"),
                               torch.tensor([-0.0335409418, 0.0978649408, -0.0841420442, 0.0415586494]),
                               rtol=0, atol=1e-8)


def test_the_compiled_step_leaves_torchs_thread_count_as_it_was():
    """Starting numba's OpenMP pool can set the thread count torch reads (1 became 2, and every later step of a run
    set to one thread ran on two): kernel.torch_threads, which each compiled step calls, puts it back. In a fresh
    process, where the pool starts."""
    pytest.importorskip("numba", reason="the compiled step needs numba (requirements.txt)")
    code = ("import torch; torch.set_num_threads(1); from biaslearn import kernel; import numba; "
            "print(kernel.torch_threads(numba), torch.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "1"]  # numba's count, torch's after


@pytest.mark.parametrize("out_bias", [False, True])
@pytest.mark.parametrize("step, setting, n_out, lookup", [
    ("torch", 1, 10, None), ("torch", 7, 10, None), ("torch", 32, 10, None),
    ("numba", 1, 10, True), ("numba", 2, 10, True), ("numba", 2, 3, True), ("numba", 2, 10, False)])
def test_fast_path_equals_autograd(out_bias, step, setting, n_out, lookup, monkeypatch):
    """Both fused cached-projection steps give autograd's loss and bias gradient: train.bias_step (PyTorch, in
    slices of ``setting`` rows) and kernel.bias_step (numba, one pass over the cache, on ``setting`` threads; its
    rows 2 at a time with the last few one by one, its columns in pieces of 64 here, the last one shorter; its
    backward's groups of 4 rows by table lookup or row by row)."""
    from biaslearn import kernel
    monkeypatch.setattr(kernel, "CHUNK", 64)
    if lookup is not None:
        lookup_on(lookup, monkeypatch)
    model = nets.RandomMLP(30, 200, n_out, "bias", seed=2, out_bias=out_bias)
    x, y = torch.rand(90, 30), torch.randint(0, n_out, (90,))
    P = train.project(x, model.W_in)
    rows = torch.randperm(90, generator=torch.Generator().manual_seed(0))[:63]  # not a multiple of threads or slices
    if out_bias:  # a bias-only network's output bias is a frozen zero: make it count
        model.c.copy_(torch.randn(n_out, generator=torch.Generator().manual_seed(1)))
    c, before = getattr(model, "c", None), torch.get_num_threads()
    try:
        if step == "torch":
            loss, grad = train.bias_step(P, rows, y[rows], model.b, model.W_out, c, slice_rows=setting)
        else:
            import numba
            torch.set_num_threads(setting)
            loss, grad = kernel.bias_step(P, rows, y[rows], model.b, model.W_out, c)
            assert numba.get_num_threads() == min(setting, numba.config.NUMBA_NUM_THREADS)  # torch's count
    finally:
        torch.set_num_threads(before)
    ref = F.cross_entropy(model(x[rows]), y[rows])
    ref.backward()
    assert abs(loss.item() - ref.item()) < 1e-6
    torch.testing.assert_close(grad, model.b.grad, rtol=1e-5, atol=1e-7)


def lookup_on(lookup: bool, monkeypatch) -> None:
    """The compiled step's backward by table lookup (kernel.table_lookup) or row by row; the lookup needs AVX-512."""
    from biaslearn import kernel
    monkeypatch.setenv("BIASLEARN_TABLE_LOOKUP", "1" if lookup else "0")
    if lookup and not kernel.table_lookup():
        pytest.skip("the table lookup needs a CPU with AVX-512; this one has none")
    assert kernel.table_lookup() is lookup


@pytest.mark.parametrize("lookup", [True, False])
@pytest.mark.parametrize("chunk", [1024, 2048])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_compiled_kernel_carries_its_sums_across_sub_pieces(chunk, dtype, lookup, monkeypatch):
    """At a width above kernel.SUB (1,300, not a multiple of 16) the compiled step's forward carries each pair's sums
    from sub-piece to sub-piece, its pieces end in columns taken one by one, and its backward takes the groups of 4
    rows by table lookup, 2 vectors side by side, then one, then the generated loop for the last columns (or, without
    the lookup, runs UB vectors side by side): still the PyTorch step's loss and gradient."""
    from biaslearn import kernel
    assert 1300 > kernel.SUB and 1300 % 16 and kernel.SUB % 16 == 0
    lookup_on(lookup, monkeypatch)
    monkeypatch.setattr(kernel, "CHUNK", chunk)  # one piece of 1,300 columns, or pieces of 1,024 and 276
    model = nets.RandomMLP(30, 1300, 10, "bias", seed=3)
    x, y = torch.rand(41, 30), torch.randint(0, 10, (41,))
    P, rows = train.project(x, model.W_in, dtype), torch.randperm(41, generator=torch.Generator().manual_seed(0))
    (l1, g1), (l2, g2) = (kernel.bias_step(P, rows, y[rows], model.b, model.W_out),
                          train.bias_step(P, rows, y[rows], model.b, model.W_out))
    assert abs(l1.item() - l2.item()) < 1e-6
    torch.testing.assert_close(g1, g2, rtol=1e-5, atol=1e-7)
    l3, g3 = kernel.bias_step(P, rows.int(), y[rows], model.b, model.W_out)  # int32 rows: the same numbers
    assert l3.item() == l1.item() and torch.equal(g3, g1)


def test_fast_path_bfloat16_cache_is_close():
    model = nets.RandomMLP(30, 200, 10, "bias", seed=2)
    x, y = torch.rand(64, 30), torch.randint(0, 10, (64,))
    rows = torch.arange(64)
    l32, g32 = train.bias_step(train.project(x, model.W_in), rows, y, model.b, model.W_out)
    l16, g16 = train.bias_step(train.project(x, model.W_in, torch.bfloat16), rows, y, model.b, model.W_out)
    assert abs(l32.item() - l16.item()) < 1e-2
    # a unit whose pre-activation sits at 0 may flip under rounding: compare whole vectors
    assert (g32 - g16).norm() < 0.05 * g32.norm()


@pytest.mark.parametrize("chunk", [64, 2048])
def test_compiled_kernel_reads_a_bfloat16_cache_as_the_torch_step_does(chunk, monkeypatch):
    from biaslearn import kernel
    monkeypatch.setattr(kernel, "CHUNK", chunk)  # pieces of 64 columns (the last one shorter), or one piece
    model = nets.RandomMLP(30, 200, 10, "bias", seed=2)
    x, y = torch.rand(63, 30), torch.randint(0, 10, (63,))
    P16, rows = train.project(x, model.W_in, torch.bfloat16), torch.arange(63)
    (l1, g1), (l2, g2) = (kernel.bias_step(P16, rows, y, model.b, model.W_out),
                          train.bias_step(P16, rows, y, model.b, model.W_out))
    assert abs(l1.item() - l2.item()) < 1e-6
    torch.testing.assert_close(g1, g2, rtol=1e-5, atol=1e-7)


def test_compiled_kernel_refuses_what_it_cannot_read():
    """Its loop checks no index, so every bad input is refused before it runs (one would read out of bounds)."""
    from biaslearn import kernel
    model = nets.RandomMLP(30, 20, 10, "bias", seed=2)
    P, y4 = torch.zeros(4, 20), torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match="float32 or bfloat16 cache in host memory"):
        kernel.bias_step(P.double(), torch.arange(4), y4, model.b, model.W_out)
    with pytest.raises(ValueError, match="disagree on the number of hidden units"):
        kernel.bias_step(torch.zeros(4, 19), torch.arange(4), y4, model.b, model.W_out)
    with pytest.raises(ValueError, match="give a contiguous cache"):
        kernel.bias_step(torch.zeros(20, 4).t(), torch.arange(4), y4, model.b, model.W_out)
    for rows, y in [(torch.tensor([0, 1, 2, 4]), y4), (torch.tensor([-1, 0, 1, 2]), y4),
                    (torch.arange(4), torch.tensor([0, 0, 0, 10])), (torch.arange(3), y4)]:
        with pytest.raises(ValueError, match="give one label per row, rows in"):
            kernel.bias_step(P, rows, y, model.b, model.W_out)


def test_compiled_kernel_keeps_a_nan_as_torch_does():
    from biaslearn import kernel
    model = nets.RandomMLP(30, 20, 10, "bias", seed=2)
    P = torch.zeros(4, 20)
    P[1, 3] = float("nan")
    loss, _ = kernel.bias_step(P, torch.arange(4), torch.zeros(4, dtype=torch.long), model.b, model.W_out)
    assert torch.isnan(loss)


@pytest.mark.parametrize("lookup", [True, False])
@pytest.mark.parametrize("threads, n", [(1, 3), (1, 9), (2, 5), (2, 9)])
def test_compiled_kernel_with_few_rows_and_a_nan(threads, n, lookup, monkeypatch):
    """Fewer than 4 rows on a thread (no group for the table lookup), or groups and rows left over: the PyTorch step's
    loss and gradient. With a NaN in one row of the cache, the loss is NaN (as PyTorch's) and the gradient is NaN at
    the units that row has active and finite elsewhere, with or without the lookup (PyTorch's own gradient is NaN at
    every unit: it multiplies the masked-off terms by 0, where the compiled step leaves them out)."""
    lookup_on(lookup, monkeypatch)
    model = nets.RandomMLP(30, 70, 10, "bias", seed=2)
    P = train.project(torch.rand(12, 30), model.W_in)
    rows, y = torch.arange(n), torch.randint(0, 10, (n,), generator=torch.Generator().manual_seed(0))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        (l1, g1), (l2, g2) = kernel_step(P, rows, y, model), train.bias_step(P, rows, y, model.b, model.W_out)
        assert abs(l1.item() - l2.item()) < 1e-6
        torch.testing.assert_close(g1, g2, rtol=1e-5, atol=1e-7)
        P[2, 5] = float("nan")
        loss, grad = kernel_step(P, rows, y, model)
        active = P[2] + model.b > 0  # False at the NaN: counted inactive, as relu's mask counts it
        assert torch.isnan(loss) and torch.equal(grad.isnan(), active)
    finally:
        torch.set_num_threads(before)


def kernel_step(P, rows, y, model):
    from biaslearn import kernel
    return kernel.bias_step(P, rows, y, model.b, model.W_out)


def test_training_with_the_compiled_kernel_matches_the_torch_step():
    cfg = train.Config(dataset="synthetic", mode="bias", n_hidden=64, epochs=2, lr=1e-2)
    a, b = train.train(cfg, "cpu", progress=False), train.train(cfg.replace(kernel="numba"), progress=False)
    assert b["device"] == "cpu"  # device "auto" means the CPU for the compiled step, GPU or not
    np.testing.assert_allclose(a["curve"]["train_loss"], b["curve"]["train_loss"], rtol=1e-4)
    assert abs(a["metrics"]["eval_acc"] - b["metrics"]["eval_acc"]) <= 0.01


def test_full_training_under_bfloat16_autocast(monkeypatch):
    """autocast "bfloat16" runs the fully trained network's forward pass (training and scoring) in bfloat16: its
    loss is taken in float32, and it learns what float32 learns."""
    cfg = train.Config(dataset="synthetic", mode="full", n_hidden=64, epochs=3, lr=1e-3)
    a = train.train(cfg, "cpu", progress=False)
    seen, forward = [], nets.RandomMLP.forward
    monkeypatch.setattr(nets.RandomMLP, "forward", lambda self, x: seen.append(
        torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None) or forward(self, x))
    losses, cross_entropy = [], train.F.cross_entropy
    monkeypatch.setattr(train.F, "cross_entropy", lambda x, y: losses.append(x.dtype) or cross_entropy(x, y))
    b = train.train(cfg.replace(autocast="bfloat16"), "cpu", progress=False)
    assert seen and set(seen) == {torch.bfloat16}  # every forward pass, training's and scoring's, under autocast
    assert losses and set(losses) == {torch.float32}  # the loss of bfloat16 logits taken in float32
    assert b["curve"]["train_loss"] != a["curve"]["train_loss"]  # other numbers...
    np.testing.assert_allclose(a["curve"]["train_loss"], b["curve"]["train_loss"], rtol=0.05)  # ...close ones
    assert abs(a["metrics"]["eval_acc"] - b["metrics"]["eval_acc"]) <= 0.05
    with pytest.raises(ValueError, match="autocast only with mode 'full'"):
        train.Config(dataset="synthetic", mode="bias", autocast="bfloat16")
    monkeypatch.setattr(train, "split", lambda cfg: (_ for _ in ()).throw(AssertionError("read data")))
    with pytest.raises(ValueError, match="autocast 'bfloat16' runs on a CPU or a CUDA GPU"):  # before any data is read
        train.train(cfg.replace(autocast="bfloat16"), "meta", progress=False)


def test_the_compiled_kernel_refuses_a_gpu_asked_for_by_name(monkeypatch):
    """On a CUDA machine (faked here), device "auto" trains the compiled step on the CPU; "cuda" is refused
    before any data is read."""
    seen = []
    monkeypatch.setattr(train.nets, "device", lambda d: seen.append(d) or torch.device("cpu" if d == "cpu" else "cuda"))
    monkeypatch.setattr(train, "split", lambda cfg: (_ for _ in ()).throw(AssertionError("read data")))
    cfg = train.Config(dataset="synthetic", n_hidden=8, epochs=1, kernel="numba")
    with pytest.raises(ValueError, match="kernel 'numba' runs on the CPU"):
        train.train(cfg, "cuda", progress=False)
    with pytest.raises(AssertionError, match="read data"):  # "auto": past the check, on the CPU
        train.train(cfg, "auto", progress=False)
    assert seen == ["cuda", "cpu"]


def test_the_compiled_kernel_is_a_cpu_bias_step_and_old_keys_stay():
    from biaslearn import results
    with pytest.raises(ValueError, match="kernel 'numba' with mode 'bias'"):
        train.Config(mode="full", kernel="numba")
    cfg = train.Config(dataset="synthetic", n_hidden=8, epochs=1)
    assert results.key(cfg) == results.key(cfg.replace(kernel="torch")) != results.key(cfg.replace(kernel="numba"))
    assert "kernel" not in results.canonical(cfg)    # stored runs keep their keys


def test_fused_adam_takes_the_same_steps_as_plain_adam():
    """train.py trains with fused Adam (much faster on 25M weights); it is the same algorithm."""
    x, y = torch.rand(64, 20), torch.randint(0, 10, (64,))
    start = nets.RandomMLP(20, 50, 10, "full", seed=3)
    trained = []
    for fused in (False, True):
        net = copy.deepcopy(start)
        opt = torch.optim.Adam(net.parameters(), lr=1e-2, fused=fused)
        for _ in range(5):
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            opt.step()
        trained.append(list(net.parameters()))
    for p0, p, q in zip(start.parameters(), *trained):
        assert (p - p0).abs().max() > 1e-3  # the weights moved
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_bias_step_refuses_tensors_on_different_devices():
    """bias_step says which tensor is where instead of failing inside index_select on a GPU (or, on some
    devices, not failing): here the cache on 'meta' and the row indices left on the CPU."""
    model = nets.RandomMLP(30, 200, 10, "bias", seed=2)
    y, rows = torch.randint(0, 10, (8,)), torch.arange(8)
    with pytest.raises(ValueError, match="the cache is on meta, the rows on cpu"):
        train.bias_step(torch.empty(90, 200, device="meta"), rows, y, model.b.to("meta"), model.W_out.to("meta"))
    with pytest.raises(ValueError, match="the labels on cpu, b on meta"):
        train.bias_step(torch.empty(90, 200), rows, y, model.b.to("meta"), model.W_out)


@pytest.mark.parametrize("dev,batch,expected", [("cpu", 256, 32), ("cpu", 7, 32), ("cuda", 256, 256),
                                                ("cuda:1", 100, 100), ("meta", 64, 64)])
def test_slices_of_the_fast_step_are_small_on_a_cpu_and_whole_batches_on_an_accelerator(dev, batch, expected):
    assert runtime.slice_rows(dev, batch) == runtime.slice_rows(torch.device(dev), batch) == expected
    assert runtime.CPU_SLICE_ROWS == 32  # the slices the stored CPU runs were computed with


def test_cache_placement_keeps_headroom():
    GiB = 2**30
    # the paper's width: 70,000 rows x 32,000 float32 units = 8.3 GiB, plus 1 GiB + 10% to spare
    need = 70_000 * 32_000 * 4
    assert runtime.cache_placement(need, 80 * GiB) == "device"
    assert runtime.cache_placement(need, 10 * GiB) == "host"
    assert runtime.cache_placement(need, int(need * 1.1) + GiB) == "device"  # just enough
    assert runtime.cache_placement(need, int(need * 1.1) + GiB - 1) == "host"
    assert runtime.cache_placement(0, GiB) == "device" and runtime.cache_placement(0, GiB - 1) == "host"
    assert runtime.cache_placement(100, 200, headroom=0, fraction=0) == "device"
    assert runtime.cache_placement(100, 99, headroom=0, fraction=0) == "host"


def test_cache_devices_only_ask_cuda_for_its_free_memory(monkeypatch):
    """Off CUDA there is nothing to ask: the caches stay on the device (the CPU path never moves)."""
    cpu = torch.device("cpu")
    assert runtime.free_bytes(cpu) is None and runtime.free_bytes("meta") is None
    assert train.cache_devices(60_000, 10_000, 32_000, torch.float32, cpu) == (cpu, cpu)
    monkeypatch.setattr(runtime, "free_bytes", lambda dev: 3 * 2**30)  # a small GPU: 3 GiB free
    gpu, host = torch.device("cuda"), torch.device("cpu")
    assert train.cache_devices(1000, 500, 256, torch.float32, gpu) == (gpu, gpu)
    with pytest.warns(RuntimeWarning, match=r"\(8.3 GiB\) does not fit in the free memory of cuda \(3.0 GiB\)"):
        assert train.cache_devices(60_000, 10_000, 32_000, torch.float32, gpu) == (host, host)
    with pytest.warns(RuntimeWarning, match="evaluation set's"):  # bfloat16: the training part alone fits
        assert train.cache_devices(30_000, 10_000, 32_000, torch.bfloat16, gpu) == (gpu, host)


def test_batch_rows_from_a_host_cache_are_the_rows_of_the_cache():
    """A cache in host memory: the batch's rows are gathered into a reused buffer and moved to the device
    (here 'meta', which holds no numbers: the gathered buffer is checked instead); a cache already on the
    device is returned as it is, with its indices."""
    P, rows, work = torch.rand(50, 6), torch.tensor([4, 0, 49, 4, 17]), {}
    assert train.batch_rows(P, rows, torch.device("cpu"), work) == (P, rows) and not work
    Pb, idx = train.batch_rows(P, rows, torch.device("meta"), work)
    assert Pb.device.type == idx.device.type == "meta" and Pb.shape == (5, 6) and idx.shape == (5,)
    assert torch.equal(work["stage"][:5], P[rows])
    stage = work["stage"]
    train.batch_rows(P, rows[:3], torch.device("meta"), work)  # a shorter last batch: the same buffer
    assert work["stage"] is stage and torch.equal(stage[:3], P[rows[:3]])


def test_device_queries_are_no_ops_on_the_cpu():
    runtime.sync("cpu")
    assert runtime.peak_bytes("cpu") is None
    runtime.reset_peak("cpu")
    t = runtime.clock("cpu")
    assert runtime.clock(torch.device("cpu")) >= t
    assert runtime.resolve("cpu") == torch.device("cpu")


def test_training_on_the_cpu_uses_the_cpu_slices_and_keeps_the_cache_where_it_is(monkeypatch):
    """The CPU path is the one the stored results were computed on: slices of 32 rows, the cache in
    memory, every batch read from it directly."""
    seen, moved = [], []
    real_step, real_rows = train.bias_step, train.batch_rows

    def bias_step(*args, **kwargs):
        seen.append(kwargs["slice_rows"])
        return real_step(*args, **kwargs)

    def batch_rows(P, rows, dev, work):
        out = real_rows(P, rows, dev, work)
        moved.append(out[0] is not P)
        return out
    monkeypatch.setattr(train, "bias_step", bias_step)
    monkeypatch.setattr(train, "batch_rows", batch_rows)
    cfg = train.Config(dataset="synthetic", n_hidden=64, epochs=1, batch_size=500, n_train=1000)
    train.train(cfg, "cpu", progress=False)
    assert seen == [32, 32] and moved == [False, False]


def test_training_timings_wait_for_the_device(monkeypatch):
    """train.train reads its clock through runtime.clock (CUDA synchronised first) on the run's device:
    around the cache's setup and around each epoch."""
    calls = []
    monkeypatch.setattr(runtime, "sync", lambda dev: calls.append(str(dev)))
    out = train.train(train.Config(dataset="synthetic", n_hidden=64, epochs=2, n_train=500), "cpu", progress=False)
    assert calls == ["cpu"] * (2 + 2 * 2) and len(out["curve"]["seconds"]) == 2


@pytest.mark.parametrize("mode, extra", [("full", {}), ("bias", {}), ("mask", {"mask_slope": 50.0})])
def test_a_stopped_run_goes_on_from_its_checkpoint_with_the_same_numbers(tmp_path, monkeypatch, mode, extra):
    cfg = train.Config(dataset="synthetic", mode=mode, n_hidden=16, epochs=3, lr=1e-2, **extra)
    whole = train.train(cfg, progress=False)
    ck, real = tmp_path / "run.partial.pt", train._save_checkpoint

    def save_then_stop(*args, **kwargs):  # the process is killed right after epoch 1's checkpoint
        real(*args, **kwargs)
        raise KeyboardInterrupt
    monkeypatch.setattr(train, "_save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train.train(cfg, progress=False, checkpoint=ck)
    monkeypatch.setattr(train, "_save_checkpoint", real)
    assert ck.exists()
    with pytest.raises(ValueError, match="belongs to another config"):
        train.train(cfg.replace(lr=3e-2), progress=False, checkpoint=ck)
    state = torch.load(ck, weights_only=False)
    del state["config"]["kernel"]  # saved before Config had this field (added since, at its default): still this run
    torch.save(state, ck)
    resumed = train.train(cfg, progress=False, checkpoint=ck)
    assert resumed["curve"]["eval_acc"] == whole["curve"]["eval_acc"]
    assert resumed["curve"]["train_loss"] == whole["curve"]["train_loss"]
    assert resumed["metrics"]["eval_loss"] == whole["metrics"]["eval_loss"]
    np.testing.assert_array_equal(resumed["arrays"]["pred"], whole["arrays"]["pred"])
    assert resumed["prior_seconds"] > 0 and whole["prior_seconds"] == 0 and not ck.exists()


def _with_grads(*grads):
    ps = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
    for p, g in zip(ps, grads):
        p.grad = g.clone()
    return ps


def test_clip_grad_norm_equals_torchs_whenever_its_norm_is_finite():
    g = torch.Generator().manual_seed(0)
    grads = (torch.randn(30, 20, generator=g) * 5, torch.randn(7, generator=g))
    ours, theirs = _with_grads(*grads), _with_grads(*grads)
    n1, n2 = nets.clip_grad_norm(ours, 1.0), torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    assert torch.equal(n1, n2) and all(torch.equal(a.grad, b.grad) for a, b in zip(ours, theirs))


def test_clip_grad_norm_survives_a_finite_gradient_whose_float32_square_overflows():
    grads = (torch.tensor([3e19, -4e19]), torch.tensor([0.0]))        # norm 5e19: its square is past float32
    assert not torch.isfinite(torch.nn.utils.clip_grad_norm_(_with_grads(*grads), 1.0))  # torch: inf, grads zeroed
    ps = _with_grads(*grads)
    norm = nets.clip_grad_norm(ps, 1.0)
    assert abs(norm.item() / 5e19 - 1) < 1e-6
    assert torch.allclose(ps[0].grad, torch.tensor([0.6, -0.8]), atol=1e-6)   # the direction kept, the norm clipped to 1


def test_clip_grad_norm_reports_a_gradient_that_is_not_finite():
    assert not torch.isfinite(nets.clip_grad_norm(_with_grads(torch.tensor([float("inf"), 1.0])), 1.0))
