"""The toolkit's exceptions carry their data, and keep it through pickling (worker processes)."""

from __future__ import annotations

import pickle

from bovw_vs_convnet.errors import BvcError, ConfigError, DataError, RunFailed, TrainSizeTooLarge


def test_config_error_key_defaults_to_none() -> None:
    assert ConfigError("bad").key is None
    assert ConfigError("bad", key="epochs").key == "epochs"


def test_train_size_too_large_is_a_data_error_and_survives_pickling() -> None:
    exc = TrainSizeTooLarge("train size 9 is too large", train_size=9, available=4, dataset="toy")
    back = pickle.loads(pickle.dumps(exc))
    assert isinstance(back, DataError)
    assert (str(back), back.train_size, back.available, back.dataset) == (
        "train size 9 is too large",
        9,
        4,
        "toy",
    )


def test_config_error_key_survives_pickling() -> None:
    back = pickle.loads(pickle.dumps(ConfigError("bad lr", key="lr")))
    assert (str(back), back.key) == ("bad lr", "lr")


def test_run_failed_reads_as_the_record_s_error_and_is_no_input_error() -> None:
    exc = RunFailed({"run_id": "r-1", "status": "failed", "error": "ValueError: boom"})
    assert str(exc) == "ValueError: boom"
    assert not isinstance(exc, BvcError)  # a bug in fit is exit code 1, not 2
    assert pickle.loads(pickle.dumps(exc)).record == exc.record
