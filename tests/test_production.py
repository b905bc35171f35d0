"""End to end: a real Prefect server, moto's S3 on 127.0.0.1, `openimages-etl serve`, and the three ways a run starts:
the UI's custom-run form, the cron schedule, and an uploaded archive (through the watcher or the relay)."""

from __future__ import annotations

import json
import shutil
import time
from datetime import datetime
from pathlib import Path

import fsspec
import httpx
import pytest

from openimages_etl.options import ExportOptions
from openimages_etl.production.events import OBJECT_CREATED

from .e2e import PrefectREST, client_env, running, start, wait_for
from .helpers import free_port, make_archive

pytestmark = pytest.mark.slow
CRON = "0 3 * * *"


@pytest.fixture(scope="module")
def bucket(s3_endpoint) -> str:
    name = f"e2e-{time.time_ns()}"
    fsspec.filesystem("s3").mkdir(name)
    return name


@pytest.fixture(scope="module")
def archive(sample_dirs, tmp_path_factory) -> Path:
    """The sample dataset as a CVAT zip: what users upload."""
    folder = Path(shutil.copytree(sample_dirs["cvat"], tmp_path_factory.mktemp("upload") / "dataset"))
    return make_archive(folder, "zip")


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """PREFECT_HOME and logs of the processes the tests start."""
    return tmp_path_factory.mktemp("clients")


@pytest.fixture(scope="module")
def api(prefect_server) -> PrefectREST:
    return PrefectREST(prefect_server)


@pytest.fixture(scope="module")
def served(prefect_server, api, bucket, home):
    """`openimages-etl serve` for the bucket's incoming/ prefix, until the module's tests are done."""
    with running(
        ["openimages-etl", "serve", f"s3://{bucket}/incoming/", f"s3://{bucket}/exports", "--cron", CRON],
        client_env(prefect_server, home),
        home / "serve.log",
    ):
        yield wait_for(lambda: _deployments(api), 120, "the served deployments")


def _deployments(api: PrefectREST) -> dict[str, dict] | None:
    names = {"adhoc": "export-open-images", "scheduled": "export-new-archives", "on-upload": "export-new-archives"}
    try:
        found = {name: api.deployment(flow, name) for name, flow in names.items()}
    except httpx.HTTPStatusError:  # 404: not registered yet
        return None
    automations = api.http.post("/automations/filter", json={}).json()
    return found if any(a["actions"][0].get("deployment_id") == found["on-upload"]["id"] for a in automations) else None


def _put(local: Path, url: str) -> float:
    fsspec.filesystem("s3").put_file(str(local), url)
    return time.time()


def _timeline(api: PrefectREST, run: dict, uploaded: float, published: float) -> str:
    """Where the seconds from upload to published zip went, from the server's own timestamps."""

    def at(stamp: str) -> float:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()

    [event] = api.events(OBJECT_CREATED, run["parameters"]["source"])
    run = api.run(run["id"])
    marks = [
        ("event received", at(event["received"])),
        ("run created", at(run["created"])),
        ("run started", at(run["start_time"])),
        ("zip published", published),
    ]
    steps, last = [], uploaded
    for label, stamp in marks:
        steps.append(f"{label} +{stamp - last:.1f}")
        last = stamp
    return f"upload -> published zip {published - uploaded:.1f} s ({', '.join(steps)})"


def _exists(url: str) -> bool:
    fs = fsspec.filesystem("s3")
    fs.invalidate_cache()
    return fs.exists(url)


def _report(url: str) -> dict:
    return json.loads(fsspec.filesystem("s3").cat_file(url))


def _note(capsys, text: str) -> None:
    with capsys.disabled():
        print(f"\n[e2e] {text}")


def _upload_runs(api: PrefectREST, served: dict, url: str) -> list[dict]:
    return [r for r in api.runs(served["on-upload"]["id"]) if r["parameters"].get("source") == url]


def test_the_ui_form_is_typed_described_and_checked(served, api, bucket, archive, capsys):
    deployment = served["adhoc"]
    schema = deployment["parameter_openapi_schema"]
    assert list(schema["properties"]) == ["source", "options"] and schema["required"] == ["source", "options"]
    options = schema["definitions"]["ExportOptions"]
    assert list(options["properties"]) == list(ExportOptions.model_fields)  # the form is the model
    for model in ("ExportOptions", "SelectionSpec", "Location", "Access"):
        for name, field in schema["definitions"][model]["properties"].items():
            assert len(field["description"]) > 20, name
    assert schema["definitions"]["ImageSize"]["enum"] == ["original", "300k", "200k"]
    assert schema["definitions"]["OnInvalid"]["enum"] == ["fail", "drop"]
    assert schema["definitions"]["BoxFlag"]["enum"] == ["occluded", "truncated", "group-of", "depiction", "inside"]
    assert schema["definitions"]["ResizeMethod"]["enum"] == ["fast", "tfds"]
    assert (options["properties"]["resize_method"]["$ref"], options["properties"]["resize_method"]["default"]) == (
        "#/definitions/ResizeMethod",
        "fast",
    )
    assert options["properties"]["image_size"]["$ref"] == "#/definitions/ImageSize"
    assert (options["properties"]["image_size"]["default"], options["properties"]["per_subset"]["default"]) == (
        "original",
        False,
    )
    assert deployment["parameters"] == {"options": {"dest": {"url": f"s3://{bucket}/exports"}}}
    assert deployment["enforce_parameter_schema"] and deployment["global_concurrency_limit"]["limit"] == 1

    prefilled = deployment["parameters"]["options"]  # what the form shows; a run's options replace them as a whole
    refused = api.create_run(
        deployment["id"], {"source": "s3://x/y.zip", "options": {**prefilled, "image_size": "999k"}}
    )
    assert refused.status_code == 409 and "999k" in refused.text  # rejected before any run exists

    source = f"s3://{bucket}/uploads/form.zip"
    uploaded = _put(archive, source)
    chosen = {**prefilled, "name": "from-form", "image_size": "300k", "subsets": ["validation"]}
    created = api.create_run(deployment["id"], {"source": source, "options": chosen})
    assert created.status_code == 201, created.text
    run = api.wait_finished(created.json()["id"])
    assert run["state"]["type"] == "COMPLETED", run["state"]
    _note(capsys, f"UI custom run: submitted -> finished {time.time() - uploaded:.1f} s")
    report = _report(f"s3://{bucket}/exports/from-form.report.json")
    assert (report["image_size"], list(report["subsets"])) == ("300k", ["validation"])
    artifacts = {a["key"]: a for a in api.artifacts(run["id"])}
    assert set(artifacts) == {f"openimages-from-form-{kind}" for kind in ("report", "counts", "zip", "conversion")}
    # moto is no AWS console: the location is shown to copy
    assert f"```\ns3://{bucket}/exports/from-form.zip\n```" in artifacts["openimages-from-form-zip"]["data"]
    assert "Open Images export: published" in artifacts["openimages-from-form-report"]["data"]


def _await_zip(bucket: str, name: str) -> float:
    """Wait for DEST/NAME.zip; the time it appeared."""
    wait_for(lambda: _exists(f"s3://{bucket}/exports/{name}.zip"), 180, f"{name}.zip", every=0.2)
    return time.time()


def _the_one_run(api: PrefectREST, served: dict, url: str) -> dict:
    """The single on-upload run for `url`, once finished."""
    [run] = _upload_runs(api, served, url)
    assert api.wait_finished(run["id"])["state"]["type"] == "COMPLETED"
    return run


def test_an_upload_seen_by_the_watcher_is_exported_once(
    served, api, prefect_server, bucket, archive, home, tmp_path, capsys
):
    state, url = tmp_path / "watch.json", f"s3://{bucket}/incoming/watched.zip"
    command = ["openimages-etl", "watch", f"s3://{bucket}/incoming", "--pattern", "*.zip", "--state", str(state)]
    with running([*command, "--interval", "1"], client_env(prefect_server, home), home / "watch.log"):
        wait_for(lambda: "watching" in (home / "watch.log").read_text(), 60, "the watcher to start")
        uploaded = _put(archive, url)
        published = _await_zip(bucket, "watched")
    run = _the_one_run(api, served, url)
    _note(capsys, f"watcher (1 s polls): {_timeline(api, run, uploaded, published)}")
    again = start([*command, "--once"], client_env(prefect_server, home), home / "watch-restart.log")
    assert again.wait(60) == 0
    assert "emitted" not in (home / "watch-restart.log").read_text().split("watching")[-1]  # a restart re-emits nothing
    assert len(_upload_runs(api, served, url)) == 1


def test_a_notification_posted_twice_gives_one_export(served, api, prefect_server, bucket, archive, home, capsys):
    port, url = free_port(), f"s3://{bucket}/incoming/notified.zip"
    with running(
        ["openimages-etl", "relay", "--port", str(port)], client_env(prefect_server, home), home / "relay.log"
    ):
        wait_for(lambda: _answers(f"http://127.0.0.1:{port}/"), 60, "the relay")
        uploaded = _put(archive, url)
        etag = fsspec.filesystem("s3").info(url)["ETag"].strip('"')
        record = {
            "eventName": "ObjectCreated:Put",
            "s3": {
                "bucket": {"name": bucket},
                "object": {"key": "incoming/notified.zip", "size": archive.stat().st_size, "eTag": etag},
            },
        }
        for _ in range(2):  # S3 delivers at least once: the same notification may come twice
            answer = httpx.post(f"http://127.0.0.1:{port}/", json={"Records": [record]}, timeout=30)
            assert answer.json() == {"emitted": [url]}
        published = _await_zip(bucket, "notified")
    run = _the_one_run(api, served, url)
    _note(capsys, f"relay (notification posted twice): {_timeline(api, run, uploaded, published)}")
    time.sleep(2)  # the run came within a second of the events and has finished: a second one would exist by now
    assert len(_upload_runs(api, served, url)) == 1
    assert len(api.events(OBJECT_CREATED, url)) == 1  # one event id, stored once


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_cron_deployment_is_scheduled_and_exports_what_is_new(served, api, bucket, archive, capsys):
    deployment = served["scheduled"]
    assert [s["schedule"]["cron"] for s in deployment["schedules"]] == [CRON]
    assert deployment["global_concurrency_limit"]["limit"] == 1
    assert deployment["concurrency_options"]["collision_strategy"] == "CANCEL_NEW"
    upcoming = wait_for(lambda: api.runs(deployment["id"], ["SCHEDULED"]), 180, "runs scheduled by the server")
    starts = [r["expected_start_time"] for r in upcoming]
    assert all("T03:00:00" in start for start in starts) and len(set(s[:10] for s in starts)) == len(starts)
    _note(capsys, f"cron {CRON}: server scheduled {len(starts)} runs, first {starts[0]}")

    _put(archive, f"s3://{bucket}/incoming/nightly.zip")
    started = time.time()
    created = api.create_run(deployment["id"], {})  # what the schedule does at 03:00, now
    run = api.wait_finished(created.json()["id"])
    assert run["state"]["type"] == "COMPLETED", run["state"]
    _note(capsys, f"scheduled deployment, run now: submitted -> finished {time.time() - started:.1f} s")
    [summary] = [a for a in api.artifacts(run["id"]) if a["key"] == "openimages-new-archives"]
    exported = [row["archive"] for row in json.loads(summary["data"])]
    assert exported == [f"s3://{bucket}/incoming/nightly.zip"]  # earlier uploads were exported already
