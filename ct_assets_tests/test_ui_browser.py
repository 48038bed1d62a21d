"""The Dagster UI, driven in headless Chromium the way a person uses it.

One real `dagster dev` (free 127.0.0.1 port, temporary CT_HOME) serves every step:
materialize a day of the data group, backfill three days as one run, read each day's
drift verdict and scores in drift_report's Partitions tab (against the lake), read a
sensor's skip reason on the Automation page, and launch approve_model on a version that
does not exist. Clicks and typing only; GraphQL waits for runs and reads ground truth.

Chromium: the Debian package at /usr/bin/chromium (``playwright install`` needs a
download). Without it the module is skipped with one line, unless CT_REQUIRE_BROWSER=1
(``.ci/run`` sets it), where a missing browser is an error.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

CHROMIUM = Path(os.environ.get("CT_CHROMIUM", "/usr/bin/chromium"))
REQUIRED = os.environ.get("CT_REQUIRE_BROWSER") == "1"
MISSING = f"Chromium not found at {CHROMIUM}: browser UI test skipped; apt-get install chromium"
FOUND = CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)
if not FOUND and not REQUIRED:
    # `make test` prints skip reasons (-rfEs): this is its one line about the browser test.
    pytest.skip(MISSING, allow_module_level=True)

from playwright.sync_api import Page, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from ct_assets_tests.dagster_dev_server import DagsterDev, gql, running_dagster_dev, wait_for_run

# The selectors below were checked against this dagster-webserver (pyproject pins the family).
WRITTEN_FOR = "1.13.27"
GROUP_ASSETS = ("raw_window", "validated_window", "quarantined_rows", "drift_report")
DAY = "2026-09-05"  # step 1: one day
BACKFILL = ("2026-09-06", "2026-09-07", "2026-09-08")  # step 2: one single-run backfill over these
SENSOR = "metric_retrain_sensor"
BAD_VERSION = 999
RUN_TIMEOUT = 240  # seconds; a failure mode only (a day of the data group runs in ~35 s)
UI_TIMEOUT = 30_000  # ms, per action
# Assertions wait as long as actions: on a loaded 2-core CI machine the UI renders slowly,
# and Playwright's default (5 s) is a speed limit, not a failure mode.
expect.set_options(timeout=UI_TIMEOUT)


@dataclass
class Ui:
    page: Page
    server: DagsterDev
    workdir: Path

    @property
    def url(self) -> str:
        return self.server.url

    @contextlib.contextmanager
    def step(self, name: str):
        """Starts from the Overview page (whatever an earlier step left open), and saves a
        screenshot next to the server log when the step fails."""
        try:
            self.page.goto(self.url)
            yield
        except BaseException as e:
            path = self.workdir / f"failure-{name}.png"
            with contextlib.suppress(Exception):
                self.page.screenshot(path=path, full_page=True)
                e.add_note(f"screenshot: {path}; page: {self.page.url}; server log: {self.server.log}")
            raise


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    if not FOUND:
        pytest.fail(f"{MISSING} (CT_REQUIRE_BROWSER=1: the browser test is required here)", pytrace=False)
    workdir = tmp_path_factory.mktemp("ui_browser")
    # Playwright's sync API runs an asyncio loop in this thread while it is open: scoped to
    # this module (not pytest-playwright's session fixtures), so the loop is gone before the
    # worker's next test file, whose Dagster calls (asyncio.run) need no loop running.
    with running_dagster_dev(workdir) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1600, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(UI_TIMEOUT)
        page.set_default_navigation_timeout(60_000)
        page.goto(server.url)
        _skip_the_community_modal(page)
        # The "Join the Dagster community" modal comes once per instance, at any moment. The
        # handler is added after the explicit skip: added before, it intercepts that skip's own
        # click, dismisses the modal, and the click then waits for a Skip button that is gone.
        page.add_locator_handler(page.get_by_text("Join the Dagster community"),
                                 lambda: page.get_by_role("button", name="Skip", exact=True).click())
        try:
            yield Ui(page=page, server=server, workdir=workdir)
        finally:
            context.close()
            browser.close()


def test_the_ui_is_the_version_these_selectors_were_written_for():
    installed = importlib.metadata.version("dagster-webserver")
    assert installed == WRITTEN_FOR, (
        f"dagster-webserver is {installed}, this browser test was written against {WRITTEN_FOR}: re-check its "
        f"selectors (buttons, tabs, dialogs, the launchpad editor) by hand in the new UI, then update WRITTEN_FOR")


# -- the data group: materialize, backfill ------------------------------------------------------------------------


def _link(scope, text: str):
    """A link by its words (icons add their own label to a link's name, e.g. "catalog_book Catalog")."""
    return scope.get_by_role("link", name=re.compile(rf"(^|\s){re.escape(text)}(\s|$)")).first


def _button(scope, text: str):
    return scope.get_by_role("button", name=re.compile(rf"(^|\s){re.escape(text)}(\s|$)")).first


def _nav(page: Page, item: str) -> None:
    _link(page.get_by_role("navigation"), item).click()


def _skip_the_community_modal(page) -> None:
    """Dismiss the first-visit modal now, so it cannot open over (or be taken for) a dialog
    a step is waiting for; the locator handler stays for a late one."""
    modal = page.get_by_text("Join the Dagster community")
    try:
        modal.wait_for(state="visible", timeout=20_000)
    except PlaywrightTimeoutError:
        return  # not shown on this instance
    page.get_by_role("button", name="Skip", exact=True).click()
    modal.wait_for(state="hidden")


def _dialog(page):
    """The open dialog of the step (never the community modal)."""
    return page.get_by_role("dialog").filter(has_not_text="Join the Dagster community")


def _open_materialize_dialog(ui: Ui):
    page = ui.page
    # The group's own page (Catalog's "data" links open the lineage focused on one asset).
    page.goto(f"{ui.url}/locations/ct_assets/asset-groups/data")
    expect(page.get_by_text("Asset Group in", exact=False).first).to_be_visible()
    for key in GROUP_ASSETS:
        expect(page.get_by_text(key, exact=True).first).to_be_visible()
    _button(page, "Materialize all…").click()
    dialog = _dialog(page)
    expect(dialog).to_contain_text(f"materialize {len(GROUP_ASSETS)} assets")
    expect(dialog.get_by_text("Partition selection")).to_be_visible()
    # Beyond 90 partitions the picker hides the older ones: our days are early in the range.
    show_all = dialog.get_by_role("button", name="Show all partitions")
    if show_all.count():
        show_all.click()
    return dialog


def _choose_partitions(dialog, text: str, count: int) -> None:
    box = dialog.get_by_role("textbox")
    box.fill(text)
    box.press("Enter")
    expect(dialog).to_contain_text(f"{count} partition")


def _view_from_toast(ui: Ui, toast_text: str) -> str:
    """Clicks "View" on the toast a launch shows; returns the page it opens."""
    toast = ui.page.get_by_text(re.compile(toast_text)).locator("xpath=ancestor::*[.//a][1]")
    toast.get_by_role("link", name="View", exact=True).click()
    return ui.page.url.split("?")[0]


def test_1_materialize_one_day_of_the_data_group(ui):
    with ui.step("materialize"):
        dialog = _open_materialize_dialog(ui)
        _choose_partitions(dialog, DAY, 1)
        _button(dialog, "Launch 1 run").click()
        run_id = _view_from_toast(ui, r"^Launched run").rsplit("/runs/", 1)[1]
        status = wait_for_run(ui.url, run_id, RUN_TIMEOUT)
        assert status == "SUCCESS", f"run {run_id} for {DAY} ended {status}"
        expect(ui.page.get_by_text("Success", exact=True).first).to_be_visible()
        for key in GROUP_ASSETS:
            assert (ui.server.home.lake / key / f"{DAY}.parquet").exists(), f"{key}[{DAY}] is not in the lake"


BACKFILL_QUERY = """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
  ... on PartitionBackfill { status runs(limit: 10) { runId status } } } }"""


def _wait_for_backfill(url: str, backfill_id: str) -> dict:
    deadline = time.monotonic() + RUN_TIMEOUT
    while True:
        backfill = gql(url, BACKFILL_QUERY, {"id": backfill_id})["partitionBackfillOrError"]
        if backfill["status"] not in ("REQUESTED", "CANCELING", "FAILING") or time.monotonic() > deadline:
            return backfill
        time.sleep(2)


def test_2_backfill_three_days_as_one_run(ui):
    with ui.step("backfill"):
        dialog = _open_materialize_dialog(ui)
        _choose_partitions(dialog, f"[{BACKFILL[0]}...{BACKFILL[-1]}]", len(BACKFILL))
        _button(dialog, "Launch backfill").click()
        backfill_id = _view_from_toast(ui, r"^Created backfill").rsplit("/", 1)[1]
        backfill = _wait_for_backfill(ui.url, backfill_id)
        assert backfill["status"] == "COMPLETED_SUCCESS", backfill
        # BackfillPolicy.single_run(): the whole range is one run.
        assert [r["status"] for r in backfill["runs"]] == ["SUCCESS"], backfill
        ui.page.reload()
        expect(ui.page.get_by_text("Succeeded", exact=True).first).to_be_visible()
        for day in BACKFILL:
            assert (ui.server.home.lake / "drift_report" / f"{day}.parquet").exists(), day


# -- what the UI shows for each partition ------------------------------------------------------------------------


def _metadata_value(page: Page, label: str) -> str:
    row = page.get_by_role("row").filter(has=page.get_by_role("cell", name=label, exact=True))
    return row.first.get_by_role("cell").nth(1).inner_text().strip()


def _same_scores(ui_scores: dict, lake_scores: dict) -> bool:
    if set(ui_scores) != set(lake_scores):
        return False
    for key, want in lake_scores.items():
        got = ui_scores[key]
        if (got is None) != (want is None) or (want is not None and not math.isclose(got, want, rel_tol=1e-9)):
            return False
    return True


def _lake_drift(ui: Ui, day: str) -> tuple[str, dict]:
    row = pl.read_parquet(ui.server.home.lake / "drift_report" / f"{day}.parquet").to_dicts()[0]
    return row["verdict"], {k.removeprefix("score_"): v for k, v in row.items() if k.startswith("score_")}


def _ui_drift(ui: Ui, day: str, want: tuple[str, dict]) -> tuple[str, dict]:
    """Selects ``day`` in the Partitions tab and reads its verdict and scores; re-reads
    for a few seconds while they differ from ``want`` (the panel may still be loading)."""
    page = ui.page
    page.get_by_title(day, exact=True).first.click()
    expect(page).to_have_url(re.compile(f"partition={day}"))
    deadline = time.monotonic() + 5
    while True:
        expect(page.get_by_role("cell", name="scores", exact=True).first).to_be_visible()
        seen = _metadata_value(page, "verdict"), json.loads(_metadata_value(page, "scores"))
        if (seen[0] == want[0] and _same_scores(seen[1], want[1])) or time.monotonic() > deadline:
            return seen
        page.wait_for_timeout(500)


def test_3_each_partition_shows_its_own_drift_verdict_and_scores(ui):
    with ui.step("partitions"):
        page = ui.page
        _nav(page, "Catalog")
        _link(page, "drift_report").click()
        page.get_by_role("tab", name="Partitions").click()
        # Hide the missing days, so the materialized ones are in the (virtualized) list.
        page.get_by_text(re.compile(r"^Missing \(\d+\)")).click()
        expect(page.get_by_text(re.compile(r"^Materialized \(4\)"))).to_be_visible()
        wrong = []
        for day in (DAY, *BACKFILL):
            want = _lake_drift(ui, day)
            seen = _ui_drift(ui, day, want)
            if seen[0] != want[0] or not _same_scores(seen[1], want[1]):
                wrong.append(f"{day}: UI verdict {seen[0]} scores {seen[1]}\n"
                             f"{' ' * len(day)}  lake verdict {want[0]} scores {want[1]}")
        assert not wrong, ("drift_report's Partitions tab does not show each day's own drift (lake: "
                           "CT_HOME/lake/drift_report/<day>.parquet):\n" + "\n".join(wrong))


# -- automation and the human in the loop ------------------------------------------------------------------------

TICKS = """query($name: String!) { sensorOrError(sensorSelector: {repositoryLocationName: "ct_assets",
  repositoryName: "__repository__", sensorName: $name}) {
  ... on Sensor { sensorState { ticks(limit: 1) { status skipReason } } } } }"""


def _latest_tick(url: str, timeout: float = 120) -> dict:
    """The sensor's latest tick (the daemon in `dagster dev` ticks it once at start)."""
    deadline = time.monotonic() + timeout
    while True:
        ticks = gql(url, TICKS, {"name": SENSOR})["sensorOrError"]["sensorState"]["ticks"]
        if ticks or time.monotonic() > deadline:
            assert ticks, f"{SENSOR} has not ticked within {timeout:.0f} s"
            return ticks[0]
        time.sleep(2)


def test_4_the_automation_page_shows_a_sensors_skip_reason(ui):
    with ui.step("sensor"):
        tick = _latest_tick(ui.url)
        assert tick["status"] == "SKIPPED", tick
        page = ui.page
        _nav(page, "Automation")
        _link(page, SENSOR).click()
        expect(page).to_have_url(re.compile(f"/sensors/{SENSOR}"))
        latest = page.get_by_role("row").filter(has=page.get_by_role("button", name="View logs")).first
        latest.get_by_role("button").filter(has_not_text="View logs").first.click()
        dialog = _dialog(page)
        expect(dialog).to_contain_text("Skip reason:")
        shown = re.search(r"Skip reason:\s*(.+)", dialog.inner_text()).group(1).strip()
        assert shown == tick["skipReason"], f"the UI shows skip reason {shown!r}, the tick has {tick['skipReason']!r}"
        _button(dialog, "Close").click()


APPROVAL_CONFIG = f"""ops:
  record_approval:
    config:
      version: {BAD_VERSION}
      reviewer: ui-test
"""


def test_5_approving_a_version_that_does_not_exist_names_it(ui, record_property):
    with ui.step("approve"):
        page = ui.page
        _nav(page, "Jobs")
        _link(page, "approve_model").click()
        page.get_by_role("tab", name="Launchpad").click()
        # The config editor: select what it scaffolded and type ours over it.
        page.get_by_text("record_approval:").first.click()
        page.keyboard.press("Control+A")
        page.keyboard.insert_text(APPROVAL_CONFIG)
        expect(page.get_by_text("No errors")).to_be_visible()
        _button(page, "Launch Run").click()
        expect(page).to_have_url(re.compile(r"/runs/[0-9a-f-]{36}"))
        run_id = page.url.rsplit("/runs/", 1)[1].split("?")[0]
        status = wait_for_run(ui.url, run_id, RUN_TIMEOUT)
        assert status == "FAILURE", f"approve_model on version {BAD_VERSION} ended {status}"
        failure = page.get_by_text("STEP_FAILURE", exact=True).first
        expect(failure).to_be_visible()
        # Its log row (the virtualized list's item): time, op, event type, then the message.
        row = failure.locator("xpath=ancestor::*[@data-index][1]")
        lines = [ln.strip() for ln in row.inner_text().splitlines() if ln.strip()]
        message = lines[lines.index("STEP_FAILURE") + 1:]
        naming = [ln for ln in message if re.search(rf"\b{BAD_VERSION}\b", ln)]
        shown = naming[0] if naming else " | ".join(message[:4])
        record_property("approve_model_error", shown)
        print(f"approve_model on version {BAD_VERSION}: the run shows: {shown}\n  its failure, first lines: {message[:5]}")
        assert naming, f"the run's failure does not name version {BAD_VERSION}: {message[:8]}"
        # The one line approve_model gives (Dagster prefixes the Failure class name).
        expected = (f"version {BAD_VERSION} is not registered in ct_text_classifier; registered versions: "
                    "none yet (train a model first)")
        assert naming[0].endswith(expected), naming[0]
