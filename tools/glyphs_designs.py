"""Which font families of a rendered glyph set look like one design (for ``same_design``).

Reads a set that ``bvc data fetch glyphs`` rendered, measures the root-mean-square
pixel difference between every two faces over their 62 glyphs, and prints, for
each pair of design groups, the closest pair of faces when it is closer than
``--threshold``: clones and re-digitisations (Nimbus Roman and TeX Gyre Termes,
0.01) sit far below distinct designs (0.15 and more). A pair printed here that is
one design goes into the manifest's ``params.same_design``; ``--sheet`` writes a
contact sheet (one row per face, its 62 glyphs) to look at every face by eye;
``--fonts`` prints the manifest's ``font_set_sha256`` and ``fonts`` for the set.

    PYTHONPATH=. python tools/glyphs_designs.py --data-dir data --threshold 0.12
    PYTHONPATH=. python tools/glyphs_designs.py --sheet /tmp/glyphs.png --per-family
    PYTHONPATH=. python tools/glyphs_designs.py --fonts    # after a change of packages
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from bovw_vs_convnet.data.glyphs import CHARACTERS, IMAGES_FILE, INDEX_FILE, font_line
from bovw_vs_convnet.data.locate import resolve_data_dir


def face_distances(images: np.ndarray) -> np.ndarray:
    """(F, F) rms pixel difference in [0, 1] between faces; ``images`` is (F, 62, H, W, C)."""
    x = images.reshape(len(images), -1).astype(np.float64) / 255.0
    sq = (x**2).sum(axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * x @ x.T, 0.0) / x.shape[1]
    return np.asarray(np.sqrt(d2))


def main() -> None:
    """Print the closest face pairs across design groups; optionally write a contact sheet."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", default="glyphs", help="the rendered dataset (a subfolder)")
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--threshold", type=float, default=0.12)
    ap.add_argument("--sheet", type=Path, default=None, help="write a contact sheet PNG here")
    ap.add_argument("--per-family", action="store_true", help="one sheet row per family")
    ap.add_argument("--fonts", action="store_true", help="print the manifest's font entries")
    args = ap.parse_args()

    folder = resolve_data_dir(args.data_dir) / args.name
    index = json.loads((folder / INDEX_FILE).read_text(encoding="utf-8"))
    faces = index["faces"]
    if args.fonts:
        print(f'font_set_sha256 = "{index["font_set_sha256"]}"')
        print("fonts = [")
        for f in faces:
            print(f'    "{font_line(f["id"], f["package"], f["file"])}",')
        print("]")
        return
    n, side = len(faces), index["render"]["size"]
    images = np.load(folder / IMAGES_FILE, allow_pickle=False).reshape(
        n, len(CHARACTERS), side, side, -1
    )
    dist = face_distances(images)
    groups = np.array([f["group"] for f in faces])
    best: dict[tuple[str, str], tuple[float, int, int]] = {}
    rows, cols = np.nonzero(np.triu(dist < args.threshold, k=1))
    for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
        if groups[i] == groups[j]:
            continue
        key = (min(groups[i], groups[j]), max(groups[i], groups[j]))
        if key not in best or dist[i, j] < best[key][0]:
            best[key] = (float(dist[i, j]), i, j)
    for d, i, j in sorted(best.values()):
        a, b = faces[i], faces[j]
        print(f"{d:.3f}  {a['family']} {a['style']}  ~  {b['family']} {b['style']}")
    print(f"{len(best)} pair(s) of design groups closer than {args.threshold}")
    if args.sheet is not None:
        from PIL import Image

        keep = list(range(n))
        if args.per_family:
            first = {f["family"]: k for k, f in reversed(list(enumerate(faces)))}
            keep = sorted(first.values())
        sel = images[keep]
        sheet = sel.transpose(0, 2, 1, 3, 4).reshape(len(keep) * side, len(CHARACTERS) * side, -1)
        Image.fromarray(sheet.squeeze(axis=-1) if sheet.shape[-1] == 1 else sheet).save(args.sheet)
        names = [f"{r:4d} {faces[k]['family']} {faces[k]['style']}" for r, k in enumerate(keep)]
        args.sheet.with_suffix(".txt").write_text("\n".join(names) + "\n", encoding="utf-8")
        print(f"sheet: {args.sheet} ({len(keep)} rows; names in {args.sheet.with_suffix('.txt')})")


if __name__ == "__main__":
    main()
