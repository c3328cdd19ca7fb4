"""Checkpoint converters (open_clip -> transformers)."""
