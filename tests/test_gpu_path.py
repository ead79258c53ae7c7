"""The CUDA path, checked on the CPU: GPUs are stubbed through ``torch.cuda``'s functions.

Device-aware run keys and checkpoint identities, the autocast dtype by compute
capability, LRN under autocast, ``--device auto`` on a GPU the wheel cannot drive,
``cuda:N``, strict determinism, the run's own device in its provenance, and the
fallback from a failed ``torch.compile``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from test_convnet_train import config, context, tiny_set
from torch import nn

from bovw_vs_convnet.cli import main
from bovw_vs_convnet.config import build_config, config_to_dict, identity_settings
from bovw_vs_convnet.convnet import device as device_module
from bovw_vs_convnet.convnet.alexnet import AdaptiveAvgPool2d, _lrn_by_slices, _paper_lrn
from bovw_vs_convnet.convnet.checkpoint import load_checkpoint
from bovw_vs_convnet.convnet.config import ConvNetConfig
from bovw_vs_convnet.convnet.device import (
    Runtime,
    choose_amp,
    resolve_device,
    resolve_runtime,
    wheel_runs_on,
)
from bovw_vs_convnet.convnet.models import create_model
from bovw_vs_convnet.convnet.pipeline import (
    CHECKPOINT_NAME,
    _runtime_record,
    build_pipeline,
    checkpoint_identity,
)
from bovw_vs_convnet.errors import ConfigError
from bovw_vs_convnet.harness import provenance
from bovw_vs_convnet.harness.record_json import config_key
from bovw_vs_convnet.harness.run import run_config_key, run_pipeline

WHEEL_ARCHS = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]  # a CUDA 13 wheel


@pytest.fixture(autouse=True)
def _fresh_warnings() -> None:
    device_module._WARNED.clear()  # warnings are once per process; each test starts anew


def fake_gpus(
    monkeypatch: pytest.MonkeyPatch,
    capability: tuple[int, int],
    *,
    names: tuple[str, ...] = ("Fake GPU",),
    archs: list[str] = WHEEL_ARCHS,
) -> None:
    """Stub ``torch.cuda``: ``len(names)`` GPUs of ``capability``, a wheel built for ``archs``."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(names))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=None: names[index or 0])
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: list(archs))


# --- 1. the stored result names its device ---------------------------------------------


def test_config_key_tells_a_cpu_fp32_run_from_a_cuda_bf16_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = build_config(ConvNetConfig, {"model": "lenet5"})
    args = ("convnet", cfg, "f" * 64)
    cpu_key = run_config_key(*args, dataset="digits", seed=0, device="cpu")
    fake_gpus(monkeypatch, (9, 0))
    cuda_key = run_config_key(*args, dataset="digits", seed=0, device="auto")
    assert (resolve_runtime("cpu", cfg.amp).amp, resolve_runtime("auto", cfg.amp).amp) == (
        "fp32",
        "bf16",
    )
    assert cpu_key != cuda_key


@pytest.mark.parametrize("amp", ["auto", "bf16", "off"])
def test_a_cpu_run_keeps_the_key_it_had_before_keys_named_the_device(amp: str) -> None:
    # a fixed-recipe run, as were the runs stored before keys named the device (an auto
    # run's key also names the recipe's revision)
    cfg = build_config(ConvNetConfig, {"model": "alexnet-small", "amp": amp, "recipe": "fixed"})
    old = config_key(
        "convnet",
        identity_settings(ConvNetConfig, config_to_dict(cfg)),
        "f" * 64,
        dataset="fashion-mnist",
        seed=3,
    )
    new = run_config_key("convnet", cfg, "f" * 64, dataset="fashion-mnist", seed=3, device="cpu")
    assert new == old


def test_checkpoint_identity_adds_device_and_dtype_on_cuda_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, train, ctx = config(epochs="1"), tiny_set(), context(tmp_path)
    build_pipeline(cfg, ctx).fit(train, None)  # a CPU checkpoint
    cpu = checkpoint_identity("lenet5", cfg, train, ctx, resolve_runtime("cpu", cfg.amp))
    fake_gpus(monkeypatch, (8, 0))
    cuda = checkpoint_identity("lenet5", cfg, train, ctx, resolve_runtime("cuda", cfg.amp))
    assert cuda == {**cpu, "device_type": "cuda", "amp_dtype": "bf16"}
    assert load_checkpoint(tmp_path / CHECKPOINT_NAME, cpu)["finished"] is True
    with pytest.raises(
        ConfigError, match="made with amp_dtype='unset', this run has amp_dtype='bf16'"
    ):
        load_checkpoint(tmp_path / CHECKPOINT_NAME, cuda)


# --- 2. bf16 only where it is fast -----------------------------------------------------


@pytest.mark.parametrize(
    ("capability", "amp", "scaler"),
    [((6, 1), "fp32", False), ((7, 0), "fp16", True), ((7, 5), "fp16", True),
     ((8, 0), "bf16", False), ((9, 0), "bf16", False)],
)  # fmt: skip
def test_amp_auto_follows_the_compute_capability(
    monkeypatch: pytest.MonkeyPatch, capability: tuple[int, int], amp: str, scaler: bool
) -> None:
    fake_gpus(monkeypatch, capability, archs=["compute_60", *WHEEL_ARCHS])
    record = _runtime_record(resolve_runtime("cuda", "auto"))
    assert (record["amp"], record["grad_scaler"]) == (amp, scaler)
    assert record["capability"] == list(capability)
    assert f"compute capability {capability[0]}.{capability[1]}" in record["amp_reason"]


def test_amp_bf16_below_capability_8_uses_fp16_and_says_so_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fake_gpus(monkeypatch, (7, 5), names=("Tesla T4",))
    runs = [resolve_runtime("cuda", "bf16") for _ in range(2)]  # the key, then the run
    assert [r.amp for r in runs] == ["fp16", "fp16"]
    assert caplog.messages == [
        "amp=bf16 is slow at compute capability 7.5 (below 8.0): using fp16 instead"
    ]


@pytest.mark.parametrize(("setting", "amp"), [("auto", "fp32"), ("bf16", "bf16"), ("off", "fp32")])
def test_amp_on_the_cpu_is_what_the_setting_says(setting: str, amp: str) -> None:
    assert choose_amp(setting, "cpu", None)[0] == amp


def test_a_cpu_run_records_its_precision_and_that_it_ran_eagerly(tmp_path: Path) -> None:
    extra = build_pipeline(config(epochs="1"), context(tmp_path)).fit(tiny_set(), None).record_extra
    assert (extra["amp"], extra["amp_reason"], extra["grad_scaler"]) == (
        "fp32",
        "amp=auto: fp32 on the CPU",
        False,
    )
    assert (extra["compiled"], extra["compile_error"], extra["capability"]) == (False, None, None)


def test_fp16_trains_with_a_grad_scaler_whose_state_is_checkpointed(tmp_path: Path) -> None:
    # the CUDA 7.x path, run on the CPU: fp16 autocast, scaled loss, unscaled clipping
    from bovw_vs_convnet.convnet.augment import InputAdapter
    from bovw_vs_convnet.convnet.batches import ResidentBatches
    from bovw_vs_convnet.convnet.train import Trainer

    cfg = config(epochs="2", clip_grad="1", deterministic="true")
    runtime = Runtime(torch.device("cpu"), "fp16", "test")
    torch.manual_seed(0)
    trainer = Trainer(
        create_model("lenet5", num_classes=4, in_channels=1),
        InputAdapter((28, 28), 1, 32, "pad", 1, [0.2], [0.3]), None, cfg, torch.device("cpu"),
        seed=0, identity={}, checkpoint_path=tmp_path / CHECKPOINT_NAME, progress=False,
        runtime=runtime,
    )  # fmt: skip
    history = trainer.fit(ResidentBatches(tiny_set(), torch.device("cpu")), None, None)
    assert trainer.scaler is not None and trainer.amp == "fp16"
    assert history.train_loss[1] < history.train_loss[0]
    saved = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)
    assert saved["scaler"] == trainer.scaler.state_dict()
    assert saved["scaler"]["scale"] > 0


# --- 3. LRN keeps the autocast dtype ---------------------------------------------------


def test_every_layer_of_alexnet_2012_stays_bf16_under_cpu_autocast() -> None:
    model = create_model("alexnet-2012", num_classes=10, in_channels=3).eval()
    x = torch.randn(1, 3, 227, 227)
    dtypes = []
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        for layer in model.get_submodule("features"):
            x = layer(x)
            dtypes.append((type(layer).__name__, x.dtype))
        logits = model.get_submodule("classifier")(torch.flatten(x, 1))
    assert [name for name, _ in dtypes][:4] == ["Conv2d", "ReLU", "LocalResponseNorm", "MaxPool2d"]
    assert {dtype for _, dtype in dtypes} == {torch.bfloat16}
    assert logits.dtype == torch.bfloat16


def test_pytorchs_own_lrn_would_return_fp32_under_autocast() -> None:
    # what the model's LocalResponseNorm corrects: the stock module's pow runs in fp32
    x = torch.rand(1, 8, 5, 5).to(torch.bfloat16)
    stock = nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert stock(x).dtype == torch.float32
        assert _paper_lrn()(x).dtype == torch.bfloat16


def _graph_nodes(out: torch.Tensor) -> set[str]:
    seen, todo, names = set(), [out.grad_fn], set()
    while todo:
        fn = todo.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        names.add(type(fn).__name__)
        todo.extend(f for f, _ in fn.next_functions)
    return names


def test_lrn_summed_by_slices_is_pytorchs_lrn_without_avg_pool3d() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 12, 5, 5, dtype=torch.float64, requires_grad=True)
    ours = _lrn_by_slices(x, 5, 5e-4, 0.75, 2.0)
    stock = F.local_response_norm(x, 5, alpha=5e-4, beta=0.75, k=2.0)
    assert torch.allclose(ours, stock, rtol=1e-12, atol=0)
    (g_ours,) = torch.autograd.grad(ours.square().sum(), x)
    (g_stock,) = torch.autograd.grad(stock.square().sum(), x)
    assert torch.allclose(g_ours, g_stock, rtol=1e-10, atol=0)
    assert "AvgPool3DBackward0" in _graph_nodes(stock)
    assert not any("Pool" in name for name in _graph_nodes(ours))


@pytest.mark.parametrize("name", ["alexnet-2012", "alexnet-small", "alexnet"])
def test_alexnets_call_no_adaptive_pooling_at_their_input_size(name: str) -> None:
    # adaptive_avg_pool2d_backward_cuda raises under strict deterministic mode
    model = create_model(name, num_classes=10, in_channels=3)
    size = {"alexnet-2012": 227, "alexnet-small": 32, "alexnet": 224}[name]
    nodes = _graph_nodes(model(torch.randn(1, 3, size, size)))
    assert not any(n.startswith("AdaptiveAvgPool") for n in nodes)


def test_adaptive_pool_averages_maps_of_another_size_as_pytorch_does() -> None:
    x = torch.randn(2, 4, 13, 13)
    same = torch.randn(2, 4, 6, 6)
    assert AdaptiveAvgPool2d((6, 6))(same) is same
    assert torch.equal(AdaptiveAvgPool2d((6, 6))(x), nn.AdaptiveAvgPool2d((6, 6))(x))


# --- 4. --device auto on a GPU the wheel cannot drive; cuda:N --------------------------


@pytest.mark.parametrize(
    ("capability", "archs", "runs"),
    [((8, 6), ["sm_80"], True), ((8, 0), ["sm_86"], False), ((7, 0), WHEEL_ARCHS, False),
     ((7, 5), ["compute_70"], True), ((9, 0), ["sm_90a"], True), ((12, 0), ["compute_90"], True),
     ((12, 0), ["sm_90"], False)],
)  # fmt: skip
def test_wheel_runs_on_follows_cudas_compatibility_rules(
    capability: tuple[int, int], archs: list[str], runs: bool
) -> None:
    assert wheel_runs_on(capability, archs) is runs


def test_auto_on_a_gpu_the_wheel_cannot_drive_falls_back_to_the_cpu_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fake_gpus(monkeypatch, (7, 0), names=("Tesla V100",))
    assert [resolve_device("auto"), resolve_device("auto")] == [torch.device("cpu")] * 2
    assert caplog.messages == [
        "GPU 0 (Tesla V100, compute capability 7.0) has no kernels in this PyTorch build "
        "(sm_75, sm_80, sm_86, sm_90, sm_100, sm_120): running on the CPU (install a PyTorch "
        "build for this GPU)"
    ]


def test_an_explicit_cuda_on_a_gpu_the_wheel_cannot_drive_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_gpus(monkeypatch, (7, 0), names=("Tesla V100",))
    with pytest.raises(
        ConfigError, match=r"compute capability 7\.0\) has no kernels .*--device cpu"
    ):
        resolve_device("cuda")


def test_cuda_n_names_one_of_the_visible_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_gpus(monkeypatch, (8, 6), names=("GPU zero", "GPU one"))
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    assert resolve_runtime("cuda:1", "auto").gpu == "GPU one"
    with pytest.raises(ConfigError, match="'cuda:2' requested but only 2 CUDA device"):
        resolve_device("cuda:2")
    with pytest.raises(ConfigError, match="unknown device 'cpu:1'"):
        resolve_device("cpu:1")


def test_the_cli_accepts_cuda_n_and_refuses_other_devices(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is present")
    base = ["run", "convnet", "--dataset", "digits", "--model", "lenet5", "--epochs", "1"]
    base += ["--train-size", "100", "--runs-dir", str(tmp_path)]
    runner = CliRunner()
    gpu = runner.invoke(main, [*base, "--device", "cuda:1"])
    assert gpu.exit_code == 2
    assert gpu.stderr == "error: device 'cuda:1' requested but CUDA is not available here\n"
    assert not (tmp_path / ".partial").exists() or not any((tmp_path / ".partial").iterdir())
    bad = runner.invoke(main, [*base, "--device", "gpu"])
    assert bad.exit_code == 2
    assert "'gpu' is not auto, cpu, cuda or cuda:N" in bad.stderr


# --- 5. determinism ---------------------------------------------------------------------


def test_the_cli_sets_the_cublas_workspace_when_it_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", "unset")
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG")
    assert CliRunner().invoke(main, ["models", "--json"]).exit_code == 0
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"


def test_deterministic_runs_are_strict_not_warn_only(tmp_path: Path) -> None:
    try:
        build_pipeline(config(epochs="1", deterministic="true"), context(tmp_path)).fit(
            tiny_set(), None
        )
        assert torch.are_deterministic_algorithms_enabled()
        assert not torch.is_deterministic_algorithms_warn_only_enabled()
    finally:
        torch.use_deterministic_algorithms(False)


# --- 6. provenance names the run's own device -------------------------------------------


def test_a_cpu_run_reports_no_gpu_although_torch_sees_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_gpus(monkeypatch, (9, 0), names=("Fake H100",))
    record = run_pipeline(
        # SGD: AdamW's step asks the faked CUDA for its current stream; rescues=0: a run at
        # chance after its one epoch would start afresh twice, each after an lr finder
        "convnet", "digits",
        overrides={"model": "lenet5", "epochs": 1, "optimizer": "sgd", "rescues": 0},
        train_size=100,
        runs_dir=tmp_path, device="cpu", progress=False,
    )  # fmt: skip
    assert (record["device"], record["provenance"]["device"]) == ("cpu", "cpu")
    assert record["provenance"]["gpu"] is None


def test_provenance_names_the_gpu_of_the_runs_device(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_gpus(monkeypatch, (8, 0), names=("GPU zero", "GPU one"))
    assert provenance.collect(device="cuda:1")["gpu"] == "GPU one"
    assert provenance.collect(device="cuda")["gpu"] == "GPU zero"
    assert provenance.collect(device="cpu")["gpu"] is None


# --- 7. torch.compile falls back to eager -----------------------------------------------


class _BrokenCompile:
    """What torch.compile returns where Triton finds no C compiler: fails on its first call."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("InductorError: no working C compiler found for Triton\nmore text")


def test_a_compile_failure_trains_eagerly_with_one_warning_and_the_eager_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = {"epochs": "2", "deterministic": "true", "augment": "translate"}
    eager = build_pipeline(config(**settings), context(tmp_path / "eager")).fit(tiny_set(), None)
    monkeypatch.setattr(torch, "compile", lambda model, **_: _BrokenCompile(model))
    caplog.clear()
    cfg = config(**settings, compile="true")
    fell_back = build_pipeline(cfg, context(tmp_path / "compiled")).fit(tiny_set(), None)
    torch.use_deterministic_algorithms(False)
    assert (fell_back.record_extra["compiled"], fell_back.record_extra["compile_error"]) == (
        False,
        "RuntimeError: InductorError: no working C compiler found for Triton",
    )
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage().split(":")[0] for r in warnings] == [
        "torch.compile failed, training eagerly instead"
    ]
    assert eager.trainer is not None and fell_back.trainer is not None
    a, b = eager.trainer.model.state_dict(), fell_back.trainer.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_torch_compile_raising_at_once_also_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unsupported(model: nn.Module, **_: object) -> None:
        raise RuntimeError("torch.compile is not supported on Python 3.14+")

    monkeypatch.setattr(torch, "compile", unsupported)
    pipe = build_pipeline(config(epochs="1", compile="true"), context(tmp_path)).fit(
        tiny_set(), None
    )
    assert pipe.record_extra["compiled"] is False
    assert pipe.record_extra["compile_error"].startswith("RuntimeError: torch.compile is not")


def test_a_compiled_graph_that_ran_once_raises_its_later_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class FailsLater:
        def __init__(self, model: nn.Module) -> None:
            self.model, self.calls = model, 0

        def __call__(self, x: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            if self.calls > 1:
                raise RuntimeError("CUDA error: an illegal memory access was encountered")
            return self.model(x)

    monkeypatch.setattr(torch, "compile", lambda model, **_: FailsLater(model))
    pipe = build_pipeline(config(epochs="1", compile="true"), context(tmp_path))
    with pytest.raises(RuntimeError, match="illegal memory access"):
        pipe.fit(tiny_set(), None)
