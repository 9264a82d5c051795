"""FileSource / FileTarget on real files in tmp_path."""

from __future__ import annotations

import json
import os

import pytest

from flowlink.connectors.base import ConnectorError, Source, Target, Unreadable, WriteResult
from flowlink.connectors.file import FileSource, FileTarget
from flowlink.spec import Extract, Load

FORMATS = ["csv", "json", "jsonl", "xml"]

ORDERS = [
    {"id": 3, "name": "gamma", "updated": "2024-03-01T10:00:00", "region": "north"},
    {"id": 1, "name": "alpha", "updated": "2024-03-01T12:00:00", "region": "south"},
    {"id": 10, "name": "kappa", "updated": "2024-03-01T09:00:00", "region": "north"},
    {"id": 2, "name": "beta", "updated": "2024-03-01T10:00:00", "region": "south"},
]


def read_all(source, extract, **kwargs) -> list[dict]:
    kwargs.setdefault("batch_size", 100)
    return [r for batch in source.read(extract, **kwargs) for r in batch]


def write(folder, name: str, records: list[dict], **load) -> list[WriteResult]:
    return FileTarget(folder).write(Load(file=name, key=load.pop("key", "id"), **load), records)


def ids_of(rows) -> list[str]:
    return [str(r["id"]) for r in rows]


def test_connectors_follow_the_protocols(tmp_path):
    assert isinstance(FileSource(tmp_path), Source)
    assert isinstance(FileTarget(tmp_path), Target)


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip(tmp_path, fmt):
    results = write(tmp_path, f"orders.{fmt}", ORDERS)
    assert results == [WriteResult(key=str(r["id"]), ok=True, destination_id=str(r["id"])) for r in ORDERS]
    rows = read_all(FileSource(tmp_path), Extract(file=f"orders.{fmt}", key="id"))
    assert ids_of(rows) == ["1", "2", "3", "10"]  # numbers compare as numbers
    by_id = {str(r["id"]): r for r in rows}
    assert by_id["10"]["name"] == "kappa" and by_id["10"]["updated"] == "2024-03-01T09:00:00"
    if fmt in ("json", "jsonl"):
        assert by_id["10"]["id"] == 10  # JSON keeps types
    else:
        assert by_id["10"] == {"id": "10", "name": "kappa", "updated": "2024-03-01T09:00:00", "region": "north"}


def test_file_layouts(tmp_path):
    write(tmp_path, "o.json", ORDERS[:2])
    assert json.loads((tmp_path / "o.json").read_text())[0]["name"] == "gamma"
    write(tmp_path, "o.jsonl", ORDERS[:2])
    assert [json.loads(line)["id"] for line in (tmp_path / "o.jsonl").read_text().splitlines()] == [3, 1]
    write(tmp_path, "o.csv", ORDERS[:2])
    assert (tmp_path / "o.csv").read_text().splitlines()[0] == "id,name,updated,region"
    write(tmp_path, "o.xml", [{"id": 1, "name": "a & <b>", "note": None, "flags": [1, 2], "vip": True}])
    xml = (tmp_path / "o.xml").read_text()
    assert "<records>" in xml and "<record>" in xml and "<name>a &amp; &lt;b&gt;</name>" in xml
    assert "<note" not in xml and "<flags>[1, 2]</flags>" in xml and "<vip>true</vip>" in xml
    assert read_all(FileSource(tmp_path), Extract(file="o.xml", key="id")) == [
        {"id": "1", "name": "a & <b>", "flags": "[1, 2]", "vip": "true"}
    ]


def test_reads_hand_written_files(tmp_path):
    (tmp_path / "a.csv").write_text('\ufeffid,name\r\n2,"two, with comma"\r\n1,one\r\n', encoding="utf-8")
    (tmp_path / "b.xml").write_text(
        '<?xml version="1.0"?><records><!-- c --><record><id>5</id><name/></record></records>'
    )
    (tmp_path / "c.jsonl").write_text('{"id": 7}\n\n{"id": 6}\n')
    source = FileSource(tmp_path)
    assert read_all(source, Extract(file="a.csv", key="id")) == [
        {"id": "1", "name": "one"},
        {"id": "2", "name": "two, with comma"},
    ]
    assert read_all(source, Extract(file="b.xml", key="id")) == [{"id": "5", "name": ""}]
    assert read_all(source, Extract(file="c.jsonl", key="id")) == [{"id": 6}, {"id": 7}]


def test_glob_reads_files_in_name_order_and_orders_by_key(tmp_path):
    (tmp_path / "orders-2.csv").write_text("id,name\n4,d\n3,c\n")
    (tmp_path / "orders-1.csv").write_text("id,name\n2,b\n1,a\n")
    (tmp_path / "other.csv").write_text("id,name\n9,z\n")
    rows = read_all(FileSource(tmp_path), Extract(file="orders-*.csv", key="id"))
    assert ids_of(rows) == ["1", "2", "3", "4"]
    assert read_all(FileSource(tmp_path), Extract(file="nothing-*.csv", key="id")) == []


def test_incremental_since_and_order(tmp_path):
    write(tmp_path, "orders.json", ORDERS)
    extract = Extract(file="orders.json", key="id", incremental="updated")
    source = FileSource(tmp_path)
    assert ids_of(read_all(source, extract)) == ["10", "2", "3", "1"]  # by updated, then key
    assert ids_of(read_all(source, extract, since="2024-03-01T09:00:00")) == ["2", "3", "1"]
    assert read_all(source, extract, since="2024-03-01T12:00:00") == []


def test_newest_by_incremental_then_key_with_unreadable_records_in_their_place(tmp_path):
    write(tmp_path, "orders.json", ORDERS)
    source = FileSource(tmp_path)
    assert ids_of(source.newest(Extract(file="orders.json", key="id", incremental="updated"), 3)) == ["1", "3", "2"]
    assert ids_of(source.newest(Extract(file="orders.json", key="id"), 2)) == ["1", "2"]  # no incremental: by key
    (tmp_path / "seq.jsonl").write_text('{"id": 1, "seq": 1}\n{"id": 2, "seq": 3}\nnot json\n{"id": 3, "seq": 2}\n')
    got = source.newest(Extract(file="seq.jsonl", key="id", incremental="seq"), 10)
    assert [r["id"] if isinstance(r, dict) else r.where for r in got] == [2, 3, 1, "seq.jsonl line 3"]
    assert isinstance(got[-1], Unreadable)


def test_since_compares_numbers_as_numbers(tmp_path):
    (tmp_path / "seq.csv").write_text("id,seq\na,9\nb,10\nc,100\nd,x\n")
    extract = Extract(file="seq.csv", key="id", incremental="seq")
    rows = read_all(FileSource(tmp_path), extract, since=9)
    assert [r["id"] for r in rows] == ["b", "c", "d"]  # 10 > 9 numerically; "x" > "9" as text
    assert [r["id"] for r in read_all(FileSource(tmp_path), extract, since="10")] == ["c", "d"]


def test_ids_pick_records_and_ignore_since(tmp_path):
    write(tmp_path, "orders.jsonl", ORDERS)
    extract = Extract(file="orders.jsonl", key="id", incremental="updated")
    rows = read_all(FileSource(tmp_path), extract, ids=["10", "1", "99"], since="2030-01-01")
    assert ids_of(rows) == ["10", "1"]
    assert read_all(FileSource(tmp_path), extract, ids=[]) == []


def test_batches_have_batch_size(tmp_path):
    write(tmp_path, "many.csv", [{"id": i, "v": i * 2} for i in range(1, 11)])
    batches = list(FileSource(tmp_path).read(Extract(file="many.csv", key="id"), batch_size=4))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert ids_of(r for b in batches for r in b) == [str(i) for i in range(1, 11)]


@pytest.mark.parametrize("fmt", FORMATS)
def test_upsert_twice_merges_without_duplicates(tmp_path, fmt):
    name = f"out.{fmt}"
    write(tmp_path, name, ORDERS)
    results = write(tmp_path, name, [{"id": 2, "name": "BETA"}, {"id": 11, "name": "lambda", "extra": "new"}])
    assert [(r.key, r.ok) for r in results] == [("2", True), ("11", True)]
    rows = {str(r["id"]): r for r in read_all(FileSource(tmp_path), Extract(file=name, key="id"))}
    assert sorted(rows, key=int) == ["1", "2", "3", "10", "11"]
    assert rows["2"]["name"] == "BETA" and rows["2"]["region"] == "south"  # other fields kept
    assert rows["11"]["extra"] == "new"


def test_insert_reports_existing_keys(tmp_path):
    write(tmp_path, "out.json", ORDERS[:1])
    results = write(tmp_path, "out.json", [{"id": 3, "name": "dup"}, {"id": 4, "name": "new"}], method="insert")
    assert results == [
        WriteResult(key="3", ok=False, error="already exists", exists=True),
        WriteResult(key="4", ok=True, destination_id="4"),
    ]
    names = {r["id"]: r["name"] for r in json.loads((tmp_path / "out.json").read_text())}
    assert names == {3: "gamma", 4: "new"}


def test_bad_records_fail_alone(tmp_path):
    results = write(
        tmp_path,
        "out.xml",
        [
            {"id": 1, "name": "ok"},
            {"name": "no key"},
            {"id": 2, "bad name": "x"},
            {"id": 3, "data": b"\x00"},
            "not a record",
            {"id": 4},
        ],
    )
    assert [r.ok for r in results] == [True, False, False, False, False, True]
    assert "'id'" in results[1].error
    assert "'bad name'" in results[2].error
    assert "binary" in results[3].error
    assert "mapping" in results[4].error
    assert ids_of(read_all(FileSource(tmp_path), Extract(file="out.xml", key="id"))) == ["1", "4"]


@pytest.mark.parametrize("pattern", ["../secret.csv", "sub/../../x.csv", "/etc/passwd.csv", "..\\x.csv", "C:\\x.csv"])
def test_paths_outside_the_folder_are_refused(tmp_path, pattern):
    folder = tmp_path / "data"
    folder.mkdir()
    (tmp_path / "secret.csv").write_text("id\n1\n")
    with pytest.raises(ConnectorError, match="absolute path|inside the connection's folder"):
        read_all(FileSource(folder), Extract(file=pattern, key="id"))
    with pytest.raises(ConnectorError, match="absolute path|inside the connection's folder"):
        FileTarget(folder).write(Load(file=pattern, key="id"), [{"id": 1}])
    assert (tmp_path / "secret.csv").read_text() == "id\n1\n"


def test_symlinks_leading_outside_are_refused(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (tmp_path / "secret.csv").write_text("id\n1\n")
    (folder / "link.csv").symlink_to(tmp_path / "secret.csv")
    with pytest.raises(ConnectorError, match="leads outside"):
        read_all(FileSource(folder), Extract(file="*.csv", key="id"))
    with pytest.raises(ConnectorError, match="leads outside"):
        FileTarget(folder).write(Load(file="link.csv", key="id"), [{"id": 2}])
    assert (tmp_path / "secret.csv").read_text() == "id\n1\n"


@pytest.mark.parametrize("fmt", FORMATS)
def test_write_replaces_the_file_atomically(tmp_path, fmt):
    name = f"out.{fmt}"
    write(tmp_path, name, ORDERS[:2])
    before = os.stat(tmp_path / name)
    write(tmp_path, name, ORDERS[2:])
    after = os.stat(tmp_path / name)
    assert after.st_ino != before.st_ino  # a new file renamed over the old one, not rewritten in place
    assert os.listdir(tmp_path) == [name]  # no temp file left behind
    assert len(read_all(FileSource(tmp_path), Extract(file=name, key="id"))) == 4


def test_a_damaged_existing_file_is_left_alone(tmp_path):
    (tmp_path / "out.json").write_text('[{"id": 1},')
    with pytest.raises(ConnectorError, match="out.json: invalid JSON"):
        write(tmp_path, "out.json", [{"id": 2}])
    assert (tmp_path / "out.json").read_text() == '[{"id": 1},'
    assert os.listdir(tmp_path) == ["out.json"]


def test_write_into_a_subfolder(tmp_path):
    write(tmp_path, "exports/2024/out.csv", ORDERS[:1])
    assert (tmp_path / "exports/2024/out.csv").read_text().startswith("id,name")
    assert os.listdir(tmp_path / "exports/2024") == ["out.csv"]


def test_whole_file_problems_are_connector_errors(tmp_path):
    with pytest.raises(ConnectorError, match="folder not found"):
        read_all(FileSource(tmp_path / "missing"), Extract(file="*.csv", key="id"))
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(ConnectorError, match="unknown file format '.txt'"):
        read_all(FileSource(tmp_path), Extract(file="a.txt", key="id"))
    with pytest.raises(ConnectorError, match="unknown file format"):
        write(tmp_path, "out.parquet", [{"id": 1}])
    with pytest.raises(ConnectorError, match="one file, not a pattern"):
        write(tmp_path, "out-*.csv", [{"id": 1}])
    (tmp_path / "obj.json").write_text('{"id": 1}')
    with pytest.raises(ConnectorError, match="array of objects"):
        read_all(FileSource(tmp_path), Extract(file="obj.json", key="id"))
    (tmp_path / "bad.xml").write_text("<records><record>")
    with pytest.raises(ConnectorError, match="bad.xml: invalid XML"):
        read_all(FileSource(tmp_path), Extract(file="bad.xml", key="id"))
    (tmp_path / "nokey.csv").write_text("name\nx\n")
    with pytest.raises(ConnectorError, match="nokey.csv: record 1 has no key field 'id'"):
        read_all(FileSource(tmp_path), Extract(file="nokey.csv", key="id"))
    (tmp_path / "wide.csv").write_text("id\n1,2\n")
    with pytest.raises(ConnectorError, match="more cells than the header"):
        read_all(FileSource(tmp_path), Extract(file="wide.csv", key="id"))


def test_xml_entities_are_not_expanded(tmp_path):
    (tmp_path / "secret.txt").write_text("TOPSECRET")
    (tmp_path / "x.xml").write_text(
        f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY s SYSTEM "file://{tmp_path}/secret.txt">]>'
        "<records><record><id>1</id><v>&s;</v></record></records>"
    )
    [row] = read_all(FileSource(tmp_path), Extract(file="x.xml", key="id"))
    assert row == Unreadable(
        "field 'v' holds the entity reference &s;, which is not expanded", "x.xml record 1, line 1", key="1"
    )
    assert "TOPSECRET" not in repr(row)
