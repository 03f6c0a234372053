"""Text other people wrote reaches the terminal with its control characters escaped, and --json
output keeps it exact."""

import json
import unicodedata

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks._cli import print_json, printable

# Any text, weighted towards what terminals act on: ESC sequences, BEL, C1 controls, bidi overrides.
controls = st.sampled_from(
    ["\x1b", "\x1b]0;title\x07", "\x1b[2J", "\x07", "\x00", "\r", "\n", "\x9b", "\x7f", "\u202e", "\u2028", "\udcff"]
)
texts = st.lists(st.text(max_size=8) | controls, max_size=8).map("".join)


@given(texts)
def test_printable_text_has_no_control_characters_and_loses_nothing_else(text):
    shown = printable(text)
    assert not any(unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp") for char in shown)
    assert not any("\u202a" <= char <= "\u202e" or "\u2066" <= char <= "\u2069" for char in shown)
    # Each character is itself or its escape, in order: nothing is dropped or merged.
    assert shown == "".join(printable(char) for char in text)
    for char in text:
        assert printable(char) == char or printable(char) == char.encode("unicode_escape").decode()


@given(texts)
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_json_output_keeps_the_text_exact(capsys, text):
    print_json({"message": text, "app": text})
    assert json.loads(capsys.readouterr().out) == {"message": text, "app": text}
