"""VisMin: its schema, submissions, published rows, presets, tasks and report."""
