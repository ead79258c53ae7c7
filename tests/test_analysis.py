"""Analysis and leaderboard name one record's runs the same way."""

import pytest
from report_records import fake_record

from bovw_vs_convnet.harness.analysis import training_size_curves
from bovw_vs_convnet.harness.leaderboard import build_tables


@pytest.mark.parametrize(
    ("pipeline", "model", "name"),
    [
        ("bovw", "bovw", "bovw"),
        ("convnet", "lenet5", "convnet/lenet5"),
        ("baseline", None, "baseline"),
        ("baseline", "", "baseline"),
    ],
)
def test_table_row_and_curve_have_the_same_name(
    pipeline: str, model: str | None, name: str
) -> None:
    record = fake_record(pipeline, "m", n_train=100, seed=0, top1=0.2)
    record["model"] = model
    ((row,),) = [t.rows for t in build_tables([record])]
    (curves,) = training_size_curves([record]).values()
    assert (row.name, list(curves)) == (name, [name])
