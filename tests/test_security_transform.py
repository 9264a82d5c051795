"""Source data and stylesheets are untrusted: real lxml, real files, a real loopback HTTP server that counts requests.

Nothing resolves an entity or reaches the network; a stylesheet cannot read, include or write a file or open a URL
(refused when the spec is validated or published, and denied again at run time); huge or deeply nested input is
refused naming the limit and where; no secret ever shows up in a record, a message or a file written."""

from __future__ import annotations

import secrets
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from flowlink.connectors.base import ConnectorError
from flowlink.errors import FlowlinkError
from flowlink.spec import XSL, SpecError, load_spec
from flowlink.store import bucket, snapshots
from tests.test_bad_records import Pipeline, jsonl

SHEET = f'<xsl:stylesheet xmlns:xsl="{XSL}" version="1.0"{{top}}>{{body}}</xsl:stylesheet>'
RECORDS = '<xsl:template match="/"><records><xsl:for-each select="records/record"><record><xsl:copy-of select="@key"/>{}</record></xsl:for-each></records></xsl:template>'


def sheet(body: str, top: str = "", doctype: str = "") -> str:
    return doctype + SHEET.format(top=top, body=body)


@pytest.fixture
def loopback():
    """An HTTP server on 127.0.0.1 that records every request (and answers with XML holding a secret)."""
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            body = b'<?xml version="1.0"?><s>NETSECRET</s>'
            self.send_response(200)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    assert urllib.request.urlopen(f"{url}/ping", timeout=5).read().endswith(b"NETSECRET</s>")  # it does answer
    requests.clear()
    yield SimpleNamespace(url=url, requests=requests)
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def secret(tmp_path):
    """A secret text file and a secret XML file outside every folder Flowlink reads."""
    value = f"TOPSECRET-{secrets.token_hex(8)}"
    (tmp_path / "secret.txt").write_text(value)
    (tmp_path / "secret.xml").write_text(f"<s>{value}</s>")
    (tmp_path / "secret.dtd").write_text(f'<!ENTITY leak "{value}">')
    return SimpleNamespace(value=value, txt=(tmp_path / "secret.txt").as_uri(), xml=(tmp_path / "secret.xml").as_uri(),
                           dtd=(tmp_path / "secret.dtd").as_uri())  # fmt: skip


@pytest.fixture
def pipeline(home, store):
    return lambda source_file, **kw: Pipeline(home, store, source_file, **kw)


def everything(p: Pipeline) -> str:
    """All a run left behind: bucket messages, snapshot messages, the target file."""
    rows = bucket.rows(p.store, "bad_input", limit=1000)
    steps = [s for n in range(1, p.runs + 1) for s in snapshots.snapshot(p.store, f"run-{n}")["steps"]]
    target = p.out / "orders.json"
    return (
        repr([(r["source_id"], r["message"]) for r in rows])
        + repr([s["message"] for s in steps])
        + (target.read_text() if target.exists() else "")
    )


def spec_problems(p: Pipeline) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as caught:
        load_spec(p.spec)
    return caught.value.problems


# -- source data --------------------------------------------------------------------------------------------------


@pytest.mark.reliability("Security", "XXE in source data")
def test_xxe_in_source_data(pipeline, loopback, secret, observe):
    """An XML source file declares external entities (file:///secret, http://127.0.0.1), an external DTD and parameter
    entities (local file and loopback URL) and uses them and an XInclude in its records; then a JSON source record
    holds an XXE payload as text. Both go through extract, transform and load."""
    p = pipeline("orders.xml", mapping=[{"target": "id", "source": "id"}, {"target": "note", "source": "note"}])
    p.write(
        "orders.xml",
        f"""<?xml version="1.0"?>
<!DOCTYPE records SYSTEM "{loopback.url}/external.dtd" [
  <!ENTITY file SYSTEM "{secret.txt}">
  <!ENTITY net SYSTEM "{loopback.url}/entity">
  <!ENTITY % remote SYSTEM "{loopback.url}/parameter.dtd"> %remote;
  <!ENTITY % local SYSTEM "{secret.dtd}"> %local;
]>
<records xmlns:xi="http://www.w3.org/2001/XInclude">
  <record><id>1</id><note>&file;</note></record>
  <record><id>2</id><note>&net;</note></record>
  <record><id>3</id><note>x&leak;</note></record>
  <record><id>4</id><note><xi:include href="{secret.txt}" parse="text"/></note></record>
  <record><id>5</id><note>plain</note></record>
</records>""",
    )
    p.run()
    failed = p.failed()
    assert failed == {
        "1": "extract: orders.xml record 1, line 9: field 'note' holds the entity reference &file;, which is not expanded",
        "2": "extract: orders.xml record 2, line 10: field 'note' holds the entity reference &net;, which is not expanded",
        "3": "extract: orders.xml record 3, line 11: field 'note' holds the entity reference &leak;, which is not expanded",
        "4": "extract: orders.xml record 4, line 12: field 'note' holds the element <include>: a field holds text only",
    }
    assert p.loaded() == {"5": {"id": "5", "note": "plain"}}

    payload = f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "{secret.txt}"><!ENTITY y SYSTEM "{loopback.url}/v">]><r>&x;&y;</r>'
    p = pipeline("values.jsonl", mapping=[{"target": "id", "source": "id"}, {"target": "note", "source": "note"}])
    p.write("values.jsonl", jsonl({"id": 10, "note": payload}))
    assert p.run() is None
    assert p.loaded()["10"] == {"id": "10", "note": payload}  # text, as it came
    assert loopback.requests == []
    assert secret.value not in everything(p) and "NETSECRET" not in everything(p)
    observe(
        f"the loopback server got {len(loopback.requests)} requests; the secret appears in no record, message or file; "
        f"records 1-4 Failed ({failed['1'].partition(': ')[2]!r}), record 5 loaded; an XXE payload in a JSON value "
        "loaded as plain text"
    )


@pytest.mark.reliability("Security", "entity expansion bomb")
def test_entity_expansion_bomb(pipeline, observe):
    """An XML source file holds a billion-laughs bomb (10 levels of 10 references), then one with a 100 KB entity
    referenced 20,000 times (quadratic blowup); each is extracted."""
    p = pipeline("orders.xml")
    laughs = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    bombs = {
        "billion laughs": f'<!DOCTYPE records [<!ENTITY l0 "lol">{laughs}]><records><record><id>1</id><note>&l9;</note></record></records>',
        "quadratic": f'<!DOCTYPE records [<!ENTITY a "{"x" * 100_000}">]><records><record><id>1</id><note>{"&a;" * 20_000}</note>'
                     "</record></records>",
    }  # fmt: skip
    for kind, document in bombs.items():
        p.write("orders.xml", document)
        started = time.monotonic()
        with pytest.raises(ConnectorError) as caught:
            p.run()
        seconds = time.monotonic() - started
        assert str(caught.value).startswith(
            "orders.xml: invalid XML: its entities would expand too far (an entity expansion bomb); entities are not expanded"
        )
        assert seconds < 5
        [step] = snapshots.snapshot(p.store, f"run-{p.runs}")["steps"]
        assert (step["step"], step["status"], step["message"]) == ("extract", "failed", str(caught.value))
        observe(f"{kind}: the extract step failed in {seconds:.2f} s: {str(caught.value)!r}")


# -- stylesheets --------------------------------------------------------------------------------------------------


@pytest.mark.reliability("Security", "stylesheet document()")
def test_stylesheet_document(pipeline, loopback, secret, home, observe):
    """A user stylesheet reads document('file:///secret.xml') and copies document('http://127.0.0.1:port/'): the spec is
    validated and published; then the same stylesheet runs anyway (as if the published file had been changed)."""
    body = RECORDS.format(
        f"<a><xsl:value-of select=\"document('{secret.xml}')\"/></a>"
        f"<b><xsl:copy-of select='document(\"{loopback.url}/doc\")'/></b>"
        "<c><xsl:value-of select=\"concat('document(', @key, ')')\"/></c>"
    )  # only text: allowed
    text = sheet(body)
    p = pipeline("orders.jsonl", xslt=text)
    p.write("orders.jsonl", jsonl({"id": 1}, {"id": 2}))
    problems = spec_problems(p)
    assert problems == [
        ("touchpoints[0].xslt", f"{p.spec.parent / 'orders.xsl'}: line 1: document() is not allowed "
                                f"(select=\"document('{secret.xml}')\"): a stylesheet cannot read files or URLs"),
        ("touchpoints[0].xslt", f"{p.spec.parent / 'orders.xsl'}: line 1: document() is not allowed "
                                f"(select='document(\"{loopback.url}/doc\")'): a stylesheet cannot read files or URLs"),
    ]  # fmt: skip
    with pytest.raises(SpecError):
        p.run()  # publish validates the spec first: nothing is published

    p = pipeline("orders.jsonl", mapping=[{"target": "id", "source": "id"}])
    p.run(stylesheet=text)
    failed = p.failed()
    assert set(failed) == {"1", "2"}
    assert all(
        m.startswith("transform: XSLT error: xsltLoadDocument: read rights for ") and m.endswith(" denied")
        for m in failed.values()
    )
    assert loopback.requests == [] and secret.value not in everything(p)
    for uri in (secret.xml, f"{loopback.url}/doc"):  # one at a time: each is denied
        p.run(stylesheet=sheet(RECORDS.format(f"<a><xsl:copy-of select=\"document('{uri}')\"/></a>")))
        assert set(p.failed().values()) == {f"transform: XSLT error: xsltLoadDocument: read rights for {uri} denied"}
    assert loopback.requests == [] and "NETSECRET" not in everything(p)
    observe(
        f"validate and publish refuse it: {problems[0][1].partition(': ')[2]!r}; run anyway, every record Failed: "
        f"{p.failed()['1'].removeprefix('transform: ')!r} (and so for the file); the loopback server got "
        f"{len(loopback.requests)} requests".replace(str(home), "<tmp>")
    )


@pytest.mark.reliability("Security", "stylesheet xsl:include/import")
def test_stylesheet_include_and_import(pipeline, loopback, secret, tmp_path, observe):
    """User stylesheets xsl:include and xsl:import a local stylesheet file, xsl:include one from the loopback server,
    and declare external entities (file and URL) in a DOCTYPE: each spec is validated; then each stylesheet runs
    anyway (as if the published file had been changed)."""
    included = tmp_path / "included.xsl"
    included.write_text(sheet(f'<xsl:template name="leak"><leak>{secret.value}</leak></xsl:template>'))
    use = RECORDS.format('<xsl:call-template name="leak"/>')
    doctype = f'<!DOCTYPE xsl:stylesheet [<!ENTITY f SYSTEM "{secret.txt}"><!ENTITY n SYSTEM "{loopback.url}/entity">]>'
    cases = {
        "include": (sheet(f'<xsl:include href="{included.as_uri()}"/>' + use),
                    f"<xsl:include href='{included.as_uri()}'> is not allowed: a stylesheet is one self-contained file "
                    "and cannot read others", f"loading {included.as_uri()} is not allowed"),
        "import": (sheet(f'<xsl:import href="{included}"/>' + use),
                   f"<xsl:import href='{included}'> is not allowed: a stylesheet is one self-contained file "
                   "and cannot read others", "included.xsl is not allowed"),  # resolved against no base: a relative path
        "include over http": (sheet(f'<xsl:include href="{loopback.url}/included.xsl"/>' + use),
                              f"<xsl:include href='{loopback.url}/included.xsl'> is not allowed",
                              f"loading {loopback.url}/included.xsl is not allowed"),
        "entities": (sheet(RECORDS.format('<id><xsl:value-of select="@key"/></id><a>&f;</a><b>&n;</b>'), doctype=doctype),
                     "a DOCTYPE is not allowed in a stylesheet (entities are not expanded: write &#160;, not &nbsp;)", None),
    }  # fmt: skip
    runs = []
    for kind, (text, refused, denied) in cases.items():
        p = pipeline("orders.jsonl", xslt=text)
        p.write("orders.jsonl", jsonl({"id": 1}))
        [(path, reason)] = spec_problems(p)
        assert (
            path == "touchpoints[0].xslt"
            and reason.startswith(f"{p.spec.parent / 'orders.xsl'}: ")
            and refused in reason
        )
        p = pipeline("orders.jsonl", mapping=[{"target": "id", "source": "id"}])
        if denied is None:  # entities are not expanded: they come out as nothing
            assert p.run(stylesheet=text) is None and p.loaded() == {"1": {"id": "1", "a": "", "b": ""}}
            runs.append(f"{kind}: not expanded")
        else:
            with pytest.raises(FlowlinkError) as caught:
                p.run(stylesheet=text)
            assert str(caught.value).startswith("stylesheet: ") and denied in str(caught.value)
            runs.append(f"{kind}: {str(caught.value)!r}")
        assert secret.value not in everything(p)
    assert loopback.requests == []
    observe(
        (
            "validate refuses each, e.g. "
            + repr(refused)
            + "; run anyway: "
            + "; ".join(runs)
            + f"; the loopback server got {len(loopback.requests)} requests; the secret appears nowhere"
        ).replace(str(tmp_path), "<tmp>")
    )


@pytest.mark.reliability("Security", "stylesheet writes a file")
def test_stylesheet_writing_files(pipeline, tmp_path, observe):
    """User stylesheets write a file with exsl:document, xsl:document (XSLT 1.1), saxon:output and
    xsl:result-document: each spec is validated; then each stylesheet runs anyway."""
    written = tmp_path / "written.txt"
    cases = {
        "exsl:document": (
            'xmlns:exsl="http://exslt.org/common" extension-element-prefixes="exsl"',
            "exsl:document",
            "1.0",
        ),
        "xsl:document": ("", "xsl:document", "1.1"),
        "saxon:output": (
            'xmlns:saxon="http://icl.com/saxon" extension-element-prefixes="saxon"',
            "saxon:output",
            "1.0",
        ),
        "xsl:result-document": ("", "xsl:result-document", "2.0"),
    }
    runs = []
    for kind, (top, element, version) in cases.items():
        body = RECORDS.format(f'<{element} href="{written}" file="{written}" method="text">pwned</{element}><id>x</id>')
        text = sheet(body, top=" " + top if top else "").replace('version="1.0"', f'version="{version}"')
        p = pipeline("orders.jsonl", xslt=text)
        p.write("orders.jsonl", jsonl({"id": 1}))
        [(path, reason)] = spec_problems(p)
        assert reason.endswith(f": line 1: <{element}> is not allowed: a stylesheet cannot write files")
        p = pipeline("orders.jsonl", mapping=[{"target": "id", "source": "id"}])
        message = p.run(stylesheet=text)
        status, outcome = p.bucket()["1"]
        if kind != "xsl:result-document":
            assert message and (status, outcome) == (
                "failed",
                f"transform: XSLT error: xsltDocumentElem: write rights for {written} denied",
            )
        else:  # XSLT 2.0: libxslt skips it (forwards-compatible mode)
            assert (status, p.loaded()) == ("success", {"x": {"id": "x"}})
            outcome = "skipped by libxslt, the record loaded"
        runs.append(f"{kind}: {outcome.removeprefix('transform: XSLT error: ')}")
        assert not written.exists()
    observe(
        (
            f"validate refuses each ({reason.partition(': ')[2]!r}); run anyway: "
            + "; ".join(runs)
            + "; no file written"
        ).replace(str(tmp_path), "<tmp>")
    )


# -- limits -------------------------------------------------------------------------------------------------------


@pytest.mark.reliability("Security", "huge document")
def test_huge_documents_are_refused(pipeline, monkeypatch, observe):
    """An XML source file over FLOWLINK_MAX_FILE_BYTES (set to 10,000); an XML file holding an 11 MB text (default
    limits); a JSON source record with a 5,000-character value over FLOWLINK_MAX_VALUE_CHARS (set to 1,000)."""
    p = pipeline("orders.xml")
    p.write(
        "orders.xml", "<records>" + "<record><id>1</id><note>x</note></record>" * 500 + "</records>"
    )  # 20,519 bytes
    monkeypatch.setenv("FLOWLINK_MAX_FILE_BYTES", "10000")
    with pytest.raises(ConnectorError) as too_big:
        p.run()
    assert str(too_big.value) == "orders.xml is 20,519 bytes, over the limit of 10,000 (FLOWLINK_MAX_FILE_BYTES)"
    monkeypatch.delenv("FLOWLINK_MAX_FILE_BYTES")

    p.write("orders.xml", f"<records><record><id>1</id><note>{'x' * 11_000_000}</note></record></records>")
    with pytest.raises(ConnectorError) as huge_text:
        p.run()
    assert str(huge_text.value).startswith(
        "orders.xml: invalid XML: a text over 10,000,000 bytes, the most libxml2 reads"
    )

    monkeypatch.setenv("FLOWLINK_MAX_VALUE_CHARS", "1000")
    p = pipeline("orders.jsonl", mapping=[{"target": "id", "source": "id"}, {"target": "note", "source": "note"}])
    p.write(
        "orders.jsonl", jsonl({"id": 1, "note": "fine"}, {"id": 2, "note": "é" * 5000}, {"id": 3, "note": "x" * 1000})
    )
    assert p.run().startswith("orders: 1 record failed")
    failed = p.failed()
    assert failed == {
        "2": "extract: field 'note' holds 5,000 characters, over the limit of 1,000 (FLOWLINK_MAX_VALUE_CHARS)"
    }
    assert sorted(p.loaded()) == ["1", "3"]
    observe(
        f"file: {str(too_big.value)!r}; 11 MB text: {str(huge_text.value)!r}; record 2 Failed: "
        f"{failed['2'].removeprefix('extract: ')!r}, records 1 and 3 loaded"
    )


@pytest.mark.reliability("Security", "deep nesting")
def test_deep_nesting_is_refused(pipeline, monkeypatch, observe):
    """An XML source record nested 300 levels; JSON Lines records nested 300 and 100,000 levels deep between one
    nested 10 levels and flat ones; then FLOWLINK_MAX_DEPTH set to 5."""
    p = pipeline("orders.xml")
    p.write(
        "orders.xml", "<records><record><id>1</id><note>" + "<a>" * 300 + "</a>" * 300 + "</note></record></records>"
    )
    with pytest.raises(ConnectorError) as xml:
        p.run()
    assert str(xml.value).startswith(
        "orders.xml: invalid XML: nested deeper than 256 levels, the most libxml2 reads (line 1"
    )

    p = pipeline("orders.jsonl", mapping=[{"target": "id", "source": "id"}, {"target": "note", "source": "note"}])
    p.write("orders.jsonl", jsonl(
        {"id": 1, "note": "flat"}, '{"id": 2, "note": ' + "[" * 300 + "]" * 300 + "}",
        '{"id": 3, "note": ' + '{"a": ' * 100_000 + "1" + "}" * 100_000 + "}",
        '{"id": 4, "note": ' + "[" * 9 + "]" * 9 + "}", {"id": 5, "note": "flat"},
    ))  # fmt: skip
    assert p.run().startswith("orders: 2 records failed")
    failed = p.failed()
    assert failed == {
        "2": "extract: orders.jsonl line 2: nested deeper than 256 levels (FLOWLINK_MAX_DEPTH)",
        "(orders.jsonl line 3)": "extract: orders.jsonl line 3: invalid JSON: nested deeper than 256 levels (FLOWLINK_MAX_DEPTH)",
    }
    assert p.loaded() == {
        "1": {"id": "1", "note": "flat"},
        "4": {"id": "4", "note": "[[[[[[[[[]]]]]]]]]"},
        "5": {"id": "5", "note": "flat"},
    }

    monkeypatch.setenv("FLOWLINK_MAX_DEPTH", "5")
    p.run()
    assert p.failed()["4"] == "extract: orders.jsonl line 4: nested deeper than 5 levels (FLOWLINK_MAX_DEPTH)"
    observe(
        f"XML: the extract step failed: {str(xml.value)!r}; JSON: records 2 and 3 Failed "
        f"({failed['2'].partition(': ')[2].partition(': ')[2]!r}), 1, 4 and 5 loaded; with FLOWLINK_MAX_DEPTH=5 "
        "record 4 (10 levels) Failed too"
    )
