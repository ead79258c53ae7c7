"""ConvNet checkpoints hold tensors and plain values, load with weights_only, never run code.

A runs folder is shared (NFS, a tarball) and config keys are predictable, so a planted
``checkpoint.pt`` must be refused unread, with one line; and a write that fails must not
leave its temporary file behind.
"""

from __future__ import annotations

import errno
import pickle
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from test_convnet_train import config, context, tiny_set

from bovw_vs_convnet.cli import main
from bovw_vs_convnet.config import build_config
from bovw_vs_convnet.convnet.checkpoint import load_checkpoint
from bovw_vs_convnet.convnet.config import ConvNetConfig
from bovw_vs_convnet.convnet.pipeline import CHECKPOINT_NAME, build_pipeline
from bovw_vs_convnet.errors import ConfigError, StorageError
from bovw_vs_convnet.harness.run import load_split, run_config_key


class _WritesMarker:
    """Unpickled, writes ``path``: what a hostile checkpoint would do (here, harmlessly)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[Path, str]]:
        return Path.write_text, (self.path, "code ran")


def plant(path: Path, marker: Path) -> None:
    """A file that looks like a bvc checkpoint and writes ``marker`` when fully unpickled."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": 1, "identity": {}, "model": _WritesMarker(marker)}, path)
    # the plant is real: an unrestricted load runs it
    torch.load(path, weights_only=False)
    assert marker.read_text() == "code ran"
    marker.unlink()


def test_a_planted_checkpoint_is_refused_in_one_line_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    plant(tmp_path / "run" / CHECKPOINT_NAME, marker)
    pipe = build_pipeline(config(epochs="1"), context(tmp_path / "run", resume=True))
    with pytest.raises(ConfigError) as err:
        pipe.fit(tiny_set(), None)
    assert str(err.value) == (
        f"refusing checkpoint {tmp_path / 'run' / CHECKPOINT_NAME}: it holds more than tensors "
        "and plain values (loading it could run code); delete it to start the run afresh"
    )
    assert not marker.exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch's note on protocol 4
def test_a_plain_pickle_checkpoint_is_refused_too(tmp_path: Path) -> None:
    marker, path = tmp_path / "marker", tmp_path / CHECKPOINT_NAME
    path.write_bytes(pickle.dumps({"format": 1, "model": _WritesMarker(marker)}))
    with pytest.raises(ConfigError, match=r"^refusing checkpoint .* could run code"):
        load_checkpoint(path, {"model": "lenet5"})
    assert not marker.exists()


def test_bvc_run_resume_refuses_a_checkpoint_planted_in_its_staging_folder(
    tmp_path: Path,
) -> None:
    runs, marker = tmp_path / "runs", tmp_path / "marker"
    # the staging folder a resumed run picks: <runs>/.partial/<first 16 of its key>-*
    cfg = build_config(ConvNetConfig, {"model": "lenet5", "epochs": 1})
    name, split = load_split("digits", seed=0, train_size=200)
    key = run_config_key("convnet", cfg, split.fingerprint, dataset=name, seed=0, device="cpu")
    plant(runs / ".partial" / f"{key[:16]}-planted" / CHECKPOINT_NAME, marker)
    args = ["run", "convnet", "--dataset", "digits", "--model", "lenet5", "--epochs", "1"]
    args += ["--train-size", "200", "--runs-dir", str(runs), "--device", "cpu", "--resume"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: refusing checkpoint ")
    assert len(result.stderr.splitlines()) == 1
    assert not marker.exists()


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
@pytest.mark.parametrize("schedule", ["onecycle", "cosine", "step", "constant"])
def test_every_recipes_checkpoint_loads_weights_only(
    tmp_path: Path, optimizer: str, schedule: str
) -> None:
    # a rate and sets at which one epoch leaves chance, so that a best epoch is kept
    lr = "0.2" if optimizer == "sgd" else "0.01"
    cfg = config(epochs="1", optimizer=optimizer, schedule=schedule, lr=lr)
    build_pipeline(cfg, context(tmp_path)).fit(tiny_set(96), tiny_set(48, seed=1))
    ckpt = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)
    assert ckpt["finished"] is True
    assert ckpt["history"]["best_epoch"] == 1
    assert set(ckpt["best_state"]) == set(ckpt["model"])


def _failing_save(exc: BaseException):  # torch.save that writes half a file, then fails
    def save(obj: object, file: Any, *args: object, **kwargs: object) -> None:
        if hasattr(file, "write"):  # checkpoints are written through a file object
            file.write(b"half a checkpoint")
        else:
            Path(file).write_bytes(b"half a checkpoint")
        raise exc

    return save


def test_a_full_disk_leaves_no_temporary_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(torch, "save", _failing_save(full))
    with pytest.raises(StorageError) as err:
        build_pipeline(config(epochs="1"), context(tmp_path)).fit(tiny_set(), None)
    assert str(err.value) == (
        f"cannot write a checkpoint in {tmp_path}: No space left on device; "
        "free some space, or give another --runs-dir"
    )
    assert list(tmp_path.iterdir()) == []  # neither checkpoint.tmp nor checkpoint.pt


def test_an_interrupted_checkpoint_write_removes_its_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch, "save", _failing_save(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        build_pipeline(config(epochs="1"), context(tmp_path)).fit(tiny_set(), None)
    assert not (tmp_path / "checkpoint.tmp").exists()
