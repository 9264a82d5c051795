"""Files in one folder: CSV, JSON, JSON Lines and XML.

Formats (from the file extension):

* ``.csv``: a header row, then one record per row (UTF-8, a BOM is accepted).
  Every value reads back as a string (an empty cell is ``""``).
* ``.json``: an array of objects. Values keep their JSON types.
* ``.jsonl``: one JSON object per line (blank lines are skipped).
* ``.xml``: ``<records><record><field>value</field>...</record>...</records>``.
  Every value reads back as a string; a field whose value is ``None`` is left out.

When writing CSV and XML: ``None`` -> empty cell / no element, booleans -> ``true``/
``false``, lists and dicts -> JSON text, numbers -> ``str()``.

Reading (:class:`FileSource`): ``extract.file`` is a glob pattern inside the folder
(``orders-*.csv``); ``..`` and absolute paths are refused, and so are matches that
resolve outside the folder (symlinks). Matching files are read in name order, all their
records are collected and then ordered by (incremental, key) or by key. ``since`` and
``ids`` work as for SQL: incremental values and keys compare by :mod:`flowlink.ordering` (numbers and
numeric text as numbers, ISO 8601 timestamps as instants, other text as text); ``ids``
compares keys as strings and ignores ``since``. No match -> no records.

Files are untrusted. A file that cannot be read as a whole (not UTF-8, invalid XML or
JSON, over ``FLOWLINK_MAX_FILE_BYTES``, XML nested deeper than 256 levels, a CSV without
the key column) raises :class:`ConnectorError`. A record that cannot be used (a JSON
Lines line that is not a JSON object, a JSON record nested deeper than
``FLOWLINK_MAX_DEPTH``, an XML record with a field given twice or holding elements or
entity references, a key that is an object or array, no value for the key) is yielded as an
:class:`~flowlink.connectors.base.Unreadable` (the reason, the file and line or item, its key and
incremental value if they are plain values): ``flowlink.sync.extract`` fails it in the resync bucket,
the other records go on. XML entities are never expanded and nothing is loaded from a URL.

Writing (:class:`FileTarget`): ``load.file`` names one file in the folder. Records are
merged into the existing file by ``load.key``: ``upsert`` updates the fields the record
carries (other fields keep their values) or appends a new record; ``insert`` reports an
existing key as ``ok=False, exists=True, error="already exists"``, like :class:`SqlTarget`. The file is
rewritten atomically (a temp file in the same folder, fsync, ``os.replace``), so a crash
leaves either the old or the new file. Writers to the same folder are serialised with
an advisory lock on the folder (``flock``) where the OS supports it.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath
from typing import Any

from lxml import etree

from flowlink import settings
from flowlink.connectors.base import Batch, ConnectorError, Record, Unreadable, WriteResult, json_safe, newest
from flowlink.files import write_atomic
from flowlink.ordering import newer, order_key
from flowlink.spec import Extract, Load

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["FileSource", "FileTarget", "folder_from_connection"]

FORMATS = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".xml": "xml"}
XML_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")  # a JSON escape of half a UTF-16 pair: may decode to no character


def _format(path: str | PurePath) -> str:
    suffix = PurePosixPath(str(path)).suffix.lower()
    if suffix not in FORMATS:
        raise ConnectorError(
            f"{path}: unknown file format {suffix or '(no extension)'!r}; use .csv, .json, .jsonl or .xml"
        )
    return FORMATS[suffix]


def _check_relative(pattern: str, what: str) -> str:
    """A path or pattern that must stay inside the folder."""
    if not pattern or not pattern.strip():
        raise ConnectorError(f"{what} is empty")
    posix, windows = PurePosixPath(pattern), PureWindowsPath(pattern)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or pattern.startswith(("/", "\\")):
        raise ConnectorError(f"{what} {pattern!r} must be relative to the connection's folder, not an absolute path")
    if ".." in posix.parts or ".." in windows.parts:
        raise ConnectorError(f"{what} {pattern!r} must stay inside the connection's folder ('..' is not allowed)")
    return pattern


def folder_from_connection(host: str | None, extra: dict | None) -> str:
    """The folder of an Airflow connection: extra {"path": "/folder"}, else its host."""
    folder = (extra or {}).get("path") or host
    if not folder:
        raise ConnectorError('no folder: set extra {"path": "/folder"} or host')
    return str(folder)


class _Folder:
    def __init__(self, folder: str | os.PathLike[str]):
        self.folder = Path(folder)

    def _root(self) -> Path:
        if not self.folder.is_dir():
            raise ConnectorError(f"folder not found: {self.folder}")
        return self.folder.resolve()

    def _inside(self, root: Path, path: Path, what: str) -> Path:
        resolved = path.resolve()
        if resolved != root and root not in resolved.parents:
            raise ConnectorError(f"{what} {path.relative_to(self.folder)} leads outside the connection's folder")
        return resolved

    def close(self) -> None:
        """Nothing to release; files are opened and closed per call."""


class FileSource(_Folder):
    """Reads records from the files matching ``extract.file`` (see the module docstring)."""

    def read(
        self,
        extract: Extract,
        *,
        since: Any = None,
        ids: list[str] | None = None,
        batch_size: int,
    ) -> Iterator[Batch]:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if not extract.file:
            raise ConnectorError("a file source reads extract.file")
        pattern = _check_relative(extract.file, "extract.file")
        if ids is not None and not ids:
            return
        root = self._root()
        files = sorted(
            (p for p in self.folder.glob(pattern) if p.is_file()), key=lambda p: p.relative_to(self.folder).as_posix()
        )
        wanted = {str(i) for i in ids} if ids is not None else None
        records: Batch = []
        for path in files:
            resolved = self._inside(root, path, "extract.file match")
            name = path.relative_to(self.folder).as_posix()
            for n, (where, record, problem) in enumerate(_entries(resolved, name), start=1):
                if problem is None and extract.key not in record and _format(name) == "csv":
                    raise ConnectorError(f"{name}: record {n} has no key field {extract.key!r} (no such column)")
                if problem is None and isinstance(record.get(extract.key), (dict, list)):
                    problem = f"the key field {extract.key!r} holds {_json_kind(record[extract.key])}, not a value"
                key = record.get(extract.key) if problem is None else _plain(record.get(extract.key))
                value = record.get(extract.incremental) if extract.incremental else None
                if problem is not None:
                    value = _plain(value)
                if wanted is not None:
                    if key is None or _text(key) not in wanted:
                        continue
                elif since is not None and extract.incremental:
                    if value is None and problem is not None:
                        pass  # unreadable, of unknown age: reported on every run until the file is fixed
                    elif value is None or not newer(value, since):
                        continue
                if problem is None and (key is None or key == ""):
                    problem = f"no value for the key field {extract.key!r}"
                records.append(record if problem is None else Unreadable(problem, where, _plain(key), _plain(value)))

        def order(r: Record | Unreadable) -> tuple:
            if isinstance(r, Unreadable):
                key, value = r.key, r.incremental
            else:
                key, value = r.get(extract.key), r.get(extract.incremental) if extract.incremental else None
            return (order_key(value), order_key(key)) if extract.incremental else (order_key(key),)

        records.sort(key=order)
        for start in range(0, len(records), batch_size):
            yield records[start : start + batch_size]

    def newest(self, extract: Extract, limit: int) -> Batch:
        """Source.newest: the matching files are read whole, as for a run, and the newest ``limit`` records kept."""
        return newest(self.read(extract, batch_size=limit), extract, limit)


def _plain(value: Any) -> str | int | float | None:
    """A key or incremental value an unreadable record keeps: plain values only."""
    return value if isinstance(value, (str, int, float)) else None


class FileTarget(_Folder):
    """Merges records into the file ``load.file`` by key (see the module docstring)."""

    def write(
        self, load: Load, records: list[dict], destination_ids: list[str | None] | None = None
    ) -> list[WriteResult]:
        """Merge by ``load.key`` (see the module docstring); ``destination_ids`` are not needed."""
        if not load.file:
            raise ConnectorError("a file target writes load.file")
        name = _check_relative(load.file, "load.file")
        if any(c in name for c in "*?["):
            raise ConnectorError(f"load.file {name!r} must name one file, not a pattern")
        fmt = _format(name)
        root = self._root()
        path = self.folder / name
        self._inside(root, path.parent, "load.file folder")
        if path.exists():
            self._inside(root, path, "load.file")
        if not records:
            return []
        path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(root):
            existing = _read_file(path, name) if path.exists() else []
            merged: dict[Any, dict] = {}
            for n, record in enumerate(existing):
                value = record.get(load.key)
                merged[("k", _text(value)) if value is not None else ("row", n)] = record
            results: list[WriteResult] = []
            for record in records:
                key = (
                    _text(record.get(load.key)) if isinstance(record, dict) and record.get(load.key) is not None else ""
                )
                problem = _problem(record, load.key, fmt)
                if problem:
                    results.append(WriteResult(key=key, ok=False, error=problem))
                    continue
                slot = ("k", key)
                if slot in merged and load.method == "insert":
                    results.append(WriteResult(key=key, ok=False, error="already exists", exists=True))
                    continue
                safe = {k: json_safe(v, k) for k, v in record.items()}
                merged[slot] = {**merged[slot], **safe} if slot in merged else safe
                results.append(WriteResult(key=key, ok=True, destination_id=key))
            if any(r.ok for r in results):
                _write_atomically(path, _render(fmt, list(merged.values())))
        return results


def _problem(record: Any, key: str, fmt: str) -> str | None:
    if not isinstance(record, dict):
        return f"a record must be a mapping of fields, got {type(record).__name__}"
    if record.get(key) is None:
        return f"the record has no value for the key field {key!r}"
    for field, value in record.items():
        if not isinstance(field, str) or not field:
            return f"field names must be non-empty strings, got {field!r}"
        if fmt == "xml" and (not XML_NAME.match(field) or field.lower().startswith("xml")):
            return f"field name {field!r} cannot be an XML element name"
        try:
            json_safe(value, field)
        except ConnectorError as exc:
            return str(exc)
    return None


# --- comparing -----------------------------------------------------------------------


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


# --- reading --------------------------------------------------------------------------

Entry = tuple[str, dict, "str | None"]  # (where, record, problem): problem says why the record cannot be used


def _read_file(path: Path, name: str) -> list[dict]:
    """Every record of a file; any problem raises (a target merges into the file: nothing of it may be lost)."""
    records = []
    for where, record, problem in _entries(path, name):
        if problem is not None:
            raise ConnectorError(f"{where}: {problem}")
        records.append(record)
    return records


def _entries(path: Path, name: str) -> list[Entry]:
    """The records of a file, each with where it is and what is wrong with it, if anything. A problem
    with the file as a whole raises ConnectorError."""
    fmt = _format(name)
    data = _read_bytes(path, name)
    if fmt == "xml":
        return _xml_entries(data, name)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConnectorError(f"{name}: not a UTF-8 text file") from None
    if fmt == "csv":
        return _csv_entries(text, name)
    if fmt == "json":
        try:
            items = json.loads(text) if text.strip() else []
        except json.JSONDecodeError as exc:
            raise ConnectorError(f"{name}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
        except (ValueError, RecursionError) as exc:  # a number of over 4300 digits; nesting Python cannot follow
            raise ConnectorError(f"{name}: invalid JSON: {_json_problem(exc)}") from None
        if not isinstance(items, list):
            raise ConnectorError(f"{name}: a .json file must hold an array of objects (use .jsonl for JSON Lines)")
        halves = bool(SURROGATE.search(text))
        return [_json_entry(f"{name} item {n}", item, halves) for n, item in enumerate(items, start=1)]
    entries: list[Entry] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            entries.append((f"{name} line {n}", {}, f"invalid JSON at column {exc.colno}: {exc.msg}"))
        except (ValueError, RecursionError) as exc:
            entries.append((f"{name} line {n}", {}, f"invalid JSON: {_json_problem(exc)}"))
        else:
            entries.append(_json_entry(f"{name} line {n}", item, bool(SURROGATE.search(line))))
    return entries


def _read_bytes(path: Path, name: str) -> bytes:
    limit = settings.limit("FLOWLINK_MAX_FILE_BYTES")
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            data = f.read(limit + 1) if size <= limit else b""
    except OSError as exc:
        raise ConnectorError(f"cannot read {name}: {exc.strerror or exc}") from None
    if size > limit or len(data) > limit:
        raise ConnectorError(
            f"{name} is {max(size, len(data)):,} bytes, over the limit of {limit:,} (FLOWLINK_MAX_FILE_BYTES)"
        )
    return data


def _json_problem(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return f"nested deeper than {settings.limit('FLOWLINK_MAX_DEPTH')} levels (FLOWLINK_MAX_DEPTH)"
    return str(exc).partition(":")[0]  # "Exceeds the limit (4300 digits) for integer string conversion"


def _json_entry(where: str, item: Any, halves: bool) -> Entry:
    if not isinstance(item, dict):
        return where, {}, f"not a JSON object but {_json_kind(item)}"
    if halves and (field := _unpaired(item)) is not None:
        return where, item, f"field {field!r} holds an unpaired surrogate (\\ud800-\\udfff), which is not a character"
    limit = settings.limit("FLOWLINK_MAX_DEPTH")
    if any(type(value) in (dict, list) for value in item.values()) and _deeper(item, limit):
        return where, item, f"nested deeper than {limit} levels (FLOWLINK_MAX_DEPTH)"
    return where, item, None


def _unpaired(item: dict) -> str | None:
    """The field of a JSON record holding half a surrogate pair (text that cannot be written as UTF-8), if any."""
    for name, value in item.items():
        try:
            json.dumps({name: value}, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            return name
    return None


def _json_kind(value: Any) -> str:
    kinds = {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }
    return kinds.get(type(value), "null")


def _deeper(value: Any, limit: int) -> bool:
    """Whether a JSON value nests objects and arrays more than ``limit`` levels deep (the record itself is level 1)."""
    level, current = 0, [value]
    while current:
        level += 1
        if level > limit:
            return True
        current = [v for c in current for v in (c.values() if type(c) is dict else c) if type(v) in (dict, list)]
    return False


def _csv_entries(text: str, name: str) -> list[Entry]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        entries: list[Entry] = []
        for row in reader:
            if None in row:
                raise ConnectorError(f"{name}: line {reader.line_num} has more cells than the header")
            entries.append(
                (f"{name} line {reader.line_num}", {k: ("" if v is None else v) for k, v in row.items()}, None)
            )
    except csv.Error as exc:
        raise ConnectorError(f"{name}: invalid CSV at line {reader.line_num}: {exc}") from None
    if reader.fieldnames and len(set(reader.fieldnames)) != len(reader.fieldnames):
        raise ConnectorError(f"{name}: the header repeats a column name")
    return entries


def _xml_entries(data: bytes, name: str) -> list[Entry]:
    # No DTD, no entities expanded, nothing from the network; huge_tree stays off, so libxml2 refuses more than
    # 256 levels, text nodes over 10 MB and entity expansion bombs.
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, remove_comments=True, remove_pis=True
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise ConnectorError(f"{name}: invalid XML: {_xml_problem(exc)}") from None
    entries = []
    for n, element in enumerate((e for e in root if isinstance(e.tag, str)), start=1):
        record: dict[str, str] = {}
        problem = None
        for child in element:
            inner = child if not isinstance(child.tag, str) else next(iter(child), None)
            if inner is not None and problem is None:  # an entity reference or an element where text belongs
                holder = "the record" if inner is child else f"field {etree.QName(child).localname!r}"
                if isinstance(inner, etree._Entity):
                    problem = f"{holder} holds the entity reference {inner.text}, which is not expanded"
                else:
                    problem = f"{holder} holds the element <{etree.QName(inner).localname}>: a field holds text only"
            if not isinstance(child.tag, str):
                continue
            field = etree.QName(child).localname
            if field in record and problem is None:
                problem = f"the field {field!r} is given twice"
            record.setdefault(field, child.text or "")
        entries.append((f"{name} record {n}, line {element.sourceline}", record, problem))
    return entries


def _xml_problem(exc: etree.XMLSyntaxError) -> str:
    message, where = exc.msg.split(",")[0], f"line {exc.position[0]}, column {exc.position[1]}"
    if "amplification" in message:
        return f"its entities would expand too far (an entity expansion bomb); entities are not expanded ({where})"
    if "depth" in message:
        return f"nested deeper than 256 levels, the most libxml2 reads ({where})"
    if "huge" in message.lower() or "too long" in message.lower():
        return f"a text over 10,000,000 bytes, the most libxml2 reads ({where})"
    return exc.msg


# --- writing --------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _render(fmt: str, records: list[dict]) -> bytes:
    if fmt == "json":
        return (json.dumps(records, ensure_ascii=False, indent=2) + "\n").encode()
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
    if fmt == "csv":
        fields = list(dict.fromkeys(f for r in records for f in r))
        out = io.StringIO(newline="")
        writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        for record in records:
            writer.writerow({f: _cell(record.get(f)) for f in fields})
        return out.getvalue().encode()
    root = etree.Element("records")
    for record in records:
        element = etree.SubElement(root, "record")
        for field, value in record.items():
            if value is not None:
                etree.SubElement(element, field).text = _cell(value)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _write_atomically(path: Path, data: bytes) -> None:
    try:
        write_atomic(path, data)
    except OSError as exc:
        raise ConnectorError(f"cannot write {path}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    if fcntl is None:
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock
