"""docs/reference.md from the JSON Schema of workflow specs (``flowlink schema``).

    .venv/bin/python -m flowlink.docs_reference > docs/reference.md

One section per mapping of the spec, named by its YAML path (``touchpoints[].extract``), with a row per key:
type, required, default, allowed values, description. tests/test_docs.py checks the file matches this output.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

Schema = dict[str, Any]

HEADER = """# Workflow spec reference

Generated from the JSON Schema that `flowlink schema` prints (`.venv/bin/python -m flowlink.docs_reference >
docs/reference.md`); do not edit by hand. The [user guide](user-guide.md) explains how the keys work together.
Sections are named by YAML path: `touchpoints[].extract` is the `extract` mapping of each item of `touchpoints`.
"""


def _ref_name(node: Schema) -> str | None:
    ref = node.get("$ref")
    return ref.rsplit("/", 1)[-1] if isinstance(ref, str) else None


def _variants(node: Schema) -> tuple[list[Schema], bool]:
    """The non-null alternatives of a property, and whether null is allowed."""
    options = node.get("anyOf", [node])
    real = [o for o in options if o.get("type") != "null"]
    return real, len(real) < len(options)


def _type(node: Schema, path: str) -> str:
    """The type of the value at ``path``; a mapping names the section that lists its keys."""
    if _ref_name(node):
        return f"mapping (`{path}`)"
    kind = node.get("type")
    if kind == "array":
        return "list of " + _type(node.get("items", {}), path + "[]")
    if kind == "object":
        values = node.get("additionalProperties")
        return "mapping of string to " + _type(values, path) if isinstance(values, dict) else "mapping"
    return str(kind or "any")


def _allowed(node: Schema) -> list[str]:
    """Enum values and the constraints of one alternative."""
    parts = []
    if "enum" in node:
        parts.append(", ".join(f"`{v}`" for v in node["enum"]))
    if "minimum" in node and "maximum" in node:
        parts.append(f"{node['minimum']} to {node['maximum']}")
    elif "minimum" in node:
        parts.append(f"at least {node['minimum']}")
    elif "maximum" in node:
        parts.append(f"at most {node['maximum']}")
    if "minItems" in node:
        parts.append(f"at least {node['minItems']} item" + ("s" if node["minItems"] != 1 else ""))
    if "minLength" in node:
        parts.append(f"at least {node['minLength']} character" + ("s" if node["minLength"] != 1 else ""))
    if "pattern" in node:
        parts.append(f"matches `{node['pattern']}`")
    if "format" in node:
        parts.append(f"format {node['format']}")
    items = node.get("items")
    if isinstance(items, dict) and not _ref_name(items):
        parts.extend(f"each item: {p}" for p in _allowed(items))
    return parts


def _default(prop: Schema, required: bool) -> str:
    if required or "default" not in prop:
        return ""
    value = prop["default"]
    if value is None:
        return "none"
    if isinstance(value, dict):
        return "its keys' defaults"
    if value in ("", []):
        return "`" + json.dumps(value) + "`"
    return f"`{value}`" if isinstance(value, str) else f"`{json.dumps(value)}`"


def _text(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().replace("|", "\\|")


def _row(key: str, prop: Schema, required: bool, base: str) -> str:
    real, nullable = _variants(prop)
    path = f"{base}.{key}" if base else key
    types = " or ".join(_type(v, path) for v in real)
    allowed = [p for v in real for p in _allowed(v)]
    descriptions = [prop.get("description", "")] + [v.get("description", "") for v in real]
    description = "; ".join(dict.fromkeys(d for d in descriptions if d))
    cells = [
        f"`{key}`",
        types + (" or null" if nullable and required else ""),
        "yes" if required else "",
        _default(prop, required),
        "; ".join(allowed),
        description,
    ]
    return "| " + " | ".join(_text(c) for c in cells) + " |"


def _object_refs(node: Schema) -> list[tuple[str, str]]:
    """(definition name, path suffix) of the mappings a property holds: `.key` or `.key[]`."""
    found = []
    for variant in _variants(node)[0]:
        if _ref_name(variant):
            found.append((_ref_name(variant) or "", ""))
        elif variant.get("type") == "array" and _ref_name(variant.get("items", {})):
            found.append((_ref_name(variant["items"]) or "", "[]"))
    return found


def _sections(schema: Schema) -> list[tuple[str, list[str], Schema]]:
    """The mappings depth first, in the order of their keys: (definition name or '', YAML paths, schema).
    A definition used at several paths (source and target) is one section naming them all."""
    defs = schema.get("$defs", {})
    sections: list[tuple[str, list[str], Schema]] = [("", [""], schema)]
    seen: dict[str, list[str]] = {}

    def visit(base: str, node: Schema) -> None:
        for key, prop in node.get("properties", {}).items():
            for name, suffix in _object_refs(prop):
                path = f"{base}.{key}{suffix}" if base else f"{key}{suffix}"
                if name in seen:
                    seen[name].append(path)
                    continue
                seen[name] = [path]
                sections.append((name, seen[name], defs[name]))
                visit(path, defs[name])

    visit("", schema)
    return sections


def render(schema: Schema) -> str:
    sections = _sections(schema)
    lines = [HEADER]
    if all(node.get("additionalProperties") is False for _, _, node in sections):
        lines.append("Keys not listed are refused, in every mapping.\n")
    for name, paths, node in sections:
        title = ", ".join(f"`{p}`" for p in paths) if name else "Top level"
        lines.append(f"## {title}\n")
        if node.get("description"):
            lines.append(_text(node["description"]) + "\n")
        lines.append("| key | type | required | default | allowed | description |")
        lines.append("|---|---|---|---|---|---|")
        required = set(node.get("required", []))
        for key, prop in node.get("properties", {}).items():
            lines.append(_row(key, prop, key in required, paths[0]))
        lines.append("")
    return "\n".join(lines)


def render_metrics(metrics: Any) -> str:
    """The section on the metrics the operators send (flowlink_airflow.metrics.METRICS)."""
    lines = [
        "## Metrics\n",
        "What each extract, transform and load task sends through Airflow's metrics when its step ends (see the "
        "[user guide](user-guide.md#metrics)), from the step's row in the run's snapshot. Every metric has the tags "
        "`workflow`, `touchpoint` and `step`; while `[metrics] legacy_names_on` is on (Airflow's default) it is also "
        "sent under its per-name form, for StatsD without tags. Airflow puts its prefix before each name (`statsd_prefix`, "
        "`otel_prefix`; `airflow` by default: `airflow.flowlink.records.extracted`).\n",
        "| name | type | unit | sent by | per-name form | description |",
        "|---|---|---|---|---|---|",
    ]
    for m in metrics:
        form = ".".join([m.name, *(f"<{tag}>" for tag in m.in_name)])
        cells = [f"`{m.name}`", m.kind, m.unit, ", ".join(m.steps), f"`{form}`", m.description]
        lines.append("| " + " | ".join(_text(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    from flowlink.spec import json_schema
    from flowlink_airflow.metrics import METRICS  # names only: that module imports Airflow when it sends

    sys.stdout.write(render(json_schema()) + "\n" + render_metrics(METRICS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
