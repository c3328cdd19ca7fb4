"""Synthetic samples in the upstream layouts (rendered scenes, templated captions)."""
