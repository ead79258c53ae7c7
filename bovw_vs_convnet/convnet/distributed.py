"""Where a ConvNet trains: this process alone, or one of several under torchrun.

:func:`choose_strategy` decides once, at the start of
:meth:`~bovw_vs_convnet.convnet.pipeline.ConvNetPipeline.fit`, from torchrun's environment
(``WORLD_SIZE`` > 1): :class:`SingleProcess` trains as if nothing else ran, and
:class:`Torchrun` (``torchrun ... -m bovw_vs_convnet run convnet ...``) turns the same
command on every process into data-parallel training with PyTorch's own engine,
``DistributedDataParallel`` (gloo on the CPU, NCCL on GPUs). Both answer the
:class:`TrainingStrategy` protocol, three hooks the pipeline calls at fixed points:

- ``runtime``: joins the process group and, on CUDA, moves the rank to its own GPU
  (``cuda:LOCAL_RANK``);
- ``shard``: each rank trains on its shard of every batch: the global batch is
  ``WORLD_SIZE × batch_size`` images drawn from one shuffled order (the same seeded
  generator on every rank), so the steps per epoch and the learning-rate schedule are
  those of one process with a batch ``WORLD_SIZE`` times larger, and DDP's averaged
  gradient is that batch's (augmentation and dropout draws differ from that run);
- ``wrap``: every rank takes rank 0's trainer state (its resumed checkpoint, its
  chosen recipe), then the model is wrapped in DDP for the training steps.

Only rank 0 checkpoints, scores the test set and writes the store (the harness sees
the rank in the same environment and keeps the other ranks' results out of it).
Validation runs on every rank: the weights are the same on every rank, so every rank
picks the same best epoch and stops at the same epoch without a word exchanged (the
models hold no running statistics; one with BatchNorm would need ``SyncBatchNorm``).
``--resume`` works as in one process: rank 0 finds the staging folder and its
checkpoint, and ``wrap`` hands the state to the other ranks.
"""

from __future__ import annotations

import atexit
import dataclasses
import inspect
import os
from collections.abc import Iterator
from typing import Any, Protocol

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from bovw_vs_convnet.convnet.batches import BatchSource
from bovw_vs_convnet.convnet.device import Runtime
from bovw_vs_convnet.convnet.train import Trainer


def world() -> tuple[int, int]:
    """(rank, world size) from torchrun's environment; (0, 1) outside it."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def _init(backend: str) -> None:
    if dist.is_initialized():
        return
    dist.init_process_group(backend)  # env:// (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE)
    atexit.register(_shutdown)


def _shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


class ShardedBatches:
    """This rank's shard of every global batch of ``source`` (``world × batch_size`` images).

    A global batch is cut into ``world`` contiguous shards (``tensor_split``: sizes
    differ by one at most); a last global batch with fewer images than ranks is
    dropped, as every rank must take part in every step.
    """

    def __init__(self, source: BatchSource, rank: int, world_size: int) -> None:
        self.source, self.rank, self.world_size = source, rank, world_size

    def __len__(self) -> int:
        return len(self.source)

    def batches(
        self, batch_size: int, generator: torch.Generator | None, drop_last: bool = False
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(uint8 images, labels): this rank's part of each global batch."""
        for xb, yb in self.source.batches(batch_size * self.world_size, generator, drop_last):
            if len(yb) < self.world_size:
                continue
            yield (
                xb.tensor_split(self.world_size)[self.rank],
                yb.tensor_split(self.world_size)[self.rank],
            )

    def n_batches(self, batch_size: int, drop_last: bool = False) -> int:
        """Steps per pass: global batches with an image for every rank."""
        n = self.source.n_batches(batch_size * self.world_size, drop_last)
        tail = len(self.source) % (batch_size * self.world_size)
        return n - 1 if not drop_last and 0 < tail < self.world_size else n


class TrainingStrategy(Protocol):
    """How one ConvNet run trains across processes: the three hooks of ``fit``."""

    def runtime(self, runtime: Runtime) -> Runtime:
        """``runtime`` as this process trains on it."""
        ...

    def shard(self, source: BatchSource) -> Any:
        """The training batches this process steps through (a source's ``batches`` and
        ``n_batches``, which the trainer calls: ``source`` or a :class:`ShardedBatches`)."""
        ...

    def wrap(self, trainer: Trainer, train: Any) -> dict[str, Any]:
        """Make ``trainer`` ready for the epochs; what the run record notes about it."""
        ...


class SingleProcess:
    """Training in this process alone: every hook leaves its argument as it is."""

    def runtime(self, runtime: Runtime) -> Runtime:
        """``runtime`` unchanged."""
        return runtime

    def shard(self, source: BatchSource) -> BatchSource:
        """``source`` itself: every batch is this process's."""
        return source

    def wrap(self, trainer: Trainer, train: Any) -> dict[str, Any]:
        """Nothing to do and nothing to note."""
        return {}


class Torchrun:
    """One of ``world_size`` torchrun processes training one model with DDP."""

    def __init__(self, rank: int, world_size: int) -> None:
        self.rank, self.world_size = rank, world_size

    def runtime(self, runtime: Runtime) -> Runtime:
        """``runtime`` on this rank's device, the process group joined.

        On CUDA each rank takes the GPU ``LOCAL_RANK`` (torchrun's index on its node) and
        NCCL; on the CPU, gloo.
        """
        if runtime.device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
            _init("nccl")
            return dataclasses.replace(runtime, device=device)
        _init("gloo")
        return runtime

    def shard(self, source: BatchSource) -> ShardedBatches:
        """This rank's :class:`ShardedBatches` of ``source``."""
        return ShardedBatches(source, self.rank, self.world_size)

    def wrap(self, trainer: Trainer, train: Any) -> dict[str, Any]:
        """Give every rank rank 0's state, then train through DDP; what the record notes.

        Rank 0's config (a recipe it chose, a learning rate it found) and, when it has an
        optimiser (a resumed checkpoint), its whole training state are broadcast; the other
        ranks load them, so every rank starts the epochs from the same point. Only rank 0
        keeps its checkpoint path.
        """
        mine = {
            "cfg": trainer.cfg,
            "state": trainer.state(finished=False) if trainer.optimizer is not None else None,
        }
        box: list[Any] = [mine if self.rank == 0 else None]
        dist.broadcast_object_list(box, src=0)
        theirs = box[0]
        if self.rank != 0:
            trainer.checkpoint_path = None
            trainer.cfg = theirs["cfg"]
            if theirs["state"] is not None:
                trainer.load_state(theirs["state"], train)
        device_ids = [trainer.device.index] if trainer.device.type == "cuda" else None
        # the models' buffers are constants (LeNet's connection table): synced once, at init
        params = inspect.signature(DistributedDataParallel.__init__).parameters
        no_sync = (
            "forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers"
        )
        options: dict[str, Any] = {no_sync: False}
        ddp = DistributedDataParallel(trainer.model, device_ids=device_ids, **options)
        trainer.forward = torch.compile(ddp) if trainer.compiled else ddp
        return {
            "world_size": self.world_size,
            "global_batch_size": trainer.batch_size * self.world_size,
            "backend": dist.get_backend(),
        }


def choose_strategy() -> TrainingStrategy:
    """:class:`Torchrun` when this process is one of several torchrun ranks, else alone."""
    rank, size = world()
    return Torchrun(rank, size) if size > 1 else SingleProcess()
