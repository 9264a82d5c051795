"""The mapping compiler (flowlink.mapping) and the transform step (flowlink.transform): real stylesheets, real records."""

from __future__ import annotations

import datetime as dt
import decimal
import re
from pathlib import Path
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from flowlink.errors import FlowlinkError
from flowlink.mapping import generate_xslt, output_types, stylesheet_for, xpath_literal
from flowlink.recordxml import CASTS, KEY, CastError
from flowlink.spec import XSL, Touchpoint, parse_spec
from flowlink.transform import Transformer

TRICKY = """it's "quoted" & <tagged>"""  # both quotes, an ampersand, angle brackets


def touchpoint(
    mapping: list[dict] | None = None, xslt: str | None = None, key: str = "id", name: str = "orders"
) -> Touchpoint:
    tp: dict = {"name": name, "extract": {"table": "orders", "key": key}, "load": {"endpoint": "/orders", "key": "id"}}
    if mapping is not None:
        tp["mapping"] = mapping
        tp["load"]["key"] = mapping[0]["target"]
    if xslt is not None:
        tp["xslt"] = xslt
    spec = {
        "name": "shop",
        "source": {"type": "sql", "connection": "shop_db"},
        "target": {"type": "rest", "connection": "crm_api"},
        "touchpoints": [tp],
    }
    return parse_spec(spec).touchpoints[0]


def run(mapping: list[dict], records: list[dict], key: str = "id", **kw) -> tuple[list[dict], list[tuple[str, str]]]:
    tp = touchpoint(mapping, key=key)
    return Transformer(stylesheet_for(tp, None), output_types(tp), key, **kw).apply(records)


# -- mapping rules ----------------------------------------------------------------------------


def test_plain_field_copy():
    mapping = [
        {"target": "order_id", "source": "id"},
        {"target": "customer", "source": "name"},
        {"target": "note", "source": "comment"},
    ]
    records = [
        {"id": 1, "name": "Ada", "comment": "first\r\nline\twith tab", "ignored": "x"},
        {"id": "B-2", "name": TRICKY, "comment": "  spaced  "},
        {"id": 3, "name": "Zoë 日本 🎉"},  # no comment field
    ]
    out, failures = run(mapping, records)
    assert failures == []
    assert out == [
        {"order_id": "1", "customer": "Ada", "note": "first\r\nline\twith tab", KEY: "1"},
        {"order_id": "B-2", "customer": TRICKY, "note": "  spaced  ", KEY: "B-2"},
        {"order_id": "3", "customer": "Zoë 日本 🎉", "note": "", KEY: "3"},
    ]


def test_awkward_field_names():
    names = ["a-b", "x.y", "_u", "div", "and", "text", "record", "key"]
    mapping = [{"target": "id", "source": "id"}] + [{"target": n, "source": n} for n in names]
    mapping += [{"target": f"l{i}", "source": n, "lookup": {n: "hit"}} for i, n in enumerate(names)]
    out, failures = run(mapping, [{"id": 1, **{n: n for n in names}}])
    assert failures == []
    assert out == [{"id": "1", **{n: n for n in names}, **{f"l{i}": "hit" for i in range(len(names))}, KEY: "1"}]


def test_xpath_functions():
    mapping = [
        {"target": "id", "source": "id"},
        {"target": "full_name", "xpath": "concat(first, ' ', last)"},
        {"target": "upper", "xpath": "translate(last, 'abcdefghijklmnopqrstuvwxyz', 'ABCDEFGHIJKLMNOPQRSTUVWXYZ')"},
        {"target": "initial", "xpath": "substring(first, 1, 1)"},
        {"target": "tidy", "xpath": "normalize-space(comment)"},
        {"target": "price", "xpath": "format-number(amount, '#,##0.00')"},
        {
            "target": "active",
            "xpath": "concat(substring('yes', 1, 3 * (flag = 1)), substring('no', 1, 2 * (flag != 1)))",
        },
        {"target": "has_comment", "xpath": "boolean(comment)"},
        {"target": "double", "xpath": "number(amount) * 2"},
        {"target": "key_attr", "xpath": "string(@key)"},
        {"target": "fields", "xpath": "count(*)"},
    ]
    records = [
        {"id": 1, "first": "ada", "last": "lovelace", "comment": "  lots   of\n space ", "amount": 1234.5, "flag": 1},
        {"id": 2, "first": "alan", "last": "turing", "amount": 7, "flag": 0},
    ]
    out, failures = run(mapping, records)
    assert failures == []
    assert out == [
        {
            "id": "1", "full_name": "ada lovelace", "upper": "LOVELACE", "initial": "a", "tidy": "lots of space",
            "price": "1,234.50", "active": "yes", "has_comment": "true", "double": "2469", "key_attr": "1",
            "fields": "6", KEY: "1",
        },
        {
            "id": "2", "full_name": "alan turing", "upper": "TURING", "initial": "a", "tidy": "",
            "price": "7.00", "active": "no", "has_comment": "false", "double": "14", "key_attr": "2",
            "fields": "5", KEY: "2",
        },
    ]  # fmt: skip


def test_constants():
    mapping = [
        {"target": "id", "source": "id"},
        {"target": "origin", "constant": "web shop"},
        {"target": "tricky", "constant": TRICKY},
        {"target": "space", "constant": " "},
        {"target": "empty", "constant": ""},
        {"target": "count", "constant": 3},
        {"target": "rate", "constant": 2.5},
        {"target": "yes", "constant": True},
        {"target": "no", "constant": False},
    ]
    out, failures = run(mapping, [{"id": 7}])
    assert failures == []
    assert out == [
        {
            "id": "7", "origin": "web shop", "tricky": TRICKY, "space": " ", "empty": "", "count": "3",
            "rate": "2.5", "yes": "true", "no": "false", KEY: "7",
        }
    ]  # fmt: skip


def test_constants_typed():
    mapping = [
        {"target": "id", "source": "id", "type": "integer"},
        {"target": "count", "constant": 3, "type": "integer"},
        {"target": "rate", "constant": 2.5, "type": "number"},
        {"target": "yes", "constant": True, "type": "boolean"},
    ]
    out, failures = run(mapping, [{"id": 7}])
    assert failures == []
    assert out == [{"id": 7, "count": 3, "rate": 2.5, "yes": True, KEY: "7"}]


def test_lookup_with_and_without_default():
    lookup = {
        "A": "active",
        "it's": "apostrophe",
        'say "hi"': "quotes",
        TRICKY: "both quotes",
        "R&D": "amp & <lt>",
        "<b>": 'it\'s "x"',
        "": "blank",
    }
    mapping = [
        {"target": "id", "source": "id"},
        {"target": "with_default", "source": "status", "lookup": lookup, "default": "unknown 'x' \"y\""},
        {"target": "without_default", "source": "status", "lookup": lookup},
        {"target": "via_xpath", "xpath": "normalize-space(status)", "lookup": {"A": "trimmed"}, "default": "-"},
    ]
    statuses = ["A", "it's", 'say "hi"', TRICKY, "R&D", "<b>", "", " A ", "a", "Z"]
    records = [{"id": i, "status": status} for i, status in enumerate(statuses)] + [{"id": 99}]
    out, failures = run(mapping, records)
    assert failures == []
    got = [(r["with_default"], r["without_default"], r["via_xpath"]) for r in out]
    assert got == [
        ("active", "active", "trimmed"),
        ("apostrophe", "apostrophe", "-"),
        ("quotes", "quotes", "-"),
        ("both quotes", "both quotes", "-"),
        ("amp & <lt>", "amp & <lt>", "-"),
        ('it\'s "x"', 'it\'s "x"', "-"),
        ("blank", "blank", "-"),
        ("unknown 'x' \"y\"", " A ", "trimmed"),  # exact match only: " A " is not "A"
        ("unknown 'x' \"y\"", "a", "-"),  # case matters
        ("unknown 'x' \"y\"", "Z", "-"),
        ("blank", "blank", "-"),  # a missing field has the empty string value
    ]
    assert [r[KEY] for r in out] == [str(i) for i in range(len(statuses))] + ["99"]


def test_lookup_compares_strings_not_numbers():
    mapping = [
        {"target": "id", "source": "id"},
        {"target": "code", "xpath": "number(n)", "lookup": {"1.0": "one-point-oh", "1": "one"}},
    ]
    out, _ = run(mapping, [{"id": 1, "n": "1.0"}])
    assert out == [{"id": "1", "code": "one", KEY: "1"}]


def test_constant_xml_cannot_carry():
    with pytest.raises(
        FlowlinkError, match=r"mapping\[1\]\.constant: 'ding\\x07' holds characters XML 1\.0 cannot carry"
    ):
        generate_xslt(touchpoint([{"target": "id", "source": "id"}, {"target": "bell", "constant": "ding\x07"}]))


def test_xpath_literal():
    for text in ["", "plain", "it's", 'say "hi"', TRICKY, "''", "'\"'", "a'b'c\"d"]:
        style = etree.XML(
            f'<xsl:stylesheet xmlns:xsl="{XSL}" version="1.0"><xsl:template match="/"><r/></xsl:template></xsl:stylesheet>'
        )
        style[0][0].append(etree.Element(f"{{{XSL}}}value-of", select=xpath_literal(text)))
        assert etree.XSLT(style)(etree.XML("<x/>")).getroot().text == (text or None)


# -- types ------------------------------------------------------------------------------------


def test_type_casts():
    mapping = [
        {"target": "id", "source": "id"},
        {"target": "qty", "source": "qty", "type": "integer"},
        {"target": "price", "source": "price", "type": "number"},
        {"target": "paid", "source": "paid", "type": "boolean"},
        {"target": "code", "source": "code", "type": "string"},
    ]
    records = [
        {"id": 1, "qty": 5, "price": 9.99, "paid": True, "code": "007"},
        {"id": 2, "qty": " -12 ", "price": "1e3", "paid": "1", "code": 7},
        {"id": 3, "qty": "4.0", "price": 3, "paid": "FALSE", "code": ""},
        {"id": 4, "paid": "0"},  # missing numbers have no value; a missing boolean is false
        {"id": 5, "qty": "12", "price": ".5", "paid": False},
    ]
    out, failures = run(mapping, records)
    assert failures == []
    assert out == [
        {"id": "1", "qty": 5, "price": 9.99, "paid": True, "code": "007", KEY: "1"},
        {"id": "2", "qty": -12, "price": 1000.0, "paid": True, "code": "7", KEY: "2"},
        {"id": "3", "qty": 4, "price": 3.0, "paid": False, "code": "", KEY: "3"},
        {"id": "4", "qty": None, "price": None, "paid": False, "code": "", KEY: "4"},
        {"id": "5", "qty": 12, "price": 0.5, "paid": False, KEY: "5", "code": ""},
    ]
    assert type(out[2]["price"]) is float
    assert output_types(touchpoint(mapping)) == {
        "id": "string",
        "qty": "integer",
        "price": "number",
        "paid": "boolean",
        "code": "string",
    }


def test_failing_cast_fails_only_that_record():
    mapping = [
        {"target": "id", "source": "id"},
        {"target": "qty", "source": "qty", "type": "integer"},
        {"target": "price", "source": "price", "type": "number"},
        {"target": "paid", "source": "paid", "type": "boolean"},
    ]
    records = [
        {"id": 1, "qty": 1, "price": 1, "paid": 1},
        {"id": 2, "qty": "two", "price": 1, "paid": 1},
        {"id": 3, "qty": 3, "price": "1.5 EUR", "paid": 1},
        {"id": 4, "qty": 4, "price": 1, "paid": "maybe"},
        {"id": 5, "qty": "5.5", "price": "NaN", "paid": 1},
        {"id": 6, "qty": 6, "price": 6, "paid": 0},
    ]
    out, failures = run(mapping, records)
    assert out == [
        {"id": "1", "qty": 1, "price": 1.0, "paid": True, KEY: "1"},
        {"id": "6", "qty": 6, "price": 6.0, "paid": False, KEY: "6"},
    ]
    assert failures == [
        ("2", "field 'qty': 'two' is not an integer"),
        ("3", "field 'price': '1.5 EUR' is not a number"),
        ("4", "field 'paid': 'maybe' is not a boolean (true/false/1/0)"),
        ("5", "field 'qty': '5.5' is not an integer"),
    ]


# -- input records ----------------------------------------------------------------------------


def test_missing_key_field():
    mapping = [{"target": "code", "source": "code"}]
    records = [
        {"code": "a", "id": 1},
        {"code": "b"},
        {"code": "c", "id": None},
        {"code": "d", "id": ""},
        {"code": "e", "id": 0},
    ]
    out, failures = run(mapping, records)
    assert out == [{"code": "a", KEY: "1"}, {"code": "e", KEY: "0"}]
    assert failures == [("", "missing key field 'id'")] * 3


def test_key_field_name_is_the_source_key():
    mapping = [{"target": "id", "source": "order_no"}, {"target": "name", "source": "name"}]
    out, failures = run(mapping, [{"order_no": "A-1", "name": "x"}, {"name": "y", "id": 5}], key="order_no")
    assert out == [{"id": "A-1", "name": "x", KEY: "A-1"}]
    assert failures == [("", "missing key field 'order_no'")]


def test_none_values_are_omitted():
    mapping = [
        {"target": "id", "source": "id"},
        {"target": "note", "source": "note"},
        {"target": "has_note", "xpath": "boolean(note)"},
        {"target": "fields", "xpath": "count(*)"},
        {"target": "names", "xpath": "concat(name(*[1]), ',', name(*[2]), ',', name(*[3]))"},
    ]
    out, failures = run(mapping, [{"id": 1, "note": None, "flag": False}, {"id": 2, "note": "", "flag": True}])
    assert failures == []
    assert out == [
        {"id": "1", "note": "", "has_note": "false", "fields": "2", "names": "id,flag,", KEY: "1"},
        {"id": "2", "note": "", "has_note": "true", "fields": "3", "names": "id,note,flag", KEY: "2"},
    ]


def test_values_are_text_and_bad_field_names_skipped():
    mapping = [
        {"target": "id", "source": "id"},
        {"target": "flag", "source": "flag"},
        {"target": "day", "source": "day"},
        {"target": "fields", "xpath": "count(*)"},
    ]
    import datetime as dt
    import decimal

    record = {
        "id": decimal.Decimal("1.50"),
        "flag": False,
        "day": dt.date(2024, 2, 29),
        "first name": "x",
        "1st": "y",
        "a:b": "z",
    }
    out, failures = run(mapping, [record])
    assert failures == []
    assert out == [{"id": "1.50", "flag": "false", "day": "2024-02-29", "fields": "3", KEY: "1.50"}]


def test_key_keeps_every_character():
    mapping = [{"target": "id", "source": "id"}, {"target": "attr", "xpath": "string(@key)"}]
    key = "k \"1\" & 'x' <y>\n\t\r end"
    out, failures = run(mapping, [{"id": key}])
    assert failures == []
    assert out == [{"id": key, "attr": key, KEY: key}]


def test_characters_xml_cannot_carry_fail_only_that_record():
    mapping = [{"target": "id", "source": "id"}, {"target": "note", "source": "note"}]
    records = [
        {"id": 1, "note": "fine"},
        {"id": 2, "note": "bell\x07"},
        {"id": 3, "note": "stand-in \x01 char"},
        {"id": 4, "note": "lone surrogate \ud800"},
        {"id": 5, "note": "not a char \ufffe"},
        {"id": "key\x00", "note": "ok"},
        {"id": 7, "note": "fine too", "bad name": "\x00"},  # skipped field: not a problem
    ]
    out, failures = run(mapping, records)
    assert out == [{"id": "1", "note": "fine", KEY: "1"}, {"id": "7", "note": "fine too", KEY: "7"}]
    assert failures == [
        ("2", "field 'note' holds characters XML 1.0 cannot carry"),
        ("3", "field 'note' holds characters XML 1.0 cannot carry"),
        ("4", "field 'note' holds characters XML 1.0 cannot carry"),
        ("5", "field 'note' holds characters XML 1.0 cannot carry"),
        ("key\x00", "field 'id' holds characters XML 1.0 cannot carry"),
    ]


def test_the_three_parts_are_the_steps_and_their_files_replay_with_plain_lxml():
    """write (extract), transform (transform) and read (load) give what apply gives; the batch files between them are
    record XML: the stylesheet applied to the extract's file by plain lxml gives the transform's file."""
    mapping = [{"target": "id", "source": "id", "type": "integer"}, {"target": "n", "source": "n", "type": "integer"}]
    records = [{"id": i, "n": "x" if i == 4 else i * 2} for i in range(7)] + [{"n": 1}]
    tp = touchpoint(mapping)
    transformer = Transformer(generate_xslt(tp), output_types(tp), "id")
    written = transformer.writer.write(records)
    assert written.keys == [str(i) for i in range(7)] and written.failures == [("", "missing key field 'id'")]
    done = transformer.transform(written.document)
    assert done.keys_in == done.keys_out == written.keys and done.failures == []
    replayed = etree.XSLT(etree.fromstring(generate_xslt(tp).encode()))(etree.fromstring(written.document))
    assert etree.tostring(replayed, encoding="utf-8") == done.document
    out, failures = transformer.reader.read(done.document)
    assert out == [{"id": i, "n": i * 2, KEY: str(i)} for i in range(7) if i != 4]
    assert failures == [("4", "field 'n': 'x' is not an integer")]
    assert transformer.apply(records) == (out, written.failures + failures)


def test_empty_batch():
    assert run([{"target": "id", "source": "id"}], []) == ([], [])


# -- the fast paths: records of one shape built a column at a time, generated output read by position

SHAPED = [
    {"id": 1, "name": TRICKY, "note": "first\r\nline\twith tab", "n": 5, "paid": True, "day": None},
    {
        "id": 'k "2" & <x>\t\n\r',
        "name": "Zoë 日本 🎉",
        "note": "",
        "n": 2.5,
        "paid": False,
        "day": dt.date(2024, 2, 29),
    },
    {"id": decimal.Decimal("3.0"), "name": " ", "note": None, "n": -1, "paid": 1, "day": "x]]>y"},
]
SHAPED_MAPPING = [
    {"target": "id", "source": "id"},
    {"target": "name", "source": "name"},
    {"target": "note", "source": "note"},
    {"target": "n", "source": "n", "type": "number"},
    {"target": "paid", "source": "paid", "type": "boolean"},
    {"target": "day", "source": "day"},
    {"target": "fields", "xpath": "count(*)", "type": "integer"},
    {"target": "attr", "xpath": "string(@key)"},
]
SHAPED_OUT = [
    {"id": "1", "name": TRICKY, "note": "first\r\nline\twith tab", "n": 5.0, "paid": True, "day": "", "fields": 5,
     "attr": "1", KEY: "1"},
    {"id": 'k "2" & <x>\t\n\r', "name": "Zoë 日本 🎉", "note": "", "n": 2.5, "paid": False, "day": "2024-02-29", "fields": 6,
     "attr": 'k "2" & <x>\t\n\r', KEY: 'k "2" & <x>\t\n\r'},
    {"id": "3.0", "name": " ", "note": "", "n": -1.0, "paid": True, "day": "x]]>y", "fields": 5, "attr": "3.0", KEY: "3.0"},
]  # fmt: skip


def test_records_of_one_shape_give_the_same_document_and_output_as_any_records():
    tp = touchpoint(SHAPED_MAPPING)
    transformer = Transformer(generate_xslt(tp), output_types(tp), "id")
    by_column = transformer.writer.write(SHAPED)
    by_record = transformer.writer.write([MappingProxyType(r) for r in SHAPED])  # not dicts: built record by record
    assert by_column == by_record
    third = by_column.document.partition(b'<record key="3.0">')[2]
    assert b"<day>2024-02-29</day>" in by_column.document and third.startswith(
        b"<id>3.0</id><name> </name><n>"
    )  # None: no <note>
    assert transformer.apply(SHAPED) == (SHAPED_OUT, [])
    assert transformer.apply([MappingProxyType(r) for r in SHAPED]) == (SHAPED_OUT, [])
    mixed = [{**r, "not a name": 1} if i == 1 else r for i, r in enumerate(SHAPED)]  # shapes differ: record by record
    assert transformer.apply(mixed) == (SHAPED_OUT, [])


def test_generated_output_is_read_by_position_any_other_by_element():
    tp = touchpoint(SHAPED_MAPPING)
    text = generate_xslt(tp)
    fast = Transformer(text, output_types(tp), "id")
    assert fast.fields == ("id", "name", "note", "n", "paid", "day", "fields", "attr")
    # the same output from an equivalent stylesheet of another shape, read element by element
    same = Transformer(text.replace('<xsl:template match="/">', '<xsl:param name="unused"/><xsl:template match="/">'),
                       output_types(tp), "id")  # fmt: skip
    assert same.fields is None and same.apply(SHAPED) == fast.apply(SHAPED) == (SHAPED_OUT, [])
    # shapes the fast reader must not take: sorted records, an element inside a field, a field in a namespace
    sorted_ = Transformer(
        text.replace('select="records/record">', 'select="records/record"><xsl:sort select="name"/>'), {}, "id"
    )
    nested = Transformer(text.replace("<name>", "<name><b>[</b>").replace("</name>", "<b>]</b></name>"), {}, "id")
    spaced = Transformer(text.replace("<note>", '<note xmlns="urn:x">'), {}, "id")
    assert sorted_.fields is nested.fields is spaced.fields is None
    assert [r["name"] for r in sorted_.apply(SHAPED)[0]] == [" ", "Zoë 日本 🎉", TRICKY]  # by code point
    assert [r["name"] for r in nested.apply(SHAPED)[0]] == [f"[{TRICKY}]", "[Zoë 日本 🎉]", "[ ]"]
    assert [r["note"] for r in spaced.apply(SHAPED)[0]] == ["first\r\nline\twith tab", "", ""]


def test_records_of_one_shape_with_bad_characters_or_keys_fail_alone():
    mapping = [{"target": "id", "source": "id"}, {"target": "note", "source": "note", "type": "integer"}]
    records = [
        {"id": 1, "note": "1"},
        {"id": 2, "note": "stand-in \x01 char"},
        {"id": 3, "note": "lone surrogate \ud800"},
        {"id": "key\x00", "note": "2"},
        {"id": None, "note": "3"},
        {"id": "", "note": "4"},
        {"id": 7, "note": "seven"},
        {"id": 8, "note": None},
    ]
    out, failures = run(mapping, records)
    assert out == [{"id": "1", "note": 1, KEY: "1"}, {"id": "8", "note": None, KEY: "8"}]
    assert failures == [
        ("", "missing key field 'id'"),
        ("", "missing key field 'id'"),
        ("2", "field 'note' holds characters XML 1.0 cannot carry"),
        ("3", "field 'note' holds characters XML 1.0 cannot carry"),
        ("key\x00", "field 'id' holds characters XML 1.0 cannot carry"),
        ("7", "field 'note': 'seven' is not an integer"),
    ]
    good = [r for r in records if r["id"] in (1, 7, 8)]  # one shape, keys all there: built by column
    assert run(mapping, good) == (out, [("7", "field 'note': 'seven' is not an integer")])
    assert run(mapping, [r for r in records if r["id"] in (1, 2, 3, 8)]) == (out, failures[2:4])


# -- generated text ---------------------------------------------------------------------------


def test_generated_stylesheet_is_deterministic_and_readable():
    mapping = [
        {"target": "id", "source": "id"},
        {"target": "state", "source": "status", "lookup": {"b": "2", "a": "1", TRICKY: "3"}, "default": "0"},
        {"target": "origin", "constant": "shop"},
    ]
    text = generate_xslt(touchpoint(mapping))
    assert text == generate_xslt(touchpoint(mapping))
    assert text == stylesheet_for(touchpoint(mapping), Path("/nowhere"))
    assert text.startswith(
        "<!-- Flowlink touchpoint orders: generated from its mapping, do not edit -->\n<xsl:stylesheet"
    )
    assert '\n  <xsl:template match="/">\n' in text
    # lookup entries keep their order; the both-quotes value is an XPath concat()
    assert text.index("$value = 'b'") < text.index("$value = 'a'") < text.index("$value = concat('it'")
    assert etree.XSLT(etree.XML(text.encode()))  # compiles
    assert generate_xslt(touchpoint(mapping, name="other")) != text


# -- the user's own XSLT ----------------------------------------------------------------------

USER_WITH_KEY = f"""<?xml version="1.0" encoding="UTF-8"?>
<xsl:stylesheet xmlns:xsl="{XSL}" version="1.0">
  <xsl:template match="/records">
    <records>
      <xsl:for-each select="record[not(status = 'skip')]">
        <xsl:sort select="name"/>
        <contact key="{{@key}}">
          <email><xsl:value-of select="translate(email, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')"/></email>
          <!-- a comment in the output -->
          <address><street><xsl:value-of select="street"/></street><city><xsl:value-of select="city"/></city></address>
          <seen><xsl:value-of select="count(../record)"/></seen>
        </contact>
      </xsl:for-each>
    </records>
  </xsl:template>
</xsl:stylesheet>
"""

USER_WITHOUT_KEY = f"""<xsl:stylesheet xmlns:xsl="{XSL}" version="1.0" xmlns="urn:example:crm">
  <xsl:template match="/">
    <batch>
      <xsl:apply-templates select="records/record"/>
    </batch>
  </xsl:template>
  <xsl:template match="record">
    <item><name><xsl:value-of select="name"/></name><n><xsl:value-of select="position()"/></n></item>
  </xsl:template>
</xsl:stylesheet>
"""

USER_LATIN1 = f"""<?xml version="1.0" encoding="ISO-8859-1"?>
<xsl:stylesheet xmlns:xsl="{XSL}" version="1.0">
  <xsl:template match="/"><records><xsl:for-each select="records/record"><r key="{{@key}}"><v>Café</v></r></xsl:for-each></records></xsl:template>
</xsl:stylesheet>
""".encode("latin-1")


def user_transformer(tmp_path: Path, content: str | bytes, types: dict | None = None) -> Transformer:
    (tmp_path / "custom").mkdir(exist_ok=True)
    path = tmp_path / "custom" / "contacts.xsl"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    tp = touchpoint(xslt="custom/contacts.xsl")
    assert output_types(tp) == {}
    return Transformer(stylesheet_for(tp, tmp_path), types or {}, "id")


def test_user_xslt_with_key_attribute(tmp_path):
    transformer = user_transformer(tmp_path, USER_WITH_KEY, {"seen": "integer"})
    records = [
        {"id": 10, "name": "Zed", "email": "ZED@Example.COM", "street": "Main St 1", "city": "Oslo"},
        {"id": 11, "name": "Amy", "email": "amy@example.com", "status": "skip"},
        {"id": 12, "name": "Bob", "email": "Bob@Example.com", "city": "Rome"},
    ]
    out, failures = transformer.apply(records)
    assert failures == []
    assert out == [  # sorted by name, one filtered out, nested elements give their text
        {"email": "bob@example.com", "address": "Rome", "seen": 3, KEY: "12"},
        {"email": "zed@example.com", "address": "Main St 1Oslo", "seen": 3, KEY: "10"},
    ]


def test_user_xslt_without_key_attribute_aligns_by_position(tmp_path):
    transformer = user_transformer(tmp_path, USER_WITHOUT_KEY, {"n": "integer"})
    out, failures = transformer.apply([{"id": "a", "name": "Ann"}, {"id": "b", "name": "Ben"}, {"name": "no key"}])
    assert failures == [("", "missing key field 'id'")]
    assert out == [{"name": "Ann", "n": 1, KEY: "a"}, {"name": "Ben", "n": 2, KEY: "b"}]  # namespace dropped from names


def test_user_xslt_without_key_and_other_count_fails_the_batch(tmp_path):
    text = USER_WITHOUT_KEY.replace('select="records/record"', "select=\"records/record[name != 'drop']\"")
    transformer = user_transformer(tmp_path, text)
    out, failures = transformer.apply([{"id": "a", "name": "Ann"}, {"id": "b", "name": "drop"}])
    assert out == []
    reason = (
        "the stylesheet's output has 1 record(s), 1 without a key attribute, for 2 input record(s): "
        'copy the key attribute (<xsl:copy-of select="@key"/>) or output exactly one record per input record'
    )
    assert failures == [("a", reason), ("b", reason)]


def test_user_xslt_in_another_encoding(tmp_path):
    transformer = user_transformer(tmp_path, USER_LATIN1)
    assert transformer.apply([{"id": 1}]) == ([{"v": "Café", KEY: "1"}], [])


def test_user_xslt_runtime_error_fails_only_that_record(tmp_path):
    text = f"""<xsl:stylesheet xmlns:xsl="{XSL}" version="1.0">
      <xsl:template match="/"><records><xsl:for-each select="records/record">
        <xsl:if test="name = 'boom'"><xsl:message terminate="yes">cannot map <xsl:value-of select="@key"/></xsl:message></xsl:if>
        <record><xsl:copy-of select="@key"/><name><xsl:value-of select="name"/></name></record>
      </xsl:for-each></records></xsl:template>
    </xsl:stylesheet>"""
    transformer = user_transformer(tmp_path, text)
    out, failures = transformer.apply([{"id": 1, "name": "ok"}, {"id": 2, "name": "boom"}, {"id": 3, "name": "fine"}])
    assert out == [{"name": "ok", KEY: "1"}, {"name": "fine", KEY: "3"}]
    assert failures == [("2", "XSLT error: cannot map 2")]


def test_user_xslt_cannot_read_files(tmp_path):
    secret = tmp_path / "secret.xml"
    secret.write_text("<s>secret</s>")
    text = f"""<xsl:stylesheet xmlns:xsl="{XSL}" version="1.0">
      <xsl:template match="/"><records><xsl:for-each select="records/record">
        <record><xsl:copy-of select="@key"/><s><xsl:value-of select="document('{secret.as_uri()}')"/></s></record>
      </xsl:for-each></records></xsl:template>
    </xsl:stylesheet>"""
    out, failures = user_transformer(tmp_path, text).apply([{"id": 1}])
    assert out == []
    assert len(failures) == 1 and failures[0][0] == "1" and "denied" in failures[0][1] and "secret" not in str(out)


@pytest.mark.parametrize(
    "content, reason",
    [
        ("<xsl:stylesheet", "not well-formed XML"),
        ("<stylesheet version='1.0'/>", "not a valid XSLT 1.0 stylesheet"),
        (
            f'<xsl:stylesheet xmlns:xsl="{XSL}" version="1.0"><xsl:template match="/"><xsl:value-of select="concat(("/>'
            "</xsl:template></xsl:stylesheet>",
            "not a valid XSLT 1.0 stylesheet",
        ),
    ],
)
def test_invalid_user_xslt(tmp_path, content, reason):
    (tmp_path / "bad.xsl").write_text(content)
    with pytest.raises(FlowlinkError) as caught:
        stylesheet_for(touchpoint(xslt="bad.xsl"), tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'bad.xsl'}: {reason}")


def test_missing_user_xslt(tmp_path):
    with pytest.raises(FlowlinkError, match=r"missing\.xsl: cannot read XSLT file"):
        stylesheet_for(touchpoint(xslt="missing.xsl"), tmp_path)


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(
        st.one_of(
            st.text(alphabet="0123456789.+-eE _ntrufalsNIy²\u0660", max_size=6),
            st.sampled_from(["", "1_000", "²", "nan", "inf", "-0", "1e5", ".5", " 7 ", "TRUE"]),
        ),
        max_size=8,
    )
)
def test_a_column_cast_in_one_go_equals_the_value_by_value_cast(values):
    """The fast column casts (int, float, a dict over a whole column) give exactly what the per-value casts give."""
    from flowlink.recordxml import _cast_column

    for cast in (CASTS["integer"], CASTS["number"], CASTS["boolean"]):
        try:
            expected = list(map(cast, values))
        except CastError:
            with pytest.raises(CastError):
                _cast_column(cast, values)
            continue
        got = _cast_column(cast, values)
        assert got == expected and [type(v) for v in got] == [type(v) for v in expected]


# -- trim, case and default: plain XSLT 1.0 ---------------------------------------------------

XML_SPACE = " \t\r\n"  # what trim removes, and normalize-space collapses
# XPath 1.0 core functions and the functions XSLT 1.0 adds: nothing else may appear in a generated stylesheet
XSLT1_FUNCTIONS = {
    "last",
    "position",
    "count",
    "id",
    "local-name",
    "namespace-uri",
    "name",
    "string",
    "concat",
    "starts-with",
    "contains",
    "substring-before",
    "substring-after",
    "substring",
    "string-length",
    "normalize-space",
    "translate",
    "boolean",
    "not",
    "true",
    "false",
    "lang",
    "number",
    "sum",
    "floor",
    "ceiling",
    "round",
    "document",
    "key",
    "format-number",
    "current",
    "unparsed-entity-uri",
    "generate-id",
    "system-property",
    "element-available",
    "function-available",
}
XSLT1_ELEMENTS = {
    "stylesheet",
    "output",
    "variable",
    "param",
    "with-param",
    "template",
    "call-template",
    "for-each",
    "value-of",
    "copy-of",
    "text",
    "choose",
    "when",
    "otherwise",
    "if",
}  # the XSLT 1.0 elements generate_xslt may use


def only_xslt1(text: str) -> None:
    """The stylesheet is XSLT 1.0 with no extension: only XSLT 1.0 elements, only XPath/XSLT 1.0 functions."""
    root = etree.fromstring(text.encode())
    assert root.get("version") == "1.0" and root.get("extension-element-prefixes") is None
    assert set(root.nsmap.values()) == {XSL}
    for element in root.iter(etree.Element):
        name = etree.QName(element)
        if name.namespace == XSL:
            assert name.localname in XSLT1_ELEMENTS, name.localname
        else:
            assert name.namespace is None  # a literal output element
        for attribute in ("select", "test"):
            expression = element.get(attribute)
            if expression is None:
                continue
            outside_literals = re.sub(r"'[^']*'|\"[^\"]*\"", "''", expression)
            called = set(re.findall(r"([A-Za-z_][\w.-]*(?::[\w.-]+)?)\s*\(", outside_literals))
            assert called <= XSLT1_FUNCTIONS, (expression[:80], called - XSLT1_FUNCTIONS)


def test_case_lower_and_upper_unicode_letters():
    emails = [
        "Ada.Lovelace@Example.COM",
        "ÉLODIE@Société.FR",
        "JÖRG.ÄRGER@ÜBER.DE",
        "ΩMEGA.Σοφία@ΕΛΛΑΔΑ.GR",
        "Пётр.ИВАНОВ@ПОЧТА.РФ",
        "ǅemal@x.ba",
        "Straße@Kelvin\u212a.de",
        "İstanbul@x.tr",
        "日本@例え.jp",
        "",
    ]
    mapping = [
        {"target": "id", "source": "id"},
        {"target": "lower", "source": "email", "case": "lower"},
        {"target": "upper", "xpath": "email", "case": "upper"},
    ]
    out, failures = run(mapping, [{"id": i, "email": e} for i, e in enumerate(emails)])
    assert failures == []
    assert [r["lower"] for r in out] == [
        "ada.lovelace@example.com",
        "élodie@société.fr",
        "jörg.ärger@über.de",
        "ωmega.σοφία@ελλαδα.gr",
        "пётр.иванов@почта.рф",
        "ǆemal@x.ba",
        "straße@kelvink.de",
        "İstanbul@x.tr",  # İ lower-cases to two characters (i + a combining dot): left as it is
        "日本@例え.jp",
        "",
    ]
    assert [r["upper"] for r in out] == [
        "ADA.LOVELACE@EXAMPLE.COM",
        "ÉLODIE@SOCIÉTÉ.FR",
        "JÖRG.ÄRGER@ÜBER.DE",
        "ΩMEGA.ΣΟΦΊΑ@ΕΛΛΑΔΑ.GR",
        "ПЁТР.ИВАНОВ@ПОЧТА.РФ",
        "ǄEMAL@X.BA",
        "STRAßE@KELVIN\u212a.DE",  # ß upper-cases to SS, two characters: left as it is
        "İSTANBUL@X.TR",
        "日本@例え.JP",
        "",
    ]


def test_trim_removes_whitespace_at_the_ends_only():
    values = [
        "\t\n  Ada  Lovelace \r\n\t",
        "plain",
        "  ",
        "",
        "\n\tin\tner\n",
        " x",
        "x ",
        "\u00a0nbsp\u00a0",
        " " * 100_000 + "long" + "\t" * 100_000,
    ]
    mapping = [
        {"target": "id", "source": "id"},
        {"target": "name", "source": "name", "trim": True},
        {"target": "upper", "xpath": "name", "trim": True, "case": "upper"},
    ]
    out, failures = run(mapping, [{"id": i, "name": v} for i, v in enumerate(values)])
    assert failures == []
    assert [r["name"] for r in out] == [
        "Ada  Lovelace",
        "plain",
        "",
        "",
        "in\tner",
        "x",
        "x",
        "\u00a0nbsp\u00a0",
        "long",
    ]
    assert [r["upper"] for r in out] == [v.strip(XML_SPACE).upper() for v in values]


def test_default_applies_to_null_missing_and_empty_without_a_lookup():
    mapping = [
        {"target": "id", "source": "id"},
        {"target": "city", "source": "city", "default": "unknown"},
        {"target": "trimmed", "source": "city", "trim": True, "default": "unknown"},
        {"target": "looked_up", "source": "city", "lookup": {"Bonn": "BN"}, "default": "other"},  # lookup: as before
        {"target": "via_xpath", "xpath": "city[. != 'none']", "case": "lower", "default": "-"},
    ]
    cities = [
        ("Bonn", "Bonn", "Bonn", "BN", "bonn"),
        (None, "unknown", "unknown", "other", "-"),
        ("", "unknown", "unknown", "other", "-"),
        ("  ", "  ", "unknown", "other", "  "),
        ("Köln", "Köln", "Köln", "other", "köln"),
        ("none", "none", "none", "other", "-"),
    ]
    records = [{"id": i, "city": city} for i, (city, *_) in enumerate(cities)] + [{"id": 99}]  # 99: no city at all
    out, failures = run(mapping, records)
    assert failures == []
    expected = [tuple(rest) for _, *rest in cities] + [("unknown", "unknown", "other", "-")]
    assert [(r["city"], r["trimmed"], r["looked_up"], r["via_xpath"]) for r in out] == expected


def test_trim_and_case_come_before_the_lookup():
    mapping = [
        {"target": "id", "source": "id"},
        {
            "target": "country",
            "source": "code",
            "trim": True,
            "case": "lower",
            "lookup": {"de": "Germany", "fr": "France"},
            "default": "Other",
        },
    ]
    out, _ = run(mapping, [{"id": 1, "code": " DE\t"}, {"id": 2, "code": "fr"}, {"id": 3, "code": "D E"}])
    assert [r["country"] for r in out] == ["Germany", "France", "Other"]


def test_trim_and_case_stylesheet_is_plain_xslt_1_and_replays_with_plain_lxml():
    mapping = [
        {"target": "id", "source": "id"},
        {"target": "email", "source": "email", "trim": True, "case": "lower"},
        {"target": "code", "xpath": "concat(a, b)", "case": "upper", "default": "NONE"},
        {"target": "city", "source": "city", "trim": True, "lookup": {"Köln": "Cologne"}},
    ]
    tp = touchpoint(mapping)
    text = generate_xslt(tp)
    only_xslt1(text)
    assert text.count('name="flowlink-lower-from"') == text.count('name="flowlink-upper-from"') == 1  # once each
    assert len(text.encode()) < 25_000  # both tables (about 9 KB each) and the trim templates
    transformer = Transformer(text, output_types(tp), "id")
    assert transformer.fields == ("id", "email", "code", "city")  # still read by position: the fast reader
    records = [
        {"id": 1, "email": " \tÉLODIE@Société.FR\n", "a": "ab", "b": "ß", "city": " Köln "},
        {"id": 2, "email": None, "a": "", "city": "Bonn"},
    ]
    written = transformer.writer.write(records)
    replayed = etree.XSLT(etree.fromstring(text.encode()))(etree.fromstring(written.document))  # no Flowlink
    assert etree.tostring(replayed, encoding="utf-8") == transformer.transform(written.document).document
    assert [[f.text for f in r] for r in replayed.getroot()] == [
        ["1", "élodie@société.fr", "ABß", "Cologne"],
        ["2", None, "NONE", "Bonn"],
    ]
    plain = generate_xslt(touchpoint([{"target": "id", "source": "id"}, {"target": "e", "source": "e"}]))
    assert "flowlink-" not in plain  # no tables, no templates for a mapping that does not use them


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\ufffe\uffff"), max_size=40
    ).map(lambda t: "".join(c for c in t if c in XML_SPACE or c >= " ")),
    pad=st.tuples(st.text(alphabet=XML_SPACE, max_size=5), st.text(alphabet=XML_SPACE, max_size=5)),
)
def test_trim_and_case_agree_with_python(text, pad):
    """For any text: trim is str.strip of XML whitespace; case maps each character Python maps to one character."""
    value = pad[0] + text + pad[1]
    mapping = [
        {"target": "id", "source": "id"},
        {"target": "t", "source": "v", "trim": True},
        {"target": "lo", "source": "v", "case": "lower"},
        {"target": "up", "source": "v", "case": "upper"},
    ]
    [out], failures = run(mapping, [{"id": 1, "v": value}], key="id")
    assert failures == []

    def mapped(change):
        return "".join(m if len(m := change(c)) == 1 else c for c in value)

    assert out["t"] == value.strip(XML_SPACE)
    assert out["lo"] == mapped(str.lower) and out["up"] == mapped(str.upper)


def test_rules_without_trim_or_case_are_published_as_before():
    """A rule that does not use trim or case dumps (and so publishes, checksummed) without them: an unchanged spec
    keeps its published version; its stylesheet is the same as before too (no tables, no templates)."""
    tp = touchpoint([{"target": "id", "source": "id"}, {"target": "s", "source": "s", "lookup": {"a": "b"}}])
    assert [rule.model_dump(mode="json") for rule in tp.mapping] == [
        {
            "target": "id",
            "source": "id",
            "xpath": None,
            "constant": None,
            "lookup": None,
            "default": None,
            "type": "string",
        },
        {
            "target": "s",
            "source": "s",
            "xpath": None,
            "constant": None,
            "lookup": {"a": "b"},
            "default": None,
            "type": "string",
        },
    ]
    with_options = touchpoint([{"target": "id", "source": "id", "trim": True, "case": "upper"}]).mapping[0]
    assert (
        with_options.model_dump(mode="json")["trim"] is True and with_options.model_dump(mode="json")["case"] == "upper"
    )
