"""Screenshots of the MLflow UI on a sweep's store, taken in headless Chromium the way a new user follows the
README's "Looking at the results": open the experiment, look at its runs, expand the sweep's parent run, group
the trials by a tag, open the Chart view and find the loss curves.

    .venv/bin/python tools/mlflow_ui_screenshots.py           # runs/offline/mlflow.db → docs/figures/mlflow_ui/
    .venv/bin/python tools/mlflow_ui_screenshots.py --store runs/offline --out /tmp/shots --experiment dynamics-offline

The store (a SQLite file, or the folder holding `mlflow.db` and `mlartifacts/`) is copied to a temporary folder
first, so nothing the UI does reaches it. `mlflow ui` serves the copy on 127.0.0.1 (a free port, one worker, no
job runner, no telemetry); the browser starts with a fresh profile, so it knows nothing a returning user's
browser would remember (the UI keeps its GenAI / Model training switch in local storage). Both are stopped at the
end, on an error too.

Needs a Chromium and its chromedriver (Debian: `apt-get install chromium chromium-driver`) and Selenium
(`pip install selenium`); the paths are found on PATH or given with --chromium / --chromedriver. Selenium never
downloads a driver here: both paths are passed to it.

Writes, in --out:
    01_landing.png         what opening `#/experiments/<id>` shows a new user
    02_runs.png            the runs table, opened by the link the sweep prints (`?workflowType=machine_learning`)
    03_chart_collapsed.png the Chart view with the parent run still collapsed
    04_runs_expanded.png   the parent expanded: its trials as child rows
    05_runs_grouped.png    the runs grouped by the tag --group-by
    06_chart_metric.png    the Chart view of the groups, its charts filtered to --metric
    07_chart_metric_full.png  that chart full screen
and prints what each shows (the landing URL, child rows seen, the chart's legend). MLflow 3.17's UI opens an
experiment on the GenAI overview whatever its `mlflow.experimentKind` tag says: its sidebar's GenAI / Model
training switch (GenAI until clicked; a `workflowType=machine_learning` URL parameter overrides it) decides.
Exits 1 when a step fails, leaving `error.png` of the page at that moment.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dynamics.tracking import ui_link

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_STORE = ROOT / "runs" / "offline" / "mlflow.db"
DEFAULT_OUT = ROOT / "docs" / "figures" / "mlflow_ui"
PARENT_TAG = "mlflow.parentRunId"
KIND_TAG = "mlflow.experimentKind"
# The UI's own component ids, from MLflow 3.17's build; a later UI that renames them fails the step that uses them.
EXPAND_BUTTON = 'button[data-component-id$="runnamecellrenderer.tsx_46"]'
GROUP_BY_BUTTON = 'button[data-component-id$="experimentviewrunsgroupbyselector.tsx_306"]'
ASSISTANT_CLOSE = 'button[data-component-id="mlflow.assistant.chat_panel.close"]'
CHART_SEARCH = 'input[placeholder="Search metric charts"]'
FULLSCREEN_BUTTON = 'button[data-component-id="fullscreen_button_chartcard"]'


class StepFailed(RuntimeError):
    """A step of the walk-through found the UI not as expected."""


@dataclass
class Walk:
    """What the walk-through saw: a line per screenshot, for the reader and for tests."""

    findings: list[str] = field(default_factory=list)

    def note(self, line: str) -> None:
        self.findings.append(line)
        print(line, flush=True)


# ---------------------------------------------------------------- the store and the server


def copy_store(store: Path, into: Path) -> Path:
    """Copy the SQLite store (and its `mlartifacts/` beside it, if any) into `into`; return the copy's database.

    The database is copied with SQLite's backup API (consistent even while a sweep writes to it), read-only at the
    source; in the copy, artifact locations under the original folder are pointed at the copied artifacts."""
    database = store / "mlflow.db" if store.is_dir() else store
    if not database.is_file():
        raise FileNotFoundError(f"no MLflow SQLite store at {database}")
    copy = into / "mlflow.db"
    source = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True)
    target = sqlite3.connect(copy)
    try:
        source.backup(target)
    finally:
        source.close()
    artifacts = database.parent / "mlartifacts"
    if artifacts.is_dir():
        shutil.copytree(artifacts, into / "mlartifacts")
        old, new = artifacts.resolve().as_uri(), (into / "mlartifacts").as_uri()
        with target:
            target.execute("UPDATE experiments SET artifact_location = replace(artifact_location, ?, ?)", (old, new))
            target.execute("UPDATE runs SET artifact_uri = replace(artifact_uri, ?, ?)", (old, new))
    target.close()
    return copy


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def mlflow_ui(database: Path, log: Path, timeout_s: float = 120.0) -> Iterator[str]:
    """`mlflow ui` on `database`, on 127.0.0.1; yields its base URL once `/health` answers, stops it after."""
    port = free_port()
    command = [
        sys.executable, "-m", "mlflow", "ui",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{database}",
        "--default-artifact-root", (database.parent / "mlartifacts").as_uri(),
    ]  # fmt: skip
    env = {
        **os.environ,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # else it starts a job runner and seven huey consumers
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    base = f"http://127.0.0.1:{port}"
    with log.open("wb") as output:
        # A session of its own: stopping it stops the uvicorn worker it starts too.
        server = subprocess.Popen(
            command, cwd=database.parent, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"mlflow ui exited with {server.returncode}:\n{log.read_text(errors='replace')}")
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"mlflow ui did not answer on {base} within {timeout_s:.0f} s")
            time.sleep(0.5)
        yield base
    finally:
        stop_group(server)


def stop_group(process: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    """SIGTERM the process's group, SIGKILL what is left after `grace_s`."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace_s)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # children that outlived the server's own exit, too
    process.wait()


def rest(base: str, endpoint: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    """One call of the tracking server's REST API: GET with query `payload`, or POST it as JSON for a search."""
    url = f"{base}/api/2.0/mlflow/{endpoint}"
    if endpoint.endswith("search"):
        request = urllib.request.Request(
            url, data=json.dumps(payload or {}).encode(), headers={"Content-Type": "application/json"}
        )
    else:
        request = urllib.request.Request(f"{url}?{urllib.parse.urlencode(payload or {})}")
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


@dataclass(frozen=True)
class Experiment:
    experiment_id: str
    kind: str | None  # the `mlflow.experimentKind` tag
    parents: list[str]  # run ids, newest first
    children: dict[str, list[str]]  # parent run id → its child run ids


def _page(token: str | None) -> dict[str, str]:
    return {"page_token": token} if token else {}


def read_experiment(base: str, name: str) -> Experiment:
    try:
        found = rest(base, "experiments/get-by-name", {"experiment_name": name})["experiment"]
    except urllib.error.HTTPError as error:
        raise StepFailed(f"experiment {name!r} is not in the store ({error.code})") from error
    tags = {tag["key"]: tag["value"] for tag in found.get("tags", [])}
    runs: list[dict[str, Any]] = []
    token = None
    while True:
        query = {"experiment_ids": [found["experiment_id"]], "max_results": 1000}
        page = rest(base, "runs/search", query | {"order_by": ["attributes.start_time DESC"]} | _page(token))
        runs += page.get("runs", [])
        token = page.get("next_page_token")
        if not token:
            break
    parents, children = [], {}
    for run in runs:
        run_tags = {tag["key"]: tag["value"] for tag in run["data"].get("tags", [])}
        run_id = run["info"]["run_id"]
        if PARENT_TAG in run_tags:
            children.setdefault(run_tags[PARENT_TAG], []).append(run_id)
        else:
            parents.append(run_id)
    return Experiment(found["experiment_id"], tags.get(KIND_TAG), parents, children)


# ---------------------------------------------------------------- the browser


def find_browser(chromium: str | None, chromedriver: str | None) -> tuple[str, str]:
    """Paths of a Chromium and its chromedriver: those given, else the first found on PATH."""
    browser = chromium or next(
        (p for n in ("chromium", "chromium-browser", "google-chrome", "chrome") if (p := shutil.which(n))), None
    )
    driver = chromedriver or shutil.which("chromedriver")
    if not browser or not driver:
        raise FileNotFoundError(
            "needs Chromium and chromedriver (Debian: apt-get install chromium chromium-driver) "
            f"— found chromium={browser}, chromedriver={driver}"
        )
    return browser, driver


@contextlib.contextmanager
def headless_chromium(browser: str, driver: str, profile: Path, width: int, height: int) -> Iterator[Any]:
    """A Selenium driver of headless Chromium with a fresh profile and a `width`×`height` viewport; quit after."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as error:
        raise ImportError("needs Selenium: .venv/bin/pip install selenium") from error
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        "--disable-extensions", "--disable-background-networking", "--disable-sync", "--hide-scrollbars",
        f"--user-data-dir={profile}", f"--window-size={width},{height}",
    ):  # fmt: skip
        options.add_argument(argument)
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    try:
        # The window size includes the browser's frame; the viewport is what the screenshots show.
        chrome.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        yield chrome
    finally:
        chrome.quit()


class Page:
    """The UI in one browser tab, with waits instead of sleeps wherever the page tells when it is ready."""

    def __init__(self, chrome: Any, out: Path, timeout_s: float):
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        self.chrome, self.out, self.timeout_s = chrome, out, timeout_s
        self._by, self._wait, self._stale = By, WebDriverWait, StaleElementReferenceException

    def until(self, what: str, condition: Callable[[], Any], timeout_s: float | None = None) -> Any:
        try:
            wait = self._wait(
                self.chrome, timeout_s or self.timeout_s, poll_frequency=0.25, ignored_exceptions=(self._stale,)
            )
            return wait.until(lambda _: condition())
        except Exception as error:  # selenium's TimeoutException, or a stale element while the page redraws
            raise StepFailed(f"waited {timeout_s or self.timeout_s:.0f} s for {what}: {error!r:.300}") from error

    def css(self, selector: str) -> list[Any]:
        return self.chrome.find_elements(self._by.CSS_SELECTOR, selector)

    def with_text(self, text: str) -> list[Any]:
        return self.chrome.find_elements(self._by.XPATH, f"//*[normalize-space(text())='{text}']")

    def visible(self, selector: str) -> list[Any]:
        return [element for element in self.css(selector) if element.is_displayed()]

    def texts(self, selector: str, attribute: str | None = None) -> list[str]:
        """The text (or `attribute`) of every element in sight matching `selector` that holds no other element:
        read in one script, since the page redraws under a walk over many elements."""
        return self.chrome.execute_script(
            """const [selector, attribute] = arguments;
            return Array.from(document.querySelectorAll(selector))
              .filter(e => e.getClientRects().length > 0 && (attribute || e.childElementCount === 0))
              .map(e => attribute ? e.getAttribute(attribute) || "" : e.textContent.trim());""",
            selector,
            attribute,
        )

    def settle(self, quiet_s: float = 1.5) -> None:
        """Wait until the URL and the page's size of text have stopped changing for `quiet_s` (charts drawn)."""

        def fingerprint() -> tuple[str, int]:
            return self.chrome.current_url, len(self.chrome.find_element(self._by.TAG_NAME, "body").text)

        last, since = fingerprint(), time.monotonic()
        deadline = since + self.timeout_s
        while time.monotonic() - since < quiet_s and time.monotonic() < deadline:
            time.sleep(0.25)
            now = fingerprint()
            if now != last:
                last, since = now, time.monotonic()

    def tidy(self) -> None:
        """Dismiss what the UI lays over a first visit: the feature tour's popover and the Assistant's panel."""
        for button in self.with_text("Got it"):
            with contextlib.suppress(Exception):
                button.click()
        for button in self.visible(ASSISTANT_CLOSE):
            with contextlib.suppress(Exception):
                button.click()
        self.until("the Assistant's panel to close", lambda: not self.visible(ASSISTANT_CLOSE), timeout_s=5)

    def shot(self, name: str) -> Path:
        path = self.out / name
        self.chrome.save_screenshot(str(path))
        return path

    def view_mode(self, mode: str) -> None:
        """Click the runs view's TABLE / CHART toggle."""
        radio = self.until(f"the {mode} view toggle", lambda: self.css(f'input[name="runs-view-mode"][value="{mode}"]'))
        radio[0].find_element(self._by.XPATH, "./ancestor::label").click()
        self.until(f"the {mode} view", lambda: f"compareRunsMode={mode}" in self.chrome.current_url)


def walk(page: Page, base: str, experiment: Experiment, group_by: str, metric: str, seen: Walk) -> None:
    """The README's steps, a screenshot after each."""
    chrome = page.chrome
    if not experiment.parents:
        raise StepFailed("the experiment has no parent (sweep) run")
    parent = experiment.parents[0]
    children = experiment.children.get(parent, [])
    seen.note(
        f"store: experiment {experiment.experiment_id} ({KIND_TAG}={experiment.kind}), {len(experiment.parents)} "
        f"parent run(s); the newest, {parent}, has {len(children)} child runs"
    )

    def run_links() -> set[str]:
        """Ids of the runs whose links are in sight."""
        hrefs = page.texts('a[href*="/runs/"]', attribute="href")
        return {href.rstrip("/").rpartition("/runs/")[2].partition("?")[0] for href in hrefs}

    # 1. A new user opens the experiment.
    chrome.get(f"{base}/#/experiments/{experiment.experiment_id}")
    page.until("the experiment page", lambda: "/experiments/" in chrome.current_url and page.with_text("GenAI"))
    page.settle()
    landed = chrome.current_url
    genai = "workflowType=genai" in landed or "/overview" in landed or "/traces" in landed
    path = page.shot("01_landing.png")
    seen.note(f"{path.name}: lands on {'the GenAI overview of traces' if genai else 'its runs'} ({landed})")

    # 2. The runs: the link the sweep prints (and the README gives) asks for the training view.
    page.tidy()
    link = ui_link(f"{base}/", experiment.experiment_id)  # the server's own page, as for a tracking server
    chrome.get(link)
    page.settle()
    on_runs = not any(part in chrome.current_url for part in ("workflowType=genai", "/overview", "/traces"))
    if not on_runs:  # the sidebar's switch, as a user who typed the plain address would
        switch = page.until("the sidebar's 'Model training' switch", lambda: page.with_text("Model training"))
        switch[0].click()
    page.until("the runs table", lambda: page.visible(EXPAND_BUTTON) or run_links())
    page.tidy()
    page.settle()
    path = page.shot("02_runs.png")
    seen.note(
        f"{path.name}: the sweep's link {'lands on the runs table' if on_runs else 'still lands on GenAI'}, "
        f"{len(run_links() & set(children))} of {len(children)} child runs in sight ({chrome.current_url})"
    )

    # 3. The Chart view before anything is expanded.
    page.view_mode("CHART")
    page.until("the chart search box", lambda: page.visible(CHART_SEARCH))
    page.settle()
    titles = sorted(set(page.texts("h4[title]", attribute="title")))
    path = page.shot("03_chart_collapsed.png")
    seen.note(f"{path.name}: the Chart view with the parent collapsed shows charts {titles}")
    page.view_mode("TABLE")

    # 4. Expand the parent run.
    expand = page.until("the parent run's expand button", lambda: page.visible(EXPAND_BUTTON))
    expand[0].click()
    page.until("child rows", lambda: run_links() & set(children))
    page.settle()
    path = page.shot("04_runs_expanded.png")
    in_sight = len(run_links() & set(children))
    seen.note(f"{path.name}: parent expanded, {in_sight} of {len(children)} child runs in sight")

    # 5. Group by the tag.
    page.until("the Group by menu", lambda: page.visible(GROUP_BY_BUTTON))[0].click()
    entries = page.until(
        f"tag {group_by!r} in the Group by menu",
        lambda: [e for e in page.css('[role="menuitemcheckbox"]') if e.is_displayed() and e.text.strip() == group_by],
    )
    entries[0].click()  # the first is the tag (Tags come before Params)
    from selenium.webdriver.common.keys import Keys

    chrome.switch_to.active_element.send_keys(Keys.ESCAPE)
    page.until("the grouped table", lambda: page.with_text(f"Group by: {group_by}"))
    page.settle()
    groups = sorted({t.removeprefix("Group: ") for t in page.texts("span, div") if t.startswith("Group: ")})
    path = page.shot("05_runs_grouped.png")
    seen.note(
        f"{path.name}: grouped by tag {group_by}: groups {groups}, "
        f"{len(run_links() & set(children))} of {len(children)} child runs in sight"
    )

    # 6. The Chart view of the groups, filtered to the metric.
    page.view_mode("CHART")
    search = page.until("the chart search box", lambda: page.visible(CHART_SEARCH))
    search[0].send_keys(metric)
    page.until(f"the {metric} chart", lambda: [h for h in page.css(f'h4[title="{metric}"]') if h.is_displayed()])
    page.settle()
    path = page.shot("06_chart_metric.png")
    seen.note(f"{path.name}: the Chart view filtered to {metric}; legend: {legend(page, metric)}")

    # 7. That chart full screen.
    page.until("the chart's full-screen button", lambda: page.visible(FULLSCREEN_BUTTON))[0].click()
    page.until("the full-screen chart", lambda: page.visible('[role="dialog"]'))
    page.settle()
    path = page.shot("07_chart_metric_full.png")
    seen.note(f"{path.name}: {metric} full screen; legend: {legend(page, metric, scope='[role=dialog] ')}")


def legend(page: Page, metric: str, scope: str = "") -> list[str]:
    """The legend entries of the charts of `metric` in sight: `<group or run> (<metric>)` labels."""
    suffix = f" ({metric})"
    texts = set(page.texts(f"{scope}span, {scope}div"))
    return sorted(t.removesuffix(suffix) for t in texts if t.endswith(suffix))


# ---------------------------------------------------------------- the command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, default=DEFAULT_STORE, help="SQLite file, or its folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the PNGs (created)")
    parser.add_argument("--experiment", default="dynamics-offline", help="experiment name")
    parser.add_argument("--group-by", default="permutation", help="tag to group the runs by")
    parser.add_argument("--metric", default="test_loss/macro", help="metric whose chart to find")
    parser.add_argument("--chromium", help="Chromium binary (default: found on PATH)")
    parser.add_argument("--chromedriver", help="chromedriver binary (default: found on PATH)")
    parser.add_argument("--width", type=int, default=1440)
    parser.add_argument("--height", type=int, default=900)
    parser.add_argument("--timeout", type=float, default=45.0, help="seconds to wait for each step")
    args = parser.parse_args(argv)

    browser, driver = find_browser(args.chromium, args.chromedriver)
    args.out.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        (args.out / "error.png").unlink()
    seen = Walk()
    with tempfile.TemporaryDirectory(prefix="mlflow-ui-") as scratch:
        folder = Path(scratch)
        (folder / "store").mkdir()
        database = copy_store(args.store, folder / "store")
        with mlflow_ui(database, folder / "mlflow-ui.log") as base:
            experiment = read_experiment(base, args.experiment)
            with headless_chromium(browser, driver, folder / "profile", args.width, args.height) as chrome:
                page = Page(chrome, args.out, args.timeout)
                try:
                    walk(page, base, experiment, args.group_by, args.metric, seen)
                except Exception as error:
                    page.shot("error.png")
                    if not isinstance(error, StepFailed):
                        traceback.print_exc()
                    print(f"FAILED: {error} (the page then: {args.out / 'error.png'})", file=sys.stderr)
                    return 1
    print(f"{len(seen.findings) - 1} screenshots in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
