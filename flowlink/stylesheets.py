"""A user's own stylesheet is untrusted: it may not read or write files or URLs, nor bring in other files.

Validation names what it tries early (stylesheet_problems); its parser refuses every URL it would load at compile time.
"""

from __future__ import annotations

import re
from pathlib import Path

from lxml import etree

from flowlink.spec import XSL


class StylesheetError(ValueError):
    """A stylesheet tried to load a URL (xsl:include, xsl:import): raised by its parser's resolver."""


class _RefuseAll(etree.Resolver):
    def resolve(self, url, pubid, context):
        raise StylesheetError(f"loading {url} is not allowed: a stylesheet is one self-contained file")


def stylesheet_parser() -> etree.XMLParser:
    """The parser of a user's stylesheet: no DTD, no entities, no network, size limits on (no huge_tree), and
    every URL compiling it would load (xsl:include, xsl:import) refused by its resolver."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    parser.resolvers.add(_RefuseAll())
    return parser


_READS = {f"{{{XSL}}}include", f"{{{XSL}}}import"}
_WRITES = {  # the elements libxslt (and XSLT 2.0) write other files with
    f"{{{XSL}}}document", f"{{{XSL}}}result-document", "{http://exslt.org/common}document",
    "{http://icl.com/saxon}output", "{org.apache.xalan.xslt.extensions.Redirect}write", "{http://www.jclark.com/xt}document",
}  # fmt: skip
_EXPRESSIONS = {"select", "test", "match", "use", "value", "count", "from"}  # XSL attributes that are XPath throughout
_LITERAL = re.compile(r"'[^']*'|\"[^\"]*\"")  # XPath 1.0 string literals have no escapes
_DOCUMENT = re.compile(r"(?<![\w.-])document\s*\(")


def stylesheet_problems(root: etree._Element) -> list[str]:
    """What a parsed user stylesheet may not do, each with its line: a DOCTYPE, xsl:include/xsl:import, document(),
    elements that write files. Run time denies these too (flowlink.mapping.compile_stylesheet); this names them early."""
    problems = []
    if root.getroottree().docinfo.doctype:
        problems.append(
            "a DOCTYPE is not allowed in a stylesheet (entities are not expanded: write &#160;, not &nbsp;)"
        )
    for element in root.iter(etree.Element):
        name = (
            f"{element.prefix}:{etree.QName(element).localname}" if element.prefix else etree.QName(element).localname
        )
        if element.tag in _READS:
            problems.append(
                f"line {element.sourceline}: <{name} href={element.get('href', '')!r}> is not allowed: "
                "a stylesheet is one self-contained file and cannot read others"
            )
        elif element.tag in _WRITES:
            problems.append(f"line {element.sourceline}: <{name}> is not allowed: a stylesheet cannot write files")
        xsl = element.tag.startswith(f"{{{XSL}}}")
        for attribute, value in element.attrib.items():
            expression = _LITERAL.sub("''", value) if xsl and attribute in _EXPRESSIONS else value
            if _DOCUMENT.search(expression):
                problems.append(
                    f"line {element.sourceline}: document() is not allowed ({attribute}={value[:100]!r}): "
                    "a stylesheet cannot read files or URLs"
                )
    return problems


def file_problems(path: Path) -> list[str]:
    """What is wrong with a stylesheet file: it cannot be read, is not well-formed XML, does what a stylesheet may not
    (stylesheet_problems) or is not XSLT 1.0 (compiled as the transform step compiles it)."""
    from flowlink.errors import FlowlinkError
    from flowlink.mapping import check_stylesheet  # mapping imports this module

    try:
        data = path.read_bytes()
        root = etree.fromstring(data, stylesheet_parser())
    except OSError as exc:
        return [f"cannot be read: {exc.strerror or exc}"]
    except (StylesheetError, ValueError, etree.XMLSyntaxError):
        root = None  # check_stylesheet says why
    if root is not None and (problems := stylesheet_problems(root)):
        return problems
    try:
        check_stylesheet(data, path.name)
    except FlowlinkError as exc:
        return [str(exc).removeprefix(f"{path.name}: ")]
    return []
