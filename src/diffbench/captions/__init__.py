"""Difference captioning: the COCO caption metrics (pycocoevalcap-exact), inputs, scoring, tasks and report."""
