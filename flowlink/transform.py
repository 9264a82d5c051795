"""The transform step: records (dicts) -> record XML -> XSLT -> typed records (dicts).

Record XML, in and out::

    <records><record key="SOURCE_KEY"><field>value</field>...</record>...</records>

``Transformer(xslt_text, types, key_field).apply(records)`` returns
``(output_records, failures)``. Every output dict carries ``"__key__"``: the source
key of the record it came from. A record that cannot be transformed becomes a failure
``(source_key, reason)`` instead of breaking the batch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import islice
from typing import Any

from lxml import etree

from flowlink import settings
from flowlink.errors import FlowlinkError
from flowlink.mapping import check_stylesheet, compile_stylesheet, is_generated
from flowlink.spec import XSL

KEY = "__key__"  # output dicts: the source key of the record

# Records per XML document for generated stylesheets (they treat each record on its own):
# a big batch goes through in documents of this many records, since small trees are read
# back markedly faster than one huge tree (measured: ~25% less time per 100,000 records).
# A user's own stylesheet sees the whole batch as one document, as it may look across records.
CHUNK = 1000

# Characters an XML 1.0 document cannot hold, not even as character references.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_DECLARATION = re.compile(r"^\ufeff?\s*<\?xml[^>]*\?>")
_INTEGER = re.compile(r"[+-]?[0-9]+(\.0*)?")
_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")


# -- output types ---------------------------------------------------------------------------


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


CASTS: dict[str, Callable[[str], Any] | None] = {"string": None, "integer": _integer, "number": _number, "boolean": _boolean}
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


# -- input record XML -----------------------------------------------------------------------


def _as_text(value: Any) -> str:
    """A field value as record XML text: bool as true/false, a list or dict as JSON, anything else through str()."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) in (list, dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return value if type(value) is str else str(value)


# A document is built in one pass with its markup written in three stand-in characters
# (XML cannot hold them, so no valid value holds them either), escaped as a whole with a
# few str.replace calls, after which the stand-ins become real markup: much faster than
# escaping value by value. Counting the stand-ins catches a value that holds one; the
# parser catches every other character XML 1.0 cannot carry. Only then are the records
# looked at one by one. Records that are all dicts with the same fields (the usual batch)
# take a faster way to the same text: Transformer._build_columns.
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


def _parser() -> etree.XMLParser:
    # Our own input document (we write all of its markup, so no DTD, depth 3): nothing resolved; huge_tree allows
    # text nodes over 10 MB, values being held to FLOWLINK_MAX_VALUE_CHARS before they get here.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True)


def _uses_namespaces(stylesheet: etree._Element) -> bool:
    """Whether output elements may be in a namespace (then output names are read as local names)."""
    for element in stylesheet.iter(etree.Element):
        if any(uri != XSL for uri in element.nsmap.values()):
            return True
        if element.tag == f"{{{XSL}}}element" and element.get("namespace") is not None:
            return True
    return False


_TEXT_ONLY = {f"{{{XSL}}}{name}" for name in ("value-of", "text", "variable", "choose", "when", "otherwise")}


def _generated_fields(stylesheet: etree._Element) -> tuple[str, ...] | None:
    """The output fields, in order, of a stylesheet of generate_xslt's shape; None for any other stylesheet.

    That shape (one template: <records>, a for-each over records/record, <record> with the copied key
    and one element per field holding text-only instructions) outputs, for each input record in order,
    one record with exactly these fields, text only: what Transformer._read_fields relies on.
    """

    def only(parent: etree._Element, tag: str, **attrib: str) -> etree._Element | None:
        children = list(parent.iterchildren(etree.Element))
        ok = len(children) == 1 and children[0].tag == tag and dict(children[0].attrib) == attrib
        return children[0] if ok else None

    top = [element.tag for element in stylesheet.iterchildren(etree.Element)]
    record = stylesheet.find(f"{{{XSL}}}template")
    if top != [f"{{{XSL}}}output", f"{{{XSL}}}template"] or dict(record.attrib) != {"match": "/"}:
        return None
    for tag, attrib in [("records", {}), (f"{{{XSL}}}for-each", {"select": "records/record"}), ("record", {})]:
        record = only(record, tag, **attrib)
        if record is None:
            return None
    children = list(record.iterchildren(etree.Element))
    if not children or children[0].tag != f"{{{XSL}}}copy-of" or dict(children[0].attrib) != {"select": "@key"}:
        return None
    names = tuple(field.tag for field in children[1:])
    if len(set(names)) != len(names):
        return None
    for field in children[1:]:
        if "{" in field.tag or field.attrib or any(e.tag not in _TEXT_ONLY for e in field.iterdescendants(etree.Element)):
            return None
    return names


def _local(name: Any) -> Any:
    return name.rpartition("}")[2] if isinstance(name, str) and name[:1] == "{" else name


class _Chunk:
    """The records of one XML document: their keys, the records themselves, the document text."""

    __slots__ = ("keys", "records", "document")

    def __init__(self, keys: list[str], records: list[Mapping[str, Any]], document: str):
        self.keys, self.records, self.document = keys, records, document


class Transformer:
    """One touchpoint's transform: built once, applied to batch after batch.

    ``xslt_text``: the stylesheet (``flowlink.mapping.stylesheet_for``).
    ``types``: output field -> string/integer/number/boolean (``flowlink.mapping.output_types``);
    fields not named stay strings.
    ``key_field``: the SOURCE field that identifies a record; its value goes into the
    ``key`` attribute of the input ``<record>`` and comes back as ``"__key__"``.
    ``chunk_size``: records per XML document; default CHUNK for a generated stylesheet,
    the whole batch for any other.
    """

    def __init__(self, xslt_text: str | bytes, types: Mapping[str, str], key_field: str, *, chunk_size: int | None = None):
        if isinstance(xslt_text, str):
            xslt_text = _DECLARATION.sub("", xslt_text, count=1)  # lxml refuses str with an encoding declaration
        stylesheet = check_stylesheet(xslt_text, "stylesheet")
        self._xslt = compile_stylesheet(stylesheet, "stylesheet")
        self._local_names = _uses_namespaces(stylesheet)
        self.chunk_size = chunk_size or (CHUNK if is_generated(stylesheet) else None)
        unknown = sorted({t for t in types.values() if t not in CASTS})
        if unknown:
            raise FlowlinkError(f"unknown output type(s) {', '.join(unknown)}: use string, integer, number or boolean")
        self._casts = [(field, cast) for field, t in types.items() if (cast := CASTS[t]) is not None]
        self._fields = _generated_fields(stylesheet)  # if set, results are read by _read_fields
        self._field_casts = [dict(self._casts).get(name) for name in self._fields or ()]
        self.key_field = key_field
        self._tags: dict[Any, tuple[str, str] | None] = {}
        self.max_value = settings.limit("FLOWLINK_MAX_VALUE_CHARS")

    def apply(self, records: Iterable[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
        """Transform one batch.

        Returns (output records, failures). Each output record is a dict of the output
        fields, typed, plus ``"__key__"``: the source key. Each failure is
        (source key, reason); a record without a key fails with key ''.
        """
        out: list[dict[str, Any]] = []
        failures: list[tuple[str, str]] = []
        it = iter(records)
        while batch := list(islice(it, self.chunk_size)):
            chunk = self._build(batch, failures)
            if len(chunk.document) > self.max_value:  # only then can a value be over the limit
                chunk = self._build(self._within_limit(chunk, failures), failures)
            if chunk.keys:
                self._apply_chunk(chunk, out, failures)
        return out, failures

    # -- input ------------------------------------------------------------------------------

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

    def _build(self, records: list[Mapping[str, Any]], failures: list[tuple[str, str]], screened: bool = False) -> _Chunk:
        """The input document for some records; records without a key become failures."""
        if records and (chunk := self._build_columns(records)) is not None:
            return chunk
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
        if not screened and (document.count(LT) != markup or document.count(GT) != markup or document.count(QUOT) != 2 * len(keys)):
            return self._screen(keys, taken, failures)
        return _Chunk(keys, taken, _utf8(_escape(document)))

    def _build_columns(self, records: list[Mapping[str, Any]]) -> _Chunk | None:
        """_build's document, built a column at a time (converted and escaped in one go, then one
        %-template per record), for records that are all dicts with the same fields in the same order
        and a key; None for other records. Characters XML cannot carry are left to the parser."""
        names = tuple(records[0])
        if set(map(type, records)) != {dict} or not all(map(names.__eq__, map(tuple, records))) or self.key_field not in names:
            return None
        columns = list(zip(*map(dict.values, records)))
        keys = columns[names.index(self.key_field)]
        if any(key is None or key == "" for key in keys):
            return None
        keys = _texts(keys)
        template, values = [_escape(_RECORD_START), "%s", _escape(_KEY_END)], [_escaped(keys)]
        for name, column in zip(names, columns):
            tag = self._tags[name] if name in self._tags else self._tag(name)
            if tag is None:
                continue
            start, end = _escape(tag[0]), _escape(tag[1])
            if "%" in start:
                return None
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
        document = "".join([markup % record for record in zip(*values)])
        return _Chunk(keys, records, _utf8(f"<records>{document}</records>"))

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
        for key, record in zip(chunk.keys, chunk.records):
            sizes = [(self.key_field, len(key))] + [
                (str(name), len(value if type(value) is str else _as_text(value))) for name, value in record.items()
                if type(value) in (str, list, dict) and (self._tags[name] if name in self._tags else self._tag(name))
            ]  # fmt: skip
            field, size = max(sizes, key=lambda pair: pair[1])
            if size <= self.max_value:
                good.append(record)
            else:
                failures.append((key, f"field {field!r} holds {size:,} characters, over the limit of "
                                      f"{self.max_value:,} (FLOWLINK_MAX_VALUE_CHARS)"))
        return good

    def _screen(self, keys: list[str], records: list[Mapping[str, Any]], failures: list[tuple[str, str]]) -> _Chunk:
        """Fail the records holding characters XML cannot carry; the document of the others."""
        good = []
        for key, record in zip(keys, records):
            field = self._bad_field(key, record)
            if field is None:
                good.append(record)
            else:
                failures.append((key, f"field {field!r} holds characters XML 1.0 cannot carry"))
        return self._build(good, failures, screened=True)

    # -- transform --------------------------------------------------------------------------

    def _apply_chunk(self, chunk: _Chunk, out: list[dict[str, Any]], failures: list[tuple[str, str]]) -> None:
        try:
            document = etree.fromstring(chunk.document, _parser())
        except etree.XMLSyntaxError:
            chunk = self._screen(chunk.keys, chunk.records, failures)
            if not chunk.keys:
                return
            try:
                document = etree.fromstring(chunk.document, _parser())
            except etree.XMLSyntaxError:  # not expected: the records go one by one below
                document = None
        try:
            if document is None:
                raise etree.XSLTApplyError("the input document could not be parsed")
            result = self._xslt(document)
        except etree.XSLTApplyError:
            # some records break the stylesheet: transform them one by one so that only those fail
            for key, record in zip(chunk.keys, chunk.records):
                single = self._build([record], failures)
                try:
                    result = self._xslt(etree.fromstring(single.document, _parser()))
                except (etree.XSLTApplyError, etree.XMLSyntaxError) as exc:
                    failures.append((key, f"XSLT error: {exc}"))
                    continue
                self._read(result.getroot(), [key], out, failures)
            return
        self._read(result.getroot(), chunk.keys, out, failures)

    def _read(
        self, result: etree._Element | None, keys: list[str], out: list[dict[str, Any]], failures: list[tuple[str, str]]
    ) -> None:
        """The output records of one document with the records ``keys``, as typed dicts (or failures)."""
        if result is None:
            reason = "the stylesheet produced no XML (expected <records><record key=...>...</record></records>)"
            failures.extend((key, reason) for key in keys)
            return
        if self._fields is not None and self._read_fields(result, keys, out):
            return
        comment, pi = etree.Comment, etree.PI
        local_names, casts = self._local_names, self._casts
        rows: list[dict[Any, Any]] = []
        bad: dict[int, str] = {}  # row index -> reason
        keyless = 0
        for element in result:
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
            try:
                for name, cast in casts:
                    if name in row:
                        row[name] = cast(row[name])
            except CastError as exc:
                bad[len(rows)] = f"field {name!r}: {exc}"
            key = element.get("key")
            if key is None:
                keyless += 1
            row[KEY] = key
            rows.append(row)
        if keyless:
            if len(rows) != len(keys):
                reason = (
                    f"the stylesheet's output has {len(rows)} record(s), {keyless} without a key attribute, "
                    f"for {len(keys)} input record(s): copy the key attribute (<xsl:copy-of select=\"@key\"/>) "
                    "or output exactly one record per input record"
                )
                failures.extend((key, reason) for key in keys)
                return
            for row, key in zip(rows, keys):  # as many output records as input records: aligned by position
                if row[KEY] is None:
                    row[KEY] = key
        if bad:
            failures.extend((rows[index][KEY], reason) for index, reason in bad.items())
            rows = [row for index, row in enumerate(rows) if index not in bad]
        out += rows

    def _read_fields(self, result: etree._Element, keys: list[str], out: list[dict[str, Any]]) -> bool:
        """_read for a stylesheet of generate_xslt's shape (see _generated_fields): its output is read by position,
        a column at a time. False, leaving the result to _read, if a cast fails or the result is not that shape."""
        width = len(self._fields) + 1
        texts = [element.text or "" for element in result.iter()]  # <records>, then each <record> and its fields
        if len(texts) != 1 + width * len(keys):
            return False
        columns = [texts[2 + i :: width] for i in range(width - 1)]
        try:
            columns = [column if cast is None else _cast_column(cast, column) for column, cast in zip(columns, self._field_casts)]
        except CastError:
            return False  # _read names the failing records
        names = (*self._fields, KEY)
        out += [dict(zip(names, row)) for row in zip(*columns, keys)]
        return True
