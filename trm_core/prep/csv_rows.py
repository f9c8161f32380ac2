"""The rows of a puzzle CSV (``source, q, a, rating``, with a header), each with the place it came from, so
every error a builder raises names the file and the line."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterator

from trm_core.config import ConfigError

HEADER = ["source", "q", "a", "rating"]


def csv_rows(path: Path) -> Iterator[tuple[str, list[str]]]:
    """(``FILE:LINE``, the four columns) for each non-empty row after the header."""
    try:
        fh = open(path, newline="", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot open {path}: {exc.strerror}") from None
    with fh:
        reader = csv.reader(fh)
        try:
            if next(reader, None) is None:
                raise ConfigError(f"{path}: empty file (expected a header: {','.join(HEADER)})")
            for row in reader:
                if not row:
                    continue
                where = f"{path}:{reader.line_num}"
                if len(row) != 4:
                    raise ConfigError(f"{where}: {len(row)} columns; expected 4 ({','.join(HEADER)})")
                yield where, row
        except UnicodeDecodeError:
            raise ConfigError(f"{path}:{reader.line_num + 1}: not UTF-8 text") from None
        except csv.Error as exc:
            raise ConfigError(f"{path}:{reader.line_num}: not CSV ({exc})") from None
