"""Tables that fit the terminal's width: the columns most wanted first, each shown while it fits,
one flexible column (a query) taking what the others leave; long text cut with "…"."""

from __future__ import annotations

from dataclasses import dataclass

GAP = 3  # between two columns: padding, separator, padding
FLEXIBLE_MIN = 20  # the flexible column is never narrower than this


@dataclass(frozen=True)
class Column:
    header: str
    widest: int | None = None  # the widest it may grow; None: no limit
    right: bool = False  # numbers, aligned right
    style: str | None = None
    flexible: bool = False  # takes the width the others leave (one column at most)


def widths(cells: list[dict[str, str]], columns: list[Column], width: int) -> dict[str, int]:
    """Each shown column's width: by priority, while they fit; the flexible one keeps about a
    third of the width before less wanted columns are added, then gets what is left. A flexible
    column that comes last is never the one left out: the columns before it give way."""
    natural = {c.header: min(max([len(c.header), *(len(row[c.header]) for row in cells)]), c.widest or 10**6) for c in columns}
    flexible = next((c.header for c in columns if c.flexible), None)
    reserve = min(natural[flexible], max(FLEXIBLE_MIN, width // 3)) if flexible else 0
    kept_last = columns[-1].flexible
    chosen, used = {}, (FLEXIBLE_MIN + GAP if kept_last else 0) - GAP
    for column in columns:
        if column.flexible:
            if kept_last:
                used -= FLEXIBLE_MIN + GAP  # its room, set aside above
            elif used + FLEXIBLE_MIN + GAP > width:
                break
            chosen[column.header] = max(FLEXIBLE_MIN, min(reserve, width - used - GAP))
        elif used + natural[column.header] + GAP > width:
            if kept_last:
                continue  # no more fixed columns fit; the last one still comes
            break
        else:
            chosen[column.header] = natural[column.header]
        used += chosen[column.header] + GAP
    if flexible in chosen:
        others = sum(w + GAP for header, w in chosen.items() if header != flexible)
        chosen[flexible] = min(natural[flexible], max(FLEXIBLE_MIN, width - others))
    return chosen


def fitted_table(cells: list[dict[str, str]], columns: list[Column], width: int):
    """A rich Table of `cells` (one dict of texts per row, by header) in `width` columns. The
    texts are shown as they are, never read as markup."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    shown = widths(cells, columns, width)
    by_header = {c.header: c for c in columns}
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for header, column_width in shown.items():
        column = by_header[header]
        table.add_column(
            header,
            width=column_width,
            no_wrap=True,
            overflow="ellipsis",
            justify="right" if column.right else "left",
            style=column.style,
        )
    for row in cells:
        table.add_row(*(Text(row[header]) for header in shown))
    return table
