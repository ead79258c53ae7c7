"""Loading Fashion-MNIST: this package's IDX reader against torchvision's FashionMNIST, same run.

Both read the same four decompressed IDX files from ``<tmp>/FashionMNIST/raw/``
(torchvision's layout) into uint8 arrays of all 70 000 images; this package's
reader also builds labels and sample ids (an ImageSet). Runs alternate
(torchvision, ours, torchvision, ...) so background load hits both alike; the
first round is a warm-up (imports, page cache) and is not counted. A last line
times this package reading Debian's gzip files directly (decompression included),
which torchvision cannot do without unpacking them first.

    PYTHONPATH=. python benchmarks/bench_data_loading.py --repeats 5
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bovw_vs_convnet.data import load_dataset

DEBIAN = Path("/usr/share/datasets/fashion-mnist")


def _torchvision(root: Path) -> int:
    from torchvision.datasets import FashionMNIST

    n = 0
    for train in (True, False):
        ds = FashionMNIST(str(root), train=train, download=False)
        n += int(ds.data.numpy().shape[0])
    return n


def _ours(root: Path) -> int:
    ds = load_dataset("fashion-mnist", data_dir=root)
    return len(ds.train) + (0 if ds.test is None else len(ds.test))


def main() -> None:
    """Time both readers and print one JSON line per reader: mean and std in seconds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per reader")
    parser.add_argument("--source", type=Path, default=DEBIAN, help="folder of the .gz files")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        raw = root / "FashionMNIST" / "raw"
        raw.mkdir(parents=True)
        for gz in sorted(args.source.glob("*-ubyte.gz")):
            (raw / gz.name.removesuffix(".gz")).write_bytes(gzip.decompress(gz.read_bytes()))
        times: dict[str, list[float]] = {"torchvision": [], "bovw_vs_convnet": []}
        for rnd in range(args.repeats + 1):
            for name, fn in (("torchvision", _torchvision), ("bovw_vs_convnet", _ours)):
                start = time.perf_counter()
                n = fn(root)
                if rnd > 0:
                    times[name].append(time.perf_counter() - start)
                assert n == 70000, (name, n)
        shutil.rmtree(raw)
        gz_times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            load_dataset("fashion-mnist", data_dir=root / "none")  # falls back to Debian's .gz
            gz_times.append(time.perf_counter() - start)
    times["bovw_vs_convnet (Debian .gz)"] = gz_times
    for name, ts in times.items():
        print(
            json.dumps(
                {
                    "reader": name,
                    "images": 70000,
                    "mean_s": round(statistics.mean(ts), 4),
                    "std_s": round(statistics.stdev(ts), 4) if len(ts) > 1 else 0.0,
                    "repeats": len(ts),
                }
            )
        )


if __name__ == "__main__":
    main()
