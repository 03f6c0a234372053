"""Run the post-confirmation handler here, on a sample event, against a database we choose."""

from __future__ import annotations

import importlib.util
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from ..errors import DatabaseError, EventError, one_line
from .package import CHECKOUT, HANDLER_FILE

EVENTS_DIR = CHECKOUT / "lambda" / "events"
DEFAULT_EVENT = EVENTS_DIR / "confirm_sign_up.json"


@dataclass(frozen=True)
class Invocation:
    trigger: str | None
    sub: str | None
    returned_unchanged: bool
    row: dict | None  # the users row for the event's sub, after the call
    log: list[str] = field(default_factory=list)


def load_handler(path: Path = HANDLER_FILE) -> ModuleType:
    """A fresh copy of the handler module, loaded by file path (lambda/ is no package)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_event(path: Path) -> dict:
    try:
        event = json.loads(path.read_text())
    except FileNotFoundError:
        raise EventError(f"no event file at {path}") from None
    except IsADirectoryError:
        raise EventError(f"{path} is a directory, not an event file") from None
    except OSError as e:
        raise EventError(f"cannot read {path}: {e.strerror or type(e).__name__}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise EventError(f"{path} is not JSON: {one_line(e)}") from None
    except RecursionError:
        raise EventError(f"{path} nests too deeply to be a Cognito event") from None
    if not isinstance(event, dict):
        raise EventError(f"{path} holds no Cognito event (expected a JSON object)")
    request = event.get("request")
    if not isinstance(request, dict) or not isinstance(request.get("userAttributes"), dict):
        raise EventError(f"{path}: request.userAttributes is missing or not a JSON object")
    return event


def invoke(event_path: Path, connection_url: str, handler_file: Path = HANDLER_FILE) -> Invocation:
    """Call the handler once on the event, then read back the user's row."""
    import psycopg
    from psycopg.rows import dict_row

    from ..postgres.connect import connect

    event = read_event(event_path)
    # The handler's own errors hide every quoted part (the Lambda's log must not show a URL's
    # secrets); checked here first, a missing server or database is one line that names it.
    connect(connection_url).close()
    handler = load_handler(handler_file)
    lines = _LogLines()
    handler.log.addHandler(lines)
    original = json.loads(json.dumps(event))
    try:
        returned = handler.handle(event, connection_url)
    except (handler.MissingAttribute, handler.BadEvent) as e:
        raise EventError(f"{event_path.name}: {e}") from None
    except handler.UserNotSaved as e:
        hint = " (load the schema first: inv db.setup)" if isinstance(e.__cause__, psycopg.errors.UndefinedTable) else ""
        raise DatabaseError(f"{e}{hint}") from None
    finally:
        handler.log.removeHandler(lines)
        handler.close_connection()

    sub = event["request"]["userAttributes"].get("sub")
    try:
        with connect(connection_url) as conn, conn.cursor(row_factory=dict_row) as cursor:
            row = cursor.execute(
                "SELECT uuid, display_name, handle, email, cognito_user_id, created_at FROM public.users WHERE cognito_user_id = %s",
                (sub,),
            ).fetchone()
    except psycopg.Error as e:
        raise DatabaseError(f"could not read the users row back: {type(e).__name__}: {one_line(e)}") from None
    return Invocation(event.get("triggerSource"), sub, returned == original, row, lines.lines)


class _LogLines(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
