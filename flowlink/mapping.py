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
* ``trim``     -> the value without spaces, tabs, CR and LF at its ends (inner ones stay): the named template
  ``flowlink-trim`` (substring-before for the start, a binary search for the end: XSLT 1.0, no extensions)
* ``case``     -> ``translate()`` with a table of every character whose lower (upper) case is one other character
  (``str.lower``/``str.upper``), held once in top-level variables; printable ASCII comes first, mapped or kept,
  so the usual characters are found after a short scan. Not covered: ß (-> SS), the dotted İ (-> i̇), other
  characters whose case is two or more characters, and the final sigma (Σ always becomes σ).
* ``lookup``   -> ``xsl:choose`` on the exact string value of source/xpath (after trim and case);
  ``default`` is the otherwise branch, without it the value passes unchanged.
* ``default`` without a lookup -> the default when the value (after trim and case) is empty: a null source
  field is left out of the record XML, so null, missing and empty all get it.

The stylesheet is built with lxml's element API, so every name, expression and
literal is escaped by the serializer, and XPath string literals are quoted with
``concat()`` when they hold both kinds of quote.
"""

from __future__ import annotations

import functools
from pathlib import Path

from lxml import etree

from flowlink.errors import FlowlinkError
from flowlink.spec import NOT_XML, XSL, MappingRule, Touchpoint
from flowlink.stylesheets import StylesheetError, stylesheet_parser

VALUE = "value"  # the xsl:variable holding a looked-up value
TRIMMED = "trimmed"  # the xsl:variable holding a trimmed value
TRIM = "flowlink-trim"  # the named templates that trim
TRIM_END = "flowlink-trim-end"
GENERATED = "generated from its mapping"  # in the comment on top of a generated stylesheet
_ASCII = "abcdefghijklmnopqrstuvwxyz0123456789.@-_ " + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"  # found first: the usual ones
_ASCII += "".join(c for c in map(chr, range(0x20, 0x7F)) if c not in _ASCII)


@functools.cache
def case_table(case: str) -> tuple[str, str]:
    """(from, to) for translate(): printable ASCII mapped or kept, then every other character whose lower (upper)
    case is one other character. ``case`` is lower or upper."""
    change = str.lower if case == "lower" else str.upper
    pairs = ((c, change(c)) for c in map(chr, range(0x80, 0x20000)))  # planes 0 and 1: every letter with a case
    wide = [(c, m) for c, m in pairs if m != c and len(m) == 1 and not NOT_XML.match(c)]
    return _ASCII + "".join(c for c, _ in wide), change(_ASCII) + "".join(m for _, m in wide)


def case_variables(case: str) -> tuple[str, str]:
    """The names of the top-level variables holding case_table(case)."""
    return f"flowlink-{case}-from", f"flowlink-{case}-to"


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
    if not (rule.trim or rule.case or rule.lookup is not None or rule.default is not None):
        _xsl(out, "value-of", select=select)
        return
    # string(): compare as strings even when the expression yields a number or boolean
    value = f"string({select})"
    if rule.case:  # case before trim: the same result (whitespace has no case), and trim's output is the value
        source, target = case_variables(rule.case)
        value = f"translate({value}, ${source}, ${target})"
    plain = rule.lookup is None and rule.default is None
    if rule.trim:
        holder = out if plain else _xsl(out, "variable", name=TRIMMED)
        call = _xsl(holder, "call-template", name=TRIM)
        _xsl(call, "with-param", name="text", select=value)
        value = f"string(${TRIMMED})"
    elif plain:
        _xsl(out, "value-of", select=value)
    if plain:
        return
    _xsl(out, "variable", name=VALUE, select=value)
    choose = _xsl(out, "choose")
    if rule.lookup is None:  # default alone: for a null, missing or empty value
        _text(_xsl(choose, "when", test=f"${VALUE} = ''"), rule.default or "")
    for match, replacement in (rule.lookup or {}).items():
        when = _xsl(choose, "when", test=f"${VALUE} = {xpath_literal(match)}")
        _text(when, replacement)
    otherwise = _xsl(choose, "otherwise")
    if rule.default is not None and rule.lookup is not None:
        _text(otherwise, rule.default)
    else:
        _xsl(otherwise, "value-of", select=f"${VALUE}")


def _trim_templates(root: etree._Element) -> None:
    """flowlink-trim(text): text without XML whitespace (space, tab, CR, LF) at its ends. The start: the text from
    the first character of normalize-space(text) on. The end: flowlink-trim-end, a binary search for the length of
    the trailing whitespace (a recursion as deep as log2 of the length, not as long as the whitespace)."""
    trim = _xsl(root, "template", name=TRIM)
    _xsl(trim, "param", name="text")
    _xsl(trim, "variable", name="first", select="substring(normalize-space($text), 1, 1)")
    start = _xsl(trim, "if", test="$first != ''")
    _xsl(start, "variable", name="rest", select="substring($text, string-length(substring-before($text, $first)) + 1)")
    ends = _xsl(start, "choose")
    done = _xsl(ends, "when", test="normalize-space(substring($rest, string-length($rest))) != ''")
    _xsl(done, "value-of", select="$rest")  # no whitespace at the end: the usual case, no search
    call = _xsl(_xsl(ends, "otherwise"), "call-template", name=TRIM_END)
    _xsl(call, "with-param", name="text", select="$rest")
    _xsl(call, "with-param", name="low", select="0")  # the last 0 characters are whitespace
    _xsl(call, "with-param", name="high", select="string-length($rest)")  # the last n are not: $rest[1] is not
    end = _xsl(root, "template", name=TRIM_END)
    for name in ("text", "low", "high"):
        _xsl(end, "param", name=name)
    choose = _xsl(end, "choose")
    search = _xsl(choose, "when", test="$high - $low > 1")
    _xsl(search, "variable", name="middle", select="floor(($low + $high) div 2)")
    halve = _xsl(search, "choose")
    for test, low, high in (
        ("normalize-space(substring($text, string-length($text) - $middle + 1)) = ''", "$middle", "$high"),
        (None, "$low", "$middle"),
    ):
        branch = _xsl(halve, "when", test=test) if test else _xsl(halve, "otherwise")
        call = _xsl(branch, "call-template", name=TRIM_END)
        for name, select in (("text", "$text"), ("low", low), ("high", high)):
            _xsl(call, "with-param", name=name, select=select)
    _xsl(_xsl(choose, "otherwise"), "value-of", select="substring($text, 1, string-length($text) - $low)")


def generate_xslt(tp: Touchpoint) -> str:
    """The XSLT 1.0 stylesheet for a touchpoint's mapping (same touchpoint -> identical text)."""
    if tp.mapping is None:
        raise FlowlinkError(f"touchpoint {tp.name!r} has its own XSLT file ({tp.xslt}), not a mapping")
    root = etree.Element(f"{{{XSL}}}stylesheet", nsmap={"xsl": XSL})
    root.set("version", "1.0")
    root.addprevious(etree.Comment(f" Flowlink touchpoint {tp.name}: {GENERATED}, do not edit "))
    _xsl(root, "output", method="xml", encoding="UTF-8", indent="no")
    for case in sorted({rule.case for rule in tp.mapping if rule.case}):  # the tables once, only when used
        for name, table in zip(case_variables(case), case_table(case), strict=False):
            _xsl(root, "variable", name=name, select=xpath_literal(table))
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
    if any(rule.trim for rule in tp.mapping):
        _trim_templates(root)
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
