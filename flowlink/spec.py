"""The workflow spec: a YAML file validated by pydantic models.

Every error names the file, the YAML path (``touchpoints[1].mapping[3].xpath``)
and the reason. Nothing here knows about Airflow.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_serializer, model_validator
from pydantic_core import ErrorDetails, PydanticCustomError

from flowlink.errors import FlowlinkError

XSL = "http://www.w3.org/1999/XSL/Transform"
# Characters an XML 1.0 document cannot hold, not even as character references.
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
NAME = r"^[a-z][a-z0-9_]{0,62}$"
FIELD = r"^[A-Za-z_][A-Za-z0-9_.-]*$"
Name = Annotated[str, Field(pattern=NAME, description="lower-case letters, digits and _, starting with a letter")]
FieldName = Annotated[str, Field(pattern=FIELD, description="a record field name")]


def _unclosed(expr: str) -> str | None:
    """The first bracket left open (outside string literals): libxml2 accepts 'name(' and reads 'concat(a,' as concat(a)."""
    stack: list[str] = []
    quote = None
    for ch in expr:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([":
            stack.append(ch)
        elif ch in ")]" and stack and stack[-1] == "([)]"[")]".index(ch)]:
            stack.pop()
    return stack[0] if stack and not quote else None


def xpath_problem(expr: str) -> str | None:
    """Compile and evaluate an XPath 1.0 expression as XSLT would (format-number included); None if fine."""
    if (bracket := _unclosed(expr)) is not None:
        return f"syntax error: {bracket!r} is not closed"
    from lxml import etree  # here: DAG parsing imports this module and never checks an XPath

    root = etree.Element(f"{{{XSL}}}stylesheet", version="1.0", nsmap={"xsl": XSL})
    template = etree.SubElement(root, f"{{{XSL}}}template", match="/")
    etree.SubElement(template, f"{{{XSL}}}value-of", select=expr)
    try:
        transform = etree.XSLT(root, access_control=etree.XSLTAccessControl.DENY_ALL)
    except etree.XSLTParseError as exc:
        first = exc.error_log[0].message.lower().rstrip(".") if exc.error_log else ""
        return f"syntax error: {first}" if first and first != "invalid expression" else "syntax error"
    try:
        transform(etree.fromstring("<record/>"))
    except etree.XSLTApplyError:
        generic = ("runtime error", "xpath evaluation returned no result")
        messages = [m.message.lower().rstrip(".") for m in transform.error_log]
        return next((m for m in messages if not m.startswith(generic)), "cannot be evaluated")
    return None


AT_FIELD = "flowlink_field"  # the error type of at(): its context names the field


def at(field: str, reason: str) -> PydanticCustomError:
    """An error about one field of the model being validated (a model validator's error is the model's: _problem
    puts it at the field its context names)."""
    return PydanticCustomError(AT_FIELD, "{reason}", {"field": field, "reason": reason})


class SpecError(FlowlinkError):
    """One or more problems in a workflow spec; each names file, YAML path and reason."""

    def __init__(self, file: str, problems: list[tuple[str, str]]):
        self.file = file
        self.problems = problems  # [(yaml_path, reason)]
        lines = [f"{file}: {path or '(top)'}: {reason}" for path, reason in problems]
        super().__init__("\n".join(lines))


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Application(Model):
    """A business application: a connector type and the Airflow connection holding its address and credentials."""

    type: Literal["sql", "rest", "file"]
    connection: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]


class Pagination(Model):
    """REST pagination: page numbers, or a field holding the next page's URL."""

    style: Literal["page", "next"] = "page"
    page_param: str = "page"
    size_param: str = "per_page"
    size: Annotated[int, Field(ge=1, le=10_000)] = 100
    next_field: str = "next"


class Extract(Model):
    """Where records come from. Exactly one of table, query, endpoint, file."""

    table: str | None = None
    query: str | None = None
    endpoint: str | None = None
    file: str | None = Field(None, description="a file name pattern in the connection's folder, e.g. 'orders-*.csv'")
    key: FieldName = Field(description="the field that identifies a record in the source")
    incremental: FieldName | None = Field(
        None, description="last-modified field or growing id; only newer records are read"
    )
    filter: str | None = Field(None, description="SQL condition, or a query string for REST")
    records_path: str | None = Field(None, description="REST: the JSON field holding the list of records")
    pagination: Pagination | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Extract:
        given = [k for k in ("table", "query", "endpoint", "file") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(f"give exactly one of table, query, endpoint, file (got {', '.join(given) or 'none'})")
        return self


class MappingRule(Model):
    """target <- source field | XPath 1.0 expression | constant; a source or xpath value is trimmed and cased (trim,
    case), then looked up (lookup) or defaulted (default), in that order."""

    target: FieldName
    source: FieldName | None = None
    xpath: str | None = None
    constant: str | int | float | bool | None = None
    trim: bool = Field(
        False,
        description="remove spaces, tabs and line breaks at both ends of a source or xpath value (inner ones stay)",
    )
    case: Literal["lower", "upper"] | None = Field(
        None,
        description="lower- or upper-case a source or xpath value (Unicode letters with a one-letter case "
        "mapping; ß, the dotted İ and final sigma are left as they are)",
    )
    lookup: dict[str, str] | None = Field(
        None, description="value -> replacement, applied to source or xpath (after trim and case)"
    )
    default: str | None = Field(
        None,
        description="with a lookup: the value when no entry matches (without default the value passes "
        "unchanged); without a lookup: the value when the source is null, missing or empty",
    )
    type: Literal["string", "integer", "number", "boolean"] = Field("string", description="type of the output value")

    @field_validator("lookup", mode="before")
    @classmethod
    def _lookup_keys_as_text(cls, value: Any) -> Any:
        """YAML reads `{1: active}` with a number key; lookups compare text, so keys and values become text."""
        if isinstance(value, dict):
            return {_text(k): _text(v) for k, v in value.items()}
        return value

    @field_validator("xpath")
    @classmethod
    def _xpath_compiles(cls, value: str | None) -> str | None:
        if value is not None and (problem := xpath_problem(value)):
            raise ValueError(f"invalid XPath 1.0 expression {value!r}: {problem}")
        return value

    @model_validator(mode="after")
    def _one_value(self) -> MappingRule:
        given = [k for k in ("source", "xpath", "constant") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of source, xpath, constant (got {', '.join(given) or 'none'})")
        if self.constant is not None:
            for option in ("trim", "case", "lookup", "default"):
                if getattr(self, option) not in (None, False):
                    raise at(option, f"{option} applies to source or xpath, not to a constant")
        texts = [("constant", self.constant), ("default", self.default)]
        texts += [("lookup", text) for pair in (self.lookup or {}).items() for text in pair]
        for field, text in texts:
            if isinstance(text, str) and NOT_XML.search(text):
                raise at(
                    field,
                    f"{text!r} holds characters XML 1.0 cannot carry (control characters, unpaired surrogates, U+FFFE, U+FFFF)",
                )
        return self

    @model_serializer(mode="wrap")
    def _without_unset_options(self, handler):
        """No `trim: false, case: null` for rules without them: their published files keep their checksums."""
        data = handler(self)
        if isinstance(data, dict):
            for option in ("trim", "case"):
                if not data.get(option):
                    data.pop(option, None)
        return data


PLACEHOLDER = re.compile(r"\{([^{}]*)\}")  # {field} in a match endpoint
CREATE_OR_UPDATE_KEYS = ("update", "match", "on_missing")


class Match(Model):
    """create_or_update: the look-up (GET) that finds a record the target already holds."""

    endpoint: str = Field(
        description="GET path and query with {field} placeholders, output-record fields put in "
        "URL-encoded, e.g. /customers?email={email}"
    )
    records_path: str | None = Field(
        None, description="the JSON field (dotted path) holding the found records; none: the answer is the list"
    )

    @field_validator("endpoint")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        rest = PLACEHOLDER.sub("", value)
        if "{" in rest or "}" in rest:
            raise ValueError(f"{value!r} has a {{ or }} without its pair; a placeholder is {{field}}")
        fields = PLACEHOLDER.findall(value)
        if bad := next((f for f in fields if not re.fullmatch(FIELD, f)), None):
            raise ValueError(
                f"{{{bad}}} is not a field name: use letters, digits, _, . and -, starting with a letter or _"
            )
        if not fields:
            raise ValueError(
                f"{value!r} has no {{field}} placeholder, so it would find the same records for every "
                f"record; e.g. /customers?email={{email}}"
            )
        return value

    @property
    def fields(self) -> list[str]:
        """The output-record fields the look-up puts in, in order."""
        return PLACEHOLDER.findall(self.endpoint)


class BulkResult(Model):
    """load.bulk: how the answer to a bulk request tells each record's outcome."""

    path: str | None = Field(
        None,
        description="the answer's field (dotted path) holding the list of per-record results; "
        "none: the answer is the list",
    )
    key: FieldName | None = Field(
        None,
        description="the result's field holding the record's load key, for an API that answers in any order; "
        "none: the results come in the order the records were sent, one each",
    )
    ok: FieldName | None = Field(None, description="the result's field that is true for a record written")
    status: FieldName | None = Field(
        None, description="the result's field holding the record's HTTP status: 2xx written, 409 already there"
    )
    error: FieldName = Field(
        "error",
        description="the result's field holding the message of a refused record; without ok and status, a result "
        "with a value here is a refused record",
    )
    id: FieldName | None = Field(
        None,
        description="the result's field holding the target's id for the record (default: load.id_field, else the key)",
    )
    exists: dict[FieldName, str | int | bool] | None = Field(
        None,
        description="field: value that says the target holds the key already (for insert, as a 409 status does), "
        "e.g. {error: conflict}",
    )

    @model_validator(mode="after")
    def _ok_or_status(self) -> BulkResult:
        if self.ok is not None and self.status is not None:
            raise at("status", "give ok or status, not both: each says on its own whether a record was written")
        return self


class Bulk(Model):
    """load.bulk: records sent N per request to an endpoint that answers a result per record."""

    endpoint: str | None = Field(None, description="path of the bulk endpoint (default: load.endpoint)")
    method: Literal["post", "put", "patch"] = Field("post", description="the HTTP method of a bulk request")
    size: Annotated[int, Field(ge=1, le=10_000)] = Field(
        100, description="records per request, at most (a load writes batch by batch: at most batch_size)"
    )
    records_path: str | None = Field(
        None,
        description="the request body's field (dotted path) to put the list of records in, e.g. docs sends "
        '{"docs": [...]}; none: the body is the list',
    )
    result: BulkResult = Field(BulkResult.model_validate({}), description="how to read each record's outcome")

    @field_validator("records_path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*", value):
            raise ValueError(f"{value!r} is not a dotted path of field names (e.g. data.records)")
        return value


class Load(Model):
    """Where records go. Exactly one of table, endpoint, file."""

    table: str | None = None
    endpoint: str | None = None
    file: str | None = Field(None, description="file name in the connection's folder; .csv, .json or .xml")
    method: Literal["upsert", "insert", "create_or_update"] = Field(
        "upsert",
        description="upsert: insert or replace by key (REST: PUT endpoint/key); insert: new records only "
        "(REST: POST); create_or_update (REST only): update by the destination id the bucket keeps "
        "(PUT or PATCH endpoint/{id}), else look the record up with match and update it, else create it (POST endpoint)",
    )
    key: FieldName = Field(description="the target field records are upserted by")
    id_field: FieldName | None = Field(
        None,
        description="REST: the answer's field holding the target's own id (the destination id); "
        "create_or_update needs it (often id)",
    )
    update: Literal["put", "patch"] | None = Field(
        None, description="create_or_update: update with PUT (the default) or PATCH endpoint/{destination id}"
    )
    match: Match | None = Field(None, description="create_or_update: how a record without a destination id is found")
    on_missing: Literal["create", "fail"] | None = Field(
        None,
        description="create_or_update: an update answered 404 (deleted in the target): look it up and create "
        "it again (create, the default) or fail the record (fail)",
    )
    bulk: Bulk | None = Field(
        None,
        description="REST, upsert or insert: send the records N per request to a bulk endpoint that answers "
        "a result per record",
    )

    @model_validator(mode="after")
    def _one_target(self) -> Load:
        given = [k for k in ("table", "endpoint", "file") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(f"give exactly one of table, endpoint, file (got {', '.join(given) or 'none'})")
        return self

    @model_validator(mode="after")
    def _method_keys(self) -> Load:
        if self.bulk is not None and self.method == "create_or_update":
            raise at(
                "bulk",
                "bulk is for method upsert or insert: create_or_update looks each record up and writes it alone",
            )
        if self.method != "create_or_update":
            for key in CREATE_OR_UPDATE_KEYS:
                if getattr(self, key) is not None:
                    raise at(key, f"{key} is for method: create_or_update only, not {self.method}")
            return self
        if self.id_field is None:
            raise at(
                "id_field",
                "method: create_or_update needs id_field: the field of the create answer holding "
                "the target's own id (often id)",
            )
        if self.match is None:
            raise at(
                "match",
                "method: create_or_update needs match: the look-up that finds a record the target "
                "already holds, e.g. {endpoint: '/customers?email={email}'}",
            )
        return self

    @model_serializer(mode="wrap")
    def _without_unset_keys(self, handler):
        """No `update: null` ... for upsert and insert, no `bulk: null`: their published files keep their checksums."""
        data = handler(self)
        for key in (*CREATE_OR_UPDATE_KEYS, "bulk"):
            if isinstance(data, dict) and data.get(key) is None:
                data.pop(key, None)
        return data


class Touchpoint(Model):
    name: Name
    description: str = ""
    depends_on: list[Name] = []
    extract: Extract
    mapping: list[MappingRule] | None = Field(None, min_length=1)
    xslt: str | None = Field(None, description="your own XSLT 1.0 file, relative to the spec")
    load: Load
    batch_size: Annotated[int, Field(ge=1, le=100_000)] = 500

    @model_validator(mode="after")
    def _mapping_or_xslt(self) -> Touchpoint:
        if (self.mapping is None) == (self.xslt is None):
            raise ValueError(f"give exactly one of mapping, xslt (got {'none' if self.mapping is None else 'both'})")
        return self


ASSET_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$")


class After(Model):
    """What a `sync: after` workflow waits for: a touchpoint of another workflow (the target its load writes), or
    any Airflow asset URI."""

    workflow: Name | None = Field(None, description="a published workflow")
    touchpoint: Name | None = Field(None, description="the touchpoint of that workflow whose load this one runs after")
    asset: str | None = Field(None, description="any Airflow asset URI, e.g. s3://bucket/orders.csv")

    @field_validator("asset")
    @classmethod
    def _asset_uri(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not ASSET_URI.fullmatch(value) or len(value) > 1500:
            raise ValueError(f"{value[:80]!r} is not an asset URI: scheme://..., e.g. s3://bucket/orders.csv")
        if value.split(":", 1)[0].lower() == "airflow":
            raise ValueError("the asset scheme airflow:// is reserved by Airflow")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> After:
        if self.asset is not None:
            if self.workflow is not None or self.touchpoint is not None:
                raise ValueError("give either workflow and touchpoint, or asset, not both")
        elif self.workflow is None:
            raise ValueError("give workflow and touchpoint (a touchpoint of another workflow), or asset (a URI)")
        elif self.touchpoint is None:
            raise at("touchpoint", f"which touchpoint of {self.workflow!r}: this workflow runs after its load")
        return self

    @model_serializer(mode="wrap")
    def _given_keys(self, handler):
        data = handler(self)
        return {k: v for k, v in data.items() if v is not None} if isinstance(data, dict) else data

    def label(self) -> str:
        return self.asset if self.asset is not None else f"{self.workflow}.{self.touchpoint}"


class Schedule(Model):
    """When the workflow runs: sync auto (on a clock), manual, or after (when other workflows' touchpoints or other
    assets were updated); repeat and interval, end never or after N occurrences."""

    sync: Literal["auto", "manual", "after"] = "manual"
    after: list[After] | None = Field(
        None, min_length=1, description="sync: after: run once every one of these was updated since the last run"
    )
    repeat: Literal["every_minute", "hourly", "daily"] | None = None
    interval: int = Field(1, description="every_minute: 1-59 minutes; hourly: 1-23 hours; daily: 1")
    at: str | None = Field(None, description="daily: time of day HH:MM")
    end: Literal["never", "after"] = "never"
    occurrences: Annotated[int, Field(ge=1)] | None = Field(None, description="end after: number of runs")
    start: dt.datetime | None = Field(None, description="first run; required with end: after")
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a file, a folder
            shown = value if len(value) <= 60 else value[:57] + "..."
            raise ValueError(f"unknown time zone {shown!r} (an IANA name such as Europe/Berlin or UTC)") from None
        return value

    @field_validator("at", mode="before")
    @classmethod
    def _quoted_time(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            raise ValueError(
                f'time of day must be a quoted "HH:MM", got the number {value} (YAML reads an unquoted 10:00 as 600)'
            )
        return value

    @field_validator("at")
    @classmethod
    def _time_of_day(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
            raise ValueError(f"time of day must be HH:MM (00:00-23:59), got {value!r}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Schedule:
        if self.sync != "after" and self.after is not None:
            raise at("after", f"after is for sync: after, not sync: {self.sync}")
        if self.sync == "after":
            if self.after is None:
                raise at("after", "sync: after needs after: [{workflow: ..., touchpoint: ...} or {asset: URI}]")
            clock = [k for k in ("repeat", "interval", "at", "end", "occurrences", "start", "timezone")]
            given = [k for k in clock if getattr(self, k) != type(self).model_fields[k].default]
            if given:
                raise at(given[0], f"sync: after runs when what it is after was updated, not on a clock: no {given[0]}")
            return self
        if self.sync == "manual":
            if self.repeat is not None:
                raise at("repeat", "a manual schedule has no repeat; use sync: auto")
            return self
        limits = {"every_minute": (1, 59, "minutes"), "hourly": (1, 23, "hours"), "daily": (1, 1, "days")}
        if self.repeat is None:
            raise at("repeat", "sync: auto needs repeat: every_minute, hourly or daily")
        low, high, unit = limits[self.repeat]
        if not low <= self.interval <= high:
            raise at("interval", f"interval for {self.repeat} must be {low}-{high} {unit}, got {self.interval}")
        if self.repeat == "daily" and self.at is None:
            raise at("at", "repeat: daily needs at (time of day HH:MM)")
        if self.repeat != "daily" and self.at is not None:
            raise at("at", f"at (time of day) is only for repeat: daily, not {self.repeat}")
        if self.end == "after" and self.occurrences is None:
            raise at("occurrences", "end: after needs occurrences (number of runs)")
        if self.end != "after" and self.occurrences is not None:
            raise at("end", "occurrences needs end: after")
        if self.end == "after" and self.start is None:
            raise at("start", "end: after needs a start date to count occurrences from")
        return self

    @model_serializer(mode="wrap")
    def _without_after(self, handler):
        """No `after: null` in published files: a spec that is not sync: after keeps its checksum."""
        data = handler(self)
        if isinstance(data, dict) and data.get("after") is None:
            data.pop("after", None)
        return data


# The bounds of each retry setting, for a spec's `retry:` and an environment's (flowlink env set) alike.
RETRY_LIMITS = {"max_tries": (1, 20), "wait_minutes": (0, 10_080), "batch_size": (1, 100_000)}
RetryEvery = Literal["hourly", "daily"]
RETRY_EVERY: tuple[str, ...] = get_args(RetryEvery)
MaxTries = Annotated[int, Field(ge=RETRY_LIMITS["max_tries"][0], le=RETRY_LIMITS["max_tries"][1])]
WaitMinutes = Annotated[int, Field(ge=RETRY_LIMITS["wait_minutes"][0], le=RETRY_LIMITS["wait_minutes"][1])]
RetryBatchSize = Annotated[int, Field(ge=RETRY_LIMITS["batch_size"][0], le=RETRY_LIMITS["batch_size"][1])]


class RetryPolicy(Model):
    """Automatic retry of Failed records; each key left out keeps the environment's setting (flowlink env set)."""

    max_tries: MaxTries | None = Field(None, description="tries in all, the sync included")
    wait_minutes: WaitMinutes | None = Field(None, description="minutes a failed record waits before it is retried")
    batch_size: RetryBatchSize | None = Field(None, description="records per retry run")
    every: RetryEvery | None = Field(None, description="how often retry runs")


class Workflow(Model):
    name: Name
    description: str = ""
    source: Application
    target: Application
    touchpoints: list[Touchpoint] = Field(min_length=1)
    schedule: Schedule = Field(default_factory=lambda: Schedule.model_validate({}))
    retry: RetryPolicy | None = Field(None, description="overrides the environment's automatic retry settings")

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value.startswith("flowlink_"):
            raise ValueError(
                f"{value!r}: names starting with flowlink_ are Flowlink's own DAGs (flowlink_deployments, ...)"
            )
        return value

    @model_serializer(mode="wrap")
    def _without_unset_retry(self, handler):
        """No `retry: null` in published files: a spec without retry keeps its checksum."""
        data = handler(self)
        if isinstance(data, dict) and data.get("retry") is None:
            data.pop("retry", None)
        return data

    def touchpoint(self, name: str) -> Touchpoint:
        for tp in self.touchpoints:
            if tp.name == name:
                return tp
        raise FlowlinkError(f"workflow {self.name!r} has no touchpoint {name!r}")


def _yaml_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("str", "int", "float", "bool") or "[" in str(part):
            continue  # union branch names pydantic adds to the location
        else:
            out += f".{part}" if out else str(part)
    return out


def _problem(err: ErrorDetails) -> tuple[str, str]:
    """(YAML path, reason) of one pydantic error; an error from at() is put at the field it names."""
    path = _yaml_path(err["loc"])
    if err["type"] == AT_FIELD:
        ctx = err.get("ctx", {})
        return f"{path}.{ctx['field']}" if path else ctx["field"], ctx["reason"]
    return path, _reason(err)


def _reason(err: ErrorDetails) -> str:
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "missing":
        return "required key is missing"
    if err["type"] == "string_pattern_mismatch":
        allowed = {
            NAME: "lower-case letters, digits and _, starting with a letter, at most 63 characters",
            FIELD: "letters, digits, _, . and -, starting with a letter or _",
        }.get(err["ctx"]["pattern"], "letters, digits, _, . and -")
        return f"{err['input']!r} is not allowed here: use {allowed}"
    return msg


def _cross_checks(wf: Workflow) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    index: dict[str, int] = {}
    for i, tp in enumerate(wf.touchpoints):
        if tp.name in index:
            problems.append(
                (
                    f"touchpoints[{i}].name",
                    f"duplicate touchpoint name {tp.name!r} (also touchpoints[{index[tp.name]}])",
                )
            )
        index.setdefault(tp.name, i)
        targets: dict[str, int] = {}
        for j, rule in enumerate(tp.mapping or []):
            if rule.target in targets:
                problems.append((f"touchpoints[{i}].mapping[{j}].target", f"duplicate target field {rule.target!r}"))
            targets.setdefault(rule.target, j)
        if tp.mapping is not None and tp.load.key not in targets:
            problems.append(
                (f"touchpoints[{i}].load.key", f"load key {tp.load.key!r} is not a target field of the mapping")
            )
        if tp.mapping is not None and tp.load.match is not None:
            unknown = [f for f in tp.load.match.fields if f not in targets]
            if unknown:
                problems.append(
                    (
                        f"touchpoints[{i}].load.match.endpoint",
                        f"{{{unknown[0]}}} is not a target field of the mapping ({', '.join(targets)})",
                    )
                )
        for j, dep in enumerate(tp.depends_on):
            if dep == tp.name:
                problems.append((f"touchpoints[{i}].depends_on[{j}]", "a touchpoint cannot depend on itself"))
            elif dep not in {t.name for t in wf.touchpoints}:
                problems.append((f"touchpoints[{i}].depends_on[{j}]", f"unknown touchpoint {dep!r}"))
        problems += _connector_checks(wf, i, tp)
    if not problems:
        cycle = find_cycle(wf)
        if cycle:
            problems.append(("touchpoints", "depends_on has a cycle: " + " -> ".join(cycle)))
    return problems


def _connector_checks(wf: Workflow, i: int, tp: Touchpoint) -> list[tuple[str, str]]:
    """Each part of a touchpoint must fit its application's connector type."""
    allowed_extract = {"sql": ("table", "query"), "rest": ("endpoint",), "file": ("file",)}
    allowed_load = {"sql": ("table",), "rest": ("endpoint",), "file": ("file",)}
    problems = []
    src, dst = wf.source.type, wf.target.type
    for key in ("table", "query", "endpoint", "file"):
        if getattr(tp.extract, key) and key not in allowed_extract[src]:
            problems.append(
                (
                    f"touchpoints[{i}].extract.{key}",
                    f"a {src} source reads {' or '.join(allowed_extract[src])}, not {key}",
                )
            )
    for key in ("table", "endpoint", "file"):
        if getattr(tp.load, key) and key not in allowed_load[dst]:
            problems.append(
                (f"touchpoints[{i}].load.{key}", f"a {dst} target writes {allowed_load[dst][0]}, not {key}")
            )
    if src == "file" and tp.extract.filter:
        problems.append((f"touchpoints[{i}].extract.filter", "a file source has no filter"))
    if src != "rest" and (tp.extract.pagination or tp.extract.records_path):
        key = "pagination" if tp.extract.pagination else "records_path"
        problems.append((f"touchpoints[{i}].extract.{key}", f"{key} is for rest sources only"))
    if dst != "rest" and tp.load.bulk is not None:
        problems.append(
            (f"touchpoints[{i}].load.bulk", f"bulk is for rest targets; a {dst} target writes batch by batch")
        )
    if dst == "file" and tp.load.method == "insert":
        problems.append((f"touchpoints[{i}].load.method", "a file target is always written by upsert"))
    if dst != "rest" and tp.load.method == "create_or_update":
        problems.append(
            (
                f"touchpoints[{i}].load.method",
                f"create_or_update is for rest targets; a {dst} target is "
                f"written by upsert{' or insert' if dst == 'sql' else ''}",
            )
        )
    return problems


def find_cycle(wf: Workflow) -> list[str] | None:
    deps = {tp.name: tp.depends_on for tp in wf.touchpoints}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        stack.append(name)
        for dep in deps.get(name, []):
            if state.get(dep) == 1:
                return stack[stack.index(dep) :] + [dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[name] = 2
        return None

    for name in deps:
        if name not in state and (found := visit(name)):
            return found
    return None


def parse_spec(data: Any, file: str = "<spec>") -> Workflow:
    """Validate already-loaded YAML data; raise SpecError naming every problem."""
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise SpecError(
            file,
            [("", f"a workflow spec must be a mapping of keys (name, source, target, touchpoints, ...), got {got}")],
        )
    try:
        wf = Workflow.model_validate(data)
    except ValidationError as exc:
        problems = [_problem(e) for e in exc.errors()]
        raise SpecError(file, problems) from None
    problems = _cross_checks(wf)
    if problems:
        raise SpecError(file, problems)
    return wf


def _text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, (int, float)) else value


class _StrictLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice in one mapping (YAML would keep the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice (first on line {seen[key]})", key_node.start_mark
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def parse_text(text: str, file: str = "<spec>") -> Workflow:
    """Validate a spec's YAML text (a draft, or a file's content); raise SpecError naming every problem. An ``xslt``
    file is not read here (load_spec checks it beside the spec file)."""
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        if isinstance(exc, yaml.reader.ReaderError):  # a bad character: it has a position, not a mark
            line = text.count("\n", 0, exc.position) + 1
            column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
            where, problem = f"line {line}, column {column}: ", f"character #x{exc.character:04x} is not allowed"
        else:
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            problem = getattr(exc, "problem", None) or str(exc).replace("\n", " ")
        raise SpecError(file, [("", f"invalid YAML: {where}{problem}")]) from None
    except RecursionError:  # the parser recurses per level: thousands of [ or {
        raise SpecError(file, [("", "invalid YAML: nested too deeply")]) from None
    return parse_spec(data, file)


def load_spec(path: str | Path) -> Workflow:
    """Read and validate a workflow YAML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(str(path), [("", f"cannot read file: {exc.strerror}")]) from None
    except UnicodeDecodeError as exc:
        raise SpecError(
            str(path), [("", f"not a UTF-8 text file (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})")]
        ) from None
    wf = parse_text(text, str(path))
    problems = []
    for i, tp in enumerate(wf.touchpoints):
        if tp.xslt is None:
            continue
        xslt = path.parent / tp.xslt
        if not xslt.is_file():
            problems.append((f"touchpoints[{i}].xslt", f"file not found: {xslt}"))
            continue
        from flowlink.stylesheets import file_problems

        problems += [(f"touchpoints[{i}].xslt", f"{xslt}: {problem}") for problem in file_problems(xslt)]
    if problems:
        raise SpecError(str(path), problems)
    return wf


def json_schema() -> dict[str, Any]:
    schema = Workflow.model_json_schema()
    schema["title"] = "Flowlink workflow"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
