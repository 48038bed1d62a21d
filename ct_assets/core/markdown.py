"""Small Markdown builders for metadata the Dagster UI renders."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl


def _cell(value: object, max_chars: int = 80) -> str:
    text = "" if value is None else str(value)
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def table(rows: Sequence[Mapping[str, object]], columns: Sequence[str] | None = None) -> str:
    if not rows:
        return "_(none)_"
    columns = list(columns or rows[0].keys())
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    body = "\n".join("| " + " | ".join(_cell(r.get(c)) for c in columns) + " |" for r in rows)
    return head + body


def frame_preview(frame: pl.DataFrame, n: int = 5, columns: Sequence[str] | None = None) -> str:
    cols = [c for c in (columns or frame.columns) if c in frame.columns]
    return table(frame.select(cols).head(n).to_dicts(), cols)


def counts(mapping: Mapping[str, int], key: str = "value", value: str = "rows") -> str:
    return table([{key: k, value: v} for k, v in sorted(mapping.items(), key=lambda kv: -kv[1])])
