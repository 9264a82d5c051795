"""The mapping compiler: a touchpoint's mapping rules -> an XSLT 1.0 stylesheet.

Record XML, in and out::

    <records>
      <record key="SOURCE_KEY"><field>value</field>...</record>
      ...
    </records>

The generated stylesheet copies the ``key`` attribute of each input record to
its output record and emits one element per mapping target, in mapping order:

* ``source``   -> the text of that child element of the input record ('' if absent)
* ``xpath``    -> ``xsl:value-of`` of the expression, with the input ``record`` as context
* ``constant`` -> literal text (booleans as true/false)
* ``lookup``   -> ``xsl:choose`` on the exact string value of source/xpath;
  ``default`` is the otherwise branch, without it the value passes unchanged.

The stylesheet is built with lxml's element API, so every name, expression and
literal is escaped by the serializer, and XPath string literals are quoted with
``concat()`` when they hold both kinds of quote.
"""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from flowlink.errors import FlowlinkError
from flowlink.spec import XSL, MappingRule, Touchpoint
from flowlink.stylesheets import StylesheetError, stylesheet_parser

VALUE = "value"  # the xsl:variable holding a looked-up value
GENERATED = "generated from its mapping"  # in the comment on top of a generated stylesheet


def _xsl(parent: etree._Element, tag: str, **attrs: str) -> etree._Element:
    element = etree.SubElement(parent, f"{{{XSL}}}{tag}")
    for name, value in attrs.items():  # keyword order: deterministic attribute order
        element.set(name, value)
    return element


def xpath_literal(text: str) -> str:
    """An XPath 1.0 expression whose value is exactly ``text`` (XPath 1.0 strings have no escapes)."""
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    parts = text.split("'")
    pieces = [xpath_literal(part) for part in parts[:1]]
    for part in parts[1:]:
        pieces.append('"\'"')
        if part:
            pieces.append(f"'{part}'")
    return f"concat({', '.join(pieces)})"


def _constant_text(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _text(parent: etree._Element, text: str) -> None:
    """Literal output text; xsl:text keeps whitespace-only and empty values intact."""
    _xsl(parent, "text").text = text


def _rule(record: etree._Element, rule: MappingRule) -> None:
    out = etree.SubElement(record, rule.target)
    if rule.constant is not None:
        _text(out, _constant_text(rule.constant))
        return
    select = rule.source if rule.source is not None else rule.xpath
    assert select is not None  # MappingRule guarantees exactly one of source, xpath, constant
    if rule.lookup is None:
        _xsl(out, "value-of", select=select)
        return
    # string(): compare as strings even when the expression yields a number or boolean
    _xsl(out, "variable", name=VALUE, select=f"string({select})")
    choose = _xsl(out, "choose")
    for match, replacement in rule.lookup.items():
        when = _xsl(choose, "when", test=f"${VALUE} = {xpath_literal(match)}")
        _text(when, replacement)
    otherwise = _xsl(choose, "otherwise")
    if rule.default is not None:
        _text(otherwise, rule.default)
    else:
        _xsl(otherwise, "value-of", select=f"${VALUE}")


def generate_xslt(tp: Touchpoint) -> str:
    """The XSLT 1.0 stylesheet for a touchpoint's mapping (same touchpoint -> identical text)."""
    if tp.mapping is None:
        raise FlowlinkError(f"touchpoint {tp.name!r} has its own XSLT file ({tp.xslt}), not a mapping")
    root = etree.Element(f"{{{XSL}}}stylesheet", nsmap={"xsl": XSL})
    root.set("version", "1.0")
    root.addprevious(etree.Comment(f" Flowlink touchpoint {tp.name}: {GENERATED}, do not edit "))
    _xsl(root, "output", method="xml", encoding="UTF-8", indent="no")
    template = _xsl(root, "template", match="/")
    records = etree.SubElement(template, "records")
    each = _xsl(records, "for-each", select="records/record")
    record = etree.SubElement(each, "record")
    _xsl(record, "copy-of", select="@key")
    for i, rule in enumerate(tp.mapping):
        try:
            _rule(record, rule)
        except ValueError as exc:  # lxml refuses text XML cannot carry (control characters)
            raise FlowlinkError(f"touchpoint {tp.name!r}: mapping[{i}] (target {rule.target!r}): {exc}") from None
    tree = root.getroottree()
    etree.indent(tree, space="  ")
    return etree.tostring(tree, encoding="unicode", pretty_print=True)


def output_types(tp: Touchpoint) -> dict[str, str]:
    """target field -> its type (string, integer, number, boolean); empty for a user's own XSLT."""
    return {rule.target: rule.type for rule in tp.mapping or []}


def check_stylesheet(data: bytes | str, name: str) -> etree._Element:
    """Parse and compile an XSLT 1.0 stylesheet; FlowlinkError naming ``name`` and the reason if it is not one.
    (What a stylesheet may not do is named by flowlink.spec.load_spec; compile_stylesheet denies it at run time.)"""
    try:
        root = etree.fromstring(data, stylesheet_parser())
    except StylesheetError as exc:
        raise FlowlinkError(f"{name}: {exc}") from None
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise FlowlinkError(f"{name}: not well-formed XML: {exc}") from None
    compile_stylesheet(root, name)
    return root


def compile_stylesheet(root: etree._Element, name: str) -> etree.XSLT:
    """A parsed stylesheet compiled to run with no file or network access (XSLTAccessControl.DENY_ALL: document(),
    exsl:document and the like fail); parsed by stylesheet_parser, its xsl:include and xsl:import are refused too."""
    try:
        return etree.XSLT(root, access_control=etree.XSLTAccessControl.DENY_ALL)
    except StylesheetError as exc:
        raise FlowlinkError(f"{name}: {exc}") from None
    except etree.XSLTParseError as exc:
        messages = [e.message for e in exc.error_log if e.message] or [str(exc)]
        raise FlowlinkError(f"{name}: not a valid XSLT 1.0 stylesheet: {'; '.join(dict.fromkeys(messages))}") from None


def stylesheet_for(tp: Touchpoint, spec_dir: Path | None) -> str:
    """The touchpoint's stylesheet: generated from its mapping, or the text of its own ``xslt`` file
    (relative to ``spec_dir``, or to the working directory when None), checked to be valid XSLT 1.0."""
    if tp.mapping is not None:
        return generate_xslt(tp)
    assert tp.xslt is not None  # Touchpoint guarantees mapping or xslt
    path = Path(spec_dir) / tp.xslt if spec_dir is not None else Path(tp.xslt)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FlowlinkError(f"{path}: cannot read XSLT file: {exc.strerror}") from None
    root = check_stylesheet(data, str(path))
    encoding = root.getroottree().docinfo.encoding or "UTF-8"
    try:
        return data.decode(encoding).removeprefix("\ufeff")
    except (LookupError, UnicodeDecodeError):
        return etree.tostring(root.getroottree(), encoding="unicode")
