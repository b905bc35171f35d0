"""Prefect flows: the pipeline's table of contents."""
from .export import export_open_images, validate_open_images
from .incremental import export_new_archives

__all__ = ["export_new_archives", "export_open_images", "validate_open_images"]
