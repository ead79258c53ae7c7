"""`bvc report` through click's CliRunner, and the page in headless Chromium (slow)."""

from __future__ import annotations

import html
import json
import os
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


def test_report_goes_into_the_runs_folder_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = _store(tmp_path)
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    result = CliRunner().invoke(main, ["report", "--runs-dir", str(runs)])
    assert result.exit_code == 0, result.output
    assert result.output == f"report written to {runs / 'report' / 'index.html'}\n"
    assert list(here.iterdir()) == []  # nothing in the current folder


# Injected first in <head>: records every error the page raises or logs, then, once all
# has loaded, writes what the browser decoded into <pre id="probe"> for --dump-dom.
PROBE = """<script>
window.probeErrors = [];
window.addEventListener('error', (e) => {
  const what = e.target && e.target.tagName ? `failed to load a ${e.target.tagName}` : e.message;
  window.probeErrors.push(String(what));
}, true);
const consoleError = console.error;
console.error = (...args) => { window.probeErrors.push(args.join(' ')); consoleError(...args); };
window.addEventListener('load', () => {
  const images = [...document.images];
  const probe = document.createElement('pre');
  probe.id = 'probe';
  probe.textContent = JSON.stringify({
    images: images.length,
    decoded: images.filter((i) => i.complete && i.naturalWidth > 0).length,
    tables: document.querySelectorAll('table').length,
    errors: window.probeErrors,
  });
  document.body.appendChild(probe);
});
</script>"""

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--virtual-time-budget=5000",
)


def _chromium() -> str:
    """The browser; in CI (CI=true) its absence fails the test, elsewhere it skips it."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but chromium is not installed (.ci/run installs it)")
        pytest.skip("chromium is not installed")
    return browser


@pytest.mark.slow
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    browser = _chromium()
    runs = _store(tmp_path)
    site = tmp_path / "site"
    CliRunner().invoke(main, ["report", "-o", str(site), "--runs-dir", str(runs)])
    text = (site / "index.html").read_text()
    probe = site / "probe.html"
    probe.write_text(text.replace("<head>", "<head>\n" + PROBE, 1))
    profile = f"--user-data-dir={tmp_path / 'profile'}"
    done = subprocess.run(
        [browser, *CHROMIUM_FLAGS, profile, "--dump-dom", probe.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert found is not None, done.stdout[:500] + done.stderr[-2000:]
    seen = json.loads(html.unescape(found.group(1)))
    assert seen["images"] == text.count("<figure") > 0
    assert seen["decoded"] == seen["images"]  # every figure decoded: naturalWidth > 0
    assert seen["tables"] == 5  # 2 leaderboards, 2 ILSVRC tables, provenance
    assert seen["errors"] == []
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line]
    assert console == []
