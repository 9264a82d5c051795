"""Malformed records through the real steps (flowlink.sync extract -> transform -> load, file to file, a real store):
each bad record ends Failed in the resync bucket with a reason naming the record and field; the others load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from flowlink import publish
from flowlink.connectors.base import ConnectorError
from flowlink.connectors.file import FileSource, FileTarget
from flowlink.mapping import output_types
from flowlink.store import bucket
from flowlink.sync import RecordsFailed, RunContext, extract, load, transform
from flowlink.transform import Transformer

MAPPING = [
    {"target": "id", "source": "id"},
    {"target": "qty", "source": "qty", "type": "integer"},
    {"target": "price", "source": "price", "type": "number"},
    {"target": "paid", "source": "paid", "type": "boolean"},
    {"target": "note", "source": "note"},
]


class Pipeline:
    """A file-to-file workflow published in the test's FLOWLINK_HOME, run step by step as the operators do."""

    def __init__(
        self, home: Path, store, source_file: str, *, mapping: list[dict] | None = None, xslt: str | None = None
    ):
        self.store, self.data, self.out = store, home / "data", home / "out"
        self.data.mkdir(exist_ok=True)
        self.out.mkdir(exist_ok=True)
        tp: dict = {
            "name": "orders",
            "extract": {"file": source_file, "key": "id"},
            "load": {"file": "orders.json", "key": "id"},
        }
        if xslt is not None:
            (home / "orders.xsl").write_text(xslt, encoding="utf-8")
            tp["xslt"] = "orders.xsl"
        else:
            tp["mapping"] = mapping or MAPPING
        self.spec = home / "bad_input.yaml"
        self.spec.write_text(yaml.safe_dump({
            "name": "bad_input", "source": {"type": "file", "connection": "files_in"},
            "target": {"type": "file", "connection": "files_out"}, "touchpoints": [tp],
        }, sort_keys=False), encoding="utf-8")  # fmt: skip
        self.runs = 0

    def write(self, name: str, content: str | bytes) -> None:
        path = self.data / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))

    def run(self, stylesheet: str | None = None) -> str | None:
        """Extract, transform and load; the load step's RecordsFailed message, or None if every record loaded.
        ``stylesheet``: run with this text instead of the published one (as if the published file had been changed)."""
        art = publish.publish(self.spec).artifact
        tp = art.workflow_model().touchpoint("orders")
        self.runs += 1
        ctx = RunContext(self.store, art, f"run-{self.runs}")
        transformer = Transformer(stylesheet or art.stylesheets["orders"], output_types(tp), tp.extract.key)
        extracted = extract(ctx, tp, lambda: FileSource(self.data))
        transformed = transform(ctx, tp, transformer, extracted)
        try:
            load(ctx, tp, lambda: FileTarget(self.out), transformed)
        except RecordsFailed as exc:
            return str(exc)
        return None

    def bucket(self) -> dict[str, tuple[str, str | None]]:
        """source id -> (status, message)."""
        rows = bucket.rows(self.store, "bad_input", limit=1000)
        return {r["source_id"]: (r["status"], r["message"]) for r in rows}

    def failed(self) -> dict[str, str]:
        return {sid: message for sid, (status, message) in self.bucket().items() if status == "failed"}

    def loaded(self) -> dict[str, dict]:
        path = self.out / "orders.json"
        return {r["id"]: r for r in json.loads(path.read_text())} if path.exists() else {}


@pytest.fixture
def pipeline(home, store):
    return lambda source_file, **kw: Pipeline(home, store, source_file, **kw)


def jsonl(*records) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)


GOOD = {"qty": 2, "price": 9.5, "paid": True, "note": "fine"}


@pytest.mark.reliability("Bad input", "bad XML record")
def test_bad_xml_records_fail_alone(pipeline, observe):
    """An XML source file whose records 2-4 are malformed (a field holding an element, a field given twice, an
    entity reference) and records 1 and 5 fine goes through extract, transform and load; then a file that is not
    well-formed XML."""
    p = pipeline("orders.xml")
    p.write(
        "orders.xml",
        """<?xml version="1.0"?>
<!DOCTYPE records [<!ENTITY ent "entity">]>
<records>
  <record><id>1</id><qty>1</qty><note>one &amp; &lt;two&gt; &#233;</note></record>
  <record><id>2</id><qty>2</qty><note>a <b>bold</b> note</note></record>
  <record><id>3</id><qty>3</qty><qty>4</qty></record>
  <record><id>4</id><note>an &ent;</note></record>
  <record><id>5</id><qty>5</qty><note>five</note></record>
</records>""",
    )
    message = p.run()
    failed = p.failed()
    assert failed == {
        "2": "extract: orders.xml record 2, line 5: field 'note' holds the element <b>: a field holds text only",
        "3": "extract: orders.xml record 3, line 6: the field 'qty' is given twice",
        "4": "extract: orders.xml record 4, line 7: field 'note' holds the entity reference &ent;, which is not expanded",
    }
    assert (
        sorted(p.loaded()) == ["1", "5"] and p.loaded()["1"]["note"] == "one & <two> é" and p.loaded()["5"]["qty"] == 5
    )
    assert message.startswith("orders: 3 records failed in extract; they wait in the resync bucket")
    observe(f"records 2, 3, 4 Failed with the reason and line ({failed['2'].partition(': ')[2]!r}); 1 and 5 loaded")

    p.write("orders.xml", "<records><record><id>1</id></record>\n<record><id>2</id></recod></records>")
    with pytest.raises(ConnectorError) as caught:
        p.run()
    assert str(caught.value).startswith(
        "orders.xml: invalid XML: Opening and ending tag mismatch: record line 2 and recod"
    )
    observe(f"a file that is not well-formed fails the extract as a whole, naming file and line: {str(caught.value)!r}")


@pytest.mark.reliability("Bad input", "bad JSON record")
def test_bad_json_records_fail_alone(pipeline, observe):
    """A JSON Lines source with a broken line, an array, a null, a number of 5,000 digits and a key that is an object
    between good records goes through extract, transform and load."""
    p = pipeline("orders.jsonl")
    p.write("orders.jsonl", jsonl(
        {"id": 1, **GOOD}, '{"id": 2, "qty": 2,', "[1, 2]", "null", '{"id": 5, "qty": ' + "9" * 5000 + "}",
        {"id": {"nested": 6}}, {"id": 7, **GOOD},
    ))  # fmt: skip
    message = p.run()
    assert p.failed() == {
        "(orders.jsonl line 2)": "extract: orders.jsonl line 2: invalid JSON at column 20: Expecting property name "
                                 "enclosed in double quotes",
        "(orders.jsonl line 3)": "extract: orders.jsonl line 3: not a JSON object but an array",
        "(orders.jsonl line 4)": "extract: orders.jsonl line 4: not a JSON object but null",
        "(orders.jsonl line 5)": "extract: orders.jsonl line 5: invalid JSON: Exceeds the limit (4300 digits) for "
                                 "integer string conversion",
        "(orders.jsonl line 6)": "extract: orders.jsonl line 6: the key field 'id' holds an object, not a value",
    }  # fmt: skip
    assert sorted(p.loaded()) == ["1", "7"] and p.loaded()["7"] == {
        "id": "7",
        "qty": 2,
        "price": 9.5,
        "paid": True,
        "note": "fine",
    }
    assert message.startswith("orders: 5 records failed")
    observe("5 bad lines Failed under '(orders.jsonl line N)' with the parser's reason; records 1 and 7 loaded")


@pytest.mark.reliability("Bad input", "missing key")
def test_records_without_a_key_fail_alone(pipeline, observe):
    """A JSON Lines source where records lack the key field, or hold null or "" in it, between good records."""
    p = pipeline("orders.jsonl")
    p.write(
        "orders.jsonl",
        jsonl({"id": 1, **GOOD}, {"qty": 2}, {"id": None, "qty": 3}, {"id": "", "qty": 4}, {"id": 0, **GOOD}),
    )
    message = p.run()
    reason = "no value for the key field 'id'"
    assert p.failed() == {f"(orders.jsonl line {n})": f"extract: orders.jsonl line {n}: {reason}" for n in (2, 3, 4)}
    assert sorted(p.loaded()) == ["0", "1"]
    assert message.startswith("orders: 3 records failed")
    observe(f"3 keyless records Failed under '(orders.jsonl line N)': {reason!r}; records 0 and 1 loaded")


def test_a_csv_file_without_the_key_column_fails_the_extract(pipeline):
    p = pipeline("orders.csv")
    p.write("orders.csv", "code,qty\na,1\n")
    with pytest.raises(ConnectorError, match=r"^orders.csv: record 1 has no key field 'id' \(no such column\)$"):
        p.run()


def test_records_of_an_xml_file_without_a_key_fail_alone(pipeline):
    p = pipeline("orders.xml")
    p.write(
        "orders.xml",
        "<records><record><id>1</id></record><record><qty>2</qty></record><record><id/></record></records>",
    )
    assert p.run().startswith("orders: 2 records failed")
    assert p.failed() == {f"(orders.xml record {n}, line 1)": f"extract: orders.xml record {n}, line 1: no value for "
                          "the key field 'id'" for n in (2, 3)}  # fmt: skip
    assert sorted(p.loaded()) == ["1"]


@pytest.mark.reliability("Bad input", "wrong types")
def test_values_of_the_wrong_type_fail_alone(pipeline, observe):
    """A JSON Lines source whose typed fields (integer, number, boolean) hold text, a fraction, NaN, an object and an
    array, between good records; nested values reach text fields as JSON."""
    p = pipeline("orders.jsonl")
    p.write("orders.jsonl", jsonl(
        {"id": 1, **GOOD},
        {"id": 2, **GOOD, "qty": "two"},
        {"id": 3, **GOOD, "qty": 3.5},
        {"id": 4, **GOOD, "price": "NaN"},
        {"id": 5, **GOOD, "price": {"amount": 5}},
        {"id": 6, **GOOD, "paid": "maybe"},
        {"id": 7, **GOOD, "paid": [True]},
        {"id": 8, "qty": "8", "price": "1e3", "paid": "FALSE", "note": {"text": "ok", "tags": ["a", "é"]}},
    ))  # fmt: skip
    message = p.run()
    assert p.failed() == {
        "2": "transform: field 'qty': 'two' is not an integer",
        "3": "transform: field 'qty': '3.5' is not an integer",
        "4": "transform: field 'price': 'NaN' is not a number",
        "5": "transform: field 'price': '{\"amount\": 5}' is not a number",
        "6": "transform: field 'paid': 'maybe' is not a boolean (true/false/1/0)",
        "7": "transform: field 'paid': '[true]' is not a boolean (true/false/1/0)",
    }
    assert p.loaded() == {
        "1": {"id": "1", "qty": 2, "price": 9.5, "paid": True, "note": "fine"},
        "8": {"id": "8", "qty": 8, "price": 1000.0, "paid": False, "note": '{"text": "ok", "tags": ["a", "é"]}'},
    }
    assert message.startswith("orders: 6 records failed")
    observe(
        "6 records Failed naming field and value (e.g. \"field 'qty': 'two' is not an integer\"); 1 and 8 loaded, typed"
    )


@pytest.mark.reliability("Bad input", "illegal characters")
def test_characters_xml_cannot_carry_fail_alone(pipeline, observe):
    """A JSON Lines source whose values (and one key) hold characters XML 1.0 cannot carry: NUL, a bell, an escape,
    U+FFFE, half a surrogate pair; between records with awkward but legal text and an escaped surrogate pair."""
    p = pipeline("orders.jsonl")
    awkward = 'tab\t, CR\r, <tag> & "quotes" ]]>, 日本 🎉, \u0085 \u2028'
    p.write("orders.jsonl", jsonl(
        {"id": 1, **GOOD, "note": awkward},
        {"id": 2, **GOOD, "note": "NUL \u0000"},
        {"id": 3, **GOOD, "note": "bell \u0007"},
        '{"id": 4, "note": "escape \\u001b"}',
        '{"id": 5, "note": "not a character \\ufffe"}',
        '{"id": 6, "note": "lone surrogate \\ud800"}',
        {"id": "7\u0001", **GOOD},
        {"id": 8, **GOOD},
        '{"id": 9, "note": "pair \\ud83c\\udf89"}',
    ))  # fmt: skip
    message = p.run()
    reason = "holds characters XML 1.0 cannot carry"
    assert p.failed() == {
        **{str(n): f"extract: field 'note' {reason}" for n in range(2, 6)},
        "6": "extract: orders.jsonl line 6: field 'note' holds an unpaired surrogate (\\ud800-\\udfff), which is not a character",
        "7\u0001": f"extract: field 'id' {reason}",
    }
    assert p.loaded() == {"1": {"id": "1", "qty": 2, "price": 9.5, "paid": True, "note": awkward},
                          "8": {"id": "8", "qty": 2, "price": 9.5, "paid": True, "note": "fine"},
                          "9": {"id": "9", "qty": None, "price": None, "paid": False, "note": "pair 🎉"}}  # fmt: skip
    assert message.startswith("orders: 6 records failed")
    observe(
        f"5 records Failed in extract, which cannot write them as record XML: \"field 'note' {reason}\" (one naming "
        "the key field 'id'); half a surrogate pair as the JSON is read (\"field 'note' holds an unpaired surrogate "
        '..."); 1 (tab, CR, markup, emoji), 8 and 9 loaded'
    )


def test_half_a_surrogate_pair_from_any_source_fails_alone_when_staged(tmp_path):
    """A REST or SQL source can hand over a str with half a surrogate pair: that record fails as the batch file is
    written, and the file holds the others."""
    from flowlink import staging
    from flowlink.recordxml import RecordWriter

    written = RecordWriter("id").write([{"id": 1, "note": "half \ud800"}, {"id": 2, "note": "日本"}])
    assert written.keys == ["2"] and written.failures == [("1", "field 'note' holds characters XML 1.0 cannot carry")]
    batch = tmp_path / "batch-00001.xml"
    staging.write_batch(batch, written.document)
    assert (
        staging.read_batch(batch) == '<records><record key="2"><id>2</id><note>日本</note></record></records>'.encode()
    )
    assert not list(tmp_path.glob("*.tmp"))


def test_a_damaged_or_old_batch_file_fails_the_step_naming_the_file(pipeline):
    """A batch file cut short (or edited into something that is not XML) between the steps, or one holding JSON Lines,
    fails the step with the file's name and what is wrong; nothing is transformed from it."""
    from flowlink.errors import FlowlinkError

    p = pipeline("orders.jsonl")
    p.write("orders.jsonl", jsonl({"id": 1, **GOOD}, {"id": 2, **GOOD}))
    art = publish.publish(p.spec).artifact
    tp = art.workflow_model().touchpoint("orders")
    ctx = RunContext(p.store, art, "run-damaged")
    transformer = Transformer(art.stylesheets["orders"], output_types(tp), tp.extract.key)
    extracted = extract(ctx, tp, lambda: FileSource(p.data))
    batch = Path(extracted["batches"][0])
    assert batch.name == "batch-00001.xml"
    batch.write_bytes(batch.read_bytes()[:40])
    with pytest.raises(FlowlinkError, match=rf"^{batch}: not a batch file of record XML \(.*line 1"):
        transform(ctx, tp, transformer, extracted)
    old = batch.with_suffix(".jsonl")
    old.write_text(jsonl({"id": 1}))
    with pytest.raises(FlowlinkError, match=rf"^{old}: not a batch file of record XML"):
        transform(ctx, tp, transformer, {**extracted, "batches": [str(old)]})
    assert not (ctx.folder("orders", "transform") / "batch-00001.xml").exists()
