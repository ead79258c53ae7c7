"""Where a ConvNet runs and in which precision: the device, its capability, the autocast dtype.

:func:`resolve_runtime` is the one place that turns ``--device`` and the ``amp`` setting
into a :class:`Runtime`. The harness calls it before a run, for the run's config key
(through ``ConvNetConfig.RUNTIME_IDENTITY`` and :func:`run_identity`), and the pipeline
calls it again for the run itself, so the key names what actually runs: a run stored
on the CPU is not taken for the GPU run of the same settings, nor resumed by it; nor an
auto-recipe run of an older revision of the recipe for one of today's.

The GPU is read only through ``torch.cuda`` (``is_available``, ``device_count``,
``get_device_capability``, ``get_arch_list``, ``get_device_name``), which tests stub:
every choice here is tested without a GPU. Example::

    rt = resolve_runtime("auto", "auto")
    rt.device, rt.amp  # (device(type='cpu'), 'fp32') here; ('cuda:0', 'bf16') on an H100
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Literal

import torch

from bovw_vs_convnet.convnet.config import AUTO, RECIPE_VERSION, ConvNetConfig
from bovw_vs_convnet.convnet.registry import ModelSpec
from bovw_vs_convnet.errors import ConfigError
from bovw_vs_convnet.threads import ThreadChoice, choose_threads

log = logging.getLogger(__name__)

AmpDtype = Literal["fp32", "bf16", "fp16"]

_DEVICE = re.compile(r"^(auto|cpu|cuda)(?::(\d+))?$")
_WARNED: set[str] = set()  # each warning once per process (the key and the run both resolve)


def _warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        log.warning("%s", message)


def _arch_capability(arch: str) -> tuple[str, tuple[int, int]] | None:
    """``"sm_86"`` -> ``("sm", (8, 6))``; ``"compute_90"`` -> ``("compute", (9, 0))``."""
    kind, _, number = arch.partition("_")
    digits = re.match(r"\d+", number)
    if kind not in ("sm", "compute") or digits is None or len(digits.group()) < 2:
        return None
    text = digits.group()
    return kind, (int(text[:-1]), int(text[-1]))


def wheel_runs_on(capability: tuple[int, int], arch_list: list[str]) -> bool:
    """Whether a PyTorch build for ``arch_list`` has kernels for a GPU of ``capability``.

    CUDA's compatibility rules: machine code for ``sm_XY`` runs on capability X.Z with
    Z >= Y (same major), and ``compute_XY`` PTX is compiled at load time for any
    capability >= X.Y. A V100 (7.0) under a build for ``sm_75 ... sm_120`` has neither:
    its first kernel fails with "no kernel image is available".
    """
    for arch in arch_list:
        parsed = _arch_capability(arch)
        if parsed is None:
            continue
        kind, built = parsed
        if kind == "sm" and built[0] == capability[0] and built[1] <= capability[1]:
            return True
        if kind == "compute" and built <= capability:
            return True
    return False


def _gpu_words(index: int) -> tuple[str, tuple[int, int]]:
    major, minor = torch.cuda.get_device_capability(index)
    return str(torch.cuda.get_device_name(index)), (int(major), int(minor))


def resolve_device(name: str) -> torch.device:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` as a device this PyTorch build can drive.

    ``auto`` is ``cuda:0`` when CUDA is present and the wheel has kernels for GPU 0's
    compute capability (:func:`wheel_runs_on`), else the CPU; an old GPU under a new
    wheel falls back to the CPU with one warning. ``cuda[:N]`` without CUDA, beyond the
    visible devices or on a GPU the wheel cannot drive is a one-line ConfigError.
    """
    text = name.strip().lower()
    match = _DEVICE.match(text)
    if match is None or (match.group(2) is not None and match.group(1) != "cuda"):
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N")
    kind, index_text = match.group(1), match.group(2)
    if kind == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        if kind == "auto":
            return torch.device("cpu")
        raise ConfigError(f"device {text!r} requested but CUDA is not available here")
    index = int(index_text or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise ConfigError(f"device {text!r} requested but only {count} CUDA device(s) are visible")
    gpu, capability = _gpu_words(index)
    arch_list = list(torch.cuda.get_arch_list())
    if not wheel_runs_on(capability, arch_list):
        why = (
            f"GPU {index} ({gpu}, compute capability {capability[0]}.{capability[1]}) has no "
            f"kernels in this PyTorch build ({', '.join(arch_list) or 'no CUDA architectures'})"
        )
        if kind == "auto":
            _warn_once(f"{why}: running on the CPU (install a PyTorch build for this GPU)")
            return torch.device("cpu")
        raise ConfigError(f"{why}; use --device cpu or a PyTorch build for this GPU")
    return torch.device(f"cuda:{index}")


def choose_amp(
    setting: str, device_type: str, capability: tuple[int, int] | None
) -> tuple[AmpDtype, str]:
    """The autocast dtype for the ``amp`` setting on this device, and the reason, for the record.

    ``off``: fp32. On the CPU: bf16 only when asked (``amp=bf16``; 2.3x for alexnet-small
    on an AVX-512 BF16 CPU), else fp32. On CUDA, ``auto`` and ``bf16`` alike: bf16 from
    compute capability 8.0 (A100, H100, RTX 30xx); below it autocast accepts bf16 but
    cuDNN has no bf16 convolutions there and falls back, silently, to a much slower
    kernel, so 7.x (V100, T4, RTX 20xx: fp16 tensor cores) gets fp16 with a GradScaler
    and older GPUs fp32. An ``amp=bf16`` that is not honoured says so once.
    """
    if setting == "off":
        return "fp32", "amp=off"
    if device_type != "cuda":
        if setting == "bf16":
            return "bf16", "amp=bf16 on the CPU"
        return "fp32", "amp=auto: fp32 on the CPU"
    major, minor = capability or (0, 0)
    cc = f"compute capability {major}.{minor}"
    if (major, minor) >= (8, 0):
        return "bf16", f"amp={setting}: bf16 at {cc} (>= 8.0)"
    if (major, minor) >= (7, 0):
        choice: tuple[AmpDtype, str] = (
            "fp16",
            f"amp={setting}: fp16 with a GradScaler at {cc} (bf16 convolutions are slow below 8.0)",
        )
    else:
        choice = ("fp32", f"amp={setting}: fp32 at {cc} (no tensor cores below 7.0)")
    if setting == "bf16":
        _warn_once(f"amp=bf16 is slow at {cc} (below 8.0): using {choice[0]} instead")
    return choice


@dataclass(frozen=True)
class Runtime:
    """A resolved device and precision: what a ConvNet run actually runs on.

    Attributes:
        device: the torch device (``cpu``, ``cuda:N``).
        amp: the autocast dtype, ``fp32`` meaning no autocast.
        reason: why this ``amp`` (the setting and, on CUDA, the compute capability).
        capability: the GPU's compute capability, None on the CPU.
        gpu: the GPU's name, None on the CPU.
    """

    device: torch.device
    amp: AmpDtype
    reason: str
    capability: tuple[int, int] | None = None
    gpu: str | None = None

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The dtype for ``torch.autocast``, None for fp32."""
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.amp)

    @property
    def grad_scaler(self) -> bool:
        """Whether the loss needs scaling (fp16's small range underflows small gradients)."""
        return self.amp == "fp16"

    def identity(self) -> dict[str, str]:
        """What this runtime adds to a run's identity: config key and checkpoint identity.

        Nothing on the CPU: every run stored before keys were device-aware ran there, and
        on the CPU the dtype follows the ``amp`` setting alone, which the key already
        holds (``config.identity_settings``' rule: a setting at the value old runs had
        leaves their identity as it was). On CUDA, the device type and the dtype, which
        ``amp=auto`` and the capability decide.
        """
        if self.device.type == "cpu":
            return {}
        return {"device_type": self.device.type, "amp_dtype": self.amp}

    def describe(self) -> dict[str, Any]:
        """The record's view: dtype, reason, capability and GPU name."""
        return {
            "amp": self.amp,
            "amp_reason": self.reason,
            "capability": list(self.capability) if self.capability else None,
            "gpu": self.gpu,
        }


def resolve_runtime(device: str | torch.device, amp: str) -> Runtime:
    """The device ``device`` names (:func:`resolve_device`) and the dtype ``amp`` gets there."""
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    capability: tuple[int, int] | None = None
    gpu: str | None = None
    if dev.type == "cuda":
        gpu, capability = _gpu_words(dev.index or 0)
    dtype, reason = choose_amp(amp, dev.type, capability)
    return Runtime(dev, dtype, reason, capability, gpu)


def run_identity(config: ConvNetConfig, device: str) -> dict[str, Any]:
    """The harness's hook (``ConvNetConfig.RUNTIME_IDENTITY``): :meth:`Runtime.identity`.

    An auto-recipe run also names the recipe's revision (``recipe_version``,
    :data:`~bovw_vs_convnet.convnet.config.RECIPE_VERSION`): its settings say
    ``epochs=auto``, and what that trains changes with the rules.
    """
    identity: dict[str, Any] = dict(resolve_runtime(device, config.amp).identity())
    if config.recipe == AUTO:
        identity["recipe_version"] = RECIPE_VERSION
    return identity


def forward_macs(
    spec: ModelSpec, in_channels: int, n_classes: int = 10, input_size: int | None = None
) -> int:
    """Multiply-adds of one image through the convolutions and linear layers of ``spec``'s model.

    Built and run once on the CPU, one thread, one image of zeros, with torch's random
    state put back afterwards (no draw is seen by the run). Not on the ``meta`` device:
    torch's meta kernels for initialisations and activations import ``torch._dynamo``,
    which costs a process more than counting alexnet-2012 on the CPU, and every
    ConvNet run counts once (``threads=auto``). The image is the model's input size,
    which the pipeline resizes or pads every set to, so the count is the model's and
    not the data's; or ``input_size``, the larger input chosen for larger images
    (:mod:`.input_size`).
    """
    channels = spec.fixed_channels or in_channels
    size = input_size or spec.input_size
    # a model that may grow is built for its input (its stem), as models.create_model does
    extra = {"input_size": size} if size != spec.input_size < spec.max_input_size else {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            model = spec.builder(num_classes=n_classes, in_channels=channels, **extra)
        total = _count_macs(model, torch.zeros(1, channels, size, size))
    finally:
        torch.set_num_threads(threads)
    return total


def _count_macs(model: torch.nn.Module, image: torch.Tensor) -> int:
    """Multiply-adds of ``image`` through ``model``'s Conv2d and Linear layers (forward hooks)."""
    total = [0]

    def count(module: torch.nn.Module, _inputs: Any, output: Any) -> None:
        if isinstance(module, torch.nn.Conv2d):
            kh, kw = module.kernel_size
            total[0] += output[0].numel() * (module.in_channels // module.groups) * kh * kw
        elif isinstance(module, torch.nn.Linear):
            total[0] += module.in_features * module.out_features

    hooks = [m.register_forward_hook(count) for m in model.modules()]
    model.eval()
    with torch.no_grad():
        model(image)
    for hook in hooks:
        hook.remove()
    return total[0]


def choose_run_threads(
    setting: int | str, spec: ModelSpec, in_channels: int, input_size: int | None = None
) -> ThreadChoice:
    """The CPU threads of a ConvNet run: ``threads`` given, or auto from the model's work.

    ``auto`` (:func:`bovw_vs_convnet.threads.choose_threads`) reads the CPUs this process
    may use and :func:`forward_macs` (at ``input_size``, None: the model's own): a
    LeNet's operators are too small to share, a large AlexNet's share well. Only ``auto``
    builds the model (on the CPU, one thread, its random draws undone).
    """
    work = (
        float(forward_macs(spec, in_channels, input_size=input_size)) if setting == AUTO else None
    )
    return choose_threads(setting, work=work)
