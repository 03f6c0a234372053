"""The table that fits the terminal (db.sessions, db.slow): for any texts and any width."""

from hypothesis import given
from hypothesis import strategies as st

from tasks._tables import FLEXIBLE_MIN, GAP, Column, widths

NUMBERS = [Column(header, right=True) for header in ("calls", "total", "mean", "rows")]
SLOW = [*NUMBERS, Column("query", flexible=True)]
TEXT = st.text(st.characters(codec="ascii", exclude_categories=["Cc"]), max_size=300)
ROWS = st.lists(st.fixed_dictionaries({column.header: TEXT for column in SLOW}), max_size=5)


@given(ROWS, st.integers(FLEXIBLE_MIN, 300))
def test_a_last_flexible_column_is_always_shown_and_the_table_fits(cells, width):
    shown = widths(cells, SLOW, width)
    assert "query" in shown and shown["query"] >= min(FLEXIBLE_MIN, max([len("query"), *(len(row["query"]) for row in cells)]))
    assert list(shown) == [column.header for column in SLOW if column.header in shown]  # in their order
    assert sum(shown.values()) + GAP * (len(shown) - 1) <= width


@given(ROWS, st.integers(0, 300))
def test_a_flexible_column_in_the_middle_gives_way_to_none_before_it(cells, width):
    columns = [NUMBERS[0], SLOW[-1], *NUMBERS[1:]]
    shown = widths(cells, columns, width)
    assert list(shown) == [column.header for column in columns][: len(shown)]  # by priority, none skipped
