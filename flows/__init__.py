"""Prefect flows: the pipeline's table of contents."""
from openimages_etl.tasks.outcomes import quiet_expected_errors

from .export import export_open_images, validate_open_images
from .incremental import export_new_archives

quiet_expected_errors()  # wherever the flows run: the CLI, a served deployment's run, a worker's

__all__ = ["export_new_archives", "export_open_images", "validate_open_images"]
