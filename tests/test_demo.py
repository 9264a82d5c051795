"""The demo applications: the ERP database (SQLite) and the shop (REST on 127.0.0.1)."""

from __future__ import annotations

import json
import re
import select
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from examples import demo_erp
from examples.demo_shop import DemoShop

REPO = Path(__file__).resolve().parents[1]
STAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


def rows(path: Path, sql: str) -> list[tuple]:
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


# ---------------------------------------------------------------- the demo ERP


def test_erp_contents(tmp_path):
    path = tmp_path / "erp.db"
    demo_erp.create(path)
    customers = rows(
        path, "SELECT id, first_name, last_name, email, country_code, updated_at FROM customers ORDER BY id"
    )
    orders = rows(path, "SELECT id, customer_id, amount, status, updated_at FROM orders ORDER BY id")
    assert [c[0] for c in customers] == list(range(1, 51))
    assert [o[0] for o in orders] == list(range(1, 151))
    assert {c[4] for c in customers} == {"DE", "FR", "US", "GB"}
    assert all("@" in c[3] and c[1] and c[2] for c in customers)
    assert len({c[3].lower() for c in customers}) == 50
    assert {o[3] for o in orders} == {"N", "S", "C"}
    assert all(1 <= o[1] <= 50 and isinstance(o[2], float) and round(o[2], 2) == o[2] for o in orders)
    assert all(STAMP.fullmatch(r[-1]) and r[-1].startswith("2024-") for r in customers + orders)


def test_erp_is_deterministic(tmp_path):
    demo_erp.create(tmp_path / "a.db", customers=20, orders=30, seed=7)
    demo_erp.create(tmp_path / "b.db", customers=20, orders=30, seed=7)
    demo_erp.create(tmp_path / "c.db", customers=20, orders=30, seed=8)
    dump = {
        name: rows(tmp_path / name, "SELECT * FROM customers") + rows(tmp_path / name, "SELECT * FROM orders")
        for name in ("a.db", "b.db", "c.db")
    }
    assert dump["a.db"] == dump["b.db"]
    assert dump["a.db"] != dump["c.db"]


def test_erp_create_replaces_an_existing_file(tmp_path):
    path = tmp_path / "erp.db"
    path.write_text("not a database")
    demo_erp.create(path, customers=3, orders=4)
    demo_erp.create(path, customers=5, orders=0)
    assert rows(path, "SELECT count(*) FROM customers") == [(5,)]
    assert rows(path, "SELECT count(*) FROM orders") == [(0,)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["erp.db"]  # no temporary files left
    with pytest.raises(ValueError):
        demo_erp.create(path, customers=0, orders=3)
    assert rows(path, "SELECT count(*) FROM customers") == [(5,)]  # a failed create leaves the old file


def test_erp_touch(tmp_path):
    path = tmp_path / "erp.db"
    demo_erp.create(path, customers=10, orders=10)
    before = dict(rows(path, "SELECT id, updated_at FROM customers"))
    stamp = demo_erp.touch(path, "customers", [2, 5])
    after = dict(rows(path, "SELECT id, updated_at FROM customers"))
    assert STAMP.fullmatch(stamp)
    assert {i for i in after if after[i] != before[i]} == {2, 5}
    assert after[2] == after[5] == stamp and stamp > max(before.values())
    again = demo_erp.touch(path, "customers", [5])  # at once: still strictly newer
    assert again > stamp
    assert rows(path, "SELECT updated_at FROM customers WHERE id = 5") == [(again,)]
    assert rows(path, f"SELECT count(*) FROM orders WHERE updated_at >= '{stamp}'") == [(0,)]  # other table untouched
    with pytest.raises(ValueError, match="unknown table"):
        demo_erp.touch(path, "customers; DROP TABLE orders", [1])
    with pytest.raises(FileNotFoundError):
        demo_erp.touch(tmp_path / "missing.db", "orders", [1])
    assert not (tmp_path / "missing.db").exists()


def test_erp_program(tmp_path):
    path = tmp_path / "erp.db"
    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / "demo_erp.py"), str(path), "--customers", "4", "--orders", "6"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "4 customers, 6 orders" in done.stdout
    assert rows(path, "SELECT count(*) FROM customers") == [(4,)]
    assert rows(path, "SELECT count(*) FROM orders") == [(6,)]


# ---------------------------------------------------------------- the demo shop


@pytest.fixture
def shop():
    with DemoShop() as shop:
        yield shop


def test_shop_binds_to_loopback_on_a_free_port(shop):
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", shop.url) and shop.port != 0


def test_shop_put_creates_then_replaces(shop):
    first = requests.put(f"{shop.url}/customers/1", json={"customer_id": 1, "email": "a@b.c", "name": "A"}, timeout=5)
    assert first.status_code == 201 and first.json() == {"customer_id": 1, "email": "a@b.c", "name": "A", "id": "1"}
    second = requests.put(f"{shop.url}/customers/1", json={"email": "x@b.c"}, timeout=5)
    assert second.status_code == 200 and second.json() == {"email": "x@b.c", "id": "1"}  # replaced, not merged
    assert requests.get(f"{shop.url}/customers/1", timeout=5).json() == {"email": "x@b.c", "id": "1"}
    assert shop.records("customers") == {"1": {"email": "x@b.c", "id": "1"}}
    assert shop.writes("customers") == {"1": 2}


def test_shop_validation(shop):
    bad_email = requests.put(f"{shop.url}/customers/1", json={"email": "nope"}, timeout=5)
    assert (bad_email.status_code, bad_email.json()) == (422, {"error": "email: not a valid address"})
    no_customer = requests.put(f"{shop.url}/orders/9", json={"order_id": 9, "customer_id": 123}, timeout=5)
    assert (no_customer.status_code, no_customer.json()) == (422, {"error": "customer_id: unknown customer 123"})
    requests.put(f"{shop.url}/customers/123", json={"email": "c@d.e"}, timeout=5)
    assert requests.put(f"{shop.url}/orders/9", json={"order_id": 9, "customer_id": 123}, timeout=5).status_code == 201
    mismatch = requests.put(f"{shop.url}/orders/10", json={"order_id": 11, "customer_id": 123}, timeout=5)
    assert mismatch.status_code == 422 and "order_id" in mismatch.json()["error"]
    not_json = requests.put(f"{shop.url}/customers/2", data=b"{oops", timeout=5)
    assert (not_json.status_code, not_json.json()) == (400, {"error": "body: invalid JSON"})
    assert requests.get(f"{shop.url}/products", timeout=5).status_code == 404
    assert requests.get(f"{shop.url}/customers/77", timeout=5).json() == {"error": "customer 77 not found"}
    assert requests.delete(f"{shop.url}/customers/123", timeout=5).status_code == 405
    assert sorted(shop.records("orders")) == ["9"]
    assert shop.writes("orders") == {"9": 2, "10": 1}


def test_shop_post(shop):
    created = requests.post(f"{shop.url}/customers", json={"customer_id": 5, "email": "a@b.c"}, timeout=5)
    assert created.status_code == 201 and created.json()["id"] == "5"
    conflict = requests.post(f"{shop.url}/customers", json={"customer_id": "5", "email": "a@b.c"}, timeout=5)
    assert (conflict.status_code, conflict.json()) == (409, {"error": "customer_id: customer 5 already exists"})
    missing = requests.post(f"{shop.url}/customers", json={"email": "a@b.c"}, timeout=5)
    assert (missing.status_code, missing.json()) == (422, {"error": "customer_id: required"})


def test_shop_custom_key_fields():
    with DemoShop(keys={"customers": "number", "orders": "number"}) as shop:
        assert (
            requests.post(f"{shop.url}/customers", json={"number": "K1", "email": "a@b.c"}, timeout=5).status_code
            == 201
        )
        assert shop.records("customers")["K1"]["number"] == "K1"


def test_shop_list_pagination_and_filters(shop):
    for i in range(1, 12):
        requests.put(
            f"{shop.url}/customers/{i}",
            json={"email": f"{i}@x.y", "tier": "gold" if i % 2 else "silver", "n": i},
            timeout=5,
        )
    page = requests.get(f"{shop.url}/customers", params={"per_page": 4}, timeout=5).json()
    assert [r["id"] for r in page["records"]] == ["1", "2", "3", "4"]  # numeric ids in numeric order
    seen, url = [], f"{shop.url}/customers?per_page=4&tier=gold"
    while url:
        body = requests.get(url, timeout=5).json()
        seen += [r["id"] for r in body["records"]]
        url = body["next"]
    assert seen == ["1", "3", "5", "7", "9", "11"]
    greater = requests.get(f"{shop.url}/customers", params={"n__gt": "9"}, timeout=5).json()
    assert [r["id"] for r in greater["records"]] == ["10", "11"] and greater["next"] is None
    assert requests.get(f"{shop.url}/customers", params={"page": "0"}, timeout=5).status_code == 400


def test_shop_admin_hooks(shop):
    url = shop.url
    assert (
        requests.post(
            f"{url}/_admin/reject",
            json={"resource": "customers", "ids": ["5", "7"], "status": 500, "message": "database is on fire"},
            timeout=5,
        ).status_code
        == 200
    )
    failed = requests.put(f"{url}/customers/5", json={"email": "a@b.c"}, timeout=5)
    assert (failed.status_code, failed.json()) == (500, {"error": "database is on fire"})
    assert requests.put(f"{url}/customers/6", json={"email": "a@b.c"}, timeout=5).status_code == 201
    stats = requests.get(f"{url}/_admin/stats", timeout=5).json()
    assert stats["writes"]["customers"] == {"total": 2, "ids": {"5": 1, "6": 1}}
    assert stats["writes"]["orders"] == {"total": 0, "ids": {}}
    assert stats["records"] == {"customers": 1, "orders": 0}
    requests.post(f"{url}/_admin/reject", json={"ids": []}, timeout=5)  # clears every rejection
    assert requests.put(f"{url}/customers/5", json={"email": "a@b.c"}, timeout=5).status_code == 201
    shop.reject("orders", [1], status=422, message="closed for the day")
    requests.put(f"{url}/customers/1", json={"email": "a@b.c"}, timeout=5)
    closed = requests.put(f"{url}/orders/1", json={"customer_id": 1}, timeout=5)
    assert (closed.status_code, closed.json()) == (422, {"error": "closed for the day"})
    assert requests.post(f"{url}/_admin/reset", timeout=5).status_code == 200
    assert shop.records("customers") == {} and shop.writes("customers") == {}
    assert requests.put(f"{url}/orders/1", json={"customer_id": 1}, timeout=5).json()["error"].startswith("customer_id")
    assert requests.post(f"{url}/_admin/reject", json={"ids": ["1"]}, timeout=5).status_code == 400


def test_shop_stop_closes_open_connections():
    shop = DemoShop()
    url = shop.start()
    with requests.Session() as session:
        assert session.get(f"{url}/customers", timeout=5).status_code == 200  # a keep-alive connection
        shop.stop()
        shop.stop()
        with pytest.raises(requests.ConnectionError):
            session.get(f"{url}/customers", timeout=5)


def read_line(stream, seconds: float = 20) -> str:
    ready, _, _ = select.select([stream], [], [], seconds)
    assert ready, "the program printed nothing"
    return stream.readline()


def start_shop(*args: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "examples" / "demo_shop.py"), "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = read_line(proc.stdout)
    match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
    assert match, line + proc.stderr.read() if proc.poll() is not None else line
    return proc, match.group(1)


def stop_shop(proc: subprocess.Popen) -> tuple[str, str]:
    proc.terminate()
    try:
        out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    assert proc.returncode == 0, err
    return out, err


def test_shop_program_with_data_file(tmp_path):
    data = tmp_path / "shop.json"
    proc, url = start_shop("--data", str(data))
    try:
        assert requests.put(f"{url}/customers/1", json={"email": "a@b.c"}, timeout=5).status_code == 201
        assert requests.get(f"{url}/customers", timeout=5).json() == {
            "records": [{"email": "a@b.c", "id": "1"}],
            "next": None,
        }
    finally:
        out, err = stop_shop(proc)
    assert err == ""  # quiet by default
    assert json.loads(data.read_text())["customers"] == {"1": {"email": "a@b.c", "id": "1"}}
    assert [p.name for p in tmp_path.iterdir()] == ["shop.json"]

    proc, url = start_shop("--data", str(data), "--verbose")
    try:
        assert requests.get(f"{url}/customers/1", timeout=5).json() == {"email": "a@b.c", "id": "1"}
        time.sleep(0.1)
    finally:
        out, err = stop_shop(proc)
    assert err.splitlines() == ["127.0.0.1 GET /customers/1 -> 200"]


def test_shop_program_reports_a_busy_port():
    with DemoShop() as shop:
        done = subprocess.run(
            [sys.executable, str(REPO / "examples" / "demo_shop.py"), "--port", str(shop.port)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 1 and "cannot listen" in done.stderr and "Traceback" not in done.stderr
