"""Workflows as Airflow assets: the target each touchpoint's load writes, named by a URI, and what a ``sync: after``
workflow waits for, resolved to URIs when it is published (parsing reads no other workflow).

    flowlink://<target connection>/<table | endpoint | file>     e.g. flowlink://demo_shop/customers

Nothing here imports Airflow: Airflow's Asset normalizes a URI the same way (``normalize``).
"""

from __future__ import annotations

import functools
import urllib.parse
from typing import Any

from flowlink.spec import SpecError, Workflow

SCHEME = "flowlink"


def normalize(uri: str) -> str:
    """A URI as Airflow's Asset keeps it: scheme in lower case, no trailing slash, query sorted, no fragment (an
    x-... scheme as it is)."""
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme.lower().startswith("x-"):
        return uri
    query = urllib.parse.urlencode(sorted(urllib.parse.parse_qsl(parts.query))) if parts.query else ""
    return urllib.parse.urlunsplit((parts.scheme.lower(), parts.netloc, parts.path.rstrip("/") or "/", query, ""))


def target_uri(connection: str, load: dict[str, Any]) -> str:
    """The asset a touchpoint's load writes: its target connection (the application) and its table, endpoint or
    file."""
    return _uri(connection, next(str(load[k]) for k in ("table", "endpoint", "file") if load.get(k)))


@functools.lru_cache(maxsize=4096)  # parsing names every touchpoint's target; few differ
def _uri(connection: str, where: str) -> str:
    path = urllib.parse.quote(where.strip("/"), safe="/:@!$&'()*+,;=-._~?")
    return normalize(f"{SCHEME}://{connection}/{path}")


def touchpoint_uris(spec: dict[str, Any]) -> dict[str, str]:
    """Each touchpoint's load target as an asset URI, by touchpoint name (a published spec, as JSON)."""
    connection = spec["target"]["connection"]
    return {tp["name"]: target_uri(connection, tp["load"]) for tp in spec["touchpoints"]}


def _latest_specs() -> dict[str, dict[str, Any]]:
    """The spec of every published workflow's latest version, by name (files that cannot be read are left out:
    publishing reports them where they are used)."""
    from flowlink import publish, settings

    found = {}
    for folder in sorted(p for p in settings.published_dir().glob("*") if p.is_dir()):
        files = publish.versions(folder.name)
        if files:
            try:
                art = publish.read_artifact(files[-1])
            except publish.ArtifactError:
                continue
            found[art.workflow] = {"spec": art.spec, "after": list(art.after)}
    return found


def resolve_after(wf: Workflow, file: str) -> list[str]:
    """The asset URIs a ``sync: after`` workflow waits for, in the order of ``schedule.after`` ([] for any other
    schedule). A workflow or touchpoint that is not published, or a cycle of workflows each after the next, is a
    SpecError naming it at its YAML path."""
    after = wf.schedule.after if wf.schedule.sync == "after" else None
    if not after:
        return []
    published = _latest_specs()
    mine = touchpoint_uris(wf.model_dump(mode="json"))
    uris, problems = [], []
    for i, item in enumerate(after):
        where = f"schedule.after[{i}]"
        if item.asset is not None:
            uris.append(normalize(item.asset))
            continue
        assert item.workflow is not None and item.touchpoint is not None  # After._one_kind
        if item.workflow == wf.name:
            targets = mine
        elif item.workflow in published:
            targets = touchpoint_uris(published[item.workflow]["spec"])
        else:
            problems.append((f"{where}.workflow", f"unknown workflow {item.workflow!r}: publish it first"))
            continue
        if item.touchpoint not in targets:
            problems.append(
                (
                    f"{where}.touchpoint",
                    f"workflow {item.workflow!r} has no touchpoint {item.touchpoint!r} "
                    f"(its touchpoints: {', '.join(targets)})",
                )
            )
            continue
        uris.append(targets[item.touchpoint])
    if not problems and (cycle := _cycle(wf.name, mine, uris, published)):
        problems.append(("schedule.after", "workflows scheduled after each other make a cycle: " + " -> ".join(cycle)))
    if problems:
        raise SpecError(file, problems)
    return uris


def _cycle(name: str, mine: dict[str, str], uris: list[str], published: dict[str, dict[str, Any]]) -> list[str]:
    """A path name -> ... -> name of workflows, each waiting for an asset the next one writes ([] if none)."""
    writes: dict[str, set[str]] = {}  # asset URI -> the workflows whose loads write it
    waits: dict[str, list[str]] = {name: uris}
    for other, doc in published.items():
        if other != name:
            waits[other] = doc["after"]
            for uri in touchpoint_uris(doc["spec"]).values():
                writes.setdefault(uri, set()).add(other)
    for uri in mine.values():
        writes.setdefault(uri, set()).add(name)
    path, seen = [name], set()

    def visit(workflow: str) -> bool:
        for uri in waits.get(workflow, ()):
            for writer in sorted(writes.get(uri, ())):
                if writer == name:
                    path.append(name)
                    return True
                if writer not in seen:
                    seen.add(writer)
                    path.append(writer)
                    if visit(writer):
                        return True
                    path.pop()
        return False

    return path if visit(name) else []
