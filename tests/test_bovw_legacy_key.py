"""A run stored before a setting was renamed keeps its identity: the same settings, the same key.

``tests/fixtures/runs-b9fbd1e`` holds runs written by main at ``b9fbd1e``; their configs
use the names of that day (BoVW's ``backend``, now ``executor``). Rebuilt from a stored
config, each hand-crafted run's settings give the config key stored with it, so a rerun
finds it and the leaderboard groups old and new runs together.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bovw_vs_convnet.config import build_config
from bovw_vs_convnet.harness.registry import PIPELINES
from bovw_vs_convnet.harness.run import run_config_key

FIXTURE = Path(__file__).parent / "fixtures" / "runs-b9fbd1e"


def _record(pipeline: str) -> dict:
    (path,) = FIXTURE.glob(f"*-{pipeline}-*/record.json")
    return dict(json.loads(path.read_text()))


@pytest.mark.parametrize("pipeline", ["baseline", "bovw", "hog"])
def test_a_stored_runs_settings_give_its_stored_config_key(pipeline: str) -> None:
    record = _record(pipeline)
    config = build_config(PIPELINES[pipeline].config_class(), record["config"])
    key = run_config_key(
        pipeline,
        config,
        record["split_fingerprint"],
        dataset=record["dataset"],
        seed=record["seed"],
        device=record["device"],
    )
    assert key == record["config_key"]


def test_the_stored_bovw_run_names_the_executor_by_its_old_name() -> None:
    config = build_config(PIPELINES["bovw"].config_class(), _record("bovw")["config"])
    assert _record("bovw")["config"]["backend"] == config.executor == "auto"
