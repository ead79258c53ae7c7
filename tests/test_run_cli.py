"""`bvc run` and `bvc leaderboard` through click's CliRunner, and run_pipeline's bookkeeping."""

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bovw_vs_convnet.cli import main
from bovw_vs_convnet.data.imageset import ImageSet
from bovw_vs_convnet.data.split import Split
from bovw_vs_convnet.errors import DataError, RunFailed
from bovw_vs_convnet.harness import run as run_mod
from bovw_vs_convnet.harness.store import ResultStore

CONTRACT_KEYS = {
    "run_id",
    "pipeline",
    "model",
    "dataset",
    "split_fingerprint",
    "n_train",
    "n_test",
    "seed",
    "top1_err",
    "top5_err",
    "train_seconds",
    "infer_seconds",
    "n_params",
    "device",
    "config",
    "stage_seconds",
}


def _images(n: int, offset: int) -> ImageSet:
    rng = np.random.default_rng(offset)
    labels = np.arange(n) % 3
    images = (rng.integers(0, 40, (n, 4, 4, 1)) + 60 * labels[:, None, None, None]).astype(np.uint8)
    ids = np.array([f"s{offset + i:03d}" for i in range(n)])
    return ImageSet(images, labels.astype(np.int64), ids, ("a", "b", "c"), name="toy")


@pytest.fixture
def toy_split(monkeypatch):
    """Replace data loading by a tiny 3-class set, so these tests need no dataset."""

    def fake_load_split(dataset, **kwargs):
        train, val, test = _images(30, 0), _images(6, 100), _images(9, 200)
        params = {"dataset": dataset, **kwargs}
        params.pop("data_dir", None)
        return dataset, Split(train, val, test, "f" * 64, params)

    monkeypatch.setattr(run_mod, "load_split", fake_load_split)


@dataclass(frozen=True)
class FakeConfig:
    fail: str = "no"  # "data" raises DataError in fit, "bug" a ValueError


class FakePipeline:
    interrupt_in_fit = False  # a Ctrl-C during fit, after the checkpoint is written

    def __init__(self, config: FakeConfig, context) -> None:
        self.config = config
        self.context = context
        self.model_name = "fake-model"
        self.device = "cpu:fake"
        self.n_params = 7
        self.record_extra = {"curve": [1, 2]}

    def fit(self, train, val):
        checkpoint = self.context.run_dir / "checkpoint.txt"
        self.record_extra["resumed"] = checkpoint.exists()
        checkpoint.write_text("epoch 1")
        if self.config.fail == "data":
            raise DataError("corrupt image x.png")
        if self.config.fail == "bug":
            raise ValueError("an unexpected bug")
        if self.interrupt_in_fit:
            raise KeyboardInterrupt
        self.stage_seconds = {"epochs": 0.5}
        return self

    def decision_scores(self, images):
        return np.eye(3)[images.labels]  # always right

    def save_artifacts(self, run_dir: Path) -> None:
        (run_dir / "gallery.txt").write_text("words")


class FakeSpec:
    name = "fake"

    def config_class(self):
        return FakeConfig

    def check_config(self, config):
        pass

    def build(self, config, context):
        return FakePipeline(config, context)


@pytest.fixture
def fake_pipeline(monkeypatch, toy_split):
    real = run_mod.get_pipeline
    monkeypatch.setattr(run_mod, "get_pipeline", lambda n: FakeSpec() if n == "fake" else real(n))


def _invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_run_json_prints_every_contract_key(toy_split, tmp_path):
    with contextlib.chdir(tmp_path):  # an isolated folder
        result = _invoke("run", "baseline", "--dataset", "toy", "--json")
        assert result.exit_code == 0, result.output
        record = json.loads(result.stdout)
        assert CONTRACT_KEYS - set(record) == set()
        assert (record["pipeline"], record["model"], record["n_test"]) == (
            "baseline",
            "linear-svm",
            9,
        )
        assert 0.0 <= record["top1_err"] <= record["top5_err"] + 1.0
        assert Path(record["run_dir"], "scores.npy").is_file()


def test_run_without_json_prints_a_summary(toy_split, tmp_path):
    with contextlib.chdir(tmp_path):  # an isolated folder
        result = _invoke("run", "baseline", "--dataset", "toy", "--set", "method=nearest-mean")
        assert result.exit_code == 0
        assert "baseline nearest-mean on toy" in result.stdout
        assert "top-1 error 0.00 %" in result.stdout


def test_model_flag_on_a_pipeline_without_models_is_exit_2(toy_split, tmp_path):
    with contextlib.chdir(tmp_path):  # an isolated folder
        result = _invoke("run", "baseline", "--dataset", "toy", "--model", "lenet5")
        assert result.exit_code == 2
        assert result.stderr.startswith("error: unknown setting 'model'")
        assert not Path("runs/results.sqlite").exists()


def test_unknown_pipeline_is_exit_2(toy_split, tmp_path):
    with contextlib.chdir(tmp_path):  # an isolated folder
        result = _invoke("run", "nope", "--dataset", "toy")
        assert result.exit_code == 2
        assert "unknown pipeline 'nope'" in result.stderr


def test_protocol_attributes_and_artifacts_reach_the_record(fake_pipeline, tmp_path):
    record = run_mod.run_pipeline("fake", "toy", runs_dir=tmp_path)
    assert record["model"] == "fake-model"
    assert (record["device"], record["n_params"]) == ("cpu:fake", 7)
    assert record["stage_seconds"] == {"epochs": 0.5}
    assert record["extra"] == {"curve": [1, 2], "resumed": False}
    assert record["top1_err"] == 0.0
    assert (tmp_path / record["run_id"] / "gallery.txt").read_text() == "words"
    assert (tmp_path / record["run_id"] / "checkpoint.txt").read_text() == "epoch 1"


def test_failing_fit_is_exit_2_and_stored_as_failed(fake_pipeline, tmp_path):
    with contextlib.chdir(tmp_path):  # an isolated folder
        result = _invoke("run", "fake", "--dataset", "toy", "--set", "fail=data")
        assert result.exit_code == 2
        assert result.stderr == "error: corrupt image x.png\n"
        store = ResultStore("runs")
        assert store.list_runs() == []
        (failed,) = store.list_runs(status="failed")
        assert failed["error"] == "DataError: corrupt image x.png"


def test_unexpected_failure_in_fit_is_exit_1_and_stored_as_failed(fake_pipeline, tmp_path):
    with contextlib.chdir(tmp_path):  # an isolated folder
        result = CliRunner().invoke(main, ["run", "fake", "--dataset", "toy", "--set", "fail=bug"])
        assert result.exit_code == 1
        assert isinstance(result.exception, RunFailed)
        assert isinstance(result.exception.__cause__, ValueError)
        (failed,) = ResultStore("runs").list_runs(status="failed")
        assert failed["error"] == "ValueError: an unexpected bug"


def test_run_failed_carries_the_stored_record_and_chains_the_cause(fake_pipeline, tmp_path):
    with pytest.raises(RunFailed) as info:
        run_mod.run_pipeline("fake", "toy", overrides={"fail": "data"}, runs_dir=tmp_path)
    record = info.value.record
    assert (record["status"], record["error"]) == ("failed", "DataError: corrupt image x.png")
    assert record["model"] == "fake"  # the pipeline never got to name its model
    assert str(info.value) == "DataError: corrupt image x.png"
    assert isinstance(info.value.__cause__, DataError)
    assert ResultStore(tmp_path).get_run(record["run_id"]) == record


def test_interrupt_leaves_no_record_and_resume_finds_the_checkpoint(
    fake_pipeline, monkeypatch, tmp_path
):
    done = run_mod.run_pipeline("fake", "toy", runs_dir=tmp_path)
    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(FakePipeline, "interrupt_in_fit", True)
        run_mod.run_pipeline("fake", "toy", runs_dir=tmp_path)
    store = ResultStore(tmp_path)
    assert [r["run_id"] for r in store.list_runs(status=None)] == [done["run_id"]]
    assert len(list((tmp_path / ".partial").glob("*/checkpoint.txt"))) == 1
    resumed = run_mod.run_pipeline("fake", "toy", runs_dir=tmp_path, resume=True)
    assert resumed["extra"]["resumed"] is True
    assert list((tmp_path / ".partial").iterdir()) == []


def test_skip_existing_returns_the_stored_run(fake_pipeline, tmp_path):
    first = run_mod.run_pipeline("fake", "toy", runs_dir=tmp_path)
    again = run_mod.run_pipeline("fake", "toy", runs_dir=tmp_path, skip_existing=True)
    assert again["run_id"] == first["run_id"]
    assert len(ResultStore(tmp_path).list_runs()) == 1


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("BVC_CACHE_DIR", raising=False)
    assert run_mod.cache_dir_for(tmp_path) == tmp_path / "cache"
    monkeypatch.setenv("BVC_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert run_mod.cache_dir_for(tmp_path) == tmp_path / "elsewhere"


def test_leaderboard_formats_stored_runs(toy_split, tmp_path):
    with contextlib.chdir(tmp_path):  # an isolated folder
        for seed in ("0", "1"):
            assert _invoke("run", "baseline", "--dataset", "toy", "--seed", seed).exit_code == 0
        tables = json.loads(_invoke("leaderboard", "--format", "json").stdout)
        assert [len(t["rows"]) for t in tables] == [1]
        assert tables[0]["rows"][0]["seeds"] == [0, 1]
        result = _invoke("leaderboard", "--style", "ilsvrc", "--output", "lb.md")
        assert "| Rank | Name | top-5 err (%) | Description |" in Path("lb.md").read_text()
        assert result.stderr == "wrote lb.md\n"


def test_leaderboard_of_an_empty_store_says_so(tmp_path):
    with contextlib.chdir(tmp_path):  # an isolated folder
        result = _invoke("leaderboard", "--format", "json")
        assert result.exit_code == 0
        assert result.stdout == "[]\n"
        assert "no finished runs" in result.stderr


@pytest.mark.skipif(
    not hasattr(__import__("bovw_vs_convnet.data", fromlist=["x"]), "make_split"),
    reason="data API not available",
)
def test_digits_twice_gives_the_same_split_fingerprint(tmp_path):
    with contextlib.chdir(tmp_path):  # an isolated folder
        records = []
        for _ in range(2):
            result = _invoke("run", "baseline", "--dataset", "digits", "--json")
            assert result.exit_code == 0, result.output
            records.append(json.loads(result.stdout))
        assert CONTRACT_KEYS - set(records[0]) == set()
        assert records[0]["split_fingerprint"] == records[1]["split_fingerprint"]
        assert records[0]["run_id"] != records[1]["run_id"]
        assert (records[0]["n_train"], records[0]["n_val"], records[0]["n_test"]) == (
            1295,
            143,
            359,
        )
        assert records[0]["top1_err"] < 0.1


def test_imagefolder_path_runs_and_filters_the_leaderboard(tmp_path):
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    for c, base in (("dark", 20), ("light", 200)):
        (tmp_path / "tree" / c).mkdir(parents=True)
        for i in range(10):
            img = (base + rng.integers(0, 30, (8, 8))).astype(np.uint8)
            cv2.imwrite(str(tmp_path / "tree" / c / f"{i}.png"), img)
    with contextlib.chdir(tmp_path):  # an isolated folder
        result = _invoke("run", "baseline", "--dataset", "tree", "--json")
        assert result.exit_code == 0, result.output
        record = json.loads(result.stdout)
        assert record["dataset"] == f"imagefolder:{(tmp_path / 'tree').resolve()}"
        assert record["top1_err"] == 0.0
        tables = json.loads(_invoke("leaderboard", "--dataset", "tree", "--format", "json").stdout)
        assert [t["dataset"] for t in tables] == [record["dataset"]]
