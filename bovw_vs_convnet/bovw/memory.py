"""The memory the BoVW passes need, planned in bytes before any image is described.

Both passes over the images, the vocabulary sample and then description +
encoding, work in chunks of images whose working memory (the chunk's descriptors,
128 float32 each, and the encoder's temporaries) stays under a budget in bytes:
the ``memory_mib`` setting, by default 1/32 of the machine's memory (128 MiB to
1 GiB), shared by the chunks in flight (one per worker). A chunk's descriptors are
freed before the next chunk starts. What grows with the data set is the codes, one
histogram per image, and the classifier trained on them, so the pipeline's peak is
about

    budget + vocabulary sample + codes (+ classifier, + the images the data layer holds)

independent of the number of images and, with ``max_side``, of their size.
VLFeat's ``phow_caltech101.m`` works the same way: descriptors one image at a
time, a sample of them for the vocabulary, each image encoded as it goes.

A setting that would need more than the machine has is refused before work
starts, with the estimate (:func:`plan_memory`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from bovw_vs_convnet.bovw.aggregate import CELL_BLOCK
from bovw_vs_convnet.bovw.colour import COLOUR_CHANNELS
from bovw_vs_convnet.bovw.dense_sift import SIFT_DIM
from bovw_vs_convnet.bovw.encoding import HISTOGRAM_BLOCK, n_cells
from bovw_vs_convnet.bovw.sift import BATCH_BYTES
from bovw_vs_convnet.bovw.vocabulary import NEAREST_ELEMENTS
from bovw_vs_convnet.errors import ConfigError

log = logging.getLogger(__name__)

MIB = 1 << 20
# a described descriptor: 128 float32 values, its (x, y) position and its scale (float32)
DESCRIPTOR_BYTES = SIFT_DIM * 4 + 2 * 4 + 4


def descriptor_dim(cfg: Any) -> int:
    """Values of one described descriptor: 128 per channel of ``cfg.colour`` (gray: 128,
    a colour space of van de Sande et al.: 384).
    """
    return SIFT_DIM * COLOUR_CHANNELS[getattr(cfg, "colour", "gray")]


def descriptor_bytes(cfg: Any) -> int:
    """Bytes of one described descriptor: its float32 values, position and scale
    (:data:`DESCRIPTOR_BYTES` for gray SIFT).
    """
    return DESCRIPTOR_BYTES + (descriptor_dim(cfg) - SIFT_DIM) * 4


# budget of the chunks in flight when memory_mib is not set: this share of the machine
DEFAULT_SHARE = 32
DEFAULT_MIN, DEFAULT_MAX = 128 * MIB, 1024 * MIB
# assumed when the machine's memory cannot be read (no sysconf)
FALLBACK_MACHINE = 8 << 30


def machine_memory() -> int:
    """Bytes of memory this process may use: physical memory, or a cgroup's lower limit."""
    try:
        total = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):
        return FALLBACK_MACHINE
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = open(limit_file).read().strip()  # noqa: SIM115 (a one-line pseudo-file)
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < total:
            total = int(text)
    return total


def default_budget(machine: int) -> int:
    """The chunks' budget when ``memory_mib`` is not set: 1/32 of ``machine``, 128 MiB–1 GiB."""
    return int(min(max(machine // DEFAULT_SHARE, DEFAULT_MIN), DEFAULT_MAX))


def fmt_bytes(n: float) -> str:
    """``1.5 GiB``, ``384 MiB``, ``12 KiB``: binary units, for messages."""
    for unit, size in (("GiB", 1 << 30), ("MiB", MIB), ("KiB", 1 << 10)):
        if n >= size:
            value = n / size
            return f"{value:.1f} {unit}" if value < 10 else f"{value:,.0f} {unit}"
    return f"{int(n)} bytes"


def encoder_bytes_per_descriptor(cfg: Any) -> int:
    """Temporaries of the encoder per descriptor, beyond the descriptor itself.

    Hard and soft: pyramid cells, image index, words (``knn`` for soft, with their
    weights), and the (cell, word) column, row and weight of every entry (8 + 8 + 4
    bytes, plus a transient 8 while the columns are formed and 4 of the block's
    flat index) per level and neighbour. VLAD and Fisher (:mod:`.aggregate`) hold
    the projected descriptor and its copy sorted by cell, and the assignments: a
    float32 one-hot row and its sorted copy (VLAD), float64 posteriors and their
    sorted copy (Fisher); their padded blocks are bounded (``CELL_BLOCK``).
    """
    levels = len(cfg.levels)
    d = int(cfg.pca_dim or descriptor_dim(cfg))
    if cfg.encoding == "vlad":
        return 8 + 8 * levels + 8 * d + 8 * int(cfg.k)
    if cfg.encoding == "fisher":
        return 8 + 8 * levels + 8 * d + 16 * int(cfg.k)
    m = int(cfg.knn) if cfg.encoding == "soft" else 1
    return 24 + 8 * levels + 12 * m + 32 * levels * m


def code_width(cfg: Any) -> int:
    """Length of one image's code (before any kernel map)."""
    d = int(cfg.pca_dim or descriptor_dim(cfg))
    per_cell = {"hard": 1, "soft": 1, "vlad": d, "fisher": 2 * d}[cfg.encoding] * int(cfg.k)
    return per_cell * n_cells(cfg.levels)


def worker_fixed_bytes(cfg: Any) -> int:
    """Working memory of a worker that does not grow with its chunk: one block of
    distances to the words (three blocks' worth for soft assignment: distances,
    their partition and its indices) and one dense-SIFT batch.
    """
    distances = NEAREST_ELEMENTS * 4 * (3 if cfg.encoding == "soft" else 1)
    if cfg.encoding in ("vlad", "fisher"):  # padded cell blocks (float64, a few copies)
        distances = max(distances, 3 * CELL_BLOCK * 8)
    return int(distances + BATCH_BYTES)


@dataclass(frozen=True)
class MemoryPlan:
    """How the passes over the images are chunked, and what that costs (bytes)."""

    budget: int  # the chunks in flight together (memory_mib)
    budget_from: str  # "memory_mib" or "1/32 of the machine"
    workers: int  # chunks in flight
    descriptors_per_image: int  # of the largest image shape
    bytes_per_descriptor: int  # descriptor + encoder temporaries
    bytes_per_image: int  # of the largest image shape, pixels and code block included
    worker_fixed: int
    images_per_chunk: int  # for the largest image shape (smaller images: more)
    chunk_bytes: int  # working memory of one such chunk, worker_fixed included
    vocabulary_sample: int  # descriptors kept for the vocabulary
    vocabulary_bytes: int
    code_bytes_per_image: int  # at most (float32 value + int32 column per entry)
    machine: int

    @property
    def bound(self) -> int:
        """Working memory of the passes: the chunks in flight and the vocabulary sample."""
        return self.workers * self.chunk_bytes + self.vocabulary_bytes

    def chunks(self, per_image_bytes: np.ndarray, max_images: int) -> list[np.ndarray]:
        """Positions of consecutive images grouped into chunks of at most
        ``max_images`` images whose working bytes fit one worker's share of the budget
        (an image larger than the share makes a chunk of its own).
        """
        capacity = max(self.budget // self.workers - self.worker_fixed, 1)
        out: list[np.ndarray] = []
        start, used = 0, 0
        for i, b in enumerate(np.asarray(per_image_bytes, np.int64).tolist()):
            if i > start and (used + b > capacity or i - start >= max_images):
                out.append(np.arange(start, i))
                start, used = i, 0
            used += b
        if len(per_image_bytes) > start:
            out.append(np.arange(start, len(per_image_bytes)))
        return out

    def summary(self) -> str:
        """The plan in one line, for the log."""
        return (
            f"bovw memory: chunks of ≤ {self.images_per_chunk:,} images × "
            f"{self.descriptors_per_image:,} descriptors × {self.bytes_per_descriptor:,} bytes "
            f"= {fmt_bytes(self.chunk_bytes)} each, {self.workers} in flight, within "
            f"{fmt_bytes(self.budget)} ({self.budget_from}); vocabulary sample "
            f"{self.vocabulary_sample:,} descriptors = {fmt_bytes(self.vocabulary_bytes)}; "
            f"codes ≤ {fmt_bytes(self.code_bytes_per_image)} per image"
        )

    def record(self) -> dict[str, Any]:
        """The plan for the run record (sizes in bytes)."""
        return {**asdict(self), "bound": self.bound}


def plan_memory(
    cfg: Any,
    extractor: Any,
    shapes: Sequence[tuple[int, int, int]],
    workers: int,
    machine: int | None = None,
) -> MemoryPlan:
    """Plan the chunks for images of these (H, W, C) ``shapes``; refuse what cannot fit.

    Raises :class:`ConfigError` (before any image is described) when ``memory_mib``
    is more than the machine has, when one image per chunk in every worker would
    need more than the machine has, or when the vocabulary sample would.
    """
    machine = machine_memory() if machine is None else int(machine)
    workers = max(1, int(workers))
    if cfg.memory_mib is not None:
        budget, budget_from = int(cfg.memory_mib) * MIB, "memory_mib"
        if budget > machine:
            raise ConfigError(
                f"memory_mib={cfg.memory_mib} is more than this machine's memory "
                f"({fmt_bytes(machine)})",
                key="memory_mib",
            )
    else:
        budget, budget_from = default_budget(machine), f"1/{DEFAULT_SHARE} of the machine"
    per_desc = descriptor_bytes(cfg) + encoder_bytes_per_descriptor(cfg)
    width = code_width(cfg)
    largest = max(shapes, key=lambda s: extractor.n_descriptors(s[0], s[1]))
    n_desc = int(extractor.n_descriptors(largest[0], largest[1]))
    per_image = image_bytes(cfg, extractor, largest)
    fixed = worker_fixed_bytes(cfg)
    need_one = workers * (fixed + per_image)
    if need_one > machine:
        raise ConfigError(
            f"these BoVW settings need ~{fmt_bytes(need_one)} to describe one image per chunk "
            f"({n_desc:,} descriptors per image × 1 image per chunk × {per_desc:,} bytes, "
            f"{workers} chunks in flight) but this machine has {fmt_bytes(machine)}; "
            "raise step, lower upscale or set max_side"
        )
    capacity = budget // workers - fixed
    if per_image > capacity:
        log.warning(
            "one image needs %s of working memory, more than each worker's share of the "
            "%s budget: chunks of one image",
            fmt_bytes(per_image),
            fmt_bytes(budget),
        )
    images_per_chunk = int(min(max(capacity // per_image, 1), cfg.chunk_images))
    vocab = int(cfg.vocab_samples)
    # the sample, and MiniBatchKMeans's float32 view of it with its norms and labels
    vocab_bytes = vocab * (descriptor_bytes(cfg) + descriptor_dim(cfg) * 4 + 16) + gmm_bytes(cfg)
    if vocab_bytes > machine:
        raise ConfigError(
            f"vocab_samples={vocab:,} needs ~{fmt_bytes(vocab_bytes)} for the vocabulary "
            f"sample ({vocab:,} descriptors × {vocab_bytes // vocab:,} bytes) but this "
            f"machine has {fmt_bytes(machine)}",
            key="vocab_samples",
        )
    per_entry = 1 if cfg.encoding in ("hard", "soft") else 0
    if per_entry:
        m = int(cfg.knn) if cfg.encoding == "soft" else 1
        entries = min(n_desc * len(cfg.levels) * m, width)
        code_bytes = entries * 8
    else:
        code_bytes = width * 4
    return MemoryPlan(
        budget=budget,
        budget_from=budget_from,
        workers=workers,
        descriptors_per_image=n_desc,
        bytes_per_descriptor=per_desc,
        bytes_per_image=per_image,
        worker_fixed=fixed,
        images_per_chunk=images_per_chunk,
        chunk_bytes=fixed + images_per_chunk * per_image,
        vocabulary_sample=vocab,
        vocabulary_bytes=vocab_bytes,
        code_bytes_per_image=code_bytes,
        machine=machine,
    )


def gmm_bytes(cfg: Any) -> int:
    """The GMM fit's memory (fisher): its float64 sample of ``gmm_samples`` projected
    descriptors and EM's responsibilities and log-densities (3 float64 per Gaussian).
    """
    if cfg.encoding != "fisher":
        return 0
    n = min(int(cfg.gmm_samples), int(cfg.vocab_samples))
    return n * (8 * int(cfg.pca_dim or descriptor_dim(cfg)) + 24 * int(cfg.k))


def image_bytes(cfg: Any, extractor: Any, shape: tuple[int, int, int]) -> int:
    """Working bytes of one image of ``shape`` (H, W, C) in a chunk: its descriptors with
    the encoder's temporaries, its pixels (uint8, gray float32, shrunk copy; the colour
    channels too) and its row of a dense histogram block (float64 sums and their float32
    copy).
    """
    h, w, c = shape
    n_desc = int(extractor.n_descriptors(h, w))
    per_desc = descriptor_bytes(cfg) + encoder_bytes_per_descriptor(cfg)
    if cfg.encoding in ("hard", "soft"):
        block_row = min(code_width(cfg), HISTOGRAM_BLOCK) * 12  # one image per block at most
    else:
        # the moments (float64: S1, and S2 for fisher), the code built from them, its
        # normalised copy and the float32 result: 40 bytes per entry (VLAD: 32)
        block_row = code_width(cfg) * (40 if cfg.encoding == "fisher" else 32)
    # colour: the centred RGB copy and the channels, float32, before and after shrinking
    planes = 8 if descriptor_dim(cfg) == SIFT_DIM else 8 + 28
    return int(n_desc * per_desc + h * w * (c + planes) + block_row)
