"""Storage credentials from Prefect blocks, loaded inside the run so they never become flow-run parameters."""

from __future__ import annotations

import json
from typing import Any

from prefect.blocks.core import Block
from prefect.blocks.system import Secret

from openimages_etl.errors import UsageError
from openimages_etl.options import Access


def storage_options(place: Access) -> dict[str, Any]:
    """fsspec options for a storage location: its (credential-free) options plus what its block holds.

    The block is `secret/NAME` (a Secret whose value is a JSON object of fsspec options, e.g.
    `{"key": ..., "secret": ...}` for S3, `{"token": ...}` for GCS) or `aws-credentials/NAME`
    (prefect-aws's AwsCredentials, with the `aws` extra installed)."""
    merged, block = dict(place.options), place.block
    if not block:
        return merged
    try:
        loaded = Block.load(block)
    except (ValueError, KeyError) as exc:
        raise UsageError(f"cannot load block {block!r}: {type(exc).__name__}") from None
    if isinstance(loaded, Secret):
        value = loaded.get()
        value = json.loads(value) if isinstance(value, str) else value
        if not isinstance(value, dict):
            raise UsageError(f"Secret block {block!r} must hold a JSON object of fsspec storage options")
        return {**merged, **value}
    if hasattr(loaded, "aws_access_key_id"):
        return {**merged, **_aws_options(loaded)}
    raise UsageError(f"block {block!r} is a {type(loaded).__name__}: use a Secret or an AwsCredentials block")


def _aws_options(credentials: Any) -> dict[str, Any]:
    """prefect-aws AwsCredentials -> s3fs options."""
    secret = credentials.aws_secret_access_key
    options = {
        "key": credentials.aws_access_key_id,
        "secret": secret.get_secret_value() if secret else None,
        "token": credentials.aws_session_token,
    }
    client = {"region_name": credentials.region_name}
    endpoint = getattr(credentials.aws_client_parameters, "endpoint_url", None)
    if endpoint:
        client["endpoint_url"] = endpoint
    options["client_kwargs"] = {k: v for k, v in client.items() if v}
    return {k: v for k, v in options.items() if v}
