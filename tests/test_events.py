"""Object versions, the ledger, bucket notifications, the watcher's state and the relay: plain logic,
no Prefect server."""

from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.request

import fsspec
import pytest

from openimages_etl.production.events import OBJECT_CREATED, WatchState, object_event, parse_notification, poll_once
from openimages_etl.production.relay import RelayServer
from openimages_etl.storage.objects import (
    ObjectVersion,
    exported_keys,
    list_objects,
    record_export,
    version_of,
    with_digest,
)

ETAG = "9b2cf535f27731c974343645a3985328"


def s3_record(bucket: str, key: str, etag: str = ETAG, event: str = "ObjectCreated:Put", size: int = 10) -> dict:
    """One record of an S3 event notification, as S3 (and MinIO, with an `s3:` prefix) write it."""
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": event,
        "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": size, "eTag": etag, "sequencer": "0A1B"}},
    }


NOTIFICATIONS = {
    "s3": {"Records": [s3_record("b", "incoming/my+data%282%29.zip")]},
    "minio": {
        "EventName": "s3:ObjectCreated:Put",
        "Key": "b/incoming/my data(2).zip",
        "Records": [s3_record("b", "incoming/my+data%282%29.zip", event="s3:ObjectCreated:Put")],
    },
    "sns": {
        "Type": "Notification",
        "MessageId": "m1",
        "TopicArn": "arn:aws:sns:us-east-1:1:t",
        "Message": json.dumps({"Records": [s3_record("b", "incoming/my+data%282%29.zip")]}),
    },
    "eventbridge": {
        "version": "0",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "detail": {"bucket": {"name": "b"}, "object": {"key": "incoming/my data(2).zip", "size": 10, "etag": ETAG}},
    },
}


@pytest.mark.parametrize("sender", sorted(NOTIFICATIONS))
def test_every_sender_names_the_same_object_version(sender):
    created = parse_notification(json.dumps(NOTIFICATIONS[sender])).created
    assert created == [ObjectVersion("s3://b/incoming/my data(2).zip", ETAG, 10)]


@pytest.mark.parametrize(
    "body",
    [
        {"Records": [s3_record("b", "x.zip", event="ObjectRemoved:Delete")]},
        {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"},
        {"version": "0", "detail-type": "Object Deleted", "source": "aws.s3", "detail": {}},
    ],
)
def test_other_notifications_ask_for_nothing(body):
    assert parse_notification(json.dumps(body)).created == []


def test_sns_subscription_is_left_for_the_operator_to_confirm():
    body = {"Type": "SubscriptionConfirmation", "SubscribeURL": "https://sns.example/confirm?t=1", "Token": "t"}
    notification = parse_notification(json.dumps(body))
    assert notification.subscribe_url == "https://sns.example/confirm?t=1" and notification.created == []


@pytest.mark.parametrize(
    "body", ["[]", "not json", json.dumps({"hello": 1}), json.dumps({"Records": [{"eventName": "ObjectCreated:Put"}]})]
)
def test_unreadable_notifications_raise(body):
    with pytest.raises((ValueError, KeyError)):
        parse_notification(body)


@pytest.mark.parametrize(
    "info, version",
    [
        ({"ETag": '"ABC123"', "size": 3}, "abc123"),
        ({"etag": 'W/"abc123-2"', "size": 3}, "abc123-2"),
        ({"size": 3, "mtime": 1700000000.5}, "3-1700000000.5"),
        ({"size": 3, "created": 1700000000.25}, "3-1700000000.25"),
    ],
)
def test_version_of_an_object(info, version):
    assert version_of(info) == version


def test_one_event_id_per_object_version():
    first, again, changed = (
        ObjectVersion("s3://b/x.zip", "e1"),
        ObjectVersion("s3://b/x.zip", "e1", 5),
        ObjectVersion("s3://b/x.zip", "e2"),
    )
    assert (
        object_event(first, "watch")["id"] == object_event(again, "relay")["id"] != object_event(changed, "watch")["id"]
    )
    event = object_event(again, "relay")
    assert event["event"] == OBJECT_CREATED
    assert event["resource"] == {
        "prefect.resource.id": "s3://b/x.zip",
        "prefect.resource.name": "x.zip",
        "openimages.etag": "e1",
        "openimages.size": "5",
    }


@pytest.fixture(params=["file", "memory", "s3"])
def prefix(request, tmp_path) -> str:
    """An empty folder or prefix on each kind of store."""
    if request.param == "file":
        return str(tmp_path / "incoming")
    if request.param == "memory":
        return f"memory://{tmp_path.name}/incoming"
    return f"s3://{request.getfixturevalue('s3_bucket')}/incoming"


def _put(url: str, data: bytes) -> None:
    fs, path = fsspec.core.url_to_fs(url)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    fs.pipe_file(path, data)


def test_listing_finds_matching_objects_with_their_versions(prefix):
    assert list_objects(prefix, ["*.zip"]) == []  # an empty prefix does not exist on object stores
    for name in ("a.zip", "sub/b.zip", "notes.txt", "c.tar.gz"):
        _put(f"{prefix}/{name}", name.encode())
    listed = list_objects(prefix, ["*.zip", "*.tar.gz"])
    assert [o.url.rsplit("/incoming/", 1)[1] for o in listed] == ["a.zip", "c.tar.gz", "sub/b.zip"]
    assert all(o.url.startswith(("file://", "memory://", "s3://")) for o in listed)
    assert list_objects(listed[0].url, ["*.zip"]) == [listed[0]]  # one object named directly
    _put(f"{prefix}/a.zip", b"new bytes")
    assert list_objects(prefix, ["a.zip"])[0].version != listed[0].version


def test_s3_listing_and_notification_agree_on_the_version(s3_bucket):
    _put(f"s3://{s3_bucket}/incoming/x.zip", b"archive bytes")
    [listed] = list_objects(f"s3://{s3_bucket}/incoming", ["*.zip"])
    head = fsspec.filesystem("s3").info(f"{s3_bucket}/incoming/x.zip")
    [notified] = parse_notification(
        json.dumps({"Records": [s3_record(s3_bucket, "incoming/x.zip", head["ETag"].strip('"'))]})
    ).created
    assert notified.event_id == listed.event_id


def test_ledger_holds_one_entry_per_version(prefix):
    dest = prefix.replace("/incoming", "/exports")
    first, second = ObjectVersion("s3://b/x.zip", "e1"), ObjectVersion("s3://b/x.zip", "e2")
    assert exported_keys(dest) == set()
    record_export(first, {"status": "published", "output": "s3://b/out/x.zip"}, dest)
    record_export(second, {"status": "rejected", "error": "InvalidDataError"}, dest)
    assert exported_keys(dest) == {first.key, second.key}


class Emitted(list):
    """An emit step that keeps what it was given, or fails like an unreachable API."""

    fail = False

    def __call__(self, events):
        if self.fail:
            raise ConnectionError("Prefect API unreachable")
        self.extend(events)


def test_watcher_emits_new_and_changed_objects_once_across_restarts(tmp_path):
    incoming, state_file, emitted = tmp_path / "incoming", tmp_path / "state.json", Emitted()
    incoming.mkdir()
    (incoming / "a.zip").write_bytes(b"a")
    assert [o.url for o in poll_once(str(incoming), ["*.zip"], WatchState(state_file), emitted)] == [
        (incoming / "a.zip").as_uri()
    ]
    assert poll_once(str(incoming), ["*.zip"], WatchState(state_file), emitted) == []  # a restart reads the state
    (incoming / "b.zip").write_bytes(b"b")
    emitted.fail = True
    with pytest.raises(ConnectionError):
        poll_once(str(incoming), ["*.zip"], WatchState(state_file), emitted)
    emitted.fail = False
    assert [o.url.rsplit("/", 1)[1] for o in poll_once(str(incoming), ["*.zip"], WatchState(state_file), emitted)] == [
        "b.zip"
    ]
    (incoming / "a.zip").write_bytes(b"a, second version")
    (incoming / "b.zip").unlink()
    assert [o.url.rsplit("/", 1)[1] for o in poll_once(str(incoming), ["*.zip"], WatchState(state_file), emitted)] == [
        "a.zip"
    ]
    assert [e["payload"]["url"].rsplit("/", 1)[1] for e in emitted] == ["a.zip", "b.zip", "a.zip"]
    assert set(json.loads(state_file.read_text())) == {(incoming / "a.zip").as_uri()}  # deleted objects are forgotten


@pytest.fixture
def relay():
    """The relay on a free port of 127.0.0.1, with a token, emitting into a list."""
    import threading

    emitted = Emitted()
    server = RelayServer("127.0.0.1", 0, emitted, ["*.zip"], token="s3cret")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", emitted
    server.shutdown()
    server.server_close()


def _post(url: str, body, authorization: str | None = "Bearer s3cret") -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
    if authorization:
        request.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_relay_turns_notifications_into_events(relay):
    url, emitted = relay
    body = {"Records": [s3_record("b", "in/x.zip"), s3_record("b", "in/readme.txt")]}
    assert _post(url, body) == (200, {"emitted": ["s3://b/in/x.zip"]})
    assert _post(url + "minio", NOTIFICATIONS["minio"], authorization="s3cret")[0] == 200  # any path; a bare token too
    assert [e["resource"]["prefect.resource.id"] for e in emitted] == [
        "s3://b/in/x.zip",
        "s3://b/incoming/my data(2).zip",
    ]
    assert _post(url, body, authorization=None)[0] == 401
    assert _post(url, body, authorization="Bearer wrong")[0] == 401
    assert _post(url, b"{not json")[0] == 400
    emitted.fail = True
    assert _post(url, body)[0] == 503  # the sender retries later
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200  # health check


def test_a_repeated_notification_gives_the_same_event(relay):
    url, emitted = relay
    body = {"Records": [s3_record("b", "in/x.zip")]}
    _post(url, body), _post(url, body)
    assert len(emitted) == 2 and emitted[0]["id"] == emitted[1]["id"]


def test_the_bridges_refuse_to_start_without_a_prefect_server(tmp_path, capsys):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from openimages_etl.cli import main

    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        assert main(["watch", str(tmp_path), "--once"]) == 2
        assert main(["relay", "--port", "0"]) == 2
    assert capsys.readouterr().err.count("PREFECT_API_URL is not set") == 2


def test_a_stamped_version_is_known_by_its_bytes_too(tmp_path):
    (tmp_path / "incoming").mkdir()
    (tmp_path / "incoming" / "x.zip").write_bytes(b"archive bytes")
    [listed] = list_objects(str(tmp_path / "incoming"), ["*.zip"])
    assert listed.stamped and listed.content_key is None  # a folder has no ETag: size and mtime
    hashed = with_digest(listed)
    assert hashed.digest == hashlib.sha256(b"archive bytes").hexdigest() and hashed.key == listed.key
    dest = str(tmp_path / "exports")
    record_export(hashed, {"status": "published"}, dest)
    assert exported_keys(dest) == {hashed.key, hashed.content_key}


@pytest.mark.usefixtures("prefect_api")
def test_a_first_watch_announces_only_what_appears_after_it_starts(tmp_path, capsys):
    from openimages_etl.cli import main

    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / "old.zip").write_bytes(b"uploaded before the watcher")
    watch = ["watch", str(incoming), "--once", "--state", str(tmp_path / "state.json")]
    assert main(watch) == 0
    printed = capsys.readouterr().out
    assert "baseline taken, 1 archive already there not announced" in printed and "nothing new under" in printed
    assert "every" not in printed and "emitted" not in printed
    (incoming / "new.zip").write_bytes(b"uploaded after")
    assert main(watch) == 0
    printed = capsys.readouterr().out
    assert f"emitted {OBJECT_CREATED} for {(incoming / 'new.zip').as_uri()}" in printed and "old.zip" not in printed
    assert "nothing new" not in printed and "already there" not in printed  # the state file is the baseline now
    assert main([*watch[:-2], "--state", str(tmp_path / "other.json"), "--existing", "announce"]) == 0
    assert capsys.readouterr().out.count("emitted") == 2  # asked to: everything already there


@pytest.mark.parametrize("signal_name", [pytest.param("SIGINT", marks=pytest.mark.slow), "SIGTERM"])
def test_a_watcher_started_in_the_background_stops_on_ctrl_c_and_kill(tmp_path, signal_name):
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "PREFECT_API_URL": "http://127.0.0.1:9/api"}  # an empty folder: nothing is ever sent
    # `command &` in a script: the shell starts it with SIGINT ignored
    watcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "openimages_etl.cli",
            "watch",
            str(tmp_path),
            "--interval",
            "0.2",
            "--state",
            str(tmp_path / "state.json"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        assert "watching" in watcher.stdout.readline() + watcher.stdout.readline()
        time.sleep(0.5)
        watcher.send_signal(getattr(signal, signal_name))
        assert watcher.wait(20) == 130
    finally:
        watcher.kill()
