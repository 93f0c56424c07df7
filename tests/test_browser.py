"""JupyterLab in a real browser: notebooks 01-05 run from the UI with the CI parameters, their figures render
completely, tqdm shows as a widget bar, and the token inspector redraws a complete figure after every change
of clip, time stretch and pitch shift, with no error on screen or in the browser console.

Needs Chromium (Debian: ``apt-get install -y chromium``; another binary via ``$WAV2TOK_CHROMIUM``) and the
``playwright`` package (its own browser download is not used); skips with the reason when either is missing.
``make test-browser`` runs this file alone. On a failure, a screenshot of the page is saved under the test's
temporary folder (the path is in the failure message); with ``$WAV2TOK_SCREENSHOTS`` set to a folder, every
notebook's page is saved there once checked, to look at.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import papermill as pm
import pytest

from wav2tok_core.config import load_config_file
from wav2tok_core.workbench.pipeline import NOTEBOOKS, notebook_parameters
from wav2tok_core.workbench.runs import asset

pytestmark = pytest.mark.browser

CHROMIUM = Path(os.environ.get("WAV2TOK_CHROMIUM", "/usr/bin/chromium"))
NOTEBOOK_DIR = asset("notebooks")
CI_PARAMS = NOTEBOOK_DIR / "params" / "ci.yaml"
SERVER_START_S = 120  # JupyterLab must answer within this
RUN_ALL_S = {"02_train": 900}  # Run All must finish within this (others: DEFAULT_RUN_ALL_S)
DEFAULT_RUN_ALL_S = 600
CHANGE_S = 120  # the inspector must redraw within this after a change
CHANGES = 21  # inspector changes: 7 each of clip, stretch and shift
# JupyterLab settings for a quiet, deterministic page: no news prompt, no kernel dialog, every cell in the DOM.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false"},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none",
                                                                    "autoStartDefaultKernel": True},
}
ALL_CELLS_RAN = """() => {
    const shown = '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt';
    const prompts = [...document.querySelectorAll(shown)];
    return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
}"""
IMAGES = """async (selector) => {
    const out = [];
    for (const img of document.querySelectorAll(selector)) {
        let decoded = true;
        try { await img.decode(); } catch (e) { decoded = false; }
        out.push({decoded, width: img.naturalWidth, height: img.naturalHeight, src: img.src.slice(-64)});
    }
    return out;
}"""
IDLE = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator[data-status='idle']"
OUTPUT_IMAGES = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output img"
INSPECTOR_IMAGE = ".jp-NotebookPanel:not(.lm-mod-hidden) .widget-output img"


@dataclass
class Lab:
    """A running JupyterLab: its URL with the token, and the folders of the test."""

    url: str
    token: str
    root: Path  # the test's temporary folder (screenshots go here)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {server.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise RuntimeError(f"JupyterLab did not answer within {SERVER_START_S} s: {log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[Lab]:
    """JupyterLab on 127.0.0.1 serving the notebooks with the CI parameters injected (papermill's
    ``prepare_only``: parameterised, not run), relative paths resolving in a temporary home; stopped after."""
    if not CHROMIUM.is_file():
        pytest.skip(f"Chromium not found at {CHROMIUM}: apt-get install -y chromium, or set WAV2TOK_CHROMIUM")
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (pip install .[dev])")
    root = tmp_path_factory.mktemp("lab")
    books, settings = root / "notebooks", root / "settings"
    books.mkdir()
    params = load_config_file(CI_PARAMS)
    for name in NOTEBOOKS:
        injected = notebook_parameters(params, name, Path("run"), NOTEBOOK_DIR / f"{name}.ipynb")
        injected.pop("interactive", None)  # a browser is here: the inspector is built
        pm.execute_notebook(str(NOTEBOOK_DIR / f"{name}.ipynb"), str(books / f"{name}.ipynb"), parameters=injected,
                            prepare_only=True, kernel_name="python3", progress_bar=False)
    for relative, values in LAB_SETTINGS.items():
        (settings / relative).parent.mkdir(parents=True, exist_ok=True)
        (settings / relative).write_text(json.dumps(values))
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "WAV2TOK_HOME": str(root / "home"), "JUPYTERLAB_SETTINGS_DIR": str(settings),
           "JUPYTERLAB_WORKSPACES_DIR": str(root / "workspaces"),
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    log = root / "jupyterlab.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
             f"--ServerApp.token={token}", f"--ServerApp.root_dir={books}", "--allow-root"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(f"{url}/api/status?token={token}", server, log)
        yield Lab(url, token, root)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)


@pytest.fixture(scope="module")
def browser(lab: Lab) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              args=["--no-sandbox"], timeout=60_000)
        yield chromium
        chromium.close()


@dataclass
class NotebookPage:
    """One notebook open in JupyterLab, with the browser console's errors collected."""

    page: Any
    name: str
    shots: Path
    errors: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, browser: Any, lab: Lab, name: str) -> "NotebookPage":
        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        book = cls(page, name, lab.root / "screenshots")
        page.on("console", lambda message: book.errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: book.errors.append(str(error)))
        page.set_default_timeout(60_000)
        # ?reset: a fresh workspace, so the notebooks opened before are not restored beside this one
        page.goto(f"{lab.url}/lab/tree/{name}.ipynb?reset&token={lab.token}", timeout=120_000)
        page.wait_for_selector(".jp-NotebookPanel .jp-CodeCell", timeout=120_000)
        page.wait_for_timeout(2000)  # the kernel dialog, if any, appears after the cells (an idle indicator can too)
        if page.locator(".jp-Dialog").count():  # "Select Kernel", should the setting above not apply
            page.click(".jp-Dialog .jp-mod-accept")
        page.wait_for_selector(IDLE, timeout=120_000)
        return book

    def keep(self) -> None:
        """Save the page to ``$WAV2TOK_SCREENSHOTS`` when it is set."""
        if os.environ.get("WAV2TOK_SCREENSHOTS"):
            folder = Path(os.environ["WAV2TOK_SCREENSHOTS"])
            folder.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(folder / f"{self.name}.png"), full_page=True)

    def fail(self, message: str) -> None:
        self.shots.mkdir(parents=True, exist_ok=True)
        shot = self.shots / f"{self.name}.png"
        self.page.screenshot(path=str(shot), full_page=True)
        pytest.fail(f"{self.name}: {message} (screenshot: {shot})")

    def run_all(self) -> None:
        self.page.click("li.lm-MenuBar-item:has-text('Run')")
        self.page.click("li.lm-Menu-item[data-command='runmenu:run-all']")
        try:
            self.page.wait_for_function(ALL_CELLS_RAN, timeout=1000 * RUN_ALL_S.get(self.name, DEFAULT_RUN_ALL_S))
        except Exception:  # playwright's TimeoutError
            self.fail("Run All did not finish in time")
        self.page.wait_for_selector(IDLE, timeout=60_000)

    def check_clean(self) -> None:
        """No traceback or widget error on screen, no console error."""
        text = self.page.inner_text(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook")
        for bad in ("Traceback (most recent call last)", "Error displaying widget:"):  # the cell's hint quotes it
            if bad in text:
                self.fail(f"the page shows {bad!r}")
        if self.errors:
            self.fail(f"browser console errors: {self.errors[:5]}")

    def images(self, selector: str = OUTPUT_IMAGES) -> list[dict[str, Any]]:
        return self.page.evaluate(IMAGES, selector)

    def check_images(self, selector: str = OUTPUT_IMAGES, at_least: int = 1,
                     min_size: tuple[int, int] = (300, 150)) -> list[dict[str, Any]]:
        found = self.images(selector)
        if len(found) < at_least:
            self.fail(f"{len(found)} figures shown, expected at least {at_least}")
        broken = [im for im in found if not im["decoded"] or im["width"] < min_size[0] or im["height"] < min_size[1]]
        if broken:
            self.fail(f"incomplete figures: {broken}")
        return found


def test_notebooks_run_in_jupyterlab_and_the_inspector_redraws_on_every_change(browser: Any, lab: Lab) -> None:
    figures = {"01_data_split": 2, "02_train": 2, "03_codebook_umap": 3, "04_retrieval_eval": 4}
    for name in NOTEBOOKS[:-1]:
        book = NotebookPage.open(browser, lab, name)
        book.run_all()
        book.check_clean()
        book.check_images(at_least=figures[name])
        if name == "02_train" and not book.page.query_selector_all(".jp-OutputArea-output .widget-hprogress"):
            book.fail("no tqdm widget bar")
        book.keep()
        book.page.close()

    book = NotebookPage.open(browser, lab, NOTEBOOKS[-1])
    book.run_all()
    book.check_clean()
    book.check_images(INSPECTOR_IMAGE, min_size=(600, 200))
    page = book.page
    clip = page.locator(".jupyter-widgets.widget-dropdown select")
    options = clip.locator("option").count()
    readouts = page.locator(".jupyter-widgets.widget-hslider .widget-readout")
    stretches, shifts = [0.8, 1.2, 0.9, 1.3, 0.75, 1.1, 1.0], [-3.0, 2.0, -1.5, 4.0, 0.5, -5.0, 0.0]
    for i in range(CHANGES):
        before = book.images(INSPECTOR_IMAGE)
        control = i % 3
        if control == 0:
            clip.select_option(index=(i // 3 + 1) % options)
        else:
            value = (stretches if control == 1 else shifts)[i // 3]
            readout = readouts.nth(control - 1)
            readout.click()
            page.keyboard.press("Control+A")
            page.keyboard.type(f"{value:g}")
            page.keyboard.press("Enter")
        try:
            page.wait_for_function(f"(old) => {{ const img = document.querySelector({INSPECTOR_IMAGE!r}); "
                                   "return img && img.src.slice(-64) !== old; }",
                                   arg=before[0]["src"] if before else "", timeout=1000 * CHANGE_S)
        except Exception:  # playwright's TimeoutError
            book.fail(f"change {i + 1} (control {control}) did not redraw the figure")
        shown = book.check_images(INSPECTOR_IMAGE, min_size=(600, 200))
        if len(shown) != 1:
            book.fail(f"change {i + 1}: {len(shown)} inspector figures shown, expected 1")
        book.check_clean()
        table = page.inner_text(".jp-NotebookPanel:not(.lm-mod-hidden) .widget-output table")
        if "query" not in table or "neighbour" not in table:
            book.fail(f"change {i + 1}: the neighbour table does not name its query and neighbour rows")
    book.keep()
    page.close()
