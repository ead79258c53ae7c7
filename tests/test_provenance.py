"""Provenance: what every run record says about where and with what it ran."""

import sys
from importlib import metadata

from bovw_vs_convnet.harness import provenance


def test_collect_has_every_field():
    info = provenance.collect()
    expected = {"bvc_version", "python", "platform", "packages", "cpu", "gpu", "threads", "git"}
    assert expected - set(info) == set()
    assert info["packages"]["numpy"] == metadata.version("numpy")


def test_gpu_is_not_probed_without_torch_imported(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert provenance.gpu_model() is None
    assert provenance.thread_count()["torch_threads"] is None


def test_git_revision_outside_a_checkout_is_none(tmp_path):
    assert provenance.git_revision(tmp_path) is None


def test_absent_package_is_left_out():
    assert provenance.package_versions(("numpy", "no-such-package-xyz")).keys() == {"numpy"}
