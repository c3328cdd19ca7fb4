"""CLEVR-Change's official evaluation parts (Seth-Park/RobustChangeCaptioning ``evaluate.py`` with
``utils/eval_utils.py``: ``score_generation``, ``score_generation_by_type``), and its official prediction keys.

The parts: ``semantic_change`` (semantic-change captions only, rows with ``distractor`` false), the five
types ``color``, ``material``, ``add``, ``drop``, ``move`` (semantic rows by ``change_types``, as
``type_mapping.json`` sorts them), ``distractor`` (non-semantic captions only); the total over both is
the top level. ``test.py`` keys a semantic pair by the tail of its default image name, ``"000123.png"``,
and its distractor by ``"000123.png_n"`` (``utils/eval_utils.py``: ``name.split('_')[-1]``).

    >>> clevr_change_aliases("CLEVR_default_000123_nonsemantic")
    ['000123.png_n', '000123_n']
    >>> clevr_change_groups(False, ["move"]), clevr_change_groups(True, [])
    (['semantic_change', 'move'], ['distractor'])
"""

from __future__ import annotations

import re

#: CLEVR-Change's semantic change types, in the order of the official ``type_mapping.json``.
CLEVR_CHANGE_TYPES = ("color", "material", "add", "drop", "move")
SEMANTIC_GROUP, DISTRACTOR_GROUP = "semantic_change", "distractor"
CLEVR_CHANGE_GROUPS = (SEMANTIC_GROUP, *CLEVR_CHANGE_TYPES, DISTRACTOR_GROUP)
_CLEVR_ID = re.compile(r"^CLEVR_default_(\d+)_(semantic|nonsemantic)$")


def clevr_change_aliases(row_id: str) -> list[str]:
    """The official keys of a CLEVR-Change row id (``test.py``: ``name.split('_')[-1]``, ``+ '_n'``)."""
    found = _CLEVR_ID.match(row_id)
    if not found:
        return []
    suffix = "_n" if found.group(2) == "nonsemantic" else ""
    return [f"{found.group(1)}.png{suffix}", f"{found.group(1)}{suffix}"]


def clevr_change_groups(distractor: bool, change_types) -> list[str]:
    """A CLEVR-Change row's groups: ``distractor``, or ``semantic_change`` and its type."""
    return [DISTRACTOR_GROUP] if distractor else [SEMANTIC_GROUP, *(change_types or [])]
