"""An export's options, declared once: the CLI's flags (cli_flags.py), the flows' parameters and so the Prefect UI's
form, the deployments' defaults and the incremental flow all come from these models. Adding an option is one field.

The source's URL stays a plain `source` parameter of the flows beside these (an event trigger fills it in with
`{{ event.resource.id }}`); how to reach it, like the destination and the work area, is a storage location.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from openimages_etl.config import BoxFlag, ImageSize, OnInvalid, ResizeMethod
from openimages_etl.storage.locations import refuse_credentials

# Frozen and strict; each field's title in the UI's form is its name, as in Python and (with dashes) on the CLI.
FROZEN = ConfigDict(frozen=True, extra="forbid", field_title_generator=lambda name, _: name)


@dataclass(frozen=True)
class Flag:
    """How a field appears on the command line where its name alone would not do (see cli_flags.py)."""

    name: str | None = None  # "": a location's URL is the location's own flag (DEST, --work)
    flat: bool = False  # a nested model's fields keep their own names (the selection flags)


class Access(BaseModel):
    """How to reach a storage location: fsspec options and the Prefect block holding its credentials. The block is
    loaded inside the run (tasks/credentials.py), so no key ever becomes a flow-run parameter."""

    model_config = FROZEN
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="fsspec storage options, without credentials (endpoint_url, client_kwargs, anon...)",
    )
    block: str | None = Field(
        None, description="Prefect block with the credentials: secret/NAME or aws-credentials/NAME"
    )


class Location(Access):
    """A storage location: a local path or fsspec URL, and how to reach it. A plain string stands for its URL."""

    url: Annotated[str, Flag(name="")] = Field(
        description="absolute local path or fsspec URL (s3://, gs://, memory://)"
    )

    @model_validator(mode="before")
    @classmethod
    def _from_url(cls, value: Any) -> Any:
        return {"url": value} if isinstance(value, str) else value

    def refuse_credentials(self, what: str) -> None:
        refuse_credentials(self.url, self.options, what)


class SelectionSpec(BaseModel):
    """What an export keeps (README, "Select what to export"); the defaults select everything."""

    model_config = FROZEN
    classes: tuple[str, ...] = Field(
        (),
        description="Classes to export, each a MID (/m/0k4j) or a display name "
        "(any case); with their subclasses in the hierarchy",
    )
    exclude_classes: tuple[str, ...] = Field(
        (), description="Classes left out, with their subclasses (e.g. Rocket out of Vehicle)"
    )
    subclasses: bool = Field(
        True, description="Expand classes and exclude_classes to their subclasses (Subcategory edges of the hierarchy)"
    )
    only_matching: bool = Field(
        False,
        description="Keep only the selected classes' boxes, masks and labels; "
        "off keeps every annotation of a selected image",
    )
    merge_subclasses: bool = Field(
        False,
        description="Relabel each subclass's boxes, masks and positive labels to the requested class it descends from",
    )
    per_class: int | None = Field(
        None,
        ge=0,
        description="Up to this many images per selected class and subset, rarest class first; empty for all",
    )
    max_images: int | None = Field(
        None, ge=0, description="At most this many images per subset, drawn in the seed's order; empty for all"
    )
    seed: int = Field(
        0, description="Seed of the random draw of per_class and max_images: the same parameters give the same images"
    )
    image_ids: str | None = Field(
        None,
        description="URL or path of a list of ImageIDs (one per line, subset/ImageID "
        "allowed) or a CSV with an ImageID column, such as a previous export's "
        "NAME.image-ids.csv: only these images",
    )
    drop_boxes: tuple[BoxFlag, ...] = Field((), description="Leave out boxes with any of these flags at 1")

    @model_validator(mode="after")
    def _needs_classes(self) -> SelectionSpec:
        refers = self.per_class is not None or self.only_matching or self.merge_subclasses or self.exclude_classes
        if refers and not self.classes:
            raise ValueError("per_class, only_matching, merge_subclasses and exclude_classes need classes")
        return self

    @property
    def picks_images(self) -> bool:
        return bool(self.classes or self.max_images is not None or self.image_ids)

    @property
    def active(self) -> bool:
        return self.picks_images or bool(self.drop_boxes)

    def parameters(self) -> dict:
        """What the report and the idempotency key record."""
        return self.model_dump(mode="json")


class SourceOptions(BaseModel):
    """What every run that reads a source takes besides its URL."""

    model_config = FROZEN
    source: Access = Field(
        default_factory=Access, description="How to reach the source: fsspec options and credentials block"
    )
    work: Location | None = Field(
        None,
        description="Work area for the files stages hand on: a local "
        "folder or fsspec URL every worker reaches; empty: a temporary local folder, or "
        "DEST/.openimages-etl/work/NAME/RUN-ID/ for an export on a Dask scheduler",
    )

    def source_at(self, url: str) -> Location:
        return Location(url=url, options=self.source.options, block=self.source.block)

    def refuse_credentials(self, source: str) -> None:
        """Credentials in a URL or options would be stored with the run's parameters: refused before the run exists."""
        self.source_at(source).refuse_credentials("source")
        if self.work:
            self.work.refuse_credentials("work area")


class ValidateOptions(SourceOptions):
    """The options of `validate-open-images`."""

    max_errors: int = Field(1000, ge=0, description="Failing rows listed per file and check (all are counted)")


class ExportOptions(SourceOptions):
    """The options of an export (`export-open-images`, and each child run of `export-new-archives`)."""

    dest: Location = Field(description="Destination folder; gets NAME.zip, NAME.report.json, NAME.report.md")
    name: str | None = Field(None, description="Export name; defaults to the source's file name without extension")
    image_size: ImageSize = Field(
        ImageSize.original, description="original keeps bytes as they are; 300k/200k resize the TFDS way (JPEG q72)"
    )
    resize_method: ResizeMethod = Field(
        ResizeMethod.fast,
        description="How 300k/200k resize: fast (scaled decode, "
        "sharper than TFDS) or tfds (TFDS's exact pixels, slower)",
    )
    subsets: tuple[str, ...] = Field((), description="Subsets to export (e.g. train,validation); all when empty")
    per_subset: bool = Field(
        False, description="Also publish one zip per subset: NAME-train.zip, NAME-validation.zip, ..."
    )
    on_invalid: OnInvalid = Field(
        OnInvalid.fail,
        description="fail publishes nothing when a row is invalid; drop leaves such rows out and publishes",
    )
    reuse: bool = Field(
        True,
        description="Publish nothing when DEST already holds this export of the unchanged "
        "source (same content and parameters)",
    )
    selection: Annotated[SelectionSpec, Flag(flat=True)] = Field(
        default_factory=SelectionSpec, description="What the export keeps; everything by default"
    )

    def refuse_credentials(self, source: str) -> None:
        super().refuse_credentials(source)
        self.dest.refuse_credentials("destination")
