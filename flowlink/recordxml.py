"""Record XML: how records travel between the steps of a touchpoint, in batch files.

    <records><record key="SOURCE_KEY"><field>value</field>...</record>...</records>

The extract step writes its records so (``RecordWriter``): the document the touchpoint's stylesheet reads, so
a batch file can be replayed with any XSLT processor. The transform step parses it, applies the stylesheet and
writes the stylesheet's output, every record keeping its ``key`` (flowlink.transform). The load step reads that
output back as typed dicts (``RecordReader``); each carries ``"__key__"``: the source key of its record. A record
that cannot be written or read becomes a failure ``(source key, reason)``; the others go on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from lxml import etree

from flowlink import settings
from flowlink.spec import NOT_XML as _NOT_XML

KEY = "__key__"  # read records: the source key of the record
record_keys = etree.XPath("*/@key", smart_strings=False)  # the keys of a document's records, in order

_INTEGER = re.compile(r"[+-]?[0-9]+(\.0*)?")
_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")


# -- output types -----------------------------------------------------------------------------


class CastError(ValueError):
    pass


def _short(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:77] + "...")


def _integer(text: str) -> int | None:
    """'42', ' -7 ', '12.0' -> int; '' -> None (no value); anything else is an error."""
    if text.isdigit() and text.isascii():
        return int(text)
    value = text.strip()
    if not value:
        return None
    if not _INTEGER.fullmatch(value):
        raise CastError(f"{_short(text)} is not an integer")
    return int(value.partition(".")[0])


def _number(text: str) -> float | None:
    """'3.5', '-1e3', '7' -> float; '' -> None (no value); NaN, Infinity and the rest are errors."""
    value = text.strip()
    if not value:
        return None
    if not _NUMBER.fullmatch(value):
        raise CastError(f"{_short(text)} is not a number")
    return float(value)


def _boolean(text: str) -> bool:
    """true/1 -> True; false/0/'' -> False (any case, surrounding spaces ignored)."""
    word = text.strip().lower()
    if word in ("true", "1"):
        return True
    if word in ("false", "0", ""):
        return False
    raise CastError(f"{_short(text)} is not a boolean (true/false/1/0)")


CASTS: dict[str, Callable[[str], Any] | None] = {
    "string": None,
    "integer": _integer,
    "number": _number,
    "boolean": _boolean,
}
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False, "": False}
_NOT_NUMBER_CHARS = str.maketrans("", "", "0123456789.+-eE")


def _cast_column(cast: Callable[[str], Any], column: list[str]) -> list[Any]:
    """list(map(cast, column)); a column of plain values takes C code (int, float, a dict) to the same result."""
    try:
        if cast is _integer:
            joined = "".join(column)
            if joined.isdigit() and joined.isascii():
                return list(map(int, column))  # digits only: an empty value raises, and goes the slow way
        elif cast is _number:
            if not "".join(column).translate(_NOT_NUMBER_CHARS):
                return list(map(float, column))  # for these characters float() accepts exactly what _NUMBER does
        elif cast is _boolean:
            return list(map(_BOOLEANS.__getitem__, column))
    except (ValueError, KeyError):
        pass
    return list(map(cast, column))


# -- records -> record XML (the extract step) ------------------------------------------------


def _as_text(value: Any) -> str:
    """A field value as record XML text: bool as true/false, a list or dict as JSON, anything else through str()."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) in (list, dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return value if type(value) is str else str(value)


def key_text(value: Any) -> str:
    """A record's key as record XML carries it (its ``key`` attribute), so as the bucket keeps it."""
    return _as_text(value)


# A document is built in one pass with its markup written in three stand-in characters
# (XML cannot hold them, so no valid value holds them either), escaped as a whole with a
# few str.replace calls, after which the stand-ins become real markup: much faster than
# escaping value by value. Counting the stand-ins catches a value that holds one; the
# parser catches every other character XML 1.0 cannot carry. Only then are the records
# looked at one by one. Records that are all dicts with the same fields (the usual batch)
# take a faster way to the same text: RecordWriter._build_columns.
LT, GT, QUOT = "\x01", "\x02", "\x03"
_RECORDS_START, _RECORDS_END = f"{LT}records{GT}", f"{LT}/records{GT}"
_RECORD_START, _KEY_END, _RECORD_END = f"{LT}record key={QUOT}", f"{QUOT}{GT}", f"{LT}/record{GT}"
_ESCAPES = (
    ("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"),
    # as references, else the parser normalises them (CR anywhere, tab and newline in the key attribute)
    ("\r", "&#13;"), ("\n", "&#10;"), ("\t", "&#9;"),
    (LT, "<"), (GT, ">"), (QUOT, '"'),
)  # fmt: skip


def _escape(text: str) -> str:
    for char, replacement in _ESCAPES:
        text = text.replace(char, replacement)
    return text


def _texts(column: Sequence[Any]) -> list[str]:
    """The values of a column as record XML text (_as_text), None values left out."""
    kinds = set(map(type, column))
    if type(None) in kinds:
        column = [value for value in column if value is not None]
    if kinds <= {str, type(None)}:
        return list(column)
    return list(map(_as_text if kinds & {bool, list, dict} else str, column))  # str() is _as_text for the rest


def _escaped(texts: list[str]) -> list[str]:
    """Texts escaped as _escape escapes values (the stand-ins aside), a character at a time over a whole column."""
    joined = "".join(texts)
    for char, replacement in _ESCAPES[:-3]:
        if char in joined:
            texts = [text.replace(char, replacement) for text in texts]
    return texts


def _utf8(document: str) -> bytes:
    # lxml parses UTF-8 bytes faster than str; a lone surrogate then fails in the parser, as before
    return document.encode("utf-8", "surrogatepass")


def parser() -> etree.XMLParser:
    """The parser of batch files. We write all of their markup (no DTD): nothing is resolved; huge_tree allows text
    nodes over 10 MB, values being held to FLOWLINK_MAX_VALUE_CHARS. Readers keep one and reuse it."""
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True)


class Written(NamedTuple):
    """A batch as record XML: the document, the keys of the records in it, the records that could not go in."""

    document: bytes
    keys: list[str]
    failures: list[tuple[str, str]]


class _Chunk(NamedTuple):
    keys: list[str]
    records: list[Mapping[str, Any]]
    document: str  # with its markup, ready but for the encoding


class RecordWriter:
    """Records (dicts) -> record XML, the key of each from ``key_field``. A record fails alone if it has no key, or
    holds characters XML 1.0 cannot carry or a value over FLOWLINK_MAX_VALUE_CHARS; a field whose name is not an XML
    name, and a None value, are left out."""

    def __init__(self, key_field: str):
        self.key_field = key_field
        self._tags: dict[Any, tuple[str, str] | None] = {}
        self.max_value = settings.limit("FLOWLINK_MAX_VALUE_CHARS")

    def write(self, records: Iterable[Mapping[str, Any]]) -> Written:
        failures: list[tuple[str, str]] = []
        chunk = self._build(list(records), failures)
        if len(chunk.document) > self.max_value:  # only then can a value be over the limit
            within = self._within_limit(chunk, failures)
            if len(within) < len(chunk.records):
                chunk = self._build(within, failures)
        return Written(_utf8(chunk.document), chunk.keys, failures)

    def _tag(self, name: Any) -> tuple[str, str] | None:
        """(start tag, end tag) in stand-in markup for a field name; None if not a valid XML element name."""
        text = name if isinstance(name, str) else str(name)
        try:
            etree.Element(text)  # lxml's own check: a valid XML name without a namespace prefix
            tag: tuple[str, str] | None = (f"{LT}{text}{GT}", f"{LT}/{text}{GT}")
        except ValueError:
            tag = None
        self._tags[name] = tag
        return tag

    def _build(
        self, records: list[Mapping[str, Any]], failures: list[tuple[str, str]], screened: bool = False
    ) -> _Chunk:
        """The document of some records; records without a key, and (unless ``screened``) those holding characters
        XML cannot carry, become failures."""
        chunk = self._build_columns(records) if records else None
        if chunk is None:
            chunk = self._build_records(records, failures, screened)
        if not screened and _NOT_XML.search(chunk.document) is not None:
            return self._screen(chunk.keys, chunk.records, failures)
        return chunk

    def _build_records(
        self, records: list[Mapping[str, Any]], failures: list[tuple[str, str]], screened: bool
    ) -> _Chunk:
        """_build for any records, a record at a time."""
        key_field, tags, tag_of = self.key_field, self._tags, self._tag
        keys: list[str] = []
        taken: list[Mapping[str, Any]] = []
        parts: list[str] = [_RECORDS_START]
        for record in records:
            key = record.get(key_field)
            if key is None or key == "":
                failures.append(("", f"missing key field {key_field!r}"))
                continue
            if type(key) is not str:
                key = _as_text(key)
            keys.append(key)
            taken.append(record)
            parts += (_RECORD_START, key, _KEY_END)
            for name, value in record.items():
                if value is None:
                    continue
                tag = tags[name] if name in tags else tag_of(name)
                if tag is None:
                    continue
                parts += (tag[0], value if type(value) is str else _as_text(value), tag[1])
            parts.append(_RECORD_END)
        parts.append(_RECORDS_END)
        document = "".join(parts)
        # each field has 2 "<" and 2 ">", each record 2 more, <records> 2; each record 2 quotes
        markup = 2 + 2 * len(keys) + 2 * ((len(parts) - 2 - 4 * len(keys)) // 3)
        if not screened and (
            document.count(LT) != markup or document.count(GT) != markup or document.count(QUOT) != 2 * len(keys)
        ):
            return self._screen(keys, taken, failures)
        return _Chunk(keys, taken, _escape(document))

    def _build_columns(self, records: list[Mapping[str, Any]]) -> _Chunk | None:
        """_build's document, built a column at a time (converted and escaped in one go, then one
        %-template per record), for records that are all dicts with the same fields in the same order
        and a key; None for other records."""
        names = tuple(records[0])
        if (
            set(map(type, records)) != {dict}
            or not all(map(names.__eq__, map(tuple, records)))
            or self.key_field not in names
        ):
            return None
        columns = list(zip(*(record.values() for record in records), strict=True))
        key_column = columns[names.index(self.key_field)]
        if any(key is None or key == "" for key in key_column):
            return None
        keys = _texts(key_column)
        template, values = [_escape(_RECORD_START), "%s", _escape(_KEY_END)], [_escaped(keys)]
        for name, column in zip(names, columns, strict=False):
            tag = self._tags[name] if name in self._tags else self._tag(name)
            if tag is None:
                continue
            start, end = _escape(tag[0]), _escape(tag[1])  # an XML name holds no %, safe in the %-template
            texts = _escaped(_texts(column))
            if len(texts) == len(column):
                template += (start, "%s", end)
                values.append(texts)
            else:  # some values are None: those records leave the field out
                present = iter(texts)
                template.append("%s")
                values.append(["" if value is None else start + next(present) + end for value in column])
        template.append(_escape(_RECORD_END))
        markup = "".join(template)
        document = "".join([markup % record for record in zip(*values, strict=False)])
        return _Chunk(keys, records, f"<records>{document}</records>")

    def _bad_field(self, key: str, record: Mapping[str, Any]) -> str | None:
        """The field (the key included) holding characters XML 1.0 cannot carry, if any."""
        if _NOT_XML.search(key):
            return self.key_field
        for name, value in record.items():
            if value is not None and self._tag(name) is not None and _NOT_XML.search(_as_text(value)):
                return str(name)
        return None

    def _within_limit(self, chunk: _Chunk, failures: list[tuple[str, str]]) -> list[Mapping[str, Any]]:
        """The records of a chunk whose values all fit FLOWLINK_MAX_VALUE_CHARS; the others fail."""
        good = []
        for key, record in zip(chunk.keys, chunk.records, strict=False):
            sizes = [(self.key_field, len(key))] + [
                (str(name), len(value if type(value) is str else _as_text(value))) for name, value in record.items()
                if type(value) in (str, list, dict) and (self._tags[name] if name in self._tags else self._tag(name))
            ]  # fmt: skip
            field, size = max(sizes, key=lambda pair: pair[1])
            if size <= self.max_value:
                good.append(record)
            else:
                reason = f"field {field!r} holds {size:,} characters, over the limit of {self.max_value:,} (FLOWLINK_MAX_VALUE_CHARS)"
                failures.append((key, reason))
        return good

    def _screen(self, keys: list[str], records: list[Mapping[str, Any]], failures: list[tuple[str, str]]) -> _Chunk:
        """Fail the records holding characters XML cannot carry; the document of the others."""
        good = []
        for key, record in zip(keys, records, strict=False):
            field = self._bad_field(key, record)
            if field is None:
                good.append(record)
            else:
                failures.append((key, f"field {field!r} holds characters XML 1.0 cannot carry"))
        return self._build(good, failures, screened=True)

    # -- transform --------------------------------------------------------------------------


# -- record XML -> typed records (the load step) ----------------------------------------------


def _local(name: Any) -> Any:
    return name.rpartition("}")[2] if isinstance(name, str) and name[:1] == "{" else name


class RecordReader:
    """The stylesheet's output -> typed records: each element under the root is a record (comments and processing
    instructions are skipped), each element in it a field, whose text (all of it, if the field holds elements) is
    the value. ``types``: field -> string/integer/number/boolean; fields not named stay strings. ``fields``: the
    output fields in order when the stylesheet has generate_xslt's shape (Transformer.fields): then records are read
    by position, a column at a time. ``local_names``: read namespaced names as local names."""

    def __init__(self, types: Mapping[str, str], fields: Sequence[str] | None = None, local_names: bool = False):
        unknown = sorted({t for t in types.values() if t not in CASTS})
        if unknown:
            raise ValueError(f"unknown output type(s) {', '.join(unknown)}: use string, integer, number or boolean")
        self._casts = [(field, cast) for field, t in types.items() if (cast := CASTS[t]) is not None]
        self._fields = tuple(fields) if fields else None
        self._field_casts = [dict(self._casts).get(name) for name in self._fields or ()]
        self._local_names = local_names
        self._parser = parser()

    def read(self, document: bytes) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
        """(records, failures): a record whose value does not fit its type fails, naming the field and the value."""
        root = etree.fromstring(document, self._parser)
        out: list[dict[str, Any]] = []
        failures: list[tuple[str, str]] = []
        if self._fields is None or not self._read_fields(root, out):
            self._read(root, out, failures)
        return out, failures

    def _read(self, root: etree._Element, out: list[dict[str, Any]], failures: list[tuple[str, str]]) -> None:
        comment, pi = etree.Comment, etree.PI
        local_names, casts = self._local_names, self._casts
        for element in root:
            if element.tag.__class__ is not str:
                continue  # a comment or processing instruction between records
            row: dict[Any, Any] = {}
            for child in element:
                row[child.tag] = (child.text or "") if not len(child) else "".join(child.itertext())
            if comment in row or pi in row:
                row.pop(comment, None)
                row.pop(pi, None)
            if local_names:
                row = {_local(name): value for name, value in row.items()}
            key = element.get("key", "")
            try:
                for name, cast in casts:
                    if name in row:
                        row[name] = cast(row[name])
            except CastError as exc:
                failures.append((key, f"field {name!r}: {exc}"))
                continue
            row[KEY] = key
            out.append(row)

    def _read_fields(self, root: etree._Element, out: list[dict[str, Any]]) -> bool:
        """_read for the output of a stylesheet of generate_xslt's shape (see flowlink.transform.generated_fields), read
        by position, a column at a time. False, leaving the records to _read, if a cast fails or they are not that shape."""
        assert self._fields is not None
        width = len(self._fields) + 1
        keys = record_keys(root)
        texts = [element.text or "" for element in root.iter()]  # <records>, then each <record> and its fields
        if len(texts) != 1 + width * len(keys):
            return False
        columns = [texts[2 + i :: width] for i in range(width - 1)]
        try:
            columns = [
                column if cast is None else _cast_column(cast, column)
                for column, cast in zip(columns, self._field_casts, strict=False)
            ]
        except CastError:
            return False  # _read names the failing records
        names = (*self._fields, KEY)
        out += [dict(zip(names, row, strict=False)) for row in zip(*columns, keys, strict=False)]
        return True
