"""Prefect flows: the pipeline's table of contents."""

from openimages_etl.flows.export import export_open_images, validate_open_images
from openimages_etl.flows.incremental import export_new_archives
from openimages_etl.orchestration.outcomes import quiet_expected_errors

quiet_expected_errors()  # wherever the flows run: the CLI, a served deployment's run, a worker's

__all__ = ["export_new_archives", "export_open_images", "validate_open_images"]
