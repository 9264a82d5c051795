"""Property-based tests of spec validation: any input is either a valid workflow or a SpecError naming where."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from flowlink.mapping import generate_xslt
from flowlink.spec import SpecError, Workflow, load_spec, parse_spec

EXAMPLE = yaml.safe_load((Path(__file__).resolve().parent.parent / "examples" / "erp_to_shop.yaml").read_text())
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.sampled_from(["", "0", "-1", "../x", "a b", "concat(", "//*", "' or '1", "\x00", "名前", "x" * 300, "Europe"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12,
)


def _paths(node, prefix=()):
    """Every path into the example spec: the places a user could get wrong."""
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


PATHS = [p for p in _paths(EXAMPLE) if p]


def _check(outcome: Workflow | SpecError, observed: dict) -> None:
    if isinstance(outcome, Workflow):
        observed["valid"] += 1
        for tp in outcome.touchpoints:  # a valid spec always compiles
            if tp.mapping:
                generate_xslt(tp)
        return
    observed["refused"] += 1
    assert outcome.problems, "a SpecError names at least one problem"
    for _path, reason in outcome.problems:
        assert reason and "Traceback" not in reason
    assert str(outcome).startswith("<spec>: ")


def _outcome(data) -> Workflow | SpecError:
    try:
        return parse_spec(data)
    except SpecError as exc:
        return exc


@pytest.fixture(scope="module")
def tally():
    return {"valid": 0, "refused": 0}


@SETTINGS
@given(path=st.sampled_from(PATHS), value=values, action=st.sampled_from(["replace", "delete", "add"]))
@example(path=("schedule", "timezone"), value="x" * 300, action="replace")  # longer than a file name may be
@example(path=("schedule", "timezone"), value="Europe", action="replace")  # a folder of zone files
def test_a_changed_spec_is_valid_or_refused_with_its_place(path, value, action, tally):
    """Hypothesis changes one place of the example spec (replace it with any JSON value, delete it, or add an unknown
    key beside it) and validates: the result is a workflow that compiles to XSLT, or a SpecError naming file, YAML
    path and reason; never another exception."""
    data = copy.deepcopy(EXAMPLE)
    *parents, last = path
    node = data
    for key in parents:
        node = node[key]
    if action == "replace":
        node[last] = value
    elif action == "delete":
        del node[last]
    elif isinstance(node, dict):
        node[f"unknown_{last}"] = value
    outcome = _outcome(data)
    if action == "add" and isinstance(node, dict) and "lookup" not in parents:  # lookup keys are the user's values
        assert isinstance(outcome, SpecError), "an unknown key is refused"
    _check(outcome, tally)


@SETTINGS
@given(data=values)
def test_any_json_value_is_valid_or_refused(data, tally):
    """Any JSON-like value as a whole spec is refused with a SpecError (or, by chance, valid)."""
    _check(_outcome(data), tally)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.one_of(
        st.text(max_size=200),
        st.sampled_from(
            [
                "a: 1\na: 2\n",
                "- [\n",
                "name: x\n\tbad: tab\n",
                "!!python/object:os.system {}\n",
                "&a [*a]\n",
                "\ufeffname: x\n",
            ]
        ),
    )
)
def test_any_file_content_is_valid_or_refused_naming_the_file(text, tmp_path):
    """Any text as a spec file: load_spec gives a workflow or a SpecError naming that file."""
    path = tmp_path / "spec.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_spec(path)
    except SpecError as exc:
        assert str(exc).startswith(f"{path}: ")


@pytest.mark.reliability("Bad input", "Workflow specs (hypothesis)")
def test_the_properties_saw_both_outcomes(tally, observe):
    """Hypothesis changed one place of the example spec at a time (any JSON value, deleted, unknown key added), gave
    whole random values and random file texts: each is a workflow that compiles to XSLT, or a SpecError naming file,
    YAML path and reason.

    Runs after the property tests of this module and checks both outcomes occurred."""
    observe(
        f"{tally['valid'] + tally['refused']} generated specs: {tally['valid']} valid and compiled, "
        f"{tally['refused']} refused with file, YAML path and reason; no other exception"
    )
    assert tally["valid"] > 0 and tally["refused"] > 0
