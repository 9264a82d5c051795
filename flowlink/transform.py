"""The transform step: a batch of record XML -> the touchpoint's XSLT -> the output as record XML.

    <records><record key="SOURCE_KEY"><field>value</field>...</record>...</records>

``Transformer(xslt_text, types, key_field).transform(document)`` parses a batch file the extract step
wrote (flowlink.recordxml), applies the stylesheet, and returns the output serialized, with the keys of
the records that went in and came out, and the failures ``(source key, reason)``: a record that breaks
the stylesheet fails alone. Every output record keeps its source key: one without a ``key`` attribute
gets the key of the input record at its place, if there are as many as input records (else they all
fail). ``apply(records)`` runs one batch of dicts through all three parts (write, transform, read)
in one process, as the tests do.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from lxml import etree

from flowlink.errors import FlowlinkError
from flowlink.mapping import check_stylesheet, compile_stylesheet
from flowlink.recordxml import RecordReader, RecordWriter, parser, record_keys
from flowlink.spec import XSL

_DECLARATION = re.compile(r"^\ufeff?\s*<\?xml[^>]*\?>")
_COUNT = etree.XPath("count(*)")  # the records of a document
NO_XML = "the stylesheet produced no XML (expected <records><record key=...>...</record></records>)"


class Transformed(NamedTuple):
    document: bytes  # the output records, as record XML
    keys_in: list[str]  # the keys of the records that went in
    keys_out: list[str]  # the keys of the output records, in order
    failures: list[tuple[str, str]]


def _uses_namespaces(stylesheet: etree._Element) -> bool:
    """Whether output elements may be in a namespace (then output names are read as local names)."""
    for element in stylesheet.iter(etree.Element):
        if any(uri != XSL for uri in element.nsmap.values()):
            return True
        if element.tag == f"{{{XSL}}}element" and element.get("namespace") is not None:
            return True
    return False


_TEXT_ONLY = {
    f"{{{XSL}}}{name}"
    for name in ("value-of", "text", "variable", "choose", "when", "otherwise", "call-template", "with-param")
}
_NAMED = _TEXT_ONLY | {f"{{{XSL}}}{name}" for name in ("param", "if")}  # what generate_xslt's named templates hold


def _generated_fields(stylesheet: etree._Element) -> tuple[str, ...] | None:
    """The output fields, in order, of a stylesheet of generate_xslt's shape; None for any other stylesheet.

    That shape (one template: <records>, a for-each over records/record, <record> with the copied key
    and one element per field holding text-only instructions; top-level variables and templates called by
    name that hold text-only instructions may come with it) outputs, for each input record in order,
    one record with exactly these fields, text only: what RecordReader reads by position.
    """

    def only(parent: etree._Element, tag: str, **attrib: str) -> etree._Element | None:
        children = list(parent.iterchildren(etree.Element))
        ok = len(children) == 1 and children[0].tag == tag and dict(children[0].attrib) == attrib
        return children[0] if ok else None

    output, variable, template = (f"{{{XSL}}}{name}" for name in ("output", "variable", "template"))
    top = [element.tag for element in stylesheet.iterchildren(etree.Element)]
    variables, templates = top.count(variable), top.count(template)  # the case tables; the trim templates
    if not templates or top != [output, *[variable] * variables, *[template] * templates]:
        return None
    record, *named = stylesheet.findall(template)
    if dict(record.attrib) != {"match": "/"}:
        return None
    for other in named:  # called by name, holding text-only instructions: they give text, never an element
        if set(other.attrib) != {"name"} or any(e.tag not in _NAMED for e in other.iterdescendants(etree.Element)):
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
        if (
            "{" in field.tag
            or field.attrib
            or any(e.tag not in _TEXT_ONLY for e in field.iterdescendants(etree.Element))
        ):
            return None
    return names


class Transformer:
    """One touchpoint's transform: built once, applied to batch after batch.

    ``xslt_text``: the stylesheet (``flowlink.mapping.stylesheet_for``).
    ``types``: output field -> string/integer/number/boolean (``flowlink.mapping.output_types``), for ``reader``.
    ``key_field``: the SOURCE field that identifies a record, for ``writer``.
    """

    def __init__(self, xslt_text: str | bytes, types: Mapping[str, str], key_field: str):
        if isinstance(xslt_text, str):
            xslt_text = _DECLARATION.sub("", xslt_text, count=1)  # lxml refuses str with an encoding declaration
        stylesheet = check_stylesheet(xslt_text, "stylesheet")
        self._xslt = compile_stylesheet(stylesheet, "stylesheet")
        self.local_names = _uses_namespaces(stylesheet)  # how to read the output: namespaced names as local names
        self.fields = _generated_fields(stylesheet)  # and, for generate_xslt's shape, by position
        try:
            self.reader = RecordReader(types, self.fields, self.local_names)
        except ValueError as exc:
            raise FlowlinkError(str(exc)) from None
        self.writer = RecordWriter(key_field)
        self._parser = parser()

    def apply(self, records: Iterable[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
        """One batch of dicts through the three parts: (output records, typed, each with ``"__key__"``; failures)."""
        written = self.writer.write(records)
        done = self.transform(written.document)
        rows, failures = self.reader.read(done.document)
        return rows, written.failures + done.failures + failures

    def transform(self, document: bytes) -> Transformed:
        """Apply the stylesheet to a batch of record XML (etree.XMLSyntaxError if it is not XML)."""
        source = etree.fromstring(document, self._parser)
        keys = record_keys(source)
        try:
            result = self._xslt(source)
        except etree.XSLTApplyError:
            return self._one_by_one(source, keys)  # some records break the stylesheet: only those fail
        failures: list[tuple[str, str]] = []
        root, keys_out = self._keyed(result.getroot(), keys, failures)
        if root is None:
            return Transformed(b"<records/>", keys, [], failures)
        return Transformed(etree.tostring(root, encoding="utf-8"), keys, keys_out, failures)

    def _keyed(self, root: etree._Element | None, keys: list[str], failures: list[tuple[str, str]]):
        """(the output's root with a key on every record, their keys); (None, []), all the input records failing,
        if that cannot be."""
        if root is None:
            failures.extend((key, NO_XML) for key in keys)
            return None, []
        keys_out, count = record_keys(root), int(_COUNT(root))
        if len(keys_out) == count:
            return root, keys_out
        if count != len(keys):
            reason = (
                f"the stylesheet's output has {count} record(s), {count - len(keys_out)} without a key attribute, "
                f'for {len(keys)} input record(s): copy the key attribute (<xsl:copy-of select="@key"/>) or '
                "output exactly one record per input record"
            )
            failures.extend((key, reason) for key in keys)
            return None, []
        for element, key in zip(
            root.iterchildren(etree.Element), keys, strict=True
        ):  # as many as input records: by position
            if element.get("key") is None:
                element.set("key", key)
        return root, record_keys(root)

    def _one_by_one(self, source: etree._Element, keys: list[str]) -> Transformed:
        out = etree.Element("records")
        failures: list[tuple[str, str]] = []
        for record, key in zip(source.iterchildren(etree.Element), keys, strict=True):
            single = etree.Element("records")
            single.append(copy.deepcopy(record))
            try:
                result = self._xslt(single)
            except etree.XSLTApplyError as exc:
                failures.append((key, f"XSLT error: {exc}"))
                continue
            root, _ = self._keyed(result.getroot(), [key], failures)
            if root is not None:
                out.extend(list(root.iterchildren(etree.Element)))
        return Transformed(etree.tostring(out, encoding="utf-8"), keys, record_keys(out), failures)
