"""Credentials never show: a run made with known fake keys (environment, Secret block, AwsCredentials block),
then its logs, report, artifacts, flow-run parameters, console output and error messages are scanned for them."""

from __future__ import annotations

import json

import pytest
import s3fs

from openimages_etl.cli import main
from openimages_etl.errors import OpenImagesETLError
from openimages_etl.flows import export_open_images
from openimages_etl.options import Access, ExportOptions, Location

from .helpers import make_archive

pytestmark = pytest.mark.usefixtures("prefect_api")
# moto accepts any key pair, so these reach a real S3 API and are used for real.
ENV_KEYS = {
    "AWS_ACCESS_KEY_ID": "AKIAENVFAKE000000001",
    "AWS_SECRET_ACCESS_KEY": "env/FAKE/secret+Value0000000000000001",
}
BLOCK_KEYS = {"key": "AKIASECRETBLOCKFAKE2", "secret": "block/FAKE/secret+Value000000000000002"}
AWS_BLOCK_KEYS = ("AKIAAWSBLOCKFAKE0003", "aws/FAKE/secret+Value0000000000000000003")
SECRETS = [*ENV_KEYS.values(), *BLOCK_KEYS.values(), *AWS_BLOCK_KEYS]


def _run_record(flow_run_id) -> str:
    """Everything Prefect keeps about a run, as text: parameters, state, logs, artifacts."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        LogFilter,
        LogFilterFlowRunId,
        TaskRunFilter,
    )
    from prefect.client.schemas.sorting import ArtifactSort
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()  # logs reach the server in batches
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run_id)
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])), limit=200, offset=0
        )
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])),
            flow_run_filter=FlowRunFilter(),
            task_run_filter=TaskRunFilter(),
            sort=ArtifactSort.CREATED_DESC,
            limit=200,
            offset=0,
        )
    assert logs and artifacts is not None
    return "\n".join([run.model_dump_json(), *(log.message for log in logs), *(a.model_dump_json() for a in artifacts)])


@pytest.fixture
def fake_keys(s3_endpoint, monkeypatch):
    from prefect.blocks.system import Secret
    from prefect_aws import AwsClientParameters, AwsCredentials

    for key, value in ENV_KEYS.items():
        monkeypatch.setenv(key, value)
    Secret(value={**BLOCK_KEYS, "client_kwargs": {"endpoint_url": s3_endpoint}}).save("oi-source", overwrite=True)
    AwsCredentials(
        aws_access_key_id=AWS_BLOCK_KEYS[0],
        aws_secret_access_key=AWS_BLOCK_KEYS[1],
        aws_client_parameters=AwsClientParameters(endpoint_url=s3_endpoint),
    ).save("oi-dest", overwrite=True)


@pytest.mark.slow
def test_no_credential_reaches_logs_reports_artifacts_parameters_or_errors(fake_keys, s3_bucket, cvat_dir, capfd):
    s3 = s3fs.S3FileSystem(skip_instance_cache=True)
    s3.put_file(str(make_archive(cvat_dir, "zip")), f"{s3_bucket}/in/ds.zip")
    options = ExportOptions(
        source=Access(block="secret/oi-source"),
        dest=Location(url=f"s3://{s3_bucket}/out", block="aws-credentials/oi-dest"),
    )
    state = export_open_images(source=f"s3://{s3_bucket}/in/ds.zip", options=options, return_state=True)
    report = state.result()
    assert report["status"] == "published"
    s3.invalidate_cache()
    seen = [
        _run_record(state.state_details.flow_run_id),
        json.dumps(report),
        s3.cat_file(f"{s3_bucket}/out/ds.report.json").decode(),
        s3.cat_file(f"{s3_bucket}/out/ds.report.md").decode(),
    ]
    # A failing run: a destination bucket that does not exist, and a source through the environment's keys.
    options = ExportOptions(dest="s3://no-such-bucket-here/out")
    failed = export_open_images(source=f"s3://{s3_bucket}/in/ds.zip", options=options, return_state=True)
    error = failed.result(raise_on_failure=False)
    assert isinstance(error, OpenImagesETLError)
    seen += [str(error), repr(error), _run_record(failed.state_details.flow_run_id)]
    captured = capfd.readouterr()
    seen += [captured.out, captured.err]
    leaks = [secret for secret in SECRETS for text in seen if secret in text]
    assert not leaks


@pytest.mark.parametrize(
    "arguments",
    [
        ["export", "s3://AKIAURLFAKE:url%2Fsecret@bucket/x.zip", "out"],
        ["export", "x.zip", "s3://bucket/out", "--dest-options", '{"secret": "opt/FAKE/secret"}'],
        ["validate", "x.zip", "--source-options", '{"client_kwargs": {"aws_secret_access_key": "opt/FAKE/secret"}}'],
    ],
)
def test_credentials_in_urls_or_options_are_refused_before_a_run_exists(arguments, capsys):
    assert main(arguments) == 2
    err = capsys.readouterr().err
    assert "credentials" in err and "url%2Fsecret" not in err and "opt/FAKE/secret" not in err
