"""What lmms-eval cannot carry: that the data is diffbench's synthetic sample.

``diffbench eval`` writes the build's provenance into results.json and marks a synthetic build's tables
(:data:`~diffbench.data.provenance.SYNTHETIC_NOTE`); lmms-eval's results hold numbers only. So the tasks'
``process_docs`` say it in the log when lmms-eval loads a synthetic build (``diffbench demo``'s, or
``diffbench build NAME --source sample``), and keep the rows as they are.

    >>> from datasets import Dataset
    >>> warn_if_synthetic(Dataset.from_dict({"id": ["a"]}))  # no build behind it: nothing to say
    False
"""

from __future__ import annotations

import logging

from diffbench.data.provenance import SYNTHETIC_NOTE, is_synthetic, of_dataset

logger = logging.getLogger(__name__)


def warn_if_synthetic(dataset) -> bool:
    """Log a warning when ``dataset`` is a synthetic build (its recorded provenance says so); whether it is."""
    record = of_dataset(dataset)
    if not is_synthetic(record):
        return False
    name = record.get("dataset") or "the dataset"
    logger.warning("lmms-eval reads diffbench's synthetic sample of %s (%s): build the real data with "
                   "`diffbench build %s --source hub --overwrite`", name, SYNTHETIC_NOTE, name)
    return True
