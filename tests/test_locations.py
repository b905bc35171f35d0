"""Where a published file is, as the run's page shows it: a link only where a browser opens one."""

from __future__ import annotations

import pytest

from openimages_etl.report.pages import MARKDOWN, location
from openimages_etl.storage.locations import browser_url

COPY = "(copy this location: a browser does not open it from a web page)"


@pytest.mark.parametrize(
    "url, options, shown",
    [
        (
            "/data/exports/a.zip",
            None,
            f"`/data/exports/a.zip` {COPY}",
        ),  # a bare path resolves against the UI's origin: 404
        (
            "file:///data/exports/a.zip",
            None,
            f"`file:///data/exports/a.zip` {COPY}",
        ),  # browsers refuse file:// from a page
        ("memory://exports/a.zip", None, f"`memory://exports/a.zip` {COPY}"),
        ("https://cdn.example.org/x/a.zip", None, "[https://cdn.example.org/x/a.zip](https://cdn.example.org/x/a.zip)"),
        (
            "s3://bucket/x/a b.zip",
            None,
            "`s3://bucket/x/a b.zip` ([open in the console](https://s3.console.aws.amazon.com/s3/object/bucket?prefix=x/a%20b.zip))",
        ),
        (
            "gs://bucket/x/a.zip",
            None,
            "`gs://bucket/x/a.zip` ([open in the console](https://console.cloud.google.com/storage/browser/_details/bucket/x/a.zip))",
        ),
        (
            "s3://bucket/x/a.zip",
            {"endpoint_url": "http://minio:9000"},
            f"`s3://bucket/x/a.zip` {COPY}",
        ),  # not AWS's console
        (None, None, "none (nothing published)"),
    ],
)
def test_a_location_is_a_link_only_where_a_browser_opens_it(url, options, shown, monkeypatch):
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    assert MARKDOWN.line(location(url, lambda u: browser_url(u, options))) == shown


def test_s3_at_an_endpoint_set_in_the_environment_has_no_console_page(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    assert browser_url("s3://bucket/a.zip") is None and browser_url("gs://bucket/a.zip") is not None
