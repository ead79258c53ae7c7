"""Attacks on a runs folder and a suite file: each is one line (exit 2) or a warning and the rest.

One test per row of issue 25's table that a shared runs folder or suite file can do:
a 100 000-deep JSON as a record or a row (1), damaged score arrays (2), a suite grid of a
billion runs (3), a full disk under a ConvNet (7), a deeply nested suite (10), a replaced
decoded-image cache (11), a damaged ``results.sqlite`` (13); then a seeded fuzz of
record.json and suite TOML mutations.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sqlite3
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from test_trust import (
    _bvc,
    _can_mount_read_only,
    _invoke,
    _one_line,
    _plant_record,
    _run_read_only,
    toy_split,
)

from bovw_vs_convnet.errors import ConfigError, StorageError, storage_error
from bovw_vs_convnet.harness.store import ResultStore
from bovw_vs_convnet.harness.suite import parse_suite

__all__ = ["toy_split"]  # the fixture, imported for these tests

DEEP = "[" * 100_000 + "]" * 100_000


def _runs(tmp_path: Path, *settings: str) -> tuple[Path, list[str]]:
    """A runs folder with one baseline run per ``--set`` value, all on the toy split."""
    runs = tmp_path / "runs"
    for value in settings:
        result = _invoke(
            "run", "baseline", "--dataset", "toy", "--runs-dir", str(runs), *value.split()
        )
        assert result.exit_code == 0, result.output
    ids = [r["run_id"] for r in ResultStore(runs).list_runs()]
    return runs, ids


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


# ------------------------------------------------------------------ 1: a 100 000-deep JSON


def test_row1_a_deep_record_json_is_quarantined_and_run_and_leaderboard_go_on(
    tmp_path: Path, toy_split: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    runs, _ = _runs(tmp_path, "")
    planted = _plant_record(runs, "20260101-000000-baseline-deep")
    (planted / "record.json").write_text(DEEP)
    with caplog.at_level(logging.WARNING):
        board = _invoke("leaderboard", "--runs-dir", str(runs), "--format", "json")
        rerun = _invoke("run", "baseline", "--dataset", "toy", "--runs-dir", str(runs))
    assert (board.exit_code, rerun.exit_code) == (0, 0), board.output + rerun.output
    (warning,) = _warnings(caplog)
    assert warning == (
        f"run folder {planted} cannot be indexed: {planted / 'record.json'} nests 100,000 "
        f"levels deep, over the limit of 64; moved to {runs / '.quarantine' / planted.name}"
    )


def test_row1_a_deep_json_in_a_sqlite_row_is_left_out_with_one_warning(
    tmp_path: Path, toy_split: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    runs, (damaged, kept) = _runs(tmp_path, "", "--set method=nearest-mean")
    with sqlite3.connect(runs / "results.sqlite") as conn:
        conn.execute("UPDATE runs SET record = ? WHERE run_id = ?", [DEEP, damaged])
    with caplog.at_level(logging.WARNING):
        board = _invoke("leaderboard", "--runs-dir", str(runs), "--format", "json")
        rerun = _invoke("run", "baseline", "--dataset", "toy", "--runs-dir", str(runs))
    assert (board.exit_code, rerun.exit_code) == (0, 0), board.output + rerun.output
    assert kept in board.stdout and damaged not in board.stdout
    assert set(_warnings(caplog)) == {
        f"run {damaged}: its row in {runs / 'results.sqlite'} is damaged "
        "(its JSON nests 100,000 levels deep, over the limit of 64)"
    }


# ------------------------------------------------------------- 2: damaged score arrays


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("object-ids", "ids.npy holds object values, not text"),
        ("truncated-scores", "scores.npy is truncated: 72 of 108 bytes"),
    ],
)
def test_row2_damaged_arrays_cost_their_run_its_tests_only(
    tmp_path: Path,
    toy_split: list[str],
    caplog: pytest.LogCaptureFixture,
    damage: str,
    reason: str,
) -> None:
    runs, (bad, good) = _runs(tmp_path, "", "--set method=nearest-mean")
    folder = runs / bad
    if damage == "object-ids":
        np.save(folder / "ids.npy", np.array([{"a": 1}] * 9, dtype=object), allow_pickle=True)
    else:
        (folder / "scores.npy").write_bytes((folder / "scores.npy").read_bytes()[:200])
    what = f"run {bad!r}: {folder / reason.split()[0]}{reason[len(reason.split()[0]) :]}"
    with caplog.at_level(logging.WARNING):
        board = _invoke("leaderboard", "--runs-dir", str(runs), "--format", "csv")
        report = _invoke("report", "--runs-dir", str(runs), "--output", str(tmp_path / "site"))
    assert (board.exit_code, report.exit_code) == (0, 0), board.output + report.output
    assert board.stdout.count("\n") == 3  # the header and both rows
    assert set(_warnings(caplog)) == {f"{what}; its tests on the test images are left out"}
    compare = _invoke("compare", bad, good, "--runs-dir", str(runs))
    assert compare.exit_code == 2
    assert _one_line(compare.stderr) == f"error: {what}"


# ------------------------------------------------------------ 3 and 10: hostile suites


def test_row3_a_grid_of_a_billion_runs_is_refused_with_its_count_before_expanding() -> None:
    values = "[" + ", ".join(str(v) for v in range(10)) + "]"
    grid = ", ".join(f"k{i} = {values}" for i in range(9))
    text = f'datasets = ["digits"]\n[[run]]\npipeline = "baseline"\ngrid = {{ {grid} }}\n'
    with pytest.raises(ConfigError) as info:
        parse_suite(text, source="s.toml")
    sizes = " × ".join(["10"] * 9)
    assert str(info.value) == (
        f"s.toml:4: this [[run]] expands into 1,000,000,000 runs (grid {sizes}), "
        "over the limit of 10,000"
    )


def test_row3_options_that_expand_a_suite_past_the_limit_are_refused(tmp_path: Path) -> None:
    suite = tmp_path / "s.toml"
    suite.write_text('datasets = ["digits"]\nseeds = [0, 1]\n[[run]]\npipeline = "baseline"\n')
    result = _invoke("bench", str(suite), "--runs-dir", str(tmp_path), "--splits", "5001")
    assert result.exit_code == 2
    assert _one_line(result.stderr) == (
        "error: suite 's' expands into 10,002 runs with these options, over the limit of 10,000"
    )


@pytest.mark.parametrize(
    ("nesting", "depth"),
    [
        ("set = { C = " + DEEP + " }", "100,001"),  # brackets: tomllib recurses per level
        ("set." + ".".join(["a"] * 100_000) + " = 1", "100,002"),  # dotted: quadratic
    ],
    ids=["brackets", "dotted-key"],
)
def test_row10_a_deeply_nested_suite_is_one_line_before_it_is_parsed(
    tmp_path: Path, nesting: str, depth: str
) -> None:
    suite = tmp_path / "deep.toml"
    suite.write_text(f'datasets = ["digits"]\n[[run]]\npipeline = "baseline"\n{nesting}\n')
    result = _invoke("bench", str(suite), "--runs-dir", str(tmp_path))
    assert result.exit_code == 2
    assert _one_line(result.stderr) == (
        f"error: {suite} nests {depth} levels deep, over the limit of 64"
    )


# -------------------------------------------------------------- 7: a full disk, ConvNets


def _tmpfs_script(size: str, body: str) -> subprocess.CompletedProcess[str]:
    """Run Python ``body`` with ``$TINY`` a tmpfs of ``size`` in a mount namespace of its own."""
    tiny = "/tmp/bvc-tiny-" + str(os.getpid())
    script = (
        f"mkdir -p {tiny} && mount -t tmpfs -o size={size} tmpfs {tiny} && "
        f'TINY={tiny} "$@"; echo "rc=$?"; find {tiny} -type f -size +0 | sed "s/^/LEFT /"'
    )
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", script, "sh", sys.executable, "-c", body],
        capture_output=True,
        text=True,
    )


needs_tmpfs = pytest.mark.skipif(
    os.geteuid() != 0 or not _can_mount_read_only(), reason="needs root and unshare for a tmpfs"
)


def test_row7_torch_reporting_a_full_disk_as_runtime_error_is_one_storage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch's writer closes its archive after the OSError and raises a RuntimeError then."""
    torch = pytest.importorskip("torch")
    from bovw_vs_convnet.convnet.checkpoint import write_checkpoint

    def save(obj: object, fh: Any, *args: object, **kwargs: object) -> None:
        try:
            fh.write(b"half a checkpoint")
            raise OSError(28, "No space left on device")
        finally:  # as torch's zip writer does on exit: the OSError is its context
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 7 vs 5")

    monkeypatch.setattr(torch, "save", save)
    with pytest.raises(StorageError) as info:
        write_checkpoint({"w": torch.zeros(3)}, tmp_path / "checkpoint.pt")
    assert str(info.value) == (
        f"cannot write a checkpoint in {tmp_path}: No space left on device; "
        "free some space, or give another --runs-dir"
    )
    assert list(tmp_path.iterdir()) == []  # no temporary checkpoint left


def test_row7_a_full_disk_writing_convnet_artefacts_names_the_file_and_leaves_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch = pytest.importorskip("torch")
    from bovw_vs_convnet.convnet.pipeline import ConvNetPipeline

    pipeline = ConvNetPipeline.__new__(ConvNetPipeline)  # trained: a model and its curve
    pipeline.trainer = SimpleNamespace(model=torch.nn.Conv2d(1, 2, 3))  # type: ignore[assignment]
    pipeline.record_extra = {"learning_curve": {"epoch": [1], "train_loss": [0.5]}}
    real = Path.write_bytes

    def full(self: Path, data: Any) -> int:
        if self.name == "first_layer_filters.npy":
            real(self, bytes(data)[:10])  # what a full disk leaves: a part of the file
            raise OSError(28, "No space left on device")  # a failed write(): no file name
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(OSError) as info:
        pipeline.save_artifacts(tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert str(storage_error(info.value)) == (
        f"folder {tmp_path}: No space left on device ({tmp_path / 'first_layer_filters.npy'}); "
        "free some space or choose another folder"
    )


@pytest.mark.slow
@needs_tmpfs
@pytest.mark.parametrize("size", ["16k", "300k", "1040k"])  # the store, a checkpoint, the bundle
def test_row7_bvc_run_convnet_on_a_really_full_disk_is_one_line(size: str) -> None:
    body = (
        "import os, sys\n"
        "from bovw_vs_convnet.cli import main\n"
        "sys.argv = ['bvc', 'run', 'convnet', '--dataset', 'digits', '--model', 'lenet5',\n"
        "            '--epochs', '1', '--runs-dir', os.environ['TINY'] + '/runs']\n"
        "main()\n"
    )
    result = _tmpfs_script(size, body)
    assert result.stdout.splitlines()[0] == "rc=2", result.stdout + result.stderr
    (line,) = [x for x in result.stderr.splitlines() if not x.startswith("epoch ")]
    assert line.startswith("error: ") and "No space left on device" in line
    left = [x for x in result.stdout.splitlines()[1:] if ".tmp" in x]
    assert left == []  # no temporary file; what is left is whole (an earlier checkpoint)


# ---------------------------------------------------------- 11: the decoded-image cache


def test_row11_a_replaced_decoded_cache_is_a_warning_and_a_new_decode(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from test_decoded_cache import write_tree

    from bovw_vs_convnet.data.folder_tree import scan_tree
    from bovw_vs_convnet.data.imagefolder import load_tree

    root, cache = tmp_path / "tree", tmp_path / "cache"
    write_tree(root)
    first, _, _ = load_tree(scan_tree(root), cache_dir=cache)
    (path,) = cache.glob("*.npy")
    noise = np.random.default_rng(0).integers(0, 256, (6, 6, 6, 3), dtype=np.uint8)
    np.save(path, noise)  # the same shape and dtype: only the checksum tells
    with caplog.at_level(logging.WARNING):
        again, _, _ = load_tree(scan_tree(root), cache_dir=cache)
    assert np.array_equal(again["all"].array(), first["all"].array())
    assert _warnings(caplog) == [
        f"decoded cache {path} does not match its checksum; decoding again"
    ]
    assert np.array_equal(np.load(path), first["all"].array())  # rewritten


def test_a_bovw_cache_entry_that_would_inflate_is_refused_unread(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A runs folder's cache is as foreign as its records: a deflated member is never read."""
    import zipfile

    from bovw_vs_convnet.bovw.cache import StageCache

    cache = StageCache(tmp_path)
    path = cache.path("vocabulary", "k")
    path.parent.mkdir(parents=True)
    header = (
        b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (67108864,), }"
    )
    member = header.ljust(127) + b"\n"
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("vocabulary.npy", "w", force_zip64=True) as fh,  # 256 MiB of zeros
    ):
        fh.write(member)
        for _ in range(64):
            fh.write(bytes(4 << 20))
    assert path.stat().st_size < 1 << 20  # the file is small; it inflates to 256 MiB
    with caplog.at_level(logging.WARNING):
        assert cache.load("vocabulary", "k") is None
    assert _warnings(caplog) == [
        f"ignoring cache entry {path} (LimitError: {path}: member 'vocabulary.npy' is "
        "compressed (numpy.savez stores arrays plainly)): recomputing it"
    ]
    assert not path.exists()


# --------------------------------------------------------- 13: a damaged results.sqlite


@pytest.mark.parametrize("damage", ["zeroed-page", "random-bytes"])
def test_row13_a_damaged_store_is_moved_aside_and_rebuilt_keeping_statuses(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    from test_store import _commit

    store = ResultStore(tmp_path)
    for run_id in ("r1", "r2", "r3"):
        _commit(store, run_id, config_key="same")
    assert store.supersede("same", keep="r3") == 2
    db = tmp_path / "results.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(db.read_bytes())
    if damage == "zeroed-page":
        data[4096:8192] = bytes(4096)
    else:
        data[:] = random.Random(0).randbytes(len(data))
    db.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        fresh = ResultStore(tmp_path)
        statuses = {r["run_id"]: r["status"] for r in fresh.list_runs(status=None)}
    assert statuses == {"r1": "superseded", "r2": "superseded", "r3": "ok"}
    (aside,) = tmp_path.glob("results.sqlite.damaged-*[0-9]")
    (warning,) = _warnings(caplog)
    assert warning.startswith(f"results store {db} is damaged (")
    assert warning.endswith(f"); moved to {aside}, and the index is rebuilt from the run folders")


def test_row13_leaderboard_and_run_go_on_past_a_damaged_store(
    tmp_path: Path, toy_split: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    runs, ids = _runs(tmp_path, "")
    (runs / "results.sqlite").write_bytes(random.Random(1).randbytes(8192))
    for name in ("results.sqlite-wal", "results.sqlite-shm"):
        (runs / name).unlink(missing_ok=True)
    with caplog.at_level(logging.WARNING):
        board = _invoke("leaderboard", "--runs-dir", str(runs), "--format", "json")
    assert board.exit_code == 0, board.output
    assert ids[0] in board.stdout
    (warning,) = _warnings(caplog)
    assert warning.startswith(f"results store {runs / 'results.sqlite'} is damaged (file is not")
    rerun = _invoke("run", "baseline", "--dataset", "toy", "--runs-dir", str(runs))
    assert rerun.exit_code == 0, rerun.output
    assert len(ResultStore(runs).list_runs()) == 2


@pytest.mark.skipif(not _can_mount_read_only(), reason="no way here to make a folder read-only")
def test_row13_a_damaged_store_in_a_read_only_folder_is_read_from_a_temporary_index(
    tmp_path: Path, toy_split: list[str]
) -> None:
    runs, ids = _runs(tmp_path, "")
    (runs / "results.sqlite").write_bytes(random.Random(1).randbytes(8192))
    for name in ("results.sqlite-wal", "results.sqlite-shm"):
        (runs / name).unlink(missing_ok=True)
    board = _run_read_only(runs, _bvc("leaderboard", "--runs-dir", str(runs), "--format", "csv"))
    assert board.returncode == 0, board.stderr
    assert board.stdout.count("baseline") == 1  # the run, read from its folder
    assert _one_line(board.stderr).startswith(
        f"WARNING bovw_vs_convnet.harness.store_index: results store {runs / 'results.sqlite'} "
        "is damaged (file is not a database) and its folder cannot be written; this command "
        "reads an index rebuilt from the run folders in "
    )
    assert sorted(p.name for p in runs.iterdir()) == [".partial", ids[0], "results.sqlite"]


# ----------------------------------------------------------------------------- fuzzing


def _mutate(text: str, rng: random.Random) -> str:
    """One of: a byte changed, cut, repeated, a value replaced, brackets or quotes planted."""
    kind = rng.randrange(6)
    at = rng.randrange(len(text) + 1)
    if kind == 0:
        return text[:at] + chr(rng.randrange(0x20, 0x7F)) + text[at + 1 :]
    if kind == 1:
        return text[:at]
    if kind == 2:
        return text[:at] + text[at : at + rng.randrange(1, 50)] * rng.randrange(2, 20) + text[at:]
    if kind == 3:
        n = rng.choice([1, 63, 64, 65, 999, 5000])
        return text[:at] + rng.choice("[{") * n + text[at:]
    if kind == 4:
        value = rng.choice(['"x"', "-1", "1e999", "NaN", "null", "[]", "{}", "2" * 5000, "true"])
        return text[:at] + value + text[at:]
    return text[:at] + rng.choice(['"', "'", '"""', "#", "\\", "\n", ".a" * 100]) + text[at:]


def _fuzz_records(tmp_path: Path, cases: int) -> dict[str, int]:
    store = ResultStore(tmp_path)
    base = json.dumps(
        {
            **json.loads(_plant_record(tmp_path, "seed").joinpath("record.json").read_text()),
            "config": {"a": [1, {"b": [2.5]}]},
        }
    )
    rng = random.Random(25)
    outcomes = {"indexed": 0, "refused": 0}
    for i in range(cases):
        text = _mutate(base, rng)
        folder = tmp_path / f"20260101-{i:06d}"
        folder.mkdir()
        (folder / "record.json").write_text(text, encoding="utf-8", errors="surrogatepass")
        store.recover()  # indexes it, quarantines it, or skips a copy under another name
        store.list_runs(status=None)
        outcomes["indexed" if folder.is_dir() else "refused"] += 1
        if folder.is_dir():
            (folder / "record.json").unlink()
            folder.rmdir()
    return outcomes


def _fuzz_suites(cases: int) -> dict[str, int]:
    base = (
        'description = "fuzz"\ndatasets = ["digits"]\nseeds = [0, 1]\n'
        "[defaults.baseline]\nC = 1.0\n"
        '[[run]]\npipeline = "baseline"\ngrid = { C = [0.1, 1.0] }\n'
        '[[run]]\npipeline = "baseline"\nlabel = "nm"\nset = { method = "nearest-mean" }\n'
    )
    rng = random.Random(10)
    outcomes = {"parsed": 0, "refused": 0}
    for _ in range(cases):
        try:
            parse_suite(_mutate(base, rng), source="f.toml").specs()
            outcomes["parsed"] += 1
        except ConfigError as exc:
            assert "\n" not in str(exc)
            outcomes["refused"] += 1
    return outcomes


def test_fuzz_records_and_suites_fast(tmp_path: Path) -> None:
    records = _fuzz_records(tmp_path, 100)
    suites = _fuzz_suites(100)
    assert sum(records.values()) == sum(suites.values()) == 100
    assert min(*records.values(), *suites.values()) > 0  # both outcomes met: the fuzz bites


@pytest.mark.slow
def test_fuzz_2000_record_and_suite_mutations_never_raise(tmp_path: Path) -> None:
    records = _fuzz_records(tmp_path, 2000)
    suites = _fuzz_suites(2000)
    assert sum(records.values()) == sum(suites.values()) == 2000
    assert min(*records.values(), *suites.values()) > 0
