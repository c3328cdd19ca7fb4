"""Datasets: building into the cache, the caption builders' base, image checks, provenance, publishing, samples."""
