"""The words hazard rules match on, and the allow lines a migration acknowledges hazards with:
for any text, not a few examples."""

from hypothesis import given
from hypothesis import strategies as st
from psycopg import sql

from cruddur.postgres import hazards

RULE = st.sampled_from(hazards.RULES)
REASON = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1).filter(lambda text: text.strip())


# Any text a SQL file can hold: UTF-8 (no lone surrogate), and read_sql refuses a NUL byte before
# anything is read for hazards.
@given(st.text(st.characters(codec="utf-8", exclude_characters="\0")))
def test_words_keep_nothing_of_a_string_or_a_comment(text):
    with_default = sql.SQL("ALTER TABLE t ADD COLUMN c text DEFAULT {}").format(sql.Literal(text)).as_string(None)
    assert hazards.words(with_default) == "ALTER TABLE T ADD COLUMN C TEXT DEFAULT _"
    comment = text.replace("\n", " ").replace("\r", " ")
    assert hazards.words("CREATE INDEX i ON t (a) -- " + comment + "\n") == "CREATE INDEX I ON T (A) _"


def allow_line(indent: str, rule: str, reason: str) -> str:
    """A section's comment line acknowledging `rule` (no reason: an empty or blank one)."""
    return indent + "-- cruddur:allow " + rule + (" " + reason if reason else "") + "\n"


@given(RULE, REASON, st.text(alphabet=" \t", max_size=3))
def test_an_allow_line_with_a_reason_acknowledges_its_rule(rule, reason, indent):
    section = "CREATE INDEX i ON t (a);\n" + allow_line(indent, rule, reason)
    assert hazards.allowances(section) == {rule: reason.strip()}


@given(RULE)
def test_an_allow_line_without_a_reason_acknowledges_nothing(rule):
    assert hazards.allowances(allow_line("", rule, "") + allow_line("", rule, "  ")) == {}


def test_a_statement_quoting_the_words_of_a_rule_is_judged_by_what_it_does():
    seen = hazards.Observed(held={"public.t": "AccessExclusiveLock"}, scanned={"public.t"})
    # The CHECK here is inside a string: the statement reads t under AccessExclusiveLock all the same.
    (found,) = hazards.find("ALTER TABLE t ADD COLUMN note text DEFAULT 'CHECK (x) NOT VALID'", seen)
    assert (found.rule, found.relation) == (hazards.SCAN, "public.t")
    assert hazards.find("ALTER TABLE t ADD COLUMN note text", hazards.Observed(held={"public.t": "AccessExclusiveLock"})) == []
