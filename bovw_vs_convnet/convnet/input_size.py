"""The side of a ConvNet's square input: the model's design size, or larger for larger images.

A small net designed for 28–32 px images (LeNet-5, alexnet-small) fed a folder of
photographs resized to 32×32 sees the object a few pixels wide. With
``input_size=auto`` (the default) the input follows the images instead:

- the median shorter side of the training images (each image's own size for a folder of
  mixed sizes) times the side of the smallest training crop (√0.35 ≈ 0.59: crops of
  35–100 % of the area, :data:`CROP_SCALE`), so that even the smallest crop is seen at
  about its own resolution and no crop is enlarged much;
- rounded to a multiple of :data:`SIDE_STEP` and kept between the model's design size and
  its ``max_input_size`` (32 to 128 px for the small nets: 64–128 px for 100–300 px
  photographs);
- a model that keeps its design size (``alexnet-2012`` at 227) keeps it.

Images no larger than the design size (the built-in 8–32 px sets) are fed as before:
same input size, same model, same augmentation. When the input is larger than the
design size, training draws a fresh random-resized crop of each image at every step
(``crop``, :class:`~.augment.BatchAugment`; torchvision's ``RandomResizedCrop``, milder:
35–100 % of the area, aspect 3/4–4/3) and scoring resizes the whole image (or the
folder's centre-cropped frame) to the input; the small nets get their stem for that
size (:func:`~.registry.stem_stride`). An ``input_size`` setting wins. Example::

    choice = choose_input_size("auto", get_model_spec("lenet5"), train)
    choice.size, choice.why  # 96, "images 90-300 px, median shorter side 170 -> 96 px ..."
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from bovw_vs_convnet.convnet.config import AUTO, ConvNetConfig
from bovw_vs_convnet.convnet.registry import ModelSpec
from bovw_vs_convnet.data.imageset import ImageSet

# Random-resized crops of large images: the share of the image's area and the aspect
# (torchvision's RandomResizedCrop takes 8-100 %, which loses an object that fills a
# tenth of the frame more often than not)
CROP_SCALE = (0.35, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)
SIDE_STEP = 16  # chosen sides are multiples of this


@dataclass(frozen=True)
class InputChoice:
    """The input side chosen for a run, whether it is larger than the design, and why."""

    size: int
    large: bool  # above the model's design size, from larger images: trained on crops
    why: str
    design: int = 0  # the model's design size (0: size)

    @property
    def grown(self) -> int | None:
        """The size where it is not the model's design size (a checkpoint's identity), else None."""
        return self.size if self.design and self.size != self.design else None

    def train_text(self) -> str:
        """What training does to each image, for the record's ``extra.aspect.train``."""
        lo, hi = CROP_SCALE
        return (
            f"random-resized crop (area {lo:g}-{hi:g}, aspect 3/4-4/3) of the frame, "
            f"resized to {self.size}x{self.size} (the input size, for larger images)"
        )


def short_sides(images: ImageSet) -> np.ndarray:
    """Each image's shorter side in pixels: its own for a folder of mixed sizes, else the set's."""
    native = images.native
    if native is not None and native.native_sizes is not None:
        return np.asarray(native.native_sizes, dtype=np.int64).min(axis=1)
    h, w, _ = images.image_shape
    return np.full(len(images), min(h, w), dtype=np.int64)


def _sides_text(images: ImageSet, sides: np.ndarray) -> str:
    """``images 90-300 px, median shorter side 170`` or ``images 28x28 px``."""
    native = images.native
    if native is not None and native.native_sizes is not None:
        all_sides = np.asarray(native.native_sizes)
        lo, hi = int(all_sides.min()), int(all_sides.max())
        return f"images {lo}-{hi} px, median shorter side {int(np.median(sides))}"
    h, w, _ = images.image_shape
    return f"images {h}x{w} px"


def rule_size(median_short: float, design: int, largest: int) -> int:
    """The rule's side for images of shorter side ``median_short``: see the module's text."""
    target = median_short * math.sqrt(CROP_SCALE[0])
    size = SIDE_STEP * round(target / SIDE_STEP)
    return int(min(max(size, design), largest))


def choose_input_size(
    setting: int | str, spec: ModelSpec, images: ImageSet, fixed: bool = False
) -> InputChoice:
    """The input side for ``spec``'s model trained on ``images``, with the reason.

    ``setting``: the ``input_size`` setting (``"auto"`` or a side in pixels). ``fixed``
    (``recipe=fixed``): ``auto`` is the design size, as for the runs stored before it.
    Larger than the design and no larger than the images' frame: trained on crops.
    """
    sides = short_sides(images)
    seen = _sides_text(images, sides)
    frame = min(images.image_shape[:2])
    design = spec.input_size
    if setting == "auto" and fixed:
        why = f"{seen} -> {design} px: recipe=fixed, the design size"
        return InputChoice(design, False, why, design)
    if setting != "auto":
        size = int(setting)
        large = design < size <= frame
        crops = ", random-resized crops" if large else ""
        return InputChoice(size, large, f"{seen} -> {size} px: set by input_size{crops}", design)
    median = float(np.median(sides)) if len(sides) else float(frame)
    size = rule_size(median, design, spec.max_input_size)
    if size <= design or frame <= design:
        why = f"{seen} -> {design} px: the model's design size"
        return InputChoice(design, False, why, design)
    lo, hi = CROP_SCALE
    why = (
        f"{seen} -> {size} px (the smallest crop, {lo:.0%} of the area, at its own resolution; "
        f"{design}-{spec.max_input_size} px for {spec.name}), random-resized crops "
        f"(area {lo:.0%}-{hi:.0%}, aspect 3/4-4/3) in training, the whole frame resized in scoring"
    )
    return InputChoice(size, True, why, design)


def input_recipe(
    cfg: ConvNetConfig, resolved: ConvNetConfig, recipe: dict[str, Any], choice: InputChoice
) -> ConvNetConfig:
    """The recipe with the input size: its reason in ``recipe``, and crops for larger images.

    The input size is always explained (``why.input_size``; ``chosen.input_size`` when
    ``input_size=auto``). Images larger than the model's input (``choice.large``) are
    trained on random-resized crops: ``crop`` goes first in an ``augment=auto`` (a
    ``translate`` the crops make redundant is dropped); an ``augment`` given is kept.
    """
    recipe["why"]["input_size"] = choice.why
    if cfg.input_size == AUTO:
        recipe["chosen"]["input_size"] = choice.size
    if not (choice.large and cfg.augment == (AUTO,)):
        return resolved
    kinds = ("crop", *(k for k in resolved.augment if k not in ("crop", "translate")))
    recipe["chosen"]["augment"] = list(kinds)
    recipe["why"]["augment"] = "; ".join(
        [f"crop: images larger than the {choice.size}-px input", recipe["why"].get("augment", "")]
    ).rstrip("; ")
    return dataclasses.replace(resolved, augment=kinds)
