"""BoVW at photo scale: peak memory and time of ``bvc run bovw`` on generated photo folders,
this code against a baseline revision (today's code before the streamed passes) in the same run.

Cases (each a folder of seeded synthetic RGB JPEGs, generated under a temporary
folder and removed at the end):

- ``folder1000``: 1 000 images, 10 classes, sides 90–300 px (independently), no split;
- ``caltech``: a Caltech-101-shaped stand-in, 102 classes, 9 144 images, sides
  150–300 px, and ``caltech2000``: 2 000 of its images (class-stratified), to show
  that peak memory does not grow with the number of images.

Each run is ``bvc run bovw --dataset FOLDER --runs-dir FRESH --no-progress --json``
with the defaults (the preset follows the image size), under ``/usr/bin/time``
for wall time, CPU time (user + system) and peak RSS. The baseline is the package
at ``--baseline`` (``git archive`` into a temporary folder, put first on
``PYTHONPATH``), run under an
address-space cap (``--cap-gib``) so that it cannot take the machine's memory;
a baseline stopped by the cap is reported as such. With ``--tuned-baseline``,
the baseline also runs with the settings of today's code closest to the new
default that fit in memory by hand (:data:`TUNED`): a time comparison for like work.
Example:

    PYTHONPATH=. .venv/bin/python benchmarks/bench_bovw_memory.py --case folder1000 --tuned-baseline
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BVC = ROOT / ".venv" / "bin" / "bvc"
# the last commit before the streamed BoVW passes (issue 17)
BASELINE = "3e367ea"
# today's phow preset with the photo preset's step, few vocabulary images (today's code
# describes them all at once) and small image-counted chunks
TUNED = ["preset=phow", "step=4", "vocab_images=100", "chunk_images=32"]
CASES = {  # name: (classes, images, smallest side, largest side)
    "folder1000": (10, 1000, 90, 300),
    "caltech": (102, 9144, 150, 300),
}


def class_image(rng: np.random.Generator, label: int, n_classes: int, h: int, w: int) -> np.ndarray:
    """A uint8 (h, w, 3) RGB image of class ``label``: a grating whose orientation and
    frequency, and shapes whose colour and kind, depend on the class; noise on top.
    """
    import cv2

    theta = np.pi * label / n_classes
    freq = 0.05 + 0.25 * ((label * 7) % n_classes) / n_classes  # cycles per pixel
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi)
    grating = np.sin(2 * np.pi * freq * (xx * np.cos(theta) + yy * np.sin(theta)) + phase)
    tint = np.array([(label * 37) % 256, (label * 91) % 256, (label * 53) % 256], np.float32)
    img = 110 + 50 * grating[..., None] + 0.25 * (tint - 128)  # (h, w, 3)
    img = np.ascontiguousarray(np.clip(img, 0, 255).astype(np.uint8))
    colour = tuple(int(v) for v in (255 - tint))
    for _ in range(1 + label % 4):
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = int(rng.integers(8, max(9, min(h, w) // 4)))
        if label % 3 == 0:
            cv2.circle(img, (cx, cy), r, colour, -1)
        elif label % 3 == 1:
            cv2.rectangle(img, (cx - r, cy - r), (cx + r, cy + r), colour, -1)
        else:
            pts = np.array([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]], np.int32)
            cv2.fillPoly(img, [pts], colour)
    noise = rng.normal(0, 12, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def make_folder(root: Path, n_classes: int, n_images: int, lo: int, hi: int, seed: int) -> Path:
    """Write ``n_images`` JPEGs in ``n_classes`` class folders (sizes as evenly as can be)."""
    import cv2

    rng = np.random.default_rng(seed)
    for c in range(n_classes):
        (root / f"class{c:03d}").mkdir(parents=True, exist_ok=True)
    for i in range(n_images):
        label = i % n_classes
        h, w = (int(v) for v in rng.integers(lo, hi + 1, size=2))
        img = class_image(rng, label, n_classes, h, w)
        path = root / f"class{label:03d}" / f"img{i:05d}.jpg"
        cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return root


def subset_folder(src: Path, dst: Path, n_images: int) -> Path:
    """Hard links to ``n_images`` of ``src``'s images, the same share of every class."""
    files = sorted(src.glob("*/*.jpg"))
    by_class: dict[str, list[Path]] = {}
    for f in files:
        by_class.setdefault(f.parent.name, []).append(f)
    share = n_images / len(files)
    taken = 0
    for cls, members in sorted(by_class.items()):
        k = max(1, round(len(members) * share))
        (dst / cls).mkdir(parents=True, exist_ok=True)
        for f in members[:k]:
            os.link(f, dst / cls / f.name)
        taken += k
    return dst


def _cap(gib: float) -> None:
    limit = int(gib * (1 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def run_bvc(
    folder: Path, runs: Path, pythonpath: Path | None, cap_gib: float | None, extra: list[str]
) -> dict[str, object]:
    """One ``bvc run bovw`` under /usr/bin/time: wall s, peak RSS, and the record's figures."""
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    cmd = ["/usr/bin/time", "-f", "TIME %e %M %U %S", str(BVC), "run", "bovw", "--dataset"]
    cmd.append(str(folder))
    cmd += ["--runs-dir", str(runs), "--no-progress", "--json", *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd,
        env=env,
        capture_output=True,
        text=True,
        preexec_fn=(lambda: _cap(cap_gib)) if cap_gib else None,
        check=False,
    )
    wall = time.perf_counter() - t0
    timing = [ln for ln in proc.stderr.splitlines() if ln.startswith("TIME ")]
    nan = float("nan")
    secs, kib, user, sys_ = (
        (float(v) for v in timing[-1].split()[1:]) if timing else (wall, nan, nan, nan)
    )
    out: dict[str, object] = {
        "rc": proc.returncode,
        "seconds": round(secs, 1),
        "cpu_seconds": round(user + sys_, 1),  # user + system, both cores together
        "peak_gib": round(kib / (1 << 20), 3),
    }
    if proc.returncode == 0:
        rec = json.loads(proc.stdout)
        out.update(
            {
                "top1_err": rec["top1_err"],
                "mpc_err": rec.get("mpc_err"),
                "preset": rec["config"]["preset"],
                "n_train": rec["n_train"],
                "n_val": rec.get("n_val"),
                "n_test": rec.get("n_test"),
                "aspect": rec["extra"].get("aspect"),
                "stage_seconds": {k: round(v, 1) for k, v in rec["stage_seconds"].items()},
                "descriptors_per_image": rec["extra"].get("descriptors_per_image_train"),
                "memory_bound_gib": round(
                    rec["extra"].get("memory_plan", {}).get("bound", 0) / (1 << 30), 3
                ),
            }
        )
    else:
        tail = [ln for ln in proc.stderr.splitlines() if not ln.startswith("TIME ")][-3:]
        out["error"] = " | ".join(tail)
    return out


def main() -> None:
    """Generate the folders, run this code and the baseline on each, print JSON lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append", choices=sorted(CASES), required=True)
    parser.add_argument("--baseline", default=BASELINE, help="git revision of today's code")
    parser.add_argument("--cap-gib", type=float, default=6.0, help="baseline address-space cap")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--skip-project", action="store_true")
    parser.add_argument("--tuned-baseline", action="store_true", help="also run TUNED")
    parser.add_argument("--tmp", type=Path, default=None, help="parent of the temporary folder")
    parser.add_argument("--set", action="append", default=[], help="extra --set for both runs")
    args = parser.parse_args()
    extra = [w for s in args.set for w in ("--set", s)]
    work = Path(tempfile.mkdtemp(prefix="bench_bovw_memory_", dir=args.tmp))
    try:
        base = work / "baseline"
        if not args.skip_baseline:
            base.mkdir()
            archive = subprocess.run(
                ["git", "-C", str(ROOT), "archive", args.baseline], capture_output=True, check=True
            )
            subprocess.run(["tar", "-x", "-C", str(base)], input=archive.stdout, check=True)
        for case in args.case:
            n_classes, n_images, lo, hi = CASES[case]
            t0 = time.perf_counter()
            folder = make_folder(work / case, n_classes, n_images, lo, hi, seed=0)
            folders = [(case, folder)]
            if case == "caltech":
                folders.insert(0, ("caltech2000", subset_folder(folder, work / "c2000", 2000)))
            print(f"# {case}: generated in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
            for name, path in folders:
                n = len(list(path.glob("*/*.jpg")))
                runs_of: list[tuple[str, Path | None, float | None, list[str]]] = [
                    ("project", None, None, extra)
                ]
                if not args.skip_baseline:
                    runs_of.append(("baseline", base, args.cap_gib, extra))
                    if args.tuned_baseline:
                        tuned = [w for s in TUNED for w in ("--set", s)]
                        runs_of.append(("baseline-tuned", base, args.cap_gib, tuned))
                for who, pp, cap, sets in runs_of:
                    if who == "project" and args.skip_project:
                        continue
                    runs = work / f"runs-{name}-{who}"
                    res = run_bvc(path, runs, pp, cap, sets)
                    res = {"case": name, "images": n, "code": who, **res}
                    print(json.dumps(res), flush=True)
                    shutil.rmtree(runs, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
