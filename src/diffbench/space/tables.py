"""The Space's result tables as HTML: scrolled sideways, never broken inside a header or a number, their
first columns pinned (no Gradio here).

Gradio's Dataframe lays a wide table out with its own script (a virtual table whose pinned columns
scroll away with the rest, headers cut to the column width); a plain ``<table>`` in a container with
``overflow-x: auto`` and ``position: sticky`` cells does what a reader expects in every browser, at
any width. :data:`CSS` styles every table made by :func:`html_table` (the app passes it to
``launch``); every cell is escaped (names are visitors' text).

    >>> import pandas as pd
    >>> frame = pd.DataFrame({"Model": ["<b>x</b>"], "AVG": [81.754], "Samples": [2084.0]})
    >>> table = html_table(frame, pinned=2, table_id="t")
    >>> table[:61]
    '<div class="db-scroll" id="t"><table class="db-table"><thead>'
    >>> '<td class="db-pin db-pin-0 db-name">&lt;b&gt;x&lt;/b&gt;</td>' in table  # pinned, escaped
    True
    >>> '<td class="db-pin db-pin-1 db-num">81.75</td><td class="db-num">2,084</td>' in table
    True
"""

from __future__ import annotations

import html
import math

import pandas as pd

GAP = "–"  # a cell without a value

#: The pinned columns' widths (the offsets of the sticky cells depend on them: fixed, not measured),
#: narrower on a phone. The first pinned column holds names: it wraps at spaces, everything else is
#: one line; a name is never cut.
CSS = """
.db-scroll { overflow-x: auto; max-width: 100%; -webkit-overflow-scrolling: touch; }
.db-table { border-collapse: separate; border-spacing: 0; font-size: var(--text-md); }
.db-table th, .db-table td { white-space: nowrap; padding: 6px 10px; border-bottom: 1px solid var(--border-color-primary);
  text-align: left; background: var(--background-fill-primary); }
.db-table th { font-weight: 600; background: var(--background-fill-secondary); }
.db-table .db-num { text-align: right; font-variant-numeric: tabular-nums; }
.db-table .db-pin { position: sticky; z-index: 1; box-sizing: border-box; }
.db-table th.db-pin { z-index: 2; }
.db-table .db-pin-0 { left: 0; width: 13em; min-width: 13em; max-width: 13em; }
.db-table .db-pin-1 { left: 13em; width: 7em; min-width: 7em; max-width: 7em; }
.db-table .db-pin-2 { left: 20em; width: 5em; min-width: 5em; max-width: 5em; border-right: 2px solid var(--border-color-primary); }
.db-table .db-name { white-space: normal; overflow-wrap: anywhere; }
@media (max-width: 640px) {
  .db-table { font-size: var(--text-sm); }
  .db-table th, .db-table td { padding: 4px 6px; }
  .db-table .db-pin-0 { width: 8.5em; min-width: 8.5em; max-width: 8.5em; }
  .db-table .db-pin-1 { left: 8.5em; width: 6.2em; min-width: 6.2em; max-width: 6.2em; }
  .db-table .db-pin-2 { left: 14.7em; width: 4.3em; min-width: 4.3em; max-width: 4.3em; }
}
"""
MAX_PINNED = 3  # the CSS above has offsets for three pinned columns


def cell_text(value, column: str) -> str:
    """A value as the table shows it: two decimals for a score, a count with thousands separators (the
    ``Samples`` column), a gap as ``–``, anything else as text.

    >>> cell_text(81.749, "AVG"), cell_text(2084.0, "Samples"), cell_text(float("nan"), "AVG"), cell_text(None, "Name")
    ('81.75', '2,084', '–', '–')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return GAP
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:,.0f}" if column == "Samples" else f"{value:.2f}"
    return str(value)


def _classes(position: int, pinned: int, numeric: bool, header: bool) -> str:
    names = [f"db-pin db-pin-{position}"] if position < pinned else []
    if numeric:
        names.append("db-num")
    elif position == 0 and pinned and not header:  # a pinned name column wraps at spaces; nothing else does
        names.append("db-name")
    return " ".join(names)


def _cell(tag: str, text: str, classes: str) -> str:
    attribute = f' class="{classes}"' if classes else ""
    return f"<{tag}{attribute}>{html.escape(text)}</{tag}>"


def html_table(frame: pd.DataFrame, pinned: int = 0, table_id: str | None = None) -> str:
    """``frame`` as an escaped HTML table in a sideways-scrolling container, its first ``pinned`` columns
    (at most :data:`MAX_PINNED`) staying in view while the others scroll."""
    pinned = min(pinned, MAX_PINNED, len(frame.columns))
    numeric = [frame[c].dtype.kind in "if" for c in frame.columns]
    head = "".join(_cell("th", str(c), _classes(i, pinned, numeric[i], True)) for i, c in enumerate(frame.columns))
    rows = []
    for values in frame.itertuples(index=False):
        cells = (_cell("td", cell_text(v, c), _classes(i, pinned, numeric[i], False))
                 for i, (c, v) in enumerate(zip(frame.columns, values)))
        rows.append(f"<tr>{''.join(cells)}</tr>")
    body = "".join(rows) or f'<tr><td colspan="{len(frame.columns)}">no runs yet</td></tr>'
    ident = f' id="{html.escape(table_id)}"' if table_id else ""
    return (f'<div class="db-scroll"{ident}><table class="db-table"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def table_data(frame: pd.DataFrame) -> dict:
    """The table for the API: ``{"headers": [...], "data": [[...], ...]}``, numbers as numbers (a gap as
    ``None``), as Gradio's Dataframe sent them."""
    data = [[None if isinstance(v, float) and math.isnan(v) else v for v in row]
            for row in frame.astype(object).values.tolist()]
    return {"headers": [str(c) for c in frame.columns], "data": data}
