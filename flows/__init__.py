"""Prefect flows: the pipeline's table of contents."""
from .export import export_open_images, validate_open_images

__all__ = ["export_open_images", "validate_open_images"]
