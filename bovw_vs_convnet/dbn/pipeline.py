"""The ``dbn`` pipeline: RBMs pre-trained layer by layer with CD-1, then back-propagation.

Every image becomes a vector of visible units, its pixel intensities over 255 (all
of H·W·C: a grayscale image is the paper's case; an RGB image gives its three
channels side by side, each a probability, so colour is kept and the input is three
times as wide; an image whose longer side exceeds ``max_side`` is shrunk first).
Each hidden layer is an RBM (:mod:`.rbm`) trained on the hidden probabilities of the
one below; the stack then becomes :class:`~.model.DeepBeliefNet` with a softmax
output layer and is fine-tuned with back-propagation, keeping the epoch with the
lowest validation error. Scores are the network's logits.

Stages: ``pretraining``, ``finetuning``, ``scoring`` (``stage_seconds``); the record's
``extra`` keeps the sizes, the epochs chosen, each layer's reconstruction errors and
the fine-tuning's validation curve.

Expected error (``benchmarks/RESULTS-convnet.md`` has the runs and their time):
``bvc run dbn --dataset fashion-mnist`` about 11 % top-1; scikit-learn's digits about
2 % (1.4–2.2 % over three seeds).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bovw_vs_convnet.data.imageset import ImageSet
from bovw_vs_convnet.dbn.config import DbnConfig, epochs_for, hidden_sizes
from bovw_vs_convnet.dbn.model import DeepBeliefNet
from bovw_vs_convnet.dbn.rbm import CdSchedule, train_rbm
from bovw_vs_convnet.errors import ConfigError, DataError
from bovw_vs_convnet.progress import Progress, track
from bovw_vs_convnet.protocol import CpuPipeline, RunContext
from bovw_vs_convnet.threads import choose_threads

log = logging.getLogger(__name__)

PRETRAIN_IMAGES, FINETUNE_IMAGES = 300_000, 1_000_000  # what `auto` epochs aim at
CHUNK = 4096  # rows pushed through a layer at once when no gradient is needed


def input_side(image_hw: tuple[int, int], max_side: int) -> tuple[int, int]:
    """(H, W) the images are read at: as they are, or shrunk so the longer side is ``max_side``."""
    h, w = image_hw
    if max(h, w) <= max_side:
        return h, w
    scale = max_side / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def visible_units(pixels: np.ndarray, hw: tuple[int, int]) -> torch.Tensor:
    """(N, H·W·C) float32 intensities in [0, 1] of uint8 (N, H, W, C) ``pixels`` read at ``hw``."""
    if pixels.shape[1:3] != hw:
        import cv2

        h, w = hw
        pixels = np.stack([cv2.resize(p, (w, h), interpolation=cv2.INTER_AREA) for p in pixels])
    x = torch.from_numpy(np.ascontiguousarray(pixels)).reshape(len(pixels), -1)
    return x.float().div_(255.0)


class DbnPipeline(CpuPipeline):
    """``fit(train, val)`` pre-trains and fine-tunes the DBN; ``decision_scores`` gives logits.

    Fitted attributes: ``input_hw_`` (the size images are read at), ``model_`` (the
    fine-tuned :class:`~.model.DeepBeliefNet`).
    """

    def __init__(self, config: DbnConfig, context: RunContext) -> None:
        super().__init__("dbn", context)
        self.config = config

    def _inputs(self, images: ImageSet) -> torch.Tensor:
        if len(images) == 0:
            raise DataError("the dbn pipeline got an empty image set")
        return visible_units(images.array(), self.input_hw_)

    def fit(self, train: ImageSet, val: ImageSet | None) -> DbnPipeline:
        """Pre-train each RBM on the layer below, then fine-tune the stack on ``train``."""
        cfg = self.config
        generator = torch.Generator().manual_seed(self.context.seed)
        torch.manual_seed(self.context.seed)  # the output layer's draw
        self.input_hw_ = input_side(train.image_shape[:2], cfg.max_side)
        x, y = self._inputs(train), torch.from_numpy(train.labels.astype(np.int64))
        hidden = hidden_sizes(x.shape[1]) if cfg.hidden == "auto" else tuple(cfg.hidden)
        self.model_ = DeepBeliefNet(x.shape[1], hidden, train.n_classes)
        if cfg.threads != 0:  # 0: torch's default
            # a dense net's multiply-adds per image are its weights
            work = float(sum(p.numel() for p in self.model_.parameters()))
            choice = choose_threads(cfg.threads, work)
            torch.set_num_threads(choice.n)
            self.record_extra["threads"] = choice.describe()
        t0 = time.perf_counter()
        errors = self._pretrain(x, generator)
        self.add_seconds({"pretraining": time.perf_counter() - t0})
        t0 = time.perf_counter()
        x_val = self._inputs(val) if val is not None and len(val) else None
        y_val = None if val is None else torch.from_numpy(val.labels.astype(np.int64))
        curve = self._finetune(x, y, x_val, y_val, generator)
        self.add_seconds({"finetuning": time.perf_counter() - t0})
        self.n_params = sum(p.numel() for p in self.model_.parameters())
        self.model_name = "dbn-" + "-".join(str(h) for h in hidden)
        self.record_extra.update(
            {
                "visible": int(x.shape[1]),
                "input_size": list(self.input_hw_),
                "hidden": list(hidden),
                "reconstruction_errors": errors,
                **curve,
            }
        )
        return self

    def _pretrain(self, x: torch.Tensor, generator: torch.Generator) -> list[list[float]]:
        """Each RBM by CD-1 on the probabilities of the one below; their errors by epoch."""
        cfg = self.config
        epochs = epochs_for(cfg.pretrain_epochs, len(x), PRETRAIN_IMAGES, 5, 100)
        self.record_extra["pretrain_epochs"] = epochs
        schedule = CdSchedule(
            epochs, cfg.batch_size, cfg.pretrain_lr, cfg.momentum, cfg.weight_decay
        )
        errors: list[list[float]] = []
        data = x
        layers = self.model_.rbm_layers()
        for index, layer in enumerate(layers):
            desc = f"dbn: RBM {index + 1}/{len(layers)} ({data.shape[1]}-{layer.out_features})"
            with Progress(epochs, desc, mode=self.context.progress, unit="epoch") as bar:
                rbm = train_rbm(
                    data, layer.out_features, schedule, generator, lambda e, _: bar.update(e + 1)
                )
            errors.append([round(e, 6) for e in rbm.errors])
            log.info("%s: reconstruction error %s", desc, rbm.errors[-1:] or "-")
            self.model_.take_rbm(index, rbm)
            with torch.no_grad():
                data = torch.cat([rbm.hidden(c) for c in data.split(CHUNK)])
        return errors

    def _finetune(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        x_val: torch.Tensor | None,
        y_val: torch.Tensor | None,
        generator: torch.Generator,
    ) -> dict[str, Any]:
        """Back-propagation through the whole stack; the best epoch on validation is kept."""
        cfg, model = self.config, self.model_
        epochs = epochs_for(cfg.finetune_epochs, len(x), FINETUNE_IMAGES, 15, 200)
        steps_per_epoch = math.ceil(len(x) / cfg.batch_size)
        optimizer = torch.optim.SGD(
            model.parameters(),
            lr=cfg.finetune_lr,
            momentum=0.9,
            nesterov=True,
            weight_decay=cfg.finetune_weight_decay,
        )
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * steps_per_epoch)
        curve: list[float] = []
        best: tuple[float, int, dict[str, torch.Tensor]] | None = None
        mode = self.context.progress
        for epoch in track(
            range(epochs), total=epochs, desc="dbn: fine-tuning", mode=mode, unit="epoch"
        ):
            model.train()
            order = torch.randperm(len(x), generator=generator)
            for start in range(0, len(x), cfg.batch_size):
                idx = order[start : start + cfg.batch_size]
                loss = F.cross_entropy(model(x[idx]), y[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
            if x_val is None or y_val is None:
                continue
            err = float((self._logits(x_val).argmax(1) != y_val).float().mean())
            curve.append(round(err, 6))
            if best is None or err < best[0]:
                best = (err, epoch, {k: v.clone() for k, v in model.state_dict().items()})
        if best is not None:
            model.load_state_dict(best[2])
        model.eval()
        return {
            "finetune_epochs": epochs,
            "val_err_by_epoch": curve,
            "best_epoch": None if best is None else best[1] + 1,
        }

    @torch.no_grad()
    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        self.model_.eval()
        return torch.cat([self.model_(c) for c in x.split(CHUNK)])

    def decision_scores(self, images: ImageSet) -> np.ndarray:
        """(len(images), n_classes) logits of the fine-tuned network."""
        if not hasattr(self, "model_"):
            raise DataError("the dbn pipeline must be fitted before scoring")
        t0 = time.perf_counter()
        scores = self._logits(self._inputs(images)).double().numpy()
        self.add_seconds({"scoring": time.perf_counter() - t0})
        return scores


def build_pipeline(config: DbnConfig, context: RunContext) -> DbnPipeline:
    """The registry's factory: a fresh, unfitted DBN pipeline."""
    if not isinstance(config, DbnConfig):
        raise ConfigError(f"expected a DbnConfig, got {type(config).__name__}")
    return DbnPipeline(dataclasses.replace(config), context)
