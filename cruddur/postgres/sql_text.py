"""SQL files as text: read with one-line errors, and split into statements as psql splits them.

psql sends each statement on its own; so does the migration runner, so that a file runs as
written: a last statement without `;` works, a `--` comment after it stays a comment, and the
failing statement's own line is known when the server gives no position. The splitter follows
psql's lexer (psqlscan.l): quotes, E'' escapes, quoted identifiers, dollar quotes, nested block
comments, parentheses, and BEGIN ATOMIC ... END bodies of CREATE FUNCTION/PROCEDURE.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import SqlFileError, UnterminatedSql


@dataclass(frozen=True)
class Statement:
    text: str  # from its first token up to (not including) the `;` that ends it
    line: int  # the line of the file (counting from the text's first_line) where it starts
    column: int = 1  # the column of that line where it starts

    def location(self, offset: int) -> tuple[int, int]:
        """The file's (line, column) of the character at `offset` (from 0) in this statement."""
        line = self.line + self.text.count("\n", 0, offset)
        start_of_line = self.text.rfind("\n", 0, offset)
        column = self.column + offset if start_of_line < 0 else offset - start_of_line
        return line, column


def read_sql(path: Path, label: str, error: type[Exception] = SqlFileError) -> str:
    """A .sql file's text, or `error` in one line naming the file: unreadable, not UTF-8, or
    holding a NUL byte (PostgreSQL would stop reading there). A leading BOM is skipped, as psql
    skips it."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise error(f"{label}: cannot read it: {e.strerror}") from None
    return decode_sql(data, label, error)


def decode_sql(data: bytes, label: str, error: type[Exception] = SqlFileError) -> str:
    """read_sql's checks on bytes already read."""
    data = data.removeprefix(codecs.BOM_UTF8)
    nul = data.find(b"\0")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise error(f"{label}:{line}: holds a NUL byte (at byte {nul}); SQL text cannot, so nothing of it was run")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise error(f"{label}:{line}: not UTF-8 text ({e.reason} at byte {e.start}); nothing of it was run") from None


# Any character past ASCII may be part of an identifier. Written as a negated class: a range up
# to U+10FFFF takes the re module a tenth of a second to compile, at every start-up.
_IDENTIFIER_START = re.compile(r"[A-Za-z_]|[^\x00-\x7f]")
_IDENTIFIER = re.compile(r"(?:[A-Za-z_]|[^\x00-\x7f])(?:[A-Za-z0-9_$]|[^\x00-\x7f])*")
_DOLLAR_TAG = re.compile(r"\$((?:[A-Za-z_]|[^\x00-\x7f])(?:[A-Za-z0-9_]|[^\x00-\x7f])*)?\$")
_ROUTINE_WORDS = {"create": "c", "or": "o", "replace": "r", "function": "f", "procedure": "p"}


def split(text: str, label: str = "SQL", first_line: int = 1) -> list[Statement]:
    """The statements of `text` in order; stretches holding only whitespace and comments are not
    statements. UnterminatedSql names the line where an unclosed quote or comment starts."""
    statements: list[Statement] = []
    start: int | None = None  # where the current statement's first token is
    paren_depth = begin_depth = 0
    words: list[str] = []  # the first letters of the statement's first identifiers (psql's heuristic)
    at, size = 0, len(text)

    def line_of(offset: int) -> int:
        return text.count("\n", 0, offset) + first_line

    def unterminated(what: str, offset: int) -> UnterminatedSql:
        return UnterminatedSql(f"{label}:{line_of(offset)}: {what} starts here and never ends; nothing of it was run")

    while at < size:
        char = text[at]
        if char.isspace():
            at += 1
            continue
        if text.startswith("--", at):
            end = text.find("\n", at)
            at = size if end < 0 else end + 1
            continue
        if text.startswith("/*", at):
            end = _block_comment_end(text, at)
            if end < 0:
                raise unterminated("a /* comment", at)
            at = end
            continue
        if start is None:
            start = at
            paren_depth = begin_depth = 0
            words = []
        if char == ";":
            if paren_depth == 0 and begin_depth == 0:
                _add(statements, text, start, at, line_of)
                start = None
            at += 1
        elif char == "'":
            escapes = at > 0 and text[at - 1] in "eE" and (at < 2 or not _is_identifier_char(text[at - 2]))
            end = _quote_end(text, at, "'", escapes)
            if end < 0:
                raise unterminated("a quoted string", at)
            at = end
        elif char == '"':
            end = _quote_end(text, at, '"', False)
            if end < 0:
                raise unterminated('a quoted identifier (")', at)
            at = end
        elif char == "$" and (tag := _DOLLAR_TAG.match(text, at)) and not (at > 0 and _is_identifier_char(text[at - 1])):
            end = text.find(tag.group(0), tag.end())
            if end < 0:
                raise unterminated(f"a dollar quote {tag.group(0)}", at)
            at = end + len(tag.group(0))
        elif char == "(":
            paren_depth += 1
            at += 1
        elif char == ")":
            paren_depth = max(0, paren_depth - 1)
            at += 1
        elif _IDENTIFIER_START.match(char) and not (at > 0 and _is_identifier_char(text[at - 1])):
            word = _IDENTIFIER.match(text, at).group(0)
            begin_depth = _track_begin(word.lower(), words, paren_depth, begin_depth)
            at += len(word)
        else:
            at += 1
    if start is not None:
        _add(statements, text, start, size, line_of)
    return statements


def _add(statements: list[Statement], text: str, start: int, end: int, line_of) -> None:
    body = text[start:end].rstrip()
    if body:
        statements.append(Statement(body, line_of(start), start - (text.rfind("\n", 0, start) + 1) + 1))


def _track_begin(word: str, words: list[str], paren_depth: int, begin_depth: int) -> int:
    """psql's BEGIN ... END tracking: inside CREATE [OR REPLACE] FUNCTION/PROCEDURE, a `;` between
    BEGIN (ATOMIC) and its END does not end the statement; CASE ... END nests inside it."""
    words.append(_ROUTINE_WORDS.get(word, "?"))
    first = "".join(words[:4])
    routine = first[:1] == "c" and (first[1:2] in ("f", "p") or (first[1:3] == "or" and first[3:4] in ("f", "p")))
    if not routine or paren_depth:
        return begin_depth
    if word == "begin":
        return begin_depth + 1
    if word == "case" and begin_depth:
        return begin_depth + 1
    if word == "end" and begin_depth:
        return begin_depth - 1
    return begin_depth


def _is_identifier_char(char: str) -> bool:
    return char.isalnum() or char in "_$" or ord(char) >= 0x80


def _quote_end(text: str, at: int, quote: str, backslash_escapes: bool) -> int:
    """The offset just past the quote that closes the one at `at` (a doubled quote stays inside);
    -1 when none does."""
    index = at + 1
    while True:
        end = text.find(quote, index)
        if end < 0:
            return -1
        if backslash_escapes:
            backslashes = 0
            while end - 1 - backslashes >= index and text[end - 1 - backslashes] == "\\":
                backslashes += 1
            if backslashes % 2:
                index = end + 1
                continue
        if text.startswith(quote * 2, end):
            index = end + 2
            continue
        return end + 1


def _block_comment_end(text: str, at: int) -> int:
    """The offset just past the */ closing the (nestable) /* at `at`; -1 when it never closes."""
    depth, index = 0, at
    while index < len(text):
        if text.startswith("/*", index):
            depth += 1
            index += 2
        elif text.startswith("*/", index):
            depth -= 1
            index += 2
            if depth == 0:
                return index
        else:
            index += 1
    return -1
