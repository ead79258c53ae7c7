"""One ConvNet over several processes: ``torchrun ... -m bovw_vs_convnet run convnet ...``.

Under torchrun (``WORLD_SIZE`` > 1) every process runs the same command; this module
turns that into data-parallel training with PyTorch's own engine,
``DistributedDataParallel`` (gloo on the CPU, NCCL on GPUs), in three hooks that
:class:`~bovw_vs_convnet.convnet.pipeline.ConvNetPipeline` calls (each is a no-op in a
single process):

- :func:`local_runtime`: joins the process group and, on CUDA, moves the rank to its own
  GPU (``cuda:LOCAL_RANK``);
- :func:`shard`: each rank trains on its shard of every batch: the global batch is
  ``WORLD_SIZE × batch_size`` images drawn from one shuffled order (the same seeded
  generator on every rank), so the steps per epoch and the learning-rate schedule are
  those of one process with a batch ``WORLD_SIZE`` times larger, and DDP's averaged
  gradient is that batch's (augmentation and dropout draws differ from that run);
- :func:`wrap`: every rank takes rank 0's trainer state (its resumed checkpoint, its
  chosen recipe), then the model is wrapped in DDP for the training steps.

Only rank 0 checkpoints, scores the test set and writes the store
(:class:`~bovw_vs_convnet.harness.staging.RankStore` on the others, chosen by
``run_pipeline``). Validation runs on every rank: the weights are the same on every
rank, so every rank picks the same best epoch and stops at the same epoch without a
word exchanged (the models hold no running statistics; one with BatchNorm would
need ``SyncBatchNorm``). ``--resume`` works as in one process: rank 0 finds the staging
folder and its checkpoint, and :func:`wrap` hands the state to the other ranks.
"""

from __future__ import annotations

import atexit
import dataclasses
import inspect
import os
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from bovw_vs_convnet.convnet.batches import BatchSource
from bovw_vs_convnet.convnet.device import Runtime
from bovw_vs_convnet.convnet.train import Trainer


def world() -> tuple[int, int]:
    """(rank, world size) from torchrun's environment; (0, 1) outside it."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def active() -> bool:
    """Whether this process is one of several torchrun processes."""
    return world()[1] > 1


def _init(backend: str) -> None:
    if dist.is_initialized():
        return
    dist.init_process_group(backend)  # env:// (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE)
    atexit.register(_shutdown)


def _shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def local_runtime(runtime: Runtime) -> Runtime:
    """``runtime`` on this rank's device, the process group joined; unchanged alone.

    On CUDA each rank takes the GPU ``LOCAL_RANK`` (torchrun's index on its node) and
    NCCL; on the CPU, gloo.
    """
    if not active():
        return runtime
    if runtime.device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
        _init("nccl")
        return dataclasses.replace(runtime, device=device)
    _init("gloo")
    return runtime


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


def shard(source: BatchSource) -> Any:
    """This rank's :class:`ShardedBatches` of ``source``; ``source`` itself alone."""
    rank, size = world()
    return ShardedBatches(source, rank, size) if size > 1 else source


def wrap(trainer: Trainer, train: Any) -> dict[str, Any]:
    """Give every rank rank 0's state, then train through DDP; what the record notes.

    Rank 0's config (a recipe it chose, a learning rate it found) and, when it has an
    optimiser (a resumed checkpoint), its whole training state are broadcast; the other
    ranks load them, so every rank starts the epochs from the same point. Only rank 0
    keeps its checkpoint path.
    """
    rank, size = world()
    if size <= 1:
        return {}
    mine = {
        "cfg": trainer.cfg,
        "state": trainer.state(finished=False) if trainer.optimizer is not None else None,
    }
    box: list[Any] = [mine if rank == 0 else None]
    dist.broadcast_object_list(box, src=0)
    theirs = box[0]
    if rank != 0:
        trainer.checkpoint_path = None
        trainer.cfg = theirs["cfg"]
        if theirs["state"] is not None:
            trainer.load_state(theirs["state"], train)
    device_ids = [trainer.device.index] if trainer.device.type == "cuda" else None
    # the models' buffers are constants (LeNet's connection table): synced once, at init
    params = inspect.signature(DistributedDataParallel.__init__).parameters
    no_sync = "forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers"
    options: dict[str, Any] = {no_sync: False}
    ddp = DistributedDataParallel(trainer.model, device_ids=device_ids, **options)
    trainer.forward = torch.compile(ddp) if trainer.compiled else ddp
    return {
        "world_size": size,
        "global_batch_size": trainer.batch_size * size,
        "backend": dist.get_backend(),
    }
