"""The docs' result figures, drawn from ``results/*.csv`` by ``bvc results render``.

A Markdown page marks a generated figure with ``<!-- results-figure:NAME:begin -->``
and ``<!-- results-figure:NAME:end -->``; :func:`render_figures` draws
``results/NAME.csv`` as error against training-set size (top-1 on the left, top-5 on
the right, one line per pipeline and model; the images *a class* when the CSV has
``train_per_class``), writes it to ``figures/NAME.svg`` beside the page, and puts the
image's link between the markers.

The SVG is deterministic (a fixed hash salt, text kept as text, no date) and names the
sha256 of what it was drawn from (the CSV's bytes and :data:`STYLE`) in its
description. ``--check`` compares that digest with the CSV of now, so a figure that
is missing, or drawn from another CSV or in another style, is drift, while a figure
redrawn by another matplotlib version from the same data is not.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from bovw_vs_convnet.harness.crossover import format_size

FIGURE_MARKED = re.compile(
    r"(?P<begin><!-- results-figure:(?P<name>[A-Za-z0-9._-]+):begin -->\n)(?P<body>.*?)"
    r"(?P<end><!-- results-figure:(?P=name):end -->)",
    re.S,
)
FIGURES_DIR = "figures"  # beside the page: docs/figures/NAME.svg for docs/*.md
# the drawing's version: a change to how figures look changes every figure's digest
STYLE = "error-vs-size/1"
_DIGEST = re.compile(r"results-figure sha256 ([0-9a-f]{64})")


def figure_digest(csv_bytes: bytes) -> str:
    """The sha256 a figure drawn from ``csv_bytes`` in the current :data:`STYLE` carries."""
    return hashlib.sha256(STYLE.encode() + b"\n" + csv_bytes).hexdigest()


def _series(rows: Sequence[dict[str, str]]) -> tuple[dict[str, dict[int, tuple]], bool]:
    """Row label → size → (top-1, top-5) errors in %, and whether sizes are per class."""
    per_class = all(r.get("train_per_class", "").strip() for r in rows)
    out: dict[str, dict[int, tuple]] = {}
    for r in rows:
        size_text = r["train_per_class"] if per_class else r["n_train"]
        if not size_text.strip() or not r["top1_err"].strip():
            continue
        label = r["model"] if r["model"] else r["pipeline"]
        label = f"{r['pipeline']}/{label}" if label != r["pipeline"] else label
        top5 = float(r["top5_err"]) * 100 if r["top5_err"].strip() else None
        out.setdefault(label, {})[int(float(size_text))] = (float(r["top1_err"]) * 100, top5)
    return out, per_class


def figure_svg(rows: Sequence[dict[str, str]], digest: str, title: str) -> bytes:
    """The SVG of ``rows`` (a results CSV): top-1 and top-5 error against training size."""
    import matplotlib
    from matplotlib.figure import Figure

    series, per_class = _series(rows)
    sizes = sorted({n for points in series.values() for n in points})
    with matplotlib.rc_context(
        {"svg.hashsalt": "bvc-results-figure", "svg.fonttype": "none", "font.size": 9}
    ):
        fig = Figure(figsize=(8.0, 3.4))
        for i, (metric, index) in enumerate((("top-1", 0), ("top-5", 1)), start=1):
            ax = fig.add_subplot(1, 2, i)
            for label, points in series.items():
                xs = sorted(n for n in points if points[n][index] is not None)
                ys = [points[n][index] for n in xs]
                ax.plot(xs, ys, marker="o", label=label)
            ax.set_xscale("log")
            ax.set_xticks(sizes, [format_size(n) for n in sizes])
            ax.minorticks_off()
            ax.set_xlabel("training images a class" if per_class else "training images")
            ax.set_ylabel(f"{metric} error (%)")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7)
        fig.suptitle(title)
        fig.tight_layout()
        buffer = io.StringIO()
        fig.savefig(
            buffer,
            format="svg",
            metadata={"Date": None, "Description": f"results-figure sha256 {digest}"},
        )
    return buffer.getvalue().encode("utf-8")


def stored_digest(path: Path) -> str | None:
    """The digest a figure file names; None when it is missing or names none."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    found = _DIGEST.search(text)
    return found[1] if found else None


def figure_link(name: str, per_class: bool) -> str:
    """What the markers of figure ``name`` hold: the image's Markdown link."""
    what = "training images a class" if per_class else "training images"
    alt = f"Top-1 and top-5 error against {what}, from results/{name}.csv"
    return f"![{alt}]({FIGURES_DIR}/{name}.svg)\n"


def render_figures(
    page: Path,
    text: str,
    results_dir: Path,
    read: Callable[[Path], list[dict[str, str]]],
    *,
    write: bool,
) -> tuple[str, list[str]]:
    """``text`` (``page``'s) with every marked figure's link, and the names that drifted.

    ``read`` reads one results CSV (``results_tables.read_results``, which refuses a
    missing or malformed file). A figure drifts when its link differs from
    :func:`figure_link`'s or its SVG file does not carry the digest of its CSV now
    (:func:`figure_digest`). ``write`` (re)draws each drifted figure's SVG.
    """
    changed: list[str] = []

    def fill(match: re.Match[str]) -> str:
        name = match["name"]
        csv_path = results_dir / f"{name}.csv"
        rows = read(csv_path)
        digest = figure_digest(csv_path.read_bytes())
        link = figure_link(name, _series(rows)[1])
        svg = page.parent / FIGURES_DIR / f"{name}.svg"
        if link != match["body"] or stored_digest(svg) != digest:
            changed.append(name)
            if write:
                svg.parent.mkdir(parents=True, exist_ok=True)
                title = f"{rows[0]['dataset']}: error against training-set size"
                svg.write_bytes(figure_svg(rows, digest, title))
        return match["begin"] + link + match["end"]

    return FIGURE_MARKED.sub(fill, text), changed


def marked_figures(text: str) -> list[str]:
    """The names of the marked figures in ``text``, in order."""
    return [m["name"] for m in FIGURE_MARKED.finditer(text)]
