"""An export's options are declared once (options.py): the CLI's flags, the flows' UI form, the deployments'
defaults and the incremental flow all come from the model; the limits on untrusted input are read at the edge."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest
from prefect import flow
from prefect.utilities.callables import parameter_schema
from pydantic import Field

from openimages_etl import cli
from openimages_etl.cli_flags import add_options, options_of, parsed_options
from openimages_etl.config import BoxFlag, ImageSize, Limits, OnInvalid, ResizeMethod
from openimages_etl.deployments import ON_UPLOAD, Settings, build_deployments
from openimages_etl.errors import InvalidDataError, UsageError
from openimages_etl.flows import export_new_archives, export_open_images, validate_open_images
from openimages_etl.media.images import MediaError, convert_image
from openimages_etl.options import Access, ExportOptions, Location, SelectionSpec, ValidateOptions
from openimages_etl.storage.objects import canonical_url

from .helpers import noise_jpeg

EVERY_FLAG = [
    "--source-options",
    '{"anon": true}',
    "--source-block",
    "secret/in",
    "--dest-options",
    '{"anon": false}',
    "--dest-block",
    "aws-credentials/out",
    "--name",
    "ds",
    "--image-size",
    "300k",
    "--resize-method",
    "tfds",
    "--subsets",
    "train,validation",
    "--per-subset",
    "--on-invalid",
    "drop",
    "--work",
    "/tmp/work",
    "--no-reuse",
    "--classes",
    "Vehicle, Dog",
    "--exclude-classes",
    "Rocket",
    "--no-subclasses",
    "--only-matching",
    "--merge-subclasses",
    "--per-class",
    "3",
    "--max-images",
    "5",
    "--seed",
    "7",
    "--image-ids",
    "ids.txt",
    "--drop-boxes",
    "group-of,depiction",
]
EVERY_OPTION = ExportOptions(
    source=Access(options={"anon": True}, block="secret/in"),
    dest=Location(url="out", options={"anon": False}, block="aws-credentials/out"),
    name="ds",
    image_size=ImageSize.px300k,
    resize_method=ResizeMethod.tfds,
    subsets=("train", "validation"),
    per_subset=True,
    on_invalid=OnInvalid.drop,
    work="/tmp/work",
    reuse=False,
    selection=SelectionSpec(
        classes=("Vehicle", "Dog"),
        exclude_classes=("Rocket",),
        subclasses=False,
        only_matching=True,
        merge_subclasses=True,
        per_class=3,
        max_images=5,
        seed=7,
        image_ids="ids.txt",
        drop_boxes=(BoxFlag.group_of, BoxFlag.depiction),
    ),
)


def _parsed(model, argv: list[str]):
    parser = argparse.ArgumentParser()
    parser.add_argument("source")
    add_options(parser, model, aliases=cli.OLD_FLAGS)
    return parsed_options(parser.parse_args(argv), model)


def _leaves(model, path=()) -> set[tuple[str, ...]]:
    """Every field that holds a value, nested models walked."""
    found = set()
    for name, field in model.model_fields.items():
        inner = next(
            (
                a
                for a in getattr(field.annotation, "__args__", (field.annotation,))
                if isinstance(a, type) and hasattr(a, "model_fields")
            ),
            None,
        )
        found |= _leaves(inner, (*path, name)) if inner else {(*path, name)}
    return found


def test_every_option_is_a_flag_and_a_field_of_the_flows_form():
    assert {o.path for o in options_of(ExportOptions)} == _leaves(ExportOptions)
    assert _parsed(ExportOptions, ["src", "out", *EVERY_FLAG]) == EVERY_OPTION
    assert _parsed(ExportOptions, ["src", "out"]) == ExportOptions(dest="out")  # the defaults are the model's
    for run in (export_open_images, export_new_archives):
        schema = run.parameters.model_dump()
        assert schema["properties"]["source"]["type"] == "string"  # an event trigger fills it in
        assert schema["properties"]["options"]["$ref"] == "#/definitions/ExportOptions"
        assert list(schema["definitions"]["ExportOptions"]["properties"]) == list(ExportOptions.model_fields)
    form = validate_open_images.parameters.model_dump()["definitions"]["ValidateOptions"]["properties"]
    assert list(form) == ["source", "work", "max_errors"]
    assert _parsed(ValidateOptions, ["src", "--max-errors", "5"]).max_errors == 5


class Extended(ExportOptions):
    jpeg_quality: int = Field(72, description="JPEG quality of resized images")


def test_an_option_added_to_the_model_is_a_flag_and_a_form_field():
    @flow
    def extended_export(source: str, options: Extended) -> None: ...

    assert _parsed(Extended, ["src", "out", "--jpeg-quality", "90"]).jpeg_quality == 90
    [flag] = [o for o in options_of(Extended) if o.path == ("jpeg_quality",)]
    assert (flag.flag, flag.arguments["help"]) == ("--jpeg-quality", "JPEG quality of resized images (default: 72)")
    form = parameter_schema(extended_export).model_dump()["definitions"]["Extended"]["properties"]["jpeg_quality"]
    assert (form["description"], form["default"]) == ("JPEG quality of resized images", 72)


def test_old_flag_spellings_still_work():
    old = _parsed(
        ExportOptions,
        ["src", "out", "--storage-options", '{"anon": true}', "--dest-storage-options", "{}", "--work-dir", "/tmp/w"],
    )
    assert (old.source.options, old.work.url) == ({"anon": True}, "/tmp/w")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--drop-boxes", "blurry"], "--drop-boxes: Input should be 'occluded'"),
        (["--per-class", "-1", "--classes", "Dog"], "--per-class: Input should be greater than or equal to 0"),
        (["--per-class", "3"], "per_class, only_matching, merge_subclasses and exclude_classes need classes"),
    ],
)
def test_an_invalid_option_is_a_usage_error_naming_its_flag(argv, message):
    with pytest.raises(UsageError, match=message):
        _parsed(ExportOptions, ["src", "out", *argv])


def test_the_deployments_defaults_are_options_of_the_model(tmp_path):
    chosen = ExportOptions(dest=str(tmp_path / "out"), image_size="300k", selection={"classes": ["Dog"]})
    deployments = build_deployments(Settings(source=str(tmp_path / "in"), options=chosen))
    for deployment in deployments:
        defaults = ExportOptions.model_validate(deployment.parameters["options"])
        assert defaults == chosen.model_copy(update={"dest": Location(url=canonical_url(str(tmp_path / "out")))})
        assert deployment._parameter_openapi_schema.properties["options"]["$ref"] == "#/definitions/ExportOptions"
    [trigger] = next(d for d in deployments if d.name == ON_UPLOAD).triggers
    assert trigger.parameters == {"source": "{{ event.resource.id }}"}  # options stay the deployment's


def test_serve_takes_every_export_option(tmp_path):
    args = cli._parser().parse_args(["serve", "s3://b/in/", "s3://b/out", "--cron", "0 2 * * *", *EVERY_FLAG])
    settings = cli._settings(args)
    assert (settings.options, settings.cron) == (
        EVERY_OPTION.model_copy(
            update={"dest": Location(url="s3://b/out", options={"anon": False}, block="aws-credentials/out")}
        ),
        "0 2 * * *",
    )


def test_library_code_takes_its_limits_and_reads_no_environment(monkeypatch):
    data = noise_jpeg(64, 48)
    monkeypatch.setenv("OPENIMAGES_ETL_MAX_IMAGE_PIXELS", "10")
    assert convert_image(data, None)[2:] == (48, 64)  # the documented default: the environment is the edge's to read
    with pytest.raises(MediaError, match="more than the limit of 10"):
        convert_image(data, None, Limits(image_pixels=10))
    with pytest.raises(MediaError, match="more than the limit of 100"):  # Pillow's own path (an image it must open)
        convert_image(data, 200_000, Limits(image_pixels=100))


def test_importing_media_leaves_pillows_limit_alone():
    code = (
        "from PIL import Image; before = Image.MAX_IMAGE_PIXELS; import openimages_etl.media.images; "
        "print(Image.MAX_IMAGE_PIXELS == before)"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert shown.strip() == "True"


@pytest.mark.usefixtures("prefect_api")
def test_the_flow_reads_the_limits_of_the_environment_it_runs_in(cvat_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENIMAGES_ETL_MAX_IMAGE_PIXELS", "100")
    with pytest.raises(InvalidDataError) as raised:
        export_open_images(source=str(cvat_dir), options=ExportOptions(dest=str(tmp_path / "out"), name="ds"))
    assert any("more than the limit of 100" in failure.check for failure in raised.value.failures)
