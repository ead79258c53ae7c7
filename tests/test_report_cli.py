"""`bvc report` through click's CliRunner, and the page in headless Chromium (slow)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from report_records import crossover_records

from bovw_vs_convnet.cli import main
from bovw_vs_convnet.harness.store import ResultStore


def _store(tmp_path: Path) -> Path:
    runs = tmp_path / "runs"
    runs.mkdir()
    store = ResultStore(runs)
    for rec in crossover_records():
        store.commit(rec, tmp_path / "staging" / rec["run_id"])
    return runs


def test_report_command_writes_the_page(tmp_path: Path) -> None:
    runs = _store(tmp_path)
    out = tmp_path / "site"
    result = CliRunner().invoke(main, ["report", "--output", str(out), "--runs-dir", str(runs)])
    assert result.exit_code == 0, result.output
    assert result.output == f"report written to {out / 'index.html'}\n"
    assert "8 finished and 0 failed runs" in (out / "index.html").read_text()


@pytest.mark.slow
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed")
    runs = _store(tmp_path)
    page = Path(
        CliRunner()
        .invoke(main, ["report", "-o", str(tmp_path / "site"), "--runs-dir", str(runs)])
        .output.split()[-1]
    )
    n_figures = page.read_text().count("<figure")
    # a probe script counts the tables and the images the browser actually decoded
    probe = page.with_name("probe.html")
    probe.write_text(
        page.read_text().replace(
            "</body>",
            "<script>window.addEventListener('load', () => {"
            "const imgs = [...document.images];"
            "const ok = imgs.filter(i => i.complete && i.naturalWidth > 0).length;"
            "const tables = document.querySelectorAll('table').length;"
            "document.title = `rendered ${ok} of ${imgs.length} images, ${tables} tables`;"
            "});</script></body>",
        )
    )
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=5000",
    ]
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120
    ).stdout
    m = re.search(r"<title>rendered (\d+) of (\d+) images, (\d+) tables</title>", dom)
    assert m is not None, dom[:500]
    assert int(m.group(1)) == int(m.group(2)) == n_figures
    assert int(m.group(3)) == 5  # 2 leaderboards, 2 ILSVRC tables, provenance
