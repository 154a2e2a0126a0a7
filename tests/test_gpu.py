"""The GPU path: training and `make bench` on CUDA, and the device handling they need.

Two kinds of tests:

* on a pretend accelerator, run everywhere (no GPU needed): under torch's FakeTensorMode (in the private
  torch._subclasses; torch is pinned in requirements.txt, and these tests skip if it moves) a tensor
  carries its shape, dtype and device but no numbers, and an operation that mixes devices raises,
  as it does on a GPU. train.train and bench.variant run end to end there, with the cache on the
  device or in host memory, so a tensor left on the CPU (an index, a buffer, a batch) fails here
  rather than on a reader's GPU. The pretend device is "meta": a pretend "cuda" cannot run autograd
  (its engine asks the CUDA driver), and every decision of runtime.py for an accelerator is keyed
  on "not the CPU" except the CUDA-only queries (sync, free and peak memory), patched here as needed;
* on CUDA, skipped without it: the same runs against the CPU's numbers.
"""
import numpy as np
import pytest
import torch

from biaslearn import bench, nets, runtime, train

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device (torch.cuda.is_available() is False)")
NUMPY = {torch.float32: np.float32, torch.bfloat16: np.float32, torch.uint8: np.uint8, torch.bool: np.bool_,
         torch.int64: np.int64}


def tiny(mode="bias", **kw):
    """A run of a few seconds on the CPU: 1,000 synthetic training examples, 500 to score."""
    return train.Config(dataset="synthetic", mode=mode, n_hidden=256, epochs=2, batch_size=64, n_train=1000, **kw)


@pytest.fixture
def pretend(monkeypatch):
    """Enter a pretend accelerator ("meta" under FakeTensorMode) and give its device. Numbers are fake:
    .item() is 1.0 (Adam divides by 1 - beta ** step), .numpy() zeros; networks are drawn outside the
    mode (a parameter made under it cannot be moved to a device by Module.to)."""
    try:
        from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode, unset_fake_temporarily
    except ImportError as e:
        pytest.skip(f"no FakeTensorMode in this torch ({e})")
    monkeypatch.setattr(FakeTensor, "item", lambda self: 1.0, raising=False)
    monkeypatch.setattr(FakeTensor, "numpy", lambda self: np.zeros(tuple(self.shape), NUMPY[self.dtype]),
                        raising=False)
    real = nets.RandomMLP

    def drawn_outside(*args, **kwargs):
        with unset_fake_temporarily():
            return real(*args, **kwargs)
    monkeypatch.setattr(nets, "RandomMLP", drawn_outside)
    with FakeTensorMode(allow_non_fake_inputs=True):
        yield torch.device("meta")


def test_the_pretend_device_raises_on_mixed_devices(pretend):
    """What the tests below rely on: mixing devices raises as on CUDA (here for the bug `make bench` had:
    a CPU permutation indexing a device cache)."""
    P = torch.empty(100, 8, device=pretend)
    with pytest.raises(RuntimeError, match="devices"):
        torch.index_select(P, 0, torch.randperm(100)[:10], out=torch.empty(10, 8, device=pretend))
    torch.index_select(P, 0, torch.randperm(100)[:10].to(pretend), out=torch.empty(10, 8, device=pretend))


def _spy_on_project(monkeypatch):
    """Record the device of every cache train.project makes."""
    made, real = [], train.project

    def project(*args, **kwargs):
        P = real(*args, **kwargs)
        made.append(P.device)
        return P
    monkeypatch.setattr(train, "project", project)
    return made


@pytest.mark.parametrize("free,where", [(None, "device"), (0, "host")])
@pytest.mark.parametrize("mode,cache_dtype", [("bias", "float32"), ("bias", "bfloat16"), ("readout", "float32"),
                                              ("mask", "float32"), ("full", "float32")])
def test_training_on_a_pretend_gpu(pretend, monkeypatch, mode, cache_dtype, free, where):
    """train.train on an accelerator, the cache in device memory (free memory unknown: it stays) or in host
    memory (no free memory): every tensor meets the others on one device."""
    monkeypatch.setattr(runtime, "free_bytes", lambda dev: free)
    made = _spy_on_project(monkeypatch)
    cfg = tiny(mode, cache_dtype=cache_dtype, out_bias=mode == "readout")
    if where == "host" and mode != "full":
        with pytest.warns(RuntimeWarning, match="stays in host memory and each mini-batch's rows are copied"):
            out = train.train(cfg, pretend, progress=False)
    else:
        out = train.train(cfg, pretend, progress=False)
    assert out["device"] == "meta" and out["curve"]["epoch"] == [1, 2]
    assert out["arrays"]["pred"].shape == (500,)
    expected = {"device": [pretend] * 2, "host": [torch.device("cpu")] * 2}[where]
    assert made == ([] if mode == "full" else expected)  # full training has no cache


def test_only_the_evaluation_cache_goes_to_the_host_when_the_training_one_fits(pretend, monkeypatch):
    row = 256 * 4  # bytes per cached row (256 float32 units)
    need_train = 1000 * row + runtime.HEADROOM_BYTES + runtime.HEADROOM_FRACTION * 1000 * row
    monkeypatch.setattr(runtime, "free_bytes", lambda dev: int(need_train))
    made = _spy_on_project(monkeypatch)
    with pytest.warns(RuntimeWarning, match="evaluation set's .* stays in host memory"):
        train.train(tiny(), pretend, progress=False)
    assert made == [pretend, torch.device("cpu")]


@pytest.mark.parametrize("free", [None, 0])
@pytest.mark.parametrize("name", ["fast", "plain", "full"])
def test_bench_on_a_pretend_gpu(pretend, monkeypatch, name, free):
    """`make bench` on an accelerator: before the fix the fast path drew its permutation on the CPU and
    indexed the device cache with it (index_select: two devices), which failed on every CUDA machine."""
    monkeypatch.setattr(runtime, "free_bytes", lambda dev: free)
    made = _spy_on_project(monkeypatch)
    if name == "fast" and free == 0:
        with pytest.warns(RuntimeWarning, match="host memory"):
            row = bench.variant(name, full_batches=1, n=512, hidden=64, device=pretend)
    else:
        row = bench.variant(name, full_batches=1, n=512, hidden=64, device=pretend)
    assert row["variant"] == name and row["device_peak_mb"] is None  # no CUDA: no device peak
    assert made == ([] if name != "fast" else [pretend if free is None else torch.device("cpu")])


# --- on CUDA ---------------------------------------------------------------------------------------------

def _same_run(a, b):
    """Two train.train results hold the same numbers (timings aside)."""
    assert {k: v for k, v in a["metrics"].items() if "seconds" not in k} == \
        {k: v for k, v in b["metrics"].items() if "seconds" not in k}
    assert {k: v for k, v in a["curve"].items() if k != "seconds"} == \
        {k: v for k, v in b["curve"].items() if k != "seconds"}
    assert a["arrays"].keys() == b["arrays"].keys()
    for k in a["arrays"]:
        np.testing.assert_array_equal(a["arrays"][k], b["arrays"][k], err_msg=k)


@needs_cuda
@pytest.mark.parametrize("mode", ["bias", "full", "readout", "mask"])
def test_training_on_cuda_matches_the_cpu(mode):
    """The same tiny run on the CPU and on CUDA: the same curve, to float32 rounding (summation order
    differs between the devices, and Adam carries the difference along a little)."""
    cfg = tiny(mode)
    cpu, gpu = train.train(cfg, "cpu", progress=False), train.train(cfg, "cuda", progress=False)
    assert gpu["device"] == "cuda"
    for k in ("train_loss", "eval_loss"):
        np.testing.assert_allclose(gpu["curve"][k], cpu["curve"][k], rtol=1e-3, err_msg=k)
    assert abs(gpu["metrics"]["eval_acc"] - cpu["metrics"]["eval_acc"]) <= 0.01  # 5 of 500 predictions
    assert gpu["metrics"]["n_trainable"] == cpu["metrics"]["n_trainable"]
    if "b" in cpu["arrays"]:
        np.testing.assert_allclose(gpu["arrays"]["b"], cpu["arrays"]["b"], rtol=0, atol=1e-3)


@needs_cuda
@pytest.mark.parametrize("mode,cache_dtype", [("bias", "float32"), ("bias", "bfloat16"), ("readout", "float32"),
                                              ("mask", "float32")])
def test_cache_in_host_memory_gives_the_same_numbers_on_cuda(monkeypatch, mode, cache_dtype):
    """A cache too large for the GPU stays in host memory, each batch copied over: the same kernels on the same
    rows, so exactly the numbers of the cache in device memory."""
    cfg = tiny(mode, cache_dtype=cache_dtype)
    on_device = train.train(cfg, "cuda", progress=False)
    monkeypatch.setattr(runtime, "free_bytes", lambda dev: 0)
    with pytest.warns(RuntimeWarning, match="host memory"):
        streamed = train.train(cfg, "cuda", progress=False)
    _same_run(on_device, streamed)


@needs_cuda
def test_bias_step_on_cuda_uses_whole_batches_and_matches_autograd():
    assert runtime.slice_rows("cuda", 256) == 256
    model = nets.RandomMLP(30, 200, 10, "bias", seed=2).to("cuda")
    x, y = torch.rand(90, 30, device="cuda"), torch.randint(0, 10, (90,), device="cuda")
    rows = torch.randperm(90, device="cuda")[:64]
    loss, grad = train.bias_step(train.project(x, model.W_in), rows, y[rows], model.b, model.W_out,
                                 slice_rows=runtime.slice_rows("cuda", 64))
    ref = torch.nn.functional.cross_entropy(model(x[rows]), y[rows])
    ref.backward()
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, model.b.grad, rtol=1e-4, atol=1e-6)


@needs_cuda
@pytest.mark.parametrize("name", bench.VARIANTS)
def test_bench_variant_on_cuda(name):
    if name == "full_bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16")
    row = bench.variant(name, full_batches=1, n=512, hidden=64, device="cuda")
    assert row["variant"] == name and row["seconds_per_epoch"] > 0
    assert row["device_peak_mb"] > 0  # torch.cuda.max_memory_allocated, counted from this variant's start


@needs_cuda
def test_bench_fast_path_with_the_cache_in_host_memory_on_cuda(monkeypatch):
    monkeypatch.setattr(runtime, "free_bytes", lambda dev: 0)
    with pytest.warns(RuntimeWarning, match="host memory"):
        row = bench.variant("fast", full_batches=1, n=512, hidden=64, device="cuda")
    assert row["setup_seconds"] > 0 and row["device_peak_mb"] > 0


@needs_cuda
def test_cuda_runtime_queries():
    assert runtime.resolve("cuda") == torch.empty(1, device="cuda").device
    assert runtime.free_bytes("cuda") > 0
    runtime.reset_peak("cuda")
    x = torch.empty(1 << 20, device="cuda")  # 4 MiB
    assert runtime.peak_bytes("cuda") >= x.numel() * 4
    t = runtime.clock("cuda")
    assert runtime.clock("cuda") >= t
