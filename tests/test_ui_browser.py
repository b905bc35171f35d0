"""The Prefect UI as people see it, in a real browser: Debian's chromium driven by Playwright, against
`prefect server start`, in both UIs the server serves (V1 at the old routes, V2 under /v2).

What must hold in each: the run report shows its contact sheet as a loaded picture and says where the zip is;
a failed run's report shows its first failing rows and the failing files; the Custom run form lists every
parameter with its description, and the choices of the enums. Screenshots go to the test's temporary folder;
with OPENIMAGES_ETL_DOCS_SCREENSHOTS=docs the report's also goes there, for the README.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Locator, Page, expect, sync_playwright

from .e2e import BIN, PrefectREST, T, client_env, running, wait_for

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"  # Debian's package (.ci/run installs it): Playwright's own download is not reachable
# V2 draws a report's markdown twice (again once all of its data has arrived): assertions wait until they hold.
expect.set_options(timeout=60_000)
# Without the background-networking flags chromium keeps calling Google's hosts, which a closed network refuses.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
UIS = {"v1": "", "v2": "/v2"}
LOADED = "img => img.complete && img.naturalWidth"


@pytest.fixture(scope="module")
def runs(prefect_server, sample_dirs, tmp_path_factory) -> dict:
    """The demo and a failed export run against the server from a shell, and `serve` running for the form."""
    base = tmp_path_factory.mktemp("ui")
    env = client_env(prefect_server, base)
    demo = subprocess.run(
        [str(BIN / "openimages-etl"), "demo", "--dir", str(base / "demo")], env=env, capture_output=True, text=True
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    broken = Path(shutil.copytree(sample_dirs["cvat"], base / "broken"))
    sorted((broken / "images" / "train").iterdir())[0].write_bytes(b"not a jpeg")
    empty_mask = sorted((broken / "masks" / "validation").iterdir())[0]
    Image.new("L", (64, 48), 0).save(empty_mask, "PNG")  # a mask with no object pixel fails its row
    failed = subprocess.run(
        [str(BIN / "openimages-etl"), "export", str(broken), str(base / "failed"), "--name", "broken"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert failed.returncode == 1, failed.stderr[-3000:]
    api = PrefectREST(prefect_server)
    (base / "serving").mkdir()
    with running(
        ["openimages-etl", "serve", str(base / "incoming"), str(base / "exports")],
        env,
        base / "serve.log",
        base / "serving",
    ):
        adhoc = wait_for(lambda: _deployment(api), 120, "the served deployments")
        yield {
            "origin": prefect_server.removesuffix("/api"),
            "api": api,
            "adhoc": adhoc,
            "base": base,
            "zip": base / "demo" / "export" / "sample-openimages.zip",
            "report": _artifact(api, "openimages-sample-openimages-report"),
            "zip_note": _artifact(api, "openimages-sample-openimages-zip"),
            "failed": _artifact(api, "openimages-broken-report"),
            "empty_mask": empty_mask.name,
        }


def _deployment(api: PrefectREST) -> dict | None:
    try:
        return api.deployment("export-open-images", "adhoc")
    except httpx.HTTPStatusError:  # not registered yet
        return None


def _artifact(api: PrefectREST, key: str) -> dict:
    body = {"artifacts": {"key": {"any_": [key]}}, "sort": "UPDATED_DESC", "limit": 1}
    [artifact] = api.http.post("/artifacts/filter", json=body).raise_for_status().json()
    return artifact


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser) -> Page:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(60_000)  # the first visit compiles nothing, but a loaded 2-core machine is slow
    yield context.new_page()
    context.close()


def _open(page: Page, runs: dict, ui: str, route: str, shows: str) -> None:
    page.goto(f"{runs['origin']}{UIS[ui]}{route}")
    page.get_by_text(shows).first.wait_for()


def _settled(action: Callable[[], T], what: str) -> T:
    """Repeat a browser action until it returns something true. V2 draws a report's markdown again once all of its data
    has arrived, so a node found first can leave the page in the middle of an action: the next try finds the new one."""

    def attempt() -> T | None:
        try:
            return action()
        except PlaywrightError:
            return None

    return wait_for(attempt, 90, what)


def _scroll_to(locator: Locator) -> None:
    _settled(lambda: locator.scroll_into_view_if_needed(timeout=10_000) or True, "a stable element to scroll to")


def _loaded(page: Page, alt: str) -> int:
    """The natural width of the picture titled `alt` once the browser has decoded it."""
    picture = page.locator(f'img[alt="{alt}"]').first
    _scroll_to(picture)
    return _settled(lambda: picture.evaluate(LOADED), f"the picture {alt!r} to load")


def _screenshot(page: Page, path: Path, at: str | None = None) -> Path:
    """What the window shows, scrolled to the text `at` (V1 scrolls an inner pane, so a full-page shot would not do)."""
    if at:
        _scroll_to(page.get_by_text(at).first)
    page.screenshot(path=path)
    return path


def _report_picture(page: Page, path: Path) -> Path:
    """The report from its title to the last contact sheet, without the UI's side bars: the README's picture."""
    top = page.locator("h1", has_text="Open Images export").first.bounding_box()
    sheets = page.locator('img[alt^="Contact sheet"]')
    bottom = sheets.nth(sheets.count() - 1).bounding_box()
    scroll = page.evaluate("window.scrollY")
    clip = {"x": top["x"] - 16, "y": top["y"] + scroll - 16, "width": bottom["x"] + bottom["width"] - top["x"] + 32}
    clip["height"] = bottom["y"] + scroll + bottom["height"] + 16 - clip["y"]
    page.screenshot(path=path, full_page=True, clip=clip)
    docs = os.environ.get("OPENIMAGES_ETL_DOCS_SCREENSHOTS")
    if docs:
        shutil.copy(path, Path(docs) / path.name)
    return path


def _from_the_run(page: Page, runs: dict, ui: str, artifact: dict, shows: str) -> None:
    """The run's page, its Artifacts tab, then the artifact's card: how a person reaches the report."""
    _open(page, runs, ui, f"/runs/flow-run/{artifact['flow_run_id']}", "Artifacts")
    page.get_by_text("Artifacts", exact=True).first.click()
    page.get_by_text(artifact["key"], exact=True).first.click()
    if ui == "v2":  # since Prefect 3.9 a run's card opens that very version (only a key's card opens its timeline)
        page.wait_for_url(f"**/artifacts/artifact/{artifact['id']}**")
        page.get_by_text(artifact["id"], exact=True).first.wait_for()  # the header names it by its full id
    page.get_by_text(shows).first.wait_for()


@pytest.mark.parametrize("ui", UIS)
def test_the_report_shows_its_pictures_and_where_the_zip_is(runs, page, ui, tmp_path):
    _from_the_run(page, runs, ui, runs["report"], "Open Images export: published")
    assert _loaded(page, "Contact sheet: train") > 0 and _loaded(page, "Box sizes") > 0
    zip_path = page.locator("code", has_text=str(runs["zip"])).first
    expect(zip_path).to_be_visible()
    expect(page.get_by_text("copy this location").first).to_be_visible()
    assert not page.locator(f'a[href*="{runs["zip"]}"]').count()  # no link that opens the UI's own 404 page
    _screenshot(page, tmp_path / f"run-report-{ui}.png", "Contact sheet: train")
    if ui == "v2":  # the default UI
        _report_picture(page, tmp_path / "run-report-prefect-ui.png")

    _open(page, runs, ui, f"/artifacts/artifact/{runs['zip_note']['id']}", "sample-openimages.zip")
    page.locator("code", has_text=str(runs["zip"])).first.wait_for()  # V2 draws code blocks a moment later
    _screenshot(page, tmp_path / f"zip-location-{ui}.png")


@pytest.mark.parametrize("ui", UIS)
def test_a_failed_run_shows_its_first_failing_rows_and_files(runs, page, ui, tmp_path):
    _from_the_run(page, runs, ui, runs["failed"], "Open Images export: failed")
    expect(page.get_by_text("First failing rows of each check").first).to_be_visible()
    row = page.locator("tr", has_text=runs["empty_mask"]).first  # file, line, column, check, value
    expect(row).to_contain_text("mask has no object pixel")
    expect(page.locator("tr", has_text="images/train/").first).to_be_visible()  # the image that does not decode
    assert _loaded(page, "Files that failed their checks") > 0
    _screenshot(page, tmp_path / f"failed-run-{ui}.png", "First failing rows of each check")


@pytest.mark.parametrize("ui", UIS)
def test_the_custom_run_form_lists_parameters_with_descriptions_and_choices(runs, page, ui, tmp_path):
    schema = runs["adhoc"]["parameter_openapi_schema"]
    _open(page, runs, ui, f"/deployments/deployment/{runs['adhoc']['id']}/run", "image_size")
    options = schema["definitions"]["ExportOptions"]["properties"]  # the `options` parameter's form, nested
    for name, field in [*schema["properties"].items(), *options.items()]:
        expect(page.locator("label", has_text=name).first).to_be_visible()
        expect(page.get_by_text(field["description"], exact=True).first).to_be_visible()
    for name, enum in (("image_size", "ImageSize"), ("on_invalid", "OnInvalid")):
        assert _choices(page, ui, name) == schema["definitions"][enum]["enum"]
    _screenshot(page, tmp_path / f"custom-run-{ui}.png", "image_size")


def _choices(page: Page, ui: str, name: str) -> list[str]:
    """Open the parameter's drop-down and read its options."""
    if ui == "v1":
        # the innermost property with that label: the nested `options` form holds the field
        field = page.locator(
            ".schema-form-property", has=page.locator(".schema-form-property__label", has_text=name)
        ).last
        field.locator(".p-select-button__control").focus()
        page.keyboard.press("ArrowDown")  # a mouse click can toggle it shut again; the keyboard opens it
    else:
        page.get_by_role("button", name=f"Select {name}").click()
    options = page.get_by_role("option")
    options.first.wait_for()
    choices = [text.strip() for text in options.all_inner_texts()]
    page.keyboard.press("Escape")
    options.first.wait_for(state="detached")
    return choices


def test_a_form_run_with_a_relative_dest_is_refused_with_the_absolute_path(runs, page, tmp_path):
    parameters = {"source": str(runs["zip"]), "options": {"dest": {"url": "ui-form-300k"}}}
    created = runs["api"].create_run(runs["adhoc"]["id"], parameters)
    assert created.status_code == 201, created.text
    run = runs["api"].wait_finished(created.json()["id"])
    serving = runs["base"] / "serving"
    message = (
        f"dest 'ui-form-300k' is a relative path: this run would resolve it against the folder its worker or serve "
        f"process started in ({serving}). Give an absolute path (such as {serving / 'ui-form-300k'}) or a URL."
    )
    assert run["state"]["type"] == "FAILED" and message in run["state"]["message"]
    assert not (serving / "ui-form-300k").exists()
    _open(page, runs, "v2", f"/runs/flow-run/{run['id']}", "is a relative path")  # the run's page says why
    _screenshot(page, tmp_path / "relative-dest-v2.png", "is a relative path")
