"""Prompt sets: pasted lines, CSV or JSONL with `prompt` and optional `expected`, `category`, `system`, `id`.

Parsing never trusts a file: a size limit first, then every row checked, and errors name the line
(`line 4: ...`), so a user can fix the file. Pure: no torch, no database.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from playground.wording import noun, plural

MAX_SET_BYTES = 8 * 1024 * 1024
MAX_PROMPTS = 2000
MAX_PROMPT_CHARS = 100_000
MAX_EXPECTED_CHARS = 10_000
MAX_SYSTEM_CHARS = 100_000
MAX_CATEGORY_CHARS = 40
MAX_ID_CHARS = 64
FIELDS = ("prompt", "expected", "category", "system", "id")
FORMATS = ("lines", "csv", "jsonl")
_ID = re.compile(r"^[A-Za-z0-9_.:-]+$")
SAMPLE = Path(__file__).resolve().parents[2] / "assets" / "prompt_sets" / "sample.jsonl"


class PromptSetError(ValueError):
    """A prompt set that cannot be used; the message names the line and the problem."""


@dataclass
class PromptItem:
    prompt: str
    expected: str = ""  # "" when there is no expected answer
    category: str = ""
    system: str = ""  # this prompt's system prompt ("" for none)
    id: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def format_of(name: str) -> str:
    """The format a file name implies: .csv, .jsonl/.ndjson, anything else is one prompt a line."""
    suffix = Path(name).suffix.lower()
    return {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}.get(suffix, "lines")


def load_file(path: str | Path, fmt: str | None = None) -> list[PromptItem]:
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_SET_BYTES:
            raise PromptSetError(_too_big(size))
        data = path.read_bytes()
    except OSError as exc:
        raise PromptSetError(f"cannot read {path}: {exc.strerror}") from exc
    return parse(data, fmt or format_of(path.name))


def parse(data: bytes | str, fmt: str) -> list[PromptItem]:
    """The items of a set in `fmt` (lines | csv | jsonl), checked; PromptSetError says what is wrong."""
    if fmt not in FORMATS:
        raise PromptSetError(f"unknown prompt set format {fmt!r}: use one of {', '.join(FORMATS)}")
    size = len(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)
    if size > MAX_SET_BYTES:
        raise PromptSetError(_too_big(size))
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise PromptSetError(f"line {line}: not UTF-8 text (byte {exc.start})") from exc
    else:
        text = data.removeprefix("\ufeff")
    rows = {"lines": _lines, "csv": _csv, "jsonl": _jsonl}[fmt](text)
    return _finish(rows)


def _too_big(size: int) -> str:
    return f"the prompt set is {size / 2**20:.1f} MiB; sets are at most {MAX_SET_BYTES / 2**20:.0f} MiB"


def _lines(text: str) -> list[tuple[int, dict[str, str]]]:
    return [(n, {"prompt": line.strip()}) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def _csv(text: str) -> list[tuple[int, dict[str, str]]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise PromptSetError("the CSV file is empty: it needs a header row with a `prompt` column")
        names = [h.strip().lower() for h in header]
        unknown = [h for h in names if h not in FIELDS]
        if unknown:
            listed = ", ".join(map(repr, unknown))
            raise PromptSetError(f"line 1: unknown {noun(len(unknown), 'column')} {listed}; "
                                 f"the columns are {', '.join(FIELDS)}")
        if "prompt" not in names:
            raise PromptSetError("line 1: the CSV header has no `prompt` column")
        if len(set(names)) != len(names):
            raise PromptSetError("line 1: a column appears twice in the CSV header")
        rows = []
        for values in reader:
            line = reader.line_num
            if not any(v.strip() for v in values):
                continue
            if len(values) != len(names):
                raise PromptSetError(f"line {line}: {plural(len(values), 'value')} for "
                                     f"{plural(len(names), 'column')}")
            rows.append((line, dict(zip(names, values, strict=True))))
    except csv.Error as exc:
        raise PromptSetError(f"line {reader.line_num}: malformed CSV ({exc})") from exc
    return rows


def _jsonl(text: str) -> list[tuple[int, dict[str, str]]]:
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError) as exc:
            raise PromptSetError(f"line {n}: not valid JSON ({str(exc)[:120]})") from exc
        if not isinstance(obj, dict):
            raise PromptSetError(f"line {n}: expected a JSON object with a \"prompt\", "
                                 f"got {type(obj).__name__}")
        unknown = sorted(set(obj) - set(FIELDS))
        if unknown:
            listed = ", ".join(map(repr, unknown))
            raise PromptSetError(f"line {n}: unknown {noun(len(unknown), 'field')} {listed}; "
                                 f"the fields are {', '.join(FIELDS)}")
        row = {}
        for key, value in obj.items():
            if key == "expected" and isinstance(value, (int, float)) and not isinstance(value, bool):
                value = json.dumps(value)  # 42 or 2.5: a numeric answer, kept as written
            if value is None:
                value = ""
            if not isinstance(value, str):
                raise PromptSetError(f"line {n}: \"{key}\" must be a string, got {type(value).__name__}")
            row[key] = value
        rows.append((n, row))
    return rows


def _finish(rows: list[tuple[int, dict[str, str]]]) -> list[PromptItem]:
    if not rows:
        raise PromptSetError("the prompt set has no prompts")
    if len(rows) > MAX_PROMPTS:
        raise PromptSetError(f"the prompt set has {len(rows):,} prompts; at most {MAX_PROMPTS:,} are allowed")
    items: list[PromptItem] = []
    seen: dict[str, int] = {}
    for number, (line, row) in enumerate(rows, 1):
        item = check_item(PromptItem(
            prompt=row.get("prompt", ""), expected=row.get("expected", "").strip(),
            category=" ".join(row.get("category", "").split()), system=row.get("system", ""),
            id=row.get("id", "").strip() or f"p{number}"), f"line {line}")
        if item.id in seen:
            raise PromptSetError(f"line {line}: id {item.id!r} was already used on line {seen[item.id]}")
        seen[item.id] = line
        items.append(item)
    return items


def check_item(item: PromptItem, where: str) -> PromptItem:
    """One item's values within limits (also used on imported batches); returns it."""
    limits = (("prompt", MAX_PROMPT_CHARS), ("expected", MAX_EXPECTED_CHARS),
              ("category", MAX_CATEGORY_CHARS), ("system", MAX_SYSTEM_CHARS), ("id", MAX_ID_CHARS))
    for name, limit in limits:
        value = getattr(item, name)
        if len(value) > limit:
            raise PromptSetError(f"{where}: {name} is {len(value):,} characters; the limit is {limit:,}")
        if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
            raise PromptSetError(f"{where}: {name} holds text that is not valid Unicode")
    if not item.prompt.strip():
        raise PromptSetError(f"{where}: the prompt is empty")
    if not _ID.match(item.id):
        raise PromptSetError(f"{where}: id {item.id[:40]!r} may hold only letters, digits and . _ : -")
    if not item.category.isprintable():
        raise PromptSetError(f"{where}: the category holds control characters")
    return item
