"""Files from elsewhere: no dataset runs code, no runs folder locks up, bad input is one line.

Each test plays a hostile or unlucky user: a planted pickle as a CIFAR batch, a
planted record.json, a read-only or full runs folder, two processes after a
killed run, out-of-range seeds and NaN settings, symlink loops and decompression
bombs in an image folder.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import multiprocessing
import os
import pickle
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from bovw_vs_convnet.cli import main
from bovw_vs_convnet.data.datasets import load_imagefolder
from bovw_vs_convnet.data.imageset import ImageSet
from bovw_vs_convnet.data.split import Split
from bovw_vs_convnet.errors import DataError
from bovw_vs_convnet.harness import registry
from bovw_vs_convnet.harness import run as run_mod
from bovw_vs_convnet.harness.store import ResultStore

CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def _one_line(text: str) -> str:
    """The text, asserted to be one line."""
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


# --------------------------------------------------------------------------- CIFAR batches


class _Plant:
    """Unpickled, it opens (creates) the marker file: what a hostile pickle can do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return open, (str(self.marker), "w")


def _plant_cifar(data_dir: Path, marker: Path) -> Path:
    """A CIFAR-10 folder whose every file is a marker-writing pickle."""
    folder = data_dir / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    payload = pickle.dumps({"data": _Plant(marker), "labels": [0]}, protocol=2)
    for name in CIFAR_FILES:
        (folder / name).write_bytes(payload)
    control = marker.with_name("control")
    pickle.loads(pickle.dumps({"data": _Plant(control), "labels": [0]}, protocol=2))
    assert control.exists()  # the plant is live: a plain pickle.load runs it
    control.unlink()
    return folder


def test_a_planted_cifar_batch_fails_its_checksum_before_it_is_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    _plant_cifar(tmp_path / "data", marker)
    runs = str(tmp_path / "runs")
    data = str(tmp_path / "data")
    for args in (
        ("run", "baseline", "--dataset", "cifar10", "--data-dir", data, "--runs-dir", runs),
        ("data", "split", "cifar10", "--data-dir", data),
    ):
        result = _invoke(*args)
        assert result.exit_code == 2
        line = _one_line(result.stderr)
        assert line.startswith("error: checksum mismatch: ") and "data_batch_1 md5 " in line
        assert not marker.exists()


def test_a_planted_batch_that_matches_its_manifest_is_still_not_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "marker"
    folder = _plant_cifar(tmp_path / "data", marker)
    manifest = Path("data_manifests/cifar10.toml").read_text()
    entries = "".join(
        f'[[files]]\npath = "{n}"\npart = "{"test" if n == "test_batch" else "train"}"\n'
        f'md5 = "{hashlib.md5((folder / n).read_bytes()).hexdigest()}"\n'
        for n in CIFAR_FILES[:-1]
    )
    (tmp_path / "m").mkdir()
    head = manifest[: manifest.index("[split]")]
    (tmp_path / "m" / "cifar10.toml").write_text(head + "[split]\nofficial = true\n" + entries)
    monkeypatch.setenv("BVC_MANIFESTS_DIR", str(tmp_path / "m"))
    result = _invoke("data", "split", "cifar10", "--data-dir", str(tmp_path / "data"))
    assert result.exit_code == 2
    assert _one_line(result.stderr) == (
        f"error: cannot read CIFAR batch {folder / 'data_batch_1'}: it calls io.open, "
        "which a CIFAR batch never holds (refused, not run)"
    )
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_a_real_batch_loads_through_the_restricted_unpickler(protocol: int) -> None:
    from bovw_vs_convnet.data.cifar import parse_batch

    rng = np.random.default_rng(0)
    chw = rng.integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)
    batch = {"batch_label": "b", "data": chw.reshape(3, -1), "labels": [1, 2, 9], "filenames": []}
    images, labels = parse_batch(pickle.dumps(batch, protocol=protocol), Path("b"))
    assert labels.tolist() == [1, 2, 9]
    assert images[2, 4, 5].tolist() == chw[2, :, 4, 5].tolist()  # (H, W, C)


# --------------------------------------------------------------------------- the runs folder


def _images(n: int, offset: int) -> ImageSet:
    rng = np.random.default_rng(offset)
    labels = np.arange(n) % 3
    images = (rng.integers(0, 40, (n, 4, 4, 1)) + 60 * labels[:, None, None, None]).astype(np.uint8)
    ids = np.array([f"s{offset + i:03d}" for i in range(n)])
    return ImageSet(images, labels.astype(np.int64), ids, ("a", "b", "c"), name="toy")


@pytest.fixture
def toy_split(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Data loading replaced by a tiny 3-class set; the list says which datasets were loaded."""
    loaded: list[str] = []

    def fake_load_split(dataset: str, **kwargs: Any) -> tuple[str, Split]:
        loaded.append(dataset)
        params = {"dataset": dataset, "seed": kwargs.get("seed", 0)}
        # 12 validation images: 6 could not show a run significantly above chance once the
        # best of the C grid is corrected for its looks (Bonferroni)
        return dataset, Split(_images(30, 0), _images(12, 100), _images(9, 200), "f" * 64, params)

    monkeypatch.setattr(run_mod, "load_split", fake_load_split)
    return loaded


def _plant_record(runs: Path, name: str, **fields: Any) -> Path:
    folder = runs / name
    folder.mkdir(parents=True)
    record = {
        "run_id": name,
        "status": "ok",
        "created_at": "2026-01-01T00:00:00+00:00",
        "pipeline": "baseline",
        "model": "planted",
        "dataset": "toy",
        "seed": 0,
        "top1_err": 0.5,
        **fields,
    }
    (folder / "record.json").write_text(json.dumps(record))  # inf is written as Infinity
    return folder


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"seed": 99999999999999999999}, "'seed' is 99999999999999999999, not an integer"),
        ({"top1_err": float("inf")}, "'top1_err' is inf, out of range"),
    ],
    ids=["huge-seed", "infinite-error"],
)
def test_a_record_that_cannot_be_indexed_is_quarantined_and_the_store_goes_on(
    tmp_path: Path,
    toy_split: list[str],
    caplog: pytest.LogCaptureFixture,
    fields: dict[str, Any],
    reason: str,
) -> None:
    runs = tmp_path / "runs"
    assert _invoke("run", "baseline", "--dataset", "toy", "--runs-dir", str(runs)).exit_code == 0
    planted = _plant_record(runs, "20260101-000000-baseline-bad", **fields)
    with caplog.at_level(logging.WARNING, logger="bovw_vs_convnet.harness.store"):
        board = _invoke("leaderboard", "--runs-dir", str(runs), "--format", "json")
        again = _invoke("leaderboard", "--runs-dir", str(runs), "--format", "json")
        rerun = _invoke("run", "baseline", "--dataset", "toy", "--runs-dir", str(runs))
    assert (board.exit_code, again.exit_code, rerun.exit_code) == (0, 0, 0), board.output
    assert board.stdout == again.stdout and "planted" not in board.stdout
    (warning,) = [r.getMessage() for r in caplog.records]  # once: the folder has moved
    assert warning.startswith(f"run folder {planted} cannot be indexed: {reason}")
    assert warning.endswith(f"moved to {runs / '.quarantine' / planted.name}")
    assert (runs / ".quarantine" / planted.name / "record.json").is_file()
    assert len(ResultStore(runs).list_runs()) == 2


def test_report_goes_on_past_a_planted_record(tmp_path: Path, toy_split: list[str]) -> None:
    runs = tmp_path / "runs"
    assert _invoke("run", "baseline", "--dataset", "toy", "--runs-dir", str(runs)).exit_code == 0
    _plant_record(runs, "20260101-000000-baseline-bad", seed=2**70)
    result = _invoke("report", "--runs-dir", str(runs), "--output", str(tmp_path / "site"))
    assert result.exit_code == 0, result.output
    assert "1 finished and 0 failed runs" in (tmp_path / "site" / "index.html").read_text()


def test_a_record_the_store_cannot_index_is_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    store = ResultStore(tmp_path)
    staging = store.start_run("key", "r1")
    record = {"run_id": "r1", "created_at": "t", "pipeline": "baseline", "seed": 2**64}
    with pytest.raises(DataError, match=r"run r1 cannot be stored: 'seed' is 18446744073709551616"):
        store.commit(record, staging, scores=np.zeros((1, 2)))  # type: ignore[arg-type]
    assert sorted(p.name for p in staging.iterdir()) == []
    assert not (tmp_path / "r1").exists()


def _can_mount_read_only() -> bool:
    if os.geteuid() != 0:
        return True  # chmod makes a folder read-only for an ordinary user
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    return probe.returncode == 0


def _run_read_only(folder: Path, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` with ``folder`` read-only, honestly: root ignores permission bits.

    As root, a mount namespace of its own (``unshare -m``) remounts ``folder``
    read-only for that process alone (writes fail with EROFS, as on a read-only
    NFS export); an ordinary user gets the folder ``chmod -R a-w`` instead. Either
    way the first thing run is a write into the folder, which must fail.
    """
    script = 'if touch "$0/probe" 2>/dev/null; then echo WRITABLE; exit 99; fi; exec "$@"'
    if os.geteuid() == 0:
        script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" || exit 98; ' + script
        return subprocess.run(
            ["unshare", "-m", "sh", "-c", script, str(folder), *argv],
            capture_output=True,
            text=True,
        )
    for path in (folder, *folder.rglob("*")):
        path.chmod(path.stat().st_mode & ~0o222)
    try:
        return subprocess.run(
            ["sh", "-c", script, str(folder), *argv], capture_output=True, text=True
        )
    finally:
        for path in (folder, *folder.rglob("*")):
            path.chmod(path.stat().st_mode | 0o200)


def _bvc(*args: str) -> list[str]:
    return [sys.executable, "-c", f"from bovw_vs_convnet.cli import main; main({list(args)!r})"]


@pytest.mark.skipif(not _can_mount_read_only(), reason="no way here to make a folder read-only")
def test_leaderboard_and_report_read_a_read_only_runs_folder(
    tmp_path: Path, toy_split: list[str]
) -> None:
    runs = tmp_path / "runs"
    assert _invoke("run", "baseline", "--dataset", "toy", "--runs-dir", str(runs)).exit_code == 0
    unindexed = _plant_record(runs, "20260101-000000-baseline-late")  # valid, not yet indexed
    board = _run_read_only(runs, _bvc("leaderboard", "--runs-dir", str(runs), "--format", "csv"))
    assert board.returncode == 0, board.stdout + board.stderr
    assert board.stdout.count("baseline") == 1 and "WRITABLE" not in board.stdout
    assert "1 run folder(s) left out, not indexed" in board.stderr  # it could not be written
    site = tmp_path / "site"
    report = _run_read_only(runs, _bvc("report", "--runs-dir", str(runs), "--output", str(site)))
    assert report.returncode == 0, report.stderr
    assert (site / "index.html").is_file()
    assert unindexed.is_dir()  # nothing was moved or written

    refused = _run_read_only(
        runs, _bvc("run", "baseline", "--dataset", "digits", "--runs-dir", str(runs))
    )
    assert refused.returncode == 2
    assert _one_line(refused.stderr).startswith(f"error: runs folder {runs} cannot be written (")


def test_a_full_disk_at_commit_is_one_line_and_leaves_no_half_written_file(
    tmp_path: Path, toy_split: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = tmp_path / "runs"
    real_save = np.save

    def full(path: Any, *args: Any, **kwargs: Any) -> None:
        Path(path).write_bytes(b"\x93NUMPY half")  # a partial file, as a full disk leaves
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(np, "save", full)
    result = _invoke("run", "baseline", "--dataset", "toy", "--runs-dir", str(runs))
    assert result.exit_code == 2
    assert _one_line(result.stderr).startswith(
        f"error: runs folder {runs} cannot be written (No space left on device: "
    )
    assert _one_line(result.stderr).endswith("; free some space, or give another --runs-dir")
    (staging,) = [p for p in (runs / ".partial").iterdir() if p.is_dir()]
    assert list(staging.iterdir()) == []  # scores.npy removed; no record written
    monkeypatch.setattr(np, "save", real_save)
    assert _invoke("run", "baseline", "--dataset", "toy", "--runs-dir", str(runs)).exit_code == 0
    assert len(ResultStore(runs).list_runs()) == 1


@pytest.mark.skipif(
    os.geteuid() != 0 or not _can_mount_read_only(), reason="needs root and unshare for a tmpfs"
)
def test_a_really_full_disk_is_one_line_and_keeps_nothing_but_empty_files(tmp_path: Path) -> None:
    """A 16 kB tmpfs in a mount namespace of its own: the disk is full for real (ENOSPC)."""
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    runs = tiny / "runs"
    args = ("run", "baseline", "--dataset", "digits", "--set", "method=nearest-mean")
    argv = _bvc(*args, "--runs-dir", str(runs))
    check = f'find "{tiny}" -type f -size +0 | sed "s/^/LEFT /"'  # inside: the tmpfs goes with it
    script = f'mount -t tmpfs -o size=16k tmpfs "{tiny}" && "$@"; echo "rc=$?"; {check}'
    result = subprocess.run(
        ["unshare", "-m", "sh", "-c", script, "sh", *argv], capture_output=True, text=True
    )
    assert result.stdout.startswith("rc="), result.stdout + result.stderr
    assert _one_line(result.stderr) == (
        f"error: runs folder {runs} cannot be written (No space left on device); "
        "free some space, or give another --runs-dir"
    )
    assert result.stdout.splitlines() == ["rc=2"], (
        result.stdout
    )  # no file with anything in it is left


@dataclass(frozen=True)
class DiskConfig:
    """No settings: every run of it has one config key."""


class DiskPipeline:
    """Writes into its folder in ``fit``: a full disk there, or a claim check (below)."""

    def __init__(self, config: DiskConfig, context: Any) -> None:
        self.context = context
        self.record_extra: dict[str, Any] = {}

    def fit(self, train: ImageSet, val: ImageSet | None) -> DiskPipeline:
        run_dir = self.context.run_dir
        if os.environ.get("TRUST_FULL"):
            raise OSError(errno.ENOSPC, "No space left on device", str(run_dir / "cache.bin"))
        owner = run_dir / "owner.txt"
        self.record_extra = {"staging": str(run_dir), "resumed": owner.exists()}
        owner.write_text(str(os.getpid()))
        started = os.environ.get("TRUST_STARTED")
        if started:
            Path(started).write_text("")
        time.sleep(float(os.environ.get("TRUST_HOLD", "0")))
        if owner.read_text() != str(os.getpid()):
            raise RuntimeError("another process worked in this staging folder")
        return self

    def decision_scores(self, images: ImageSet) -> np.ndarray:
        return np.eye(3)[images.labels]


def build_disk(config: DiskConfig, context: Any) -> DiskPipeline:
    return DiskPipeline(config, context)


@pytest.fixture
def disk_pipeline(monkeypatch: pytest.MonkeyPatch, toy_split: list[str]) -> None:
    spec = registry.PipelineSpec("disk", f"{__name__}:DiskConfig", f"{__name__}:build_disk", "")
    monkeypatch.setitem(registry.PIPELINES, "disk", spec)


def test_a_full_disk_inside_a_pipeline_is_one_line_naming_the_folder(
    tmp_path: Path, disk_pipeline: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRUST_FULL", "1")
    result = _invoke("run", "disk", "--dataset", "toy", "--runs-dir", str(tmp_path))
    assert result.exit_code == 2
    (failed,) = ResultStore(tmp_path).list_runs(status="failed")  # stored: the store had room
    staging = tmp_path / ".partial" / f"{failed['config_key'][:16]}-{failed['run_id']}"
    assert _one_line(result.stderr) == (
        f"error: folder {staging}: No space left on device ({staging / 'cache.bin'}); "
        "free some space or choose another folder"
    )


def _run_disk(runs: str, env: dict[str, str], queue: Any) -> None:
    """A child process: one resumable run of ``disk``; its record's extra and warnings back."""
    os.environ.update(env)
    messages: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    logging.getLogger("bovw_vs_convnet.harness.store").addHandler(Keep())
    record = run_mod.run_pipeline("disk", "toy", runs_dir=runs, resume=True, progress=False)
    queue.put((record["extra"], messages))


def _wait_for(path: Path, proc: Any) -> None:
    deadline = time.monotonic() + 30
    while not path.exists():
        assert proc.is_alive() and time.monotonic() < deadline, "the child never started"
        time.sleep(0.01)


def test_two_processes_after_a_killed_run_never_share_its_staging_folder(
    tmp_path: Path, disk_pipeline: None
) -> None:
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    runs = str(tmp_path / "runs")
    killed = ctx.Process(
        target=_run_disk, args=(runs, {"TRUST_HOLD": "60", "TRUST_STARTED": f"{tmp_path}/k"}, queue)
    )
    killed.start()
    _wait_for(tmp_path / "k", killed)
    os.kill(killed.pid, signal.SIGKILL)  # kill -9 in the middle of fit
    killed.join()
    (left,) = [p for p in (tmp_path / "runs" / ".partial").iterdir() if p.is_dir()]

    first = ctx.Process(
        target=_run_disk,
        args=(runs, {"TRUST_HOLD": "1.5", "TRUST_STARTED": f"{tmp_path}/a"}, queue),
    )
    first.start()
    _wait_for(tmp_path / "a", first)  # it holds the killed run's folder now
    second = ctx.Process(target=_run_disk, args=(runs, {}, queue))
    second.start()
    results = [queue.get(timeout=60) for _ in range(2)]
    for proc in (first, second):
        proc.join(60)
    assert (first.exitcode, second.exitcode) == (0, 0)

    by_resumed = {extra["resumed"]: (extra, messages) for extra, messages in results}
    resumed, resumed_warnings = by_resumed[True]
    own, own_warnings = by_resumed[False]
    assert resumed["staging"] == str(left) and resumed_warnings == []
    assert own["staging"] != str(left)
    assert own_warnings == [
        f"{left} is in use by another process; this run starts its own staging folder"
    ]
    assert list((tmp_path / "runs" / ".partial").iterdir()) == []  # no folder, no lock left
    assert len(ResultStore(runs).list_runs()) == 2


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("seed", ["-1", "4294967296", "99999999999999999999"])
def test_a_seed_out_of_range_is_refused_before_anything_runs(
    tmp_path: Path, toy_split: list[str], seed: str
) -> None:
    for args in (
        ("run", "baseline", "--dataset", "toy", "--seed", seed, "--runs-dir", str(tmp_path)),
        ("bench", "quick", "--seed", seed, "--runs-dir", str(tmp_path)),
        ("data", "split", "digits", "--seed", seed),
    ):
        result = _invoke(*args)
        assert result.exit_code == 2
        assert _one_line(result.stderr) == (
            f"error: --seed must be an integer from 0 to 4294967295, got {seed}"
        )
    assert toy_split == [] and not tmp_path.joinpath("results.sqlite").exists()


def test_run_pipeline_refuses_a_seed_the_store_cannot_hold(
    tmp_path: Path, toy_split: list[str]
) -> None:
    from bovw_vs_convnet.errors import ConfigError

    with pytest.raises(ConfigError, match="seed must be an integer from 0 to 4294967295"):
        run_mod.run_pipeline("baseline", "toy", seed=2**32, runs_dir=tmp_path)
    assert toy_split == [] and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("pipeline", "setting"),
    [("convnet", "lr=nan"), ("convnet", "lr=inf"), ("baseline", "C=nan"), ("baseline", "C=inf")],
)
def test_a_float_setting_that_is_not_finite_is_refused_up_front(
    tmp_path: Path, toy_split: list[str], pipeline: str, setting: str
) -> None:
    args = ("run", pipeline, "--dataset", "toy", "--set", setting, "--runs-dir", str(tmp_path))
    result = _invoke(*args)
    assert result.exit_code == 2
    key, value = setting.split("=")
    assert _one_line(result.stderr) == (
        f"error: setting {key!r} expects a finite number, got {value!r}"
    )
    assert toy_split == [] and not tmp_path.joinpath("results.sqlite").exists()


def test_an_unknown_model_is_refused_before_the_data_is_loaded(
    tmp_path: Path, toy_split: list[str]
) -> None:
    pytest.importorskip("torch")
    args = ("run", "convnet", "--dataset", "toy", "--model", "nosuch", "--runs-dir", str(tmp_path))
    result = _invoke(*args)
    assert result.exit_code == 2
    assert _one_line(result.stderr).startswith("error: unknown model 'nosuch'; known: alexnet")
    assert toy_split == [] and not tmp_path.joinpath("results.sqlite").exists()


def test_a_suite_naming_an_unknown_model_is_refused_at_its_line() -> None:
    from bovw_vs_convnet.errors import ConfigError
    from bovw_vs_convnet.harness.suite import parse_suite

    pytest.importorskip("torch")
    text = 'datasets = ["digits"]\n\n[[run]]\npipeline = "convnet"\nmodels = ["lenet5", "nosuch"]\n'
    with pytest.raises(ConfigError) as info:
        parse_suite(text, source="s.toml")
    assert str(info.value).startswith("s.toml:5: convnet: unknown model 'nosuch'; known: ")
    ablation = 'datasets = ["digits"]\n[[run]]\npipeline = "convnet"\nset = { ablate = "fc9" }\n'
    with pytest.raises(ConfigError) as info:
        parse_suite(ablation, source="s.toml")
    assert str(info.value).startswith("s.toml:4: convnet: unknown ablation 'fc9' of model 'lenet5'")


def test_a_suite_seed_out_of_range_is_refused_at_its_line() -> None:
    from bovw_vs_convnet.errors import ConfigError
    from bovw_vs_convnet.harness.suite import parse_suite

    text = 'datasets = ["digits"]\n[[run]]\npipeline = "baseline"\nseeds = [0, 4294967296]\n'
    with pytest.raises(ConfigError) as info:
        parse_suite(text, source="s.toml")
    assert str(info.value).startswith("s.toml:4: 'seeds' must be a non-empty list of integers")


def test_a_suite_that_is_not_utf8_or_is_a_folder_is_one_line(tmp_path: Path) -> None:
    latin1 = tmp_path / "s.toml"
    latin1.write_bytes('datasets = ["digits"]\n# caf\xe9\n'.encode("latin-1"))
    result = _invoke("bench", str(latin1))
    assert result.exit_code == 2
    assert _one_line(result.stderr) == (
        f"error: {latin1}:2: not UTF-8 text (byte 0xe9); a suite file is TOML, which is UTF-8"
    )
    folder = _invoke("bench", str(tmp_path))
    assert folder.exit_code == 2
    assert _one_line(folder.stderr) == (
        f"error: suite {str(tmp_path)!r} is a folder; give a suite TOML file"
    )


def test_a_manifest_that_is_not_utf8_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "bad.toml").write_bytes(b'name = "bad"\ndescription = "\xff"\n')
    monkeypatch.setenv("BVC_MANIFESTS_DIR", str(tmp_path))
    result = _invoke("data", "list")
    assert result.exit_code == 2
    assert _one_line(result.stderr) == (
        f"error: manifest {tmp_path / 'bad.toml'}:2: not UTF-8 text (byte 0xff); "
        "a manifest is TOML, which is UTF-8"
    )


# --------------------------------------------------------------------------- image folders


def _png(path: Path, width: int = 6, height: int = 6, value: int = 0) -> Path:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((height, width, 3), value, dtype=np.uint8))
    return path


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that says it is ``width``×``height`` (grayscale) with a few bytes of pixels.

    A decompression bomb in miniature: its header is what the loader must read first.
    """

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (width + 1))  # one row; a decoder would want them all
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    return path


def _tree(root: Path) -> None:
    for cls, value in (("a", 0), ("b", 200)):
        for i in range(2):
            _png(root / cls / f"{i}.png", value=value)


def test_a_symlink_loop_adds_no_image_and_mislabels_none(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    _tree(root)
    (root / "a" / "loop").symlink_to("..")  # a/loop/b/0.png is b's image, a/loop/a/... a loop
    (root / "a" / "also.png").symlink_to("../b/1.png")  # b's image, linked from a
    ds = load_imagefolder(root)
    assert ds.train.ids.tolist() == ["a/0.png", "a/1.png", "b/0.png", "b/1.png"]
    assert ds.train.labels.tolist() == [0, 0, 1, 1]
    assert ds.train.array()[:, 0, 0, 0].tolist() == [0, 0, 200, 200]


def test_a_test_image_linked_from_train_is_read_once_as_a_test_image(tmp_path: Path) -> None:
    _tree(tmp_path / "train")
    _tree(tmp_path / "test")
    (tmp_path / "train" / "a" / "leak.png").symlink_to("../../test/a/0.png")
    ds = load_imagefolder(tmp_path)
    assert ds.test is not None
    assert "a/leak.png" not in ds.train.ids.tolist() and len(ds.train) == 4
    assert ds.test.ids.tolist() == ["test/a/0.png", "test/a/1.png", "test/b/0.png", "test/b/1.png"]


def test_links_that_leave_the_folder_are_skipped_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "tree"
    _tree(root)
    outside = tmp_path / "elsewhere"
    _png(outside / "x.png")
    (root / "a" / "ext").symlink_to(outside)
    (root / "b" / "ext.png").symlink_to(outside / "x.png")
    (root / "c").symlink_to(outside)  # a class folder that is somewhere else
    with caplog.at_level(logging.WARNING, logger="bovw_vs_convnet.data.imagefolder"):
        ds = load_imagefolder(root)
    assert ds.train.ids.tolist() == ["a/0.png", "a/1.png", "b/0.png", "b/1.png"]
    assert ds.class_names == ("a", "b")
    (message,) = [r.getMessage() for r in caplog.records]
    assert message.startswith(f"image folder {root}: 3 symbolic links lead out of it and were ")


def test_a_decompression_bomb_is_refused_by_its_header_in_one_line(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    _tree(root)
    bomb = _png_header_only(root / "b" / "bomb.png", 20000, 20000)
    result = _invoke("data", "verify", str(root))
    assert result.exit_code == 2
    assert _one_line(result.stderr) == (
        f"error: image {bomb} has 400.0 megapixels, above the limit of 40 "
        "($BVC_MAX_PIXELS sets it; 0: no limit)"
    )


def test_every_header_is_read_even_when_the_size_comes_from_a_sample(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bovw_vs_convnet.data import imagefolder

    root = tmp_path / "tree"
    _tree(root)
    big = _png_header_only(root / "a" / "1b.png", 7000, 7000)  # 49 MP: our limit, not Pillow's
    monkeypatch.setattr(imagefolder, "HEADER_SAMPLE", 2)  # the size sample skips it
    with pytest.raises(DataError, match=rf"image {big} has 49\.0 megapixels, above the limit"):
        load_imagefolder(root)
    monkeypatch.setenv("BVC_MAX_PIXELS", "50e6")
    assert imagefolder.read_headers([big]) == [(7000, 7000, True)]
    monkeypatch.setenv("BVC_MAX_PIXELS", "lots")
    with pytest.raises(DataError, match=r"\$BVC_MAX_PIXELS must be a whole number of pixels"):
        imagefolder.read_headers([big])
