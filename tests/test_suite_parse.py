"""Suite files: parsing, expansion into run specs, and bad files refused with the line at fault."""

import pytest

from bovw_vs_convnet.errors import ConfigError
from bovw_vs_convnet.harness.suite import builtin_suites, load_suite, parse_suite
from bovw_vs_convnet.toml_lines import locate_key

GOOD = """\
description = "two pipelines, two sizes, two seeds"
datasets = ["digits"]
seeds = [0, 1]
train_sizes = [100, "full"]

[[run]]
pipeline = "baseline"

[[run]]
pipeline = "convnet"
models = ["lenet5", "alexnet-small"]
seeds = [0]
train_sizes = [100]
"""


def test_good_suite_expands_models_into_entries() -> None:
    suite = parse_suite(GOOD, source="good.toml", name="good")
    assert [e.label for e in suite.entries] == ["baseline", "lenet5", "alexnet-small"]
    assert suite.entries[1].overrides == (("model", "lenet5"),)
    assert suite.description == "two pipelines, two sizes, two seeds"


def test_specs_are_ordered_by_size_then_entry_then_seed() -> None:
    specs = parse_suite(GOOD).specs()
    assert [(s.label, s.train_size, s.seed) for s in specs] == [
        ("baseline", 100, 0),
        ("baseline", 100, 1),
        ("lenet5", 100, 0),
        ("alexnet-small", 100, 0),
        ("baseline", None, 0),
        ("baseline", None, 1),
    ]


def test_dataset_override_replaces_every_entry_dataset() -> None:
    specs = parse_suite(GOOD).specs(dataset="/data/my_folder")
    assert {s.dataset for s in specs} == {"/data/my_folder"}
    assert len(specs) == 6


def test_duplicate_runs_are_kept_once() -> None:
    text = 'datasets = ["digits"]\n[[run]]\npipeline = "baseline"\n[[run]]\npipeline = "baseline"\n'
    assert len(parse_suite(text).specs()) == 1


def test_defaults_apply_to_entries_of_that_pipeline() -> None:
    text = (
        'datasets = ["digits"]\n[defaults.convnet]\nepochs = 3\n'
        '[[run]]\npipeline = "convnet"\nset = { model = "lenet5" }\n'
    )
    # convnet's config may not be importable here; the merge itself is what is tested
    entry = parse_suite(text).entries[0]
    assert dict(entry.overrides) == {"epochs": 3, "model": "lenet5"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'datasets = ["digits"]\n[[run]]\npipeline = "baseline"\nbogus = 1\n',
            "s.toml:4: unknown key 'bogus' in [[run]]",
        ),
        (
            'datasets = ["digits"]\nseeds = [0, -1]\n[[run]]\npipeline = "baseline"\n',
            "s.toml:2: 'seeds' must be a non-empty list of integers >= 0",
        ),
        (
            'datasets = ["digits"]\n\n[[run]]\npipeline = "baseline"\n\n[[run]]\nlabel = "x"\n',
            's.toml:6: every [[run]] needs pipeline = "NAME"',
        ),
        (
            'datasets = ["digits"]\n[[run]]\npipeline = "hmax"\n',
            "s.toml:3: unknown pipeline 'hmax'",
        ),
        (
            'datasets = ["digits"]\ntrain_sizes = [100, "half"]\n[[run]]\npipeline = "baseline"\n',
            "s.toml:2: 'train_sizes': 'half' is neither a positive integer nor \"full\"",
        ),
        ('[[run]]\npipeline = "baseline"\n', "s.toml:1: no datasets"),
        ('datasets = ["digits"]\n', "s.toml: a suite needs at least one [[run]] table"),
        (
            'datasets = ["digits"]\nepochs = 3\n[[run]]\npipeline = "baseline"\n',
            "s.toml:2: unknown key 'epochs'",
        ),
        (
            'datasets = ["digits"]\n[[run]]\npipeline = "baseline"\nset = { a = 1 \n',
            "s.toml:4: invalid TOML",
        ),
    ],
)
def test_bad_suite_is_refused_with_the_line_at_fault(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_suite(text, source="s.toml")
    assert str(info.value).startswith(message)


def test_locate_key_finds_keys_inside_inline_tables_and_array_tables() -> None:
    text = '[[run]]\npipeline = "a"\n\n[[run]]\npipeline = "b"\nset = { epochs = 2 }\n'
    assert locate_key(text, ("run", 1, "set", "epochs")) == 6
    assert locate_key(text, ("run", 0, "pipeline")) == 2
    assert locate_key(text, ("run", 1, "missing")) == 4


def test_locate_key_is_not_misled_by_multi_line_arrays_and_follows_sub_tables() -> None:
    text = (
        'datasets = [\n  ["a"],\n]\nseeds = [0]\n[[run]]\npipeline = "a"\n[run.set]\nepochs = 2\n'
    )
    assert locate_key(text, ("seeds",)) == 4
    assert locate_key(text, ("run", 0, "set", "epochs")) == 8
    assert locate_key(text, ("train_sizes",)) is None  # not in the file: no line to give


def test_a_setting_given_by_models_points_at_the_models_line() -> None:
    text = 'datasets = ["digits"]\n[[run]]\npipeline = "baseline"\nmodels = ["lenet5"]\n'
    with pytest.raises(ConfigError) as info:
        parse_suite(text, source="s.toml")
    assert str(info.value).startswith("s.toml:4: baseline: unknown setting 'model'")


def test_unknown_suite_name_lists_the_built_in_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown suite 'nope'; known: .*quick"):
        load_suite("nope")


def test_missing_suite_file_is_refused() -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_suite("/nonexistent/suite.toml")


@pytest.mark.parametrize("name", ["quick", "fashion-mnist", "crossover", "alexnet-ablation"])
def test_built_in_suites_parse(name: str) -> None:
    assert name in builtin_suites()
    suite = load_suite(name)
    assert suite.name == name
    assert suite.specs()


def test_bad_override_is_refused_with_its_line() -> None:
    text = 'datasets = ["digits"]\n\n[[run]]\npipeline = "baseline"\nset = { method = "knn" }\n'
    with pytest.raises(ConfigError) as info:
        parse_suite(text, source="s.toml")
    assert str(info.value).startswith(
        "s.toml:5: baseline: setting 'method' must be one of ['nearest-mean', 'linear-svm']"
    )


def test_unknown_override_in_defaults_points_at_the_defaults_table() -> None:
    text = (
        'datasets = ["digits"]\n[defaults.baseline]\nepochs = 3\n[[run]]\npipeline = "baseline"\n'
    )
    with pytest.raises(ConfigError) as info:
        parse_suite(text, source="s.toml")
    assert str(info.value).startswith("s.toml:3: baseline: unknown setting 'epochs'")


def test_grid_expands_into_one_entry_per_combination() -> None:
    text = (
        'datasets = ["digits"]\n[[run]]\npipeline = "baseline"\n'
        'grid = { method = ["nearest-mean", "linear-svm"], max_iter = [10, 20] }\n'
    )
    entries = parse_suite(text).entries
    assert [dict(e.overrides) for e in entries] == [
        {"method": "nearest-mean", "max_iter": 10},
        {"method": "nearest-mean", "max_iter": 20},
        {"method": "linear-svm", "max_iter": 10},
        {"method": "linear-svm", "max_iter": 20},
    ]
    assert entries[0].label == "baseline (max_iter=10, method=nearest-mean)"


def test_bad_grid_value_points_at_the_grid_line() -> None:
    text = 'datasets = ["digits"]\n[[run]]\npipeline = "baseline"\ngrid = { method = ["knn"] }\n'
    with pytest.raises(ConfigError) as info:
        parse_suite(text, source="s.toml")
    assert str(info.value).startswith("s.toml:4: baseline: setting 'method' must be one of")


def test_ablation_suite_resolves_to_the_four_depths() -> None:
    suite = load_suite("alexnet-ablation")
    assert [dict(e.overrides)["ablate"] for e in suite.entries] == [
        "none",
        "fc7",
        "fc6-fc7",
        "conv3-conv4-fc6-fc7",
    ]


def test_default_label_names_the_model_and_the_entry_settings() -> None:
    text = (
        'datasets = ["digits"]\n[defaults.convnet]\nepochs = 3\n[[run]]\npipeline = "convnet"\n'
        'set = { model = "lenet5", batch_size = 32 }\n'
    )
    assert parse_suite(text).entries[0].label == "lenet5 (batch_size=32)"


def test_sizes_run_ascending_with_full_last() -> None:
    text = (
        'datasets = ["digits"]\ntrain_sizes = ["full", 300, 100]\n[[run]]\npipeline = "baseline"\n'
    )
    assert [s.train_size for s in parse_suite(text).specs()] == [100, 300, None]


def test_train_sizes_and_seeds_can_replace_the_suite_s() -> None:
    specs = parse_suite(GOOD).specs(train_sizes=[50], seeds=[7, 8])
    assert [(s.label, s.train_size, s.seed) for s in specs] == [
        ("baseline", 50, 7),
        ("baseline", 50, 8),
        ("lenet5", 50, 7),
        ("lenet5", 50, 8),
        ("alexnet-small", 50, 7),
        ("alexnet-small", 50, 8),
    ]
