"""The workflow spec: good specs load, every bad one names the YAML path and a reason a user can act on."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from flowlink.spec import SpecError, Workflow, load_spec, parse_spec

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "erp_to_shop.yaml"


def example() -> dict[str, Any]:
    """A fresh deep copy of the example spec as loaded from YAML."""
    return copy.deepcopy(_EXAMPLE)


_EXAMPLE = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))


def problems_of(data: Any) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as caught:
        parse_spec(data, "spec.yaml")
    return caught.value.problems


def write(tmp_path: Path, data: Any, name: str = "flow.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


# --- good specs ---------------------------------------------------------------------------------------------------


def test_example_spec_validates():
    wf = load_spec(EXAMPLE)
    assert isinstance(wf, Workflow)
    assert wf.name == "erp_to_shop"
    assert [tp.name for tp in wf.touchpoints] == ["customers", "orders"]
    assert wf.touchpoint("orders").depends_on == ["customers"]
    assert wf.schedule.sync == "auto" and wf.schedule.repeat == "every_minute"
    assert wf.touchpoint("customers").mapping[3].lookup == {"DE": "Germany", "FR": "France", "US": "United States"}


def test_daily_at_time_with_timezone_ending_after_n_runs():
    data = example()
    data["schedule"] = {
        "sync": "auto",
        "repeat": "daily",
        "at": "06:30",
        "timezone": "Europe/Berlin",
        "end": "after",
        "occurrences": 10,
        "start": "2025-03-01T06:30:00",
    }
    s = parse_spec(data).schedule
    assert (s.repeat, s.at, s.timezone, s.end, s.occurrences) == ("daily", "06:30", "Europe/Berlin", "after", 10)
    assert s.start is not None and s.start.year == 2025


def test_daily_schedule_written_as_plain_yaml(tmp_path):
    """Unquoted YAML dates work for start; the time of day is quoted."""
    path = tmp_path / "daily.yaml"
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        "  repeat: every_minute\n  interval: 1\n  end: never\n",
        '  repeat: daily\n  at: "23:59"\n  end: after\n  occurrences: 3\n  start: 2025-01-01\n',
    )
    path.write_text(text, encoding="utf-8")
    s = load_spec(path).schedule
    assert (s.repeat, s.at, s.occurrences, s.start.isoformat()) == ("daily", "23:59", 3, "2025-01-01T00:00:00")


def test_hourly_every_6_hours():
    data = example()
    data["schedule"] = {"sync": "auto", "repeat": "hourly", "interval": 6}
    s = parse_spec(data).schedule
    assert (s.repeat, s.interval) == ("hourly", 6)


def test_manual():
    data = example()
    data["schedule"] = {"sync": "manual"}
    assert parse_spec(data).schedule.repeat is None
    data.pop("schedule")
    assert parse_spec(data).schedule.sync == "manual"  # the default


def test_user_xslt_next_to_the_spec(tmp_path):
    data = example()
    tp = data["touchpoints"][0]
    tp.pop("mapping")
    tp["xslt"] = "customers.xsl"
    (tmp_path / "customers.xsl").write_text(
        '<xsl:stylesheet xmlns:xsl="http://www.w3.org/1999/XSL/Transform" version="1.0"/>', encoding="utf-8"
    )
    wf = load_spec(write(tmp_path, data))
    assert wf.touchpoints[0].xslt == "customers.xsl" and wf.touchpoints[0].mapping is None


def test_file_source_to_sql_target():
    data = {
        "name": "csv_to_warehouse",
        "source": {"type": "file", "connection": "inbox"},
        "target": {"type": "sql", "connection": "warehouse"},
        "touchpoints": [
            {
                "name": "orders",
                "extract": {"file": "orders-*.csv", "key": "order_no"},
                "mapping": [
                    {"target": "order_id", "source": "order_no", "type": "integer"},
                    {"target": "amount", "xpath": "number(amount)", "type": "number"},
                ],
                "load": {"table": "orders", "key": "order_id", "method": "insert"},
            }
        ],
    }
    wf = parse_spec(data)
    assert wf.source.type == "file" and wf.touchpoints[0].load.table == "orders"


def test_rest_source_with_pagination():
    data = example()
    data["source"] = {"type": "rest", "connection": "crm"}
    data["target"] = {"type": "sql", "connection": "erp"}
    for tp in data["touchpoints"]:
        tp["extract"] = {
            "endpoint": f"/api/{tp['name']}",
            "key": "id",
            "records_path": "data",
            "filter": "status=open",
            "pagination": {"style": "next", "next_field": "links.next"},
        }
        tp["load"] = {"table": tp["name"], "key": tp["load"]["key"]}
    wf = parse_spec(data)
    assert wf.touchpoints[1].extract.pagination.style == "next"


# --- bad specs: one small mutation of the example each -------------------------------------------------------------


def tp(d: dict, i: int = 0) -> dict:
    return d["touchpoints"][i]


def rule(d: dict, i: int, j: int) -> dict:
    return d["touchpoints"][i]["mapping"][j]


def schedule(**changes: Any) -> Callable[[dict], None]:
    def mutate(d: dict) -> None:
        d["schedule"].update(changes)
        for key, value in changes.items():
            if value is None:
                d["schedule"].pop(key)

    return mutate


def three_cycle(d: dict) -> None:
    invoices = copy.deepcopy(tp(d, 1))
    invoices["name"] = "invoices"
    invoices["depends_on"] = ["orders"]
    d["touchpoints"].append(invoices)
    tp(d, 0)["depends_on"] = ["invoices"]  # customers -> invoices -> orders -> customers


def rest_source(d: dict) -> None:
    d["source"]["type"] = "rest"
    tp(d, 1)["extract"] = {"endpoint": "/orders", "key": "id"}


BAD: list[tuple[str, Callable[[dict], None], str, str]] = [
    # (id, mutation, YAML path, distinctive part of the reason)
    ("unknown-top-key", lambda d: d.update(owner="ops"), "owner", "unknown key"),
    ("unknown-touchpoint-key", lambda d: tp(d, 1).update(batchsize=10), "touchpoints[1].batchsize", "unknown key"),
    (
        "unknown-mapping-key",
        lambda d: rule(d, 1, 3).update(lookups={}),
        "touchpoints[1].mapping[3].lookups",
        "unknown key",
    ),
    ("missing-name", lambda d: d.pop("name"), "name", "required key is missing"),
    (
        "missing-extract-key",
        lambda d: tp(d, 1)["extract"].pop("key"),
        "touchpoints[1].extract.key",
        "required key is missing",
    ),
    ("missing-load-key", lambda d: tp(d)["load"].pop("key"), "touchpoints[0].load.key", "required key is missing"),
    (
        "missing-mapping-target",
        lambda d: rule(d, 0, 2).pop("target"),
        "touchpoints[0].mapping[2].target",
        "required key is missing",
    ),
    ("missing-touchpoints", lambda d: d.pop("touchpoints"), "touchpoints", "required key is missing"),
    (
        "bad-workflow-name",
        lambda d: d.update(name="ERP-to-Shop"),
        "name",
        "'ERP-to-Shop' is not allowed here: use lower-case letters",
    ),
    ("bad-touchpoint-name", lambda d: tp(d).update(name="1customers"), "touchpoints[0].name", "starting with a letter"),
    (
        "bad-target-field",
        lambda d: rule(d, 0, 1).update(target="full name"),
        "touchpoints[0].mapping[1].target",
        "'full name' is not allowed here",
    ),
    (
        "bad-connection",
        lambda d: d["target"].update(connection="shop prod"),
        "target.connection",
        "'shop prod' is not allowed here",
    ),
    ("unknown-connector-type", lambda d: d["source"].update(type="ftp"), "source.type", "'sql', 'rest' or 'file'"),
    ("no-touchpoints", lambda d: d.update(touchpoints=[]), "touchpoints", "at least 1 item"),
    (
        "duplicate-touchpoint",
        lambda d: tp(d, 1).update(name="customers", depends_on=[]),
        "touchpoints[1].name",
        "duplicate touchpoint name 'customers' (also touchpoints[0])",
    ),
    (
        "duplicate-mapping-target",
        lambda d: rule(d, 1, 3).update(target="total"),
        "touchpoints[1].mapping[3].target",
        "duplicate target field 'total'",
    ),
    (
        "depends-on-unknown",
        lambda d: tp(d, 1).update(depends_on=["customers", "products"]),
        "touchpoints[1].depends_on[1]",
        "unknown touchpoint 'products'",
    ),
    (
        "depends-on-self",
        lambda d: tp(d, 1).update(depends_on=["orders"]),
        "touchpoints[1].depends_on[0]",
        "cannot depend on itself",
    ),
    (
        "depends-on-3-cycle",
        three_cycle,
        "touchpoints",
        "depends_on has a cycle: customers -> invoices -> orders -> customers",
    ),
    (
        "interval-0-minutes",
        schedule(interval=0),
        "schedule.interval",
        "interval for every_minute must be 1-59 minutes, got 0",
    ),
    (
        "interval-60-minutes",
        schedule(interval=60),
        "schedule.interval",
        "interval for every_minute must be 1-59 minutes, got 60",
    ),
    (
        "interval-24-hours",
        schedule(repeat="hourly", interval=24),
        "schedule.interval",
        "interval for hourly must be 1-23 hours, got 24",
    ),
    (
        "interval-2-days",
        schedule(repeat="daily", at="06:00", interval=2),
        "schedule.interval",
        "interval for daily must be 1-1 days, got 2",
    ),
    ("interval-not-a-number", schedule(interval="abc"), "schedule.interval", "valid integer"),
    ("daily-without-at", schedule(repeat="daily"), "schedule.at", "repeat: daily needs at"),
    (
        "at-25-00",
        schedule(repeat="daily", at="25:00"),
        "schedule.at",
        "time of day must be HH:MM (00:00-23:59), got '25:00'",
    ),
    ("at-unquoted", schedule(repeat="daily", at=600), "schedule.at", 'must be a quoted "HH:MM", got the number 600'),
    ("at-for-hourly", schedule(repeat="hourly", at="06:00"), "schedule.at", "only for repeat: daily, not hourly"),
    (
        "end-after-without-occurrences",
        schedule(end="after", start="2025-01-01T00:00:00"),
        "schedule.occurrences",
        "end: after needs occurrences",
    ),
    ("occurrences-without-end-after", schedule(occurrences=5), "schedule.end", "occurrences needs end: after"),
    (
        "occurrences-0",
        schedule(end="after", occurrences=0, start="2025-01-01"),
        "schedule.occurrences",
        "greater than or equal to 1",
    ),
    ("end-after-without-start", schedule(end="after", occurrences=5), "schedule.start", "needs a start date"),
    ("bad-start", schedule(end="after", occurrences=5, start="tomorrow"), "schedule.start", "valid datetime"),
    (
        "unknown-timezone",
        schedule(timezone="Europe/Atlantis"),
        "schedule.timezone",
        "unknown time zone 'Europe/Atlantis'",
    ),
    (
        "timezone-longer-than-a-file-name",
        schedule(timezone="x" * 300),
        "schedule.timezone",
        "unknown time zone 'xxxxxxxx",
    ),
    ("timezone-a-folder", schedule(timezone="Europe"), "schedule.timezone", "unknown time zone 'Europe'"),
    ("timezone-not-a-zone-file", schedule(timezone="zone.tab"), "schedule.timezone", "unknown time zone 'zone.tab'"),
    (
        "timezone-path",
        schedule(timezone="../../etc/passwd"),
        "schedule.timezone",
        "unknown time zone '../../etc/passwd'",
    ),
    ("manual-with-repeat", schedule(sync="manual"), "schedule.repeat", "a manual schedule has no repeat"),
    ("auto-without-repeat", schedule(repeat=None), "schedule.repeat", "sync: auto needs repeat"),
    (
        "rule-source-and-xpath",
        lambda d: rule(d, 0, 0).update(xpath="id"),
        "touchpoints[0].mapping[0]",
        "give exactly one of source, xpath, constant (got source, xpath)",
    ),
    (
        "rule-no-value",
        lambda d: rule(d, 0, 0).pop("source"),
        "touchpoints[0].mapping[0]",
        "give exactly one of source, xpath, constant (got none)",
    ),
    (
        "lookup-on-constant",
        lambda d: rule(d, 0, 4).update(lookup={"erp": "ERP"}),
        "touchpoints[0].mapping[4].lookup",
        "not to a constant",
    ),
    (
        "default-on-constant",
        lambda d: rule(d, 0, 4).update(default="x"),
        "touchpoints[0].mapping[4].default",
        "default applies to source or xpath, not to a constant",
    ),
    (
        "case-on-constant",
        lambda d: rule(d, 0, 4).update(case="upper"),
        "touchpoints[0].mapping[4].case",
        "case applies to source or xpath, not to a constant",
    ),
    (
        "trim-on-constant",
        lambda d: rule(d, 0, 4).update(trim=True),
        "touchpoints[0].mapping[4].trim",
        "trim applies to source or xpath, not to a constant",
    ),
    (
        "case-title",
        lambda d: rule(d, 0, 2).update(case="title"),
        "touchpoints[0].mapping[2].case",
        "'lower' or 'upper'",
    ),
    (
        "trim-not-a-boolean",
        lambda d: rule(d, 0, 2).update(trim="both"),
        "touchpoints[0].mapping[2].trim",
        "valid boolean",
    ),
    (
        "lookup-control-character",
        lambda d: rule(d, 0, 0).update(lookup={"\x1f": "x"}),
        "touchpoints[0].mapping[0].lookup",
        "'\\x1f' holds characters XML 1.0 cannot carry",
    ),
    (
        "constant-nul",
        lambda d: rule(d, 0, 4).update(constant="a\x00b"),
        "touchpoints[0].mapping[4].constant",
        "'a\\x00b' holds characters XML 1.0 cannot carry",
    ),
    (
        "bad-rule-type",
        lambda d: rule(d, 1, 2).update(type="decimal"),
        "touchpoints[1].mapping[2].type",
        "'string', 'integer', 'number' or 'boolean'",
    ),
    (
        "xpath-syntax-error",
        lambda d: rule(d, 1, 2).update(xpath="amount +"),
        "touchpoints[1].mapping[2].xpath",
        "invalid XPath 1.0 expression 'amount +': syntax error",
    ),
    (
        "xpath-unclosed-call",
        lambda d: rule(d, 0, 1).update(xpath="concat(first_name, ' '"),
        "touchpoints[0].mapping[1].xpath",
        "syntax error: '(' is not closed",
    ),
    (
        "xpath-unclosed-predicate",
        lambda d: rule(d, 0, 1).update(xpath="name[1"),
        "touchpoints[0].mapping[1].xpath",
        "invalid XPath 1.0 expression 'name[1': syntax error",
    ),
    (
        "xpath-unfinished-literal",
        lambda d: rule(d, 0, 1).update(xpath="concat(a, 'b)"),
        "touchpoints[0].mapping[1].xpath",
        "unfinished literal",
    ),
    (
        "xpath-unknown-function",
        lambda d: rule(d, 1, 2).update(xpath="round2(amount)"),
        "touchpoints[1].mapping[2].xpath",
        "unregistered function",
    ),
    (
        "xpath-wrong-arity",
        lambda d: rule(d, 1, 2).update(xpath="substring(amount)"),
        "touchpoints[1].mapping[2].xpath",
        "invalid number of arguments",
    ),
    (
        "xpath-undeclared-variable",
        lambda d: rule(d, 1, 2).update(xpath="$amount"),
        "touchpoints[1].mapping[2].xpath",
        "variable 'amount' has not been declared",
    ),
    (
        "mapping-and-xslt",
        lambda d: tp(d).update(xslt="customers.xsl"),
        "touchpoints[0]",
        "give exactly one of mapping, xslt (got both)",
    ),
    (
        "neither-mapping-nor-xslt",
        lambda d: tp(d).pop("mapping"),
        "touchpoints[0]",
        "give exactly one of mapping, xslt (got none)",
    ),
    ("empty-mapping", lambda d: tp(d).update(mapping=[]), "touchpoints[0].mapping", "at least 1 item"),
    (
        "extract-table-and-query",
        lambda d: tp(d)["extract"].update(query="select * from customers"),
        "touchpoints[0].extract",
        "give exactly one of table, query, endpoint, file (got table, query)",
    ),
    ("extract-nothing", lambda d: tp(d)["extract"].pop("table"), "touchpoints[0].extract", "(got none)"),
    (
        "load-endpoint-and-file",
        lambda d: tp(d, 1)["load"].update(file="orders.csv"),
        "touchpoints[1].load",
        "give exactly one of table, endpoint, file (got endpoint, file)",
    ),
    ("rest-source-given-table", rest_source, "touchpoints[0].extract.table", "a rest source reads endpoint, not table"),
    (
        "rest-target-given-table",
        lambda d: tp(d, 1).update(load={"table": "orders", "key": "order_id"}),
        "touchpoints[1].load.table",
        "a rest target writes endpoint, not table",
    ),
    (
        "pagination-on-sql-source",
        lambda d: tp(d)["extract"].update(pagination={"size": 50}),
        "touchpoints[0].extract.pagination",
        "pagination is for rest sources only",
    ),
    (
        "records-path-on-sql-source",
        lambda d: tp(d)["extract"].update(records_path="data"),
        "touchpoints[0].extract.records_path",
        "records_path is for rest sources only",
    ),
    (
        "pagination-size-0",
        lambda d: (rest_source(d), tp(d).update(extract={"endpoint": "/c", "key": "id", "pagination": {"size": 0}})),
        "touchpoints[0].extract.pagination.size",
        "greater than or equal to 1",
    ),
    ("batch-size-0", lambda d: tp(d).update(batch_size=0), "touchpoints[0].batch_size", "greater than or equal to 1"),
    (
        "batch-size-too-big",
        lambda d: tp(d, 1).update(batch_size=1_000_000),
        "touchpoints[1].batch_size",
        "less than or equal to 100000",
    ),
    (
        "load-key-not-a-target",
        lambda d: tp(d, 1)["load"].update(key="id"),
        "touchpoints[1].load.key",
        "load key 'id' is not a target field of the mapping",
    ),
    (
        "depends-on-not-a-list",
        lambda d: tp(d, 1).update(depends_on="customers"),
        "touchpoints[1].depends_on",
        "valid list",
    ),
    (
        "touchpoint-not-a-mapping",
        lambda d: d["touchpoints"].__setitem__(1, "orders"),
        "touchpoints[1]",
        "valid dictionary",
    ),
    (
        "lookup-not-a-mapping",
        lambda d: rule(d, 0, 3).update(lookup="countries"),
        "touchpoints[0].mapping[3].lookup",
        "valid dictionary",
    ),
]


@pytest.mark.parametrize(("mutate", "path", "reason"), [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_spec(mutate, path, reason):
    data = example()
    mutate(data)
    problems = problems_of(data)
    assert len(problems) == 1, problems
    assert problems[0][0] == path
    assert reason in problems[0][1]


def test_bad_case_ids_are_unique():
    ids = [case[0] for case in BAD]
    assert len(ids) == len(set(ids))


def test_each_connector_mismatch_is_reported_per_touchpoint():
    data = example()
    data["source"]["type"] = "rest"
    assert problems_of(data) == [
        ("touchpoints[0].extract.table", "a rest source reads endpoint, not table"),
        ("touchpoints[1].extract.table", "a rest source reads endpoint, not table"),
    ]


# --- bad files ----------------------------------------------------------------------------------------------------


def load_problems(path: Path) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert caught.value.file == str(path)
    return caught.value.problems


def test_xslt_file_missing(tmp_path):
    data = example()
    data["touchpoints"][0].pop("mapping")
    data["touchpoints"][0]["xslt"] = "customers.xsl"
    [(path, reason)] = load_problems(write(tmp_path, data))
    assert path == "touchpoints[0].xslt"
    assert reason == f"file not found: {tmp_path / 'customers.xsl'}"


def test_xslt_file_that_is_not_xslt_is_refused_at_validation(tmp_path):
    data = example()
    data["touchpoints"][0].pop("mapping")
    data["touchpoints"][0]["xslt"] = "customers.xsl"
    spec = write(tmp_path, data)
    xsl = '<xsl:stylesheet xmlns:xsl="http://www.w3.org/1999/XSL/Transform" version="1.0"><xsl:template match="/">'
    (tmp_path / "customers.xsl").write_text(xsl + "<records></xsl:template></xsl:stylesheet>")
    [(path, reason)] = load_problems(spec)
    assert path == "touchpoints[0].xslt"
    assert reason.startswith(f"{tmp_path / 'customers.xsl'}: not well-formed XML: ") and "line 1" in reason
    (tmp_path / "customers.xsl").write_text(xsl + '<xsl:value-of select="(("/></xsl:template></xsl:stylesheet>')
    [(path, reason)] = load_problems(spec)
    assert reason.startswith(f"{tmp_path / 'customers.xsl'}: not a valid XSLT 1.0 stylesheet: ")
    (tmp_path / "customers.xsl").write_text(xsl + "<records/></xsl:template></xsl:stylesheet>")
    assert load_spec(spec).touchpoints[0].xslt == "customers.xsl"


def test_every_missing_xslt_file_is_reported(tmp_path):
    data = example()
    for tp_ in data["touchpoints"]:
        tp_.pop("mapping")
        tp_["xslt"] = f"xsl/{tp_['name']}.xsl"
    assert [p for p, _ in load_problems(write(tmp_path, data))] == ["touchpoints[0].xslt", "touchpoints[1].xslt"]


def test_yaml_syntax_error_has_line_and_column(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: broken\nsource:\n  type: sql\n   connection: erp\n", encoding="utf-8")
    [(where, reason)] = load_problems(path)
    assert where == ""
    assert reason == "invalid YAML: line 4, column 14: mapping values are not allowed here"


def test_yaml_unclosed_flow_sequence(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: broken\ndepends_on: [a, b\n", encoding="utf-8")
    [(_, reason)] = load_problems(path)
    assert reason.startswith("invalid YAML: line 3, column 1: expected ',' or ']'")


def test_yaml_control_character_is_one_line_with_position(tmp_path):
    path = tmp_path / "bell.yaml"
    path.write_text("name: ok\ndescription: a\x07b\n", encoding="utf-8")
    [(_, reason)] = load_problems(path)
    assert reason == "invalid YAML: line 2, column 15: character #x0007 is not allowed"
    assert "\n" not in reason


def test_yaml_list_not_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- name: a\n- name: b\n", encoding="utf-8")
    [(where, reason)] = load_problems(path)
    assert where == ""
    assert reason.startswith("a workflow spec must be a mapping of keys")
    assert reason.endswith("got a list")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing yet\n", encoding="utf-8")
    [(_, reason)] = load_problems(path)
    assert reason.endswith("got an empty file")


def test_not_utf8(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: café\n".encode("latin-1"))
    [(where, reason)] = load_problems(path)
    assert where == ""
    assert reason == "not a UTF-8 text file (byte 0xe9 at offset 9)"


def test_missing_file(tmp_path):
    [(where, reason)] = load_problems(tmp_path / "nope.yaml")
    assert where == ""
    assert reason == "cannot read file: No such file or directory"


def test_directory_instead_of_file(tmp_path):
    [(_, reason)] = load_problems(tmp_path)
    assert reason.startswith("cannot read file:")


# --- reporting ----------------------------------------------------------------------------------------------------


def test_all_problems_are_reported_at_once():
    data = example()
    data["colour"] = "blue"
    data["name"] = "Bad Name"
    tp(data)["batch_size"] = 0
    rule(data, 1, 2)["xpath"] = "format-number(amount)"
    data["schedule"]["timezone"] = "Nowhere/Town"
    problems = dict(problems_of(data))
    assert set(problems) == {
        "colour",
        "name",
        "touchpoints[0].batch_size",
        "touchpoints[1].mapping[2].xpath",
        "schedule.timezone",
    }
    assert problems["colour"] == "unknown key"
    assert "invalid number of arguments" in problems["touchpoints[1].mapping[2].xpath"]


def test_all_cross_check_problems_are_reported_at_once():
    data = example()
    tp(data, 1)["name"] = "customers"
    rule(data, 0, 2)["target"] = "name"
    tp(data, 1)["depends_on"] = ["ghost"]
    tp(data, 0)["extract"]["pagination"] = {}
    assert [p for p, _ in problems_of(data)] == [
        "touchpoints[0].mapping[2].target",
        "touchpoints[0].extract.pagination",
        "touchpoints[1].name",
        "touchpoints[1].depends_on[0]",
    ]


def test_str_has_one_line_per_problem_starting_with_the_file(tmp_path):
    data = example()
    data["extra"] = 1
    tp(data)["load"].pop("key")
    rule(data, 1, 0)["xpath"] = "id("
    path = write(tmp_path, data, "erp.yaml")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    lines = str(caught.value).splitlines()
    assert len(lines) == len(caught.value.problems) == 3
    assert all(line.startswith(f"{path}: ") for line in lines)
    assert f"{path}: extra: unknown key" in lines
    assert f"{path}: touchpoints[0].load.key: required key is missing" in lines


def test_str_names_the_top_level_for_file_problems(tmp_path):
    with pytest.raises(SpecError) as caught:
        load_spec(tmp_path / "missing.yaml")
    assert str(caught.value) == f"{tmp_path / 'missing.yaml'}: (top): cannot read file: No such file or directory"


def test_parse_spec_default_file_name():
    with pytest.raises(SpecError) as caught:
        parse_spec([])
    assert str(caught.value).startswith("<spec>: (top): a workflow spec must be a mapping")


def test_a_key_given_twice_in_the_yaml_is_refused(tmp_path):
    text = EXAMPLE.read_text().replace("name: erp_to_shop\n", "name: erp_to_shop\nname: other\n", 1)
    path = tmp_path / "twice.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.problems == [("", "invalid YAML: line 3, column 1: key 'name' is given twice (first on line 2)")]


def test_lookup_keys_written_as_numbers_or_booleans_compare_as_text():
    data = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text()))
    data["touchpoints"][0]["mapping"][3]["lookup"] = {1: "one", 2.5: "half", "DE": 49, "ok": True}
    wf = parse_spec(data, "x.yaml")
    assert wf.touchpoints[0].mapping[3].lookup == {"1": "one", "2.5": "half", "DE": "49", "ok": "true"}


def test_flowlink_own_dag_names_are_reserved():
    spec = yaml.safe_load((Path(__file__).resolve().parent.parent / "examples" / "erp_to_shop.yaml").read_text())
    spec["name"] = "flowlink_maintenance"
    with pytest.raises(SpecError) as err:
        parse_spec(spec)
    assert err.value.problems == [
        (
            "name",
            "'flowlink_maintenance': names starting with flowlink_ are Flowlink's own DAGs (flowlink_deployments, ...)",
        )
    ]


# --- load modes: create_or_update (examples/erp_to_api.yaml) ------------------------------------------------------

API_EXAMPLE = REPO / "examples" / "erp_to_api.yaml"


def api_example() -> dict[str, Any]:
    return yaml.safe_load(API_EXAMPLE.read_text(encoding="utf-8"))


def test_api_example_spec_validates_and_publishes_its_load_keys():
    wf = load_spec(API_EXAMPLE)
    load = wf.touchpoint("customers").load
    assert (load.method, load.id_field, load.update, load.on_missing) == ("create_or_update", "id", "put", "create")
    assert load.match.endpoint == "/customers?email={email}" and load.match.fields == ["email"]
    assert wf.model_dump(mode="json")["touchpoints"][0]["load"]["match"] == {
        "endpoint": "/customers?email={email}",
        "records_path": None,
    }
    # an upsert load publishes without the create_or_update keys: its published file keeps its checksum
    assert set(load_spec(EXAMPLE).model_dump(mode="json")["touchpoints"][0]["load"]) == {
        "table",
        "endpoint",
        "file",
        "method",
        "key",
        "id_field",
    }


def load_of(d: dict) -> dict:
    return d["touchpoints"][0]["load"]


def sql_target(d: dict) -> None:
    d["target"]["type"] = "sql"
    load_of(d).pop("endpoint")
    load_of(d)["table"] = "customers"


BAD_LOADS: list[tuple[str, Callable[[dict], None], str, str]] = [
    (
        "no-id-field",
        lambda d: load_of(d).pop("id_field"),
        "touchpoints[0].load.id_field",
        "method: create_or_update needs id_field: the field of the create answer holding the target's own id (often id)",
    ),
    (
        "no-match",
        lambda d: load_of(d).pop("match"),
        "touchpoints[0].load.match",
        "method: create_or_update needs match",
    ),
    (
        "match-on-upsert",
        lambda d: load_of(d).update(method="upsert", update=None, on_missing=None),
        "touchpoints[0].load.match",
        "match is for method: create_or_update only, not upsert",
    ),
    (
        "update-on-insert",
        lambda d: load_of(d).update(method="insert", match=None, on_missing=None),
        "touchpoints[0].load.update",
        "update is for method: create_or_update only, not insert",
    ),
    (
        "on-missing-on-upsert",
        lambda d: load_of(d).update(method="upsert", match=None, update=None),
        "touchpoints[0].load.on_missing",
        "on_missing is for method: create_or_update only, not upsert",
    ),
    ("update-post", lambda d: load_of(d).update(update="post"), "touchpoints[0].load.update", "'put' or 'patch'"),
    (
        "on-missing-ignore",
        lambda d: load_of(d).update(on_missing="ignore"),
        "touchpoints[0].load.on_missing",
        "'create' or 'fail'",
    ),
    (
        "match-without-endpoint",
        lambda d: load_of(d).update(match={"records_path": "data"}),
        "touchpoints[0].load.match.endpoint",
        "required key is missing",
    ),
    (
        "match-unknown-key",
        lambda d: load_of(d)["match"].update(query="x"),
        "touchpoints[0].load.match.query",
        "unknown key",
    ),
    (
        "match-without-placeholder",
        lambda d: load_of(d)["match"].update(endpoint="/customers"),
        "touchpoints[0].load.match.endpoint",
        "'/customers' has no {field} placeholder",
    ),
    (
        "match-unclosed-placeholder",
        lambda d: load_of(d)["match"].update(endpoint="/customers?email={email"),
        "touchpoints[0].load.match.endpoint",
        "has a { or } without its pair",
    ),
    (
        "match-bad-placeholder",
        lambda d: load_of(d)["match"].update(endpoint="/customers?email={e mail}"),
        "touchpoints[0].load.match.endpoint",
        "{e mail} is not a field name",
    ),
    (
        "match-unknown-field",
        lambda d: load_of(d)["match"].update(endpoint="/customers?email={mail}"),
        "touchpoints[0].load.match.endpoint",
        "{mail} is not a target field of the mapping (erp_id, name, email, country)",
    ),
    (
        "create-or-update-to-sql",
        sql_target,
        "touchpoints[0].load.method",
        "create_or_update is for rest targets; a sql target is written by upsert or insert",
    ),
]


@pytest.mark.parametrize(("mutate", "path", "reason"), [case[1:] for case in BAD_LOADS], ids=[c[0] for c in BAD_LOADS])
def test_bad_create_or_update_load(mutate, path, reason):
    data = api_example()
    mutate(data)
    problems = problems_of(data)
    assert len(problems) == 1, problems
    assert problems[0][0] == path
    assert reason in problems[0][1]


def test_create_or_update_to_a_file_target_is_refused():
    data = api_example()
    data["target"]["type"] = "file"
    load_of(data).pop("endpoint")
    load_of(data)["file"] = "customers.json"
    assert problems_of(data) == [
        ("touchpoints[0].load.method", "create_or_update is for rest targets; a file target is written by upsert")
    ]


def test_match_placeholders_may_name_any_field_with_own_xslt():
    """With an own stylesheet the target fields are not known before a run: the placeholders are not checked."""
    data = api_example()
    tp(data).pop("mapping")
    tp(data)["xslt"] = "customers.xsl"
    load_of(data)["match"]["endpoint"] = "/customers?code={code}&region={address.region}"
    assert parse_spec(data).touchpoints[0].load.match.fields == ["code", "address.region"]


def test_json_schema_describes_the_load_modes():
    from flowlink.spec import json_schema

    defs = json_schema()["$defs"]
    load = defs["Load"]["properties"]
    assert load["method"]["enum"] == ["upsert", "insert", "create_or_update"]
    assert "often id" in load["id_field"]["description"] and "404" in load["on_missing"]["description"]
    assert load["update"]["anyOf"][0]["enum"] == ["put", "patch"]
    assert (
        defs["Match"]["required"] == ["endpoint"]
        and "{email}" in defs["Match"]["properties"]["endpoint"]["description"]
    )
