"""Benchmark: records/s through Flowlink's transform step vs raw lxml on the same stylesheet.

    .venv/bin/python bench/transform.py [--quick]

Flowlink's transform step: Transformer(generate_xslt(tp), output_types(tp), key).transform(batch) for each
batch file the extract step wrote (record XML, the spec's default batch_size records each, in memory here):
parse -> XSLT -> a key on every output record -> serialize, i.e. the output batch file's bytes.
Raw lxml ("the limit for this design"): the same compiled stylesheet applied to the records' XML document
parsed once outside the timing; timed: transform + serialize.
Context: the parts the other steps do (extract: dicts -> record XML; load: record XML -> typed dicts), all three
together (Transformer.apply), and a naive per-record loop in plain Python (dict -> XML elements -> XSLT -> dict).
Best of 3 repetitions each, same data, one process. Last line: ratio=<flowlink/raw lxml>.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import resource
import sys
import time
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lxml import etree

from flowlink.mapping import generate_xslt, output_types
from flowlink.recordxml import CASTS
from flowlink.spec import parse_spec
from flowlink.transform import Transformer

REPEAT = 3
SPEC = {
    "name": "bench",
    "source": {"type": "sql", "connection": "src"},
    "target": {"type": "rest", "connection": "dst"},
    "touchpoints": [{
        "name": "customers",
        "extract": {"table": "customers", "key": "id"},
        "load": {"endpoint": "/customers", "key": "customer_id"},
        "mapping": [
            {"target": "customer_id", "source": "id", "type": "integer"},
            {"target": "name", "xpath": "concat(first_name, ' ', last_name)"},
            {"target": "email", "xpath": "translate(email, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')"},
            {"target": "country", "source": "country_code", "lookup": {"DE": "Germany", "FR": "France", "US": "United States"}, "default": "Other"},
            {"target": "total", "xpath": "format-number(amount, '0.00')", "type": "number"},
            {"target": "status", "source": "status", "lookup": {"N": "new", "S": "shipped", "C": "cancelled"}},
            {"target": "quantity", "source": "qty", "type": "integer"},
            {"target": "active", "source": "active", "type": "boolean"},
            {"target": "city", "source": "city"},
            {"target": "channel", "constant": "erp"},
        ],
    }],
}  # fmt: skip


def make_records(n: int) -> list[dict]:
    """n records of 10 fields (id is the key), deterministic."""
    countries, statuses = ["DE", "FR", "US", "NL", "IT"], ["N", "S", "C", "X"]
    return [
        {
            "id": i, "first_name": f"First{i % 977}", "last_name": f"Last & <{i % 331}>",
            "email": f"User.{i}@Example.COM", "country_code": countries[i % 5], "amount": i * 1.37 % 5000,
            "status": statuses[i % 4], "qty": i % 50, "active": i % 3 == 0, "city": f"City {i % 101}",
        }
        for i in range(n)
    ]  # fmt: skip


def records_xml(records: list[dict], key: str) -> bytes:
    """The record XML Flowlink feeds its stylesheet, for the raw lxml baseline."""
    text = lambda v: "true" if v is True else "false" if v is False else str(v)  # noqa: E731
    parts = ["<records>"]
    for r in records:
        parts.append(f"<record key={quoteattr(text(r[key]))}>")
        parts += (f"<{k}>{escape(text(v))}</{k}>" for k, v in r.items())
        parts.append("</record>")
    parts.append("</records>")
    return "".join(parts).encode()


def best_of(fn) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(REPEAT):
        result = None  # drop the previous result before the next run
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def naive(xslt: etree.XSLT, types: dict, key: str, records: list[dict]) -> list[dict]:
    casts = [(f, CASTS[t]) for f, t in types.items() if CASTS[t]]
    out = []
    for r in records:
        root = etree.Element("records")
        rec = etree.SubElement(root, "record", key=str(r[key]))
        for k, v in r.items():
            etree.SubElement(rec, k).text = "true" if v is True else "false" if v is False else str(v)
        for element in xslt(root).getroot():
            row = {child.tag: child.text or "" for child in element}
            for f, cast in casts:
                row[f] = cast(row[f])
            row["__key__"] = element.get("key")
            out.append(row)
    return out


def main() -> None:
    n = 20_000 if "--quick" in sys.argv[1:] else 100_000
    tp = parse_spec(SPEC).touchpoints[0]
    xslt_text, types, key = generate_xslt(tp), output_types(tp), tp.extract.key
    records = make_records(n)
    transformer = Transformer(xslt_text, types, key)
    raw_xslt = etree.XSLT(etree.fromstring(xslt_text.encode()))
    document = etree.fromstring(records_xml(records, key))  # parsed once, outside the timing
    size = tp.batch_size
    batches = [records[i : i + size] for i in range(0, n, size)]
    staged = [transformer.writer.write(batch).document for batch in batches]  # the extract step's batch files

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Flowlink first: its peak is not hidden
    t_flow, done = best_of(lambda: [transformer.transform(batch) for batch in staged])
    rss_growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    assert sum(len(d.keys_out) for d in done) == n and not any(d.failures for d in done)
    t_write, _ = best_of(lambda: [transformer.writer.write(batch) for batch in batches])
    t_read, read = best_of(lambda: [transformer.reader.read(d.document) for d in done])
    rows = [row for part, failures in read for row in part]
    t_apply, _ = best_of(lambda: [transformer.apply(batch) for batch in batches])
    t_raw, raw_bytes = best_of(lambda: etree.tostring(raw_xslt(document)))
    xml_bytes = records_xml(records, key)  # context: the same, parsing included (the "measured here")
    t_raw_parse, _ = best_of(lambda: etree.tostring(raw_xslt(etree.fromstring(xml_bytes))))
    t_naive, naive_rows = best_of(lambda: naive(raw_xslt, types, key, records))
    assert naive_rows == rows, "naive and Flowlink disagree"
    assert raw_bytes.count(b"<record ") == n
    assert staged[0] == records_xml(batches[0], key), "the extract's batch file is the record XML raw lxml reads"

    print(f"Flowlink transform benchmark  {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")
    print(f"machine: nproc={len(os.sched_getaffinity(0))} {platform.machine()}  python {platform.python_version()}  "
          f"lxml {etree.__version__} (libxml2 {'.'.join(map(str, etree.LIBXML_VERSION))}, "
          f"libxslt {'.'.join(map(str, etree.LIBXSLT_VERSION))})")  # fmt: skip
    print(
        f"{n:,} records x 10 fields in batches of {size}; mapping: concat, translate, 2 lookups (xsl:choose), "
        f"format-number; best of {REPEAT}"
    )
    print(f"\n{'run':<50}{'records':>10}{'seconds':>10}{'records/s':>12}{'vs raw lxml':>13}")
    for name, t in [
        ("raw lxml (transform + serialize)", t_raw),
        ("raw lxml (parse + transform + serialize)", t_raw_parse),
        ("flowlink transform step (Transformer.transform)", t_flow),
        ("  context: extract's part (writer.write)", t_write),
        ("  context: load's part (reader.read)", t_read),
        ("  context: all three (Transformer.apply)", t_apply),
        ("naive per-record Python", t_naive),
    ]:
        print(f"{name:<50}{n:>10,}{t:>10.3f}{n / t:>12,.0f}{t_raw / t:>13.2f}")
    print(f"\nflowlink transform step peak RSS growth: {rss_growth:.1f} MiB")
    print(f"context: the transform step vs raw lxml including the parse of the same XML: {t_raw_parse / t_flow:.2f}")
    print(f"ratio={(n / t_flow) / (n / t_raw):.2f}")


if __name__ == "__main__":
    main()
