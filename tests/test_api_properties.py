"""Property-based tests of the Flowlink app's inputs (plugins/api): whatever a client sends, the answer is a clear one.

Hypothesis builds requests from the app's own routes (app.routes: their path, query and body parameters, so a new
route or parameter is covered without a change here): path parameters, query parameters, JSON bodies of every POST and
PATCH, raw bodies, Content-Type, X-Agent-Token and Authorization headers. Every answer must have a status below 500, be
JSON with a clear `detail` when it is an error (HTML for the pages, or their redirect to the login) and never carry a
traceback. The client raises a server error instead of answering it, so a 500 fails the test with its exception.

The app runs on one store for the module (a temp FLOWLINK_HOME): two environments with tokens, WF published and
live, a pending deployment, a bucket and a snapshot; each example starts from that state (tokens un-revoked,
environments reset, a pending deployment again). Airflow's metadata database is the tests' empty one.
"""

from __future__ import annotations

import json
import string
from collections import Counter
from types import SimpleNamespace
from urllib.parse import quote

import pytest
from fastapi.dependencies.utils import get_flat_dependant
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from flowlink import deployments, publish, staging
from flowlink.recordxml import RecordWriter
from flowlink.store import bucket, snapshots
from flowlink.store.bucket import Outcome
from flowlink.store.tables import agent_tokens, environments
from tests.airflow_env import REPO

SPEC = REPO / "examples" / "erp_to_shop.yaml"
WF, RUN_ID = "erp_to_shop", "manual__1"
EXAMPLES = 40  # per route: every route gets its own run
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------------ the app, once for the module


@pytest.fixture(scope="module")
def api(tmp_path_factory, airflow_db):
    """The app on a temp store with data to reach (see the module docstring), an admin JWT and the agent tokens."""
    from airflow.api_fastapi.app import create_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    home = tmp_path_factory.mktemp("flowlink-props")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOWLINK_HOME", str(home))
        mp.delenv("FLOWLINK_STORE_URL", raising=False)
        mp.delenv("FLOWLINK_STAGING_DIR", raising=False)
        from flowlink.store import Store
        from flowlink_airflow.api import create_app

        store = Store.open()
        deployments.add_environment(store, "prod", "cloud")
        deployments.add_environment(store, "test", "on-premise")
        tokens = {"prod": deployments.issue_token(store, "prod"), "test": deployments.issue_token(store, "test")}
        art = publish.publish(SPEC).artifact
        publish.make_live(art)
        bucket.mark_unprocessed(store, WF, "customers", RUN_ID, ["1", "2", "3"], resync=False)
        bucket.record(store, WF, "customers", RUN_ID, "load", [Outcome("1", "failed", message="boom")])
        batch = staging.run_folder(WF, RUN_ID) / "customers" / "extract" / "batch-00001.xml"
        staging.write_batch(batch, RecordWriter("id").write([{"id": "1"}]).document)
        snapshots.start_step(store, WF, RUN_ID, 1, "customers", "extract")
        snapshots.finish_step(
            store, WF, RUN_ID, "customers", "extract", status="success", count_in=1, count_out=1, files=[str(batch)]
        )
        app = create_app()
        manager = create_auth_manager()
        admin = manager.generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))
        viewer = manager.generate_jwt(SimpleAuthManagerUser(username="viewer", role="viewer"))
        client = TestClient(app, follow_redirects=False)  # a server error raises here: no 500 goes unnoticed
        world = SimpleNamespace(store=store, app=app, client=client, tokens=tokens, admin=admin, viewer=viewer)
        reset(world)
        yield world
        store.dispose()


def reset(world) -> None:
    """The state every example starts from: every token active, prod primary, enabled, 5 minutes, test enabled, a
    pending deployment of WF to prod."""
    with world.store.engine.connect() as conn:  # reading is cheap; write only what an example changed
        revoked = conn.execute(select(agent_tokens.c.id).where(agent_tokens.c.revoked_at.is_not(None))).first()
        envs = {r.name: (r.enabled, r.pending_timeout, r.is_primary) for r in conn.execute(select(environments))}
    if revoked or envs != {"prod": (True, 5, True), "test": (True, 5, False)}:
        with world.store.engine.begin() as conn:
            conn.execute(agent_tokens.update().values(revoked_at=None))
            conn.execute(environments.update().values(enabled=True, pending_timeout=5, is_primary=False))
            conn.execute(environments.update().where(environments.c.name == "prod").values(is_primary=True))
    last = deployments.last(world.store, WF)
    if last is None or last["status"] != "pending":
        last = deployments.deploy(world.store, WF)
    world.pending = last["id"]


# ------------------------------------------------------------------ the routes, read from the app


def routes(app, prefix: str) -> list[SimpleNamespace]:
    found = []
    for r in app.routes:
        if not isinstance(r, APIRoute) or not r.path.startswith(prefix):
            continue
        flat = get_flat_dependant(r.dependant)
        body = r.body_field.field_info.annotation if r.body_field is not None else None
        for method in sorted(r.methods - {"HEAD"}):
            found.append(
                SimpleNamespace(
                    method=method,
                    path=r.path,
                    query=[q.name for q in flat.query_params],
                    params=[p.name for p in flat.path_params],
                    fields=list(body.model_fields) if body is not None else [],
                )
            )
    return found


# ------------------------------------------------------------------ strategies

SAMPLES = {  # values that reach past validation, per parameter or field name
    "workflow": [WF, "crm_to_erp", "Bad-Name"],
    "name": ["prod", "test", "nowhere"],
    "environment": ["prod", "test", ""],
    "run_id": [RUN_ID, "manual__2030-01-01T00:00:00+00:00"],
    "touchpoint": ["customers", "orders", "nowhere"],
    "step": ["extract", "customers.extract", "customers.load", "downloading workflow data", "deployed"],
    "status": ["failed", "success", "done", "unprocessed", ""],
    "page": ["1", "2", "1000000", "1000001", "0"],
    "since": ["2030-01-01", "9999-12-31", "0001-01-01", "2030-01-01T10:00", "2030-01-01T10:00+14:00", "yesterday"],
    "until": ["2030-01-01", "9999-12-31", "0001-01-01", "9999-12-31T23:59", "2030-02-30"],
    "n": ["1", "2", "0", "1000001"],
    "tag": ["publish", "environment", "token", ""],
    "name_static": ["flowlink.css"],
    "token_id": ["1", "2", "3", "0"],
    "deployment_id": ["PENDING", "PENDING", "1", "2147483647", "2147483648"],
    "version": [1, 2, None, 0, 2**31],
    "ids": [["1"], ["1", "2"], [], ["404"]],
    "failed": [True, False],
    "primary": [True, False, None],
    "pending_timeout": [5, 60, 61, 4, 10**30],
    "enabled": [True, False],
    "message": [None, "", "x" * 4001, "\x00"],
}
EDGE = [
    "",
    " ",
    "..",
    ".",
    "%",
    "%00",
    "%2e%2e",
    "a/b",
    "名前",
    "\x00",
    "\u202e",
    "'; DROP TABLE feeds; --",
    "<script>",
    "x" * 300,
    "-1",
    "1e3",
    "NaN",
    "null",
    "true",
    "[]",
    "{}",
]

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(EDGE),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=10,
)
texts = st.one_of(
    st.text(max_size=60),
    st.sampled_from(EDGE),
    st.integers(-(2**70), 2**70).map(str),
    st.dates().map(str),
    st.datetimes().map(lambda d: d.isoformat()),
)


def often(common, rare):
    """`common` three times in four, else `rare`: most requests get past the first check, so the deeper code runs."""
    return st.integers(0, 3).flatmap(lambda n: common if n else rare)


def value_for(name: str):
    return often(st.sampled_from(SAMPLES.get(name, [""])), texts)


def segment(name: str):
    """A path segment: a sample, any text (URL-quoted, so it stays one segment) or an edge case."""
    samples = SAMPLES.get("name_static" if name == "name" else name, []) + SAMPLES.get(name, [])
    return often(st.sampled_from(samples or ["x"]), texts.filter(bool).map(lambda s: quote(s, safe="")))


@st.composite
def bodies(draw, fields: list[str]):
    """A JSON body: the route's fields with any values (or missing), an unknown key, or any JSON at all."""
    shape = draw(st.sampled_from(["fields", "fields", "fields", "any", "none"]))
    if shape == "any":
        return draw(json_values)
    if shape == "none":
        return None
    body = {}
    for f in fields:
        if draw(st.booleans()) or draw(st.booleans()):
            body[f] = draw(st.one_of(st.sampled_from(SAMPLES.get(f, [None])), json_values))
    if draw(st.integers(0, 5)) == 0:
        body[draw(st.text(max_size=10))] = draw(json_scalars)
    return body


header_text = st.one_of(
    st.sampled_from(
        [
            b"",
            b"Bearer",
            b"Bearer ",
            b"Basic YWRtaW46YWRtaW4=",
            b"flk_",
            b"flk_" + b"A" * 43,
            "flk_é".encode("latin-1"),
            b"x" * 8000,
        ]
    ),
    st.binary(max_size=80).map(lambda b: bytes(c for c in b if c not in b"\r\n\x00")),
)
content_types = st.one_of(
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "APPLICATION/JSON",
            "application/json;charset=latin-1",
            "text/plain",
            "application/xml",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/merge-patch+json",
            "",
        ]
    ),
    st.text(string.printable.strip(), max_size=40),
)


@st.composite
def requests(draw, route, world, agent: bool):
    """One request to the route: its path and query filled, a body, the credentials of its kind (mostly valid)."""
    path = route.path
    for p in route.params:
        value = draw(segment(p))
        path = path.replace("{" + p + "}", str(world.pending) if value == "PENDING" else value)
    query = {}
    for q in route.query:
        if draw(st.integers(0, 2)):
            query[q] = draw(value_for(q))
    if draw(st.integers(0, 4)) == 0:
        query[draw(st.text(max_size=8))] = draw(texts)
    headers: dict[str, str | bytes] = {}
    if agent:
        headers["X-Agent-Token"] = draw(
            often(st.sampled_from([world.tokens["prod"]] * 3 + [world.tokens["test"]]), header_text)
        )
    else:
        headers["Authorization"] = draw(
            often(
                st.sampled_from([f"Bearer {world.admin}"] * 4 + [f"Bearer {world.viewer}"]),
                header_text.map(lambda b: b"Bearer " + b),
            )
        )
    kwargs = {"params": query, "headers": headers}
    if route.method in ("POST", "PATCH"):
        body = draw(bodies(route.fields))
        if draw(st.integers(0, 3)) == 0:  # any Content-Type
            headers["Content-Type"] = draw(content_types)
            kwargs["content"] = json.dumps(body).encode()
        else:
            kwargs["json"] = body
    return route.method, path, kwargs


# ------------------------------------------------------------------ the property


def check(response, seen: Counter) -> None:
    """Below 500; an error is JSON with a clear detail (HTML or a login redirect for pages); never a traceback."""
    status = response.status_code
    seen[status] += 1
    assert status < 500, response.text[:500]
    assert "Traceback" not in response.text and 'File "' not in response.text
    ctype = response.headers.get("content-type", "")
    page = response.request.url.path.startswith("/ui")
    if page and status in (301, 302, 303, 307, 308):
        assert response.headers["location"]
        return
    if page:
        if status < 400 and not ctype.startswith("text/html"):
            assert ctype.split(";")[0] in ("text/css", "text/javascript", "application/xml"), ctype
            return
        assert ctype.startswith("text/html"), (status, ctype)
        if status >= 400:
            assert 'class="error-message"' in response.text
        return
    assert ctype.startswith("application/json"), (status, ctype, response.text[:200])
    body = response.json()
    if status >= 400:
        detail = body["detail"]
        if isinstance(detail, str):
            assert detail.strip(), body
        else:  # FastAPI's validation list: each names where and why
            assert isinstance(detail, list) and detail and all(e.get("msg") and "loc" in e for e in detail), body


def run_property(api, prefix: str, agent: bool, observe, what: str) -> None:
    targets = routes(api.app, prefix)
    seen: Counter = Counter()
    for route in targets:  # each route its own run: none is left to chance

        @SETTINGS
        @given(data=st.data(), route=st.just(route))
        def one(data, route):  # run at once, in this iteration
            reset(api)
            method, path, kwargs = data.draw(requests(route, api, agent), label="request")
            check(api.client.request(method, path, **kwargs), seen)

        one()
    total = sum(seen.values())
    assert targets and total >= len(targets) * 10
    observe(
        f"{total} generated requests over the {len(targets)} {what} routes, statuses seen: {sorted(seen)}, "
        f"none >= 500, every error a clear detail"
    )


@pytest.mark.reliability("Bad input", "API inputs (hypothesis)")
def test_agent_endpoints_answer_any_input_clearly(api, observe):
    """Hypothesis sends requests to every agent route (/agent/v1) with generated path parameters (deployment ids as
    any text), step-report bodies of any shape and value, any Content-Type and X-Agent-Token values (valid, another
    environment's, random bytes): every answer is below 500, JSON, and an error carries a clear detail."""
    run_property(api, "/agent/", True, observe, "agent")


@pytest.mark.reliability("Bad input", "API inputs (hypothesis)")
def test_user_endpoints_answer_any_input_clearly(api, observe):
    """Hypothesis sends requests to every user route (/api/v1) as admin, viewer or with a broken Authorization header:
    generated workflow, environment, run and token path parameters, query parameters, JSON bodies of every POST and
    PATCH (their fields with any JSON value, unknown keys, any JSON at all) and any Content-Type: every answer is below
    500, JSON, and an error carries a clear detail."""
    run_property(api, "/api/", False, observe, "user API")


@pytest.mark.reliability("Bad input", "API inputs (hypothesis)")
def test_pages_answer_any_input_clearly(api, observe):
    """Hypothesis opens every page (/ui) with generated query parameters (workflow, touchpoint, status, dates such as
    9999-12-31 or 0001-01-01, pages, run ids, steps, batch numbers, unknown ones) and static file names: every answer
    is below 500 and an HTML page (an error page with the message), a login redirect or the file."""
    run_property(api, "/ui", False, observe, "page")


@pytest.mark.reliability("Bad input", "API inputs (hypothesis)")
def test_raw_bodies_are_refused_clearly(api, observe):
    """Hypothesis posts raw bytes (random, truncated or non-UTF-8 JSON, deeply nested arrays) with any Content-Type to
    every POST and PATCH route, logged in and with a valid agent token: every answer is below 500 and JSON with a clear
    detail (415 for a user route without application/json, 400 or 422 for a body that is not the expected JSON)."""
    targets = [r for prefix in ("/agent/", "/api/") for r in routes(api.app, prefix) if r.method in ("POST", "PATCH")]
    seen: Counter = Counter()
    raw = st.one_of(
        st.binary(max_size=200),
        json_values.map(lambda v: json.dumps(v).encode()[:-1]),
        json_values.map(lambda v: json.dumps(v, ensure_ascii=False).encode("utf-16")),
        st.integers(1, 5000).map(lambda n: b"[" * n + b"]" * n),
        st.sampled_from(
            [b"", b"null", b"{", b"\xff", b"NaN", b"-Infinity", b'{"version": NaN, "pending_timeout": Infinity}']
        ),
    )

    for route in targets:

        @SETTINGS
        @given(data=st.data(), route=st.just(route))
        def one(data, route):  # run at once, in this iteration
            reset(api)
            path = route.path
            for p in route.params:
                value = data.draw(st.sampled_from(SAMPLES.get(p, ["1"])))
                path = path.replace("{" + p + "}", str(api.pending) if value == "PENDING" else value)
            headers = {
                "Content-Type": data.draw(content_types),
                "X-Agent-Token": api.tokens["prod"],
                "Authorization": f"Bearer {api.admin}",
            }
            check(api.client.request(route.method, path, content=data.draw(raw), headers=headers), seen)

        one()
    total = sum(seen.values())
    observe(f"{total} raw bodies to the {len(targets)} POST/PATCH routes, statuses seen: {sorted(seen)}, none >= 500")
