"""Publishing: a validated spec and its stylesheets compiled into ONE versioned, checksummed, immutable file.

    published/<workflow>/<workflow>-v0003.json   every version, read-only
    live/<environment>/<workflow>.json           the version Airflow runs, installed by the environment's agent
                                                 when a deployment succeeds (its tasks go to that environment's queue)
    live/<workflow>.json                         a version put live without an agent (make_live; the default queue)

Publishing writes only published/; deploying (flowlink.deployments, carried out by an agent) puts a version live.

The file holds {"format", "workflow", "version", "published_at", "sha256", "content": {"spec", "stylesheets"}} (and
"after" in the content of a sync: after workflow: the asset URIs it waits for, flowlink.assets);
sha256 is taken over the canonical JSON of "content", so a new version is written only when the content changed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowlink import settings
from flowlink.errors import FlowlinkError
from flowlink.files import create_new, write_atomic
from flowlink.spec import SpecError, Workflow, load_spec, parse_text

FORMAT = 1
VERSION_FILE = re.compile(r"^(?P<name>[a-z][a-z0-9_]*)-v(?P<version>\d{4,})\.json$")


class ArtifactError(FlowlinkError):
    """A published or live file that cannot be used; the message is "<path>: <reason>"."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self):
        return type(self), (self.path, self.reason)


@dataclass(frozen=True)
class Artifact:
    path: Path
    workflow: str
    version: int
    sha256: str
    published_at: str
    spec: dict[str, Any]
    stylesheets: dict[str, str]
    after: tuple[str, ...] = ()  # sync: after: the asset URIs it waits for, resolved when published

    def workflow_model(self) -> Workflow:
        return Workflow.model_validate(self.spec)


@dataclass(frozen=True)
class PublishResult:
    artifact: Artifact
    created: bool  # False: the content equals the latest version, nothing was written


def compile_content(spec_path: str | Path) -> dict[str, Any]:
    """Validate the spec and compile every touchpoint's stylesheet (raises SpecError / FlowlinkError)."""
    spec_path = Path(spec_path)
    from flowlink.mapping import stylesheet_for  # lxml: not needed to read a published file (DAG parsing)

    wf = load_spec(spec_path)
    stylesheets = {tp.name: stylesheet_for(tp, spec_path.parent) for tp in wf.touchpoints}
    return _content(wf, stylesheets, str(spec_path))


def _content(wf: Workflow, stylesheets: dict[str, str], file: str) -> dict[str, Any]:
    """A published file's content: the spec, its stylesheets and (sync: after) the asset URIs it waits for."""
    from flowlink.assets import resolve_after

    content: dict[str, Any] = {"spec": wf.model_dump(mode="json"), "stylesheets": stylesheets}
    if after := resolve_after(wf, file):
        content["after"] = after
    return content


DRAFT = "draft"  # the file name a draft's problems are reported under


def draft_content(text: str, base: Artifact | None = None) -> dict[str, Any]:
    """A spec draft's YAML text validated and compiled as compile_content compiles a file (raises SpecError).

    A draft has no folder: a touchpoint with its own ``xslt`` file takes the stylesheet the same touchpoint has in
    ``base`` (the published version the draft started from) when it names the same file, else it is a problem."""
    from flowlink.mapping import generate_xslt

    wf = parse_text(text, DRAFT)
    kept = {tp["name"]: tp.get("xslt") for tp in base.spec["touchpoints"]} if base else {}
    stylesheets, problems = {}, []
    for i, tp in enumerate(wf.touchpoints):
        if tp.mapping is not None:
            stylesheets[tp.name] = generate_xslt(tp)
        elif base is not None and kept.get(tp.name) == tp.xslt and tp.name in base.stylesheets:
            stylesheets[tp.name] = base.stylesheets[tp.name]
        else:
            problems.append(
                (
                    f"touchpoints[{i}].xslt",
                    f"a draft cannot read the file {tp.xslt}: give the touchpoint a mapping, or publish the spec "
                    "and its XSLT file with `flowlink publish`",
                )
            )
    if problems:
        raise SpecError(DRAFT, problems)
    return _content(wf, stylesheets, DRAFT)


def _canonical(content: dict[str, Any]) -> str:
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def checksum(content: dict[str, Any]) -> str:
    return hashlib.sha256(_canonical(content).encode()).hexdigest()


_CONTENT = b'\n "content": '  # the content's key as _file_text writes it: no raw newline is inside the content


def _file_text(doc: dict[str, Any]) -> str:
    """A published file: the header indented, the content last and on one line, in the bytes its sha256 is of, so
    that a reader verifies the bytes it read (one sha256) instead of encoding the content again."""
    head = json.dumps({k: v for k, v in doc.items() if k != "content"}, indent=1, ensure_ascii=False)
    return f'{head[:-2]},\n "content": {_canonical(doc["content"])}\n}}'


def _verified(raw: bytes, content: dict[str, Any], sha: str) -> bool:
    """The checksum holds: the content's bytes as _file_text wrote them hash to it, else (a file written otherwise,
    e.g. by an older Flowlink or reformatted) the content encoded again does."""
    start, end = raw.rfind(_CONTENT), raw.rfind(b"\n}")
    if 0 < start < end and hashlib.sha256(raw[start + len(_CONTENT) : end]).hexdigest() == sha:
        return True
    return checksum(content) == sha


def read_artifact(path: str | Path, verify: bool = True) -> Artifact:
    """Read a published or live file and verify its format and checksum (``verify=False``: not the checksum, for a
    file verified before, unchanged since)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        doc = json.loads(raw)
    except OSError as exc:
        raise ArtifactError(path, f"cannot read: {exc.strerror}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ArtifactError(path, f"not a Flowlink file (invalid JSON: {exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ArtifactError(path, f"not a Flowlink file of format {FORMAT}")
    try:
        content, workflow, version, sha = doc["content"], doc["workflow"], int(doc["version"]), doc["sha256"]
        spec, stylesheets, after = content["spec"], content["stylesheets"], tuple(content.get("after", ()))
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(path, f"incomplete Flowlink file (missing or bad {exc})") from None
    if verify and not _verified(raw, content, sha):
        raise ArtifactError(path, "checksum mismatch: the file was changed or damaged after publishing")
    if not isinstance(spec, dict) or spec.get("name") != workflow:
        raise ArtifactError(path, f"the spec inside is not workflow {workflow!r}")
    return Artifact(path, workflow, version, sha, doc.get("published_at", ""), spec, stylesheets, after)


def versions(workflow: str) -> list[Path]:
    """Published files of a workflow, oldest first."""
    folder = settings.published_dir() / workflow
    found = []
    for p in folder.glob(f"{workflow}-v*.json"):
        m = VERSION_FILE.match(p.name)
        if m and m["name"] == workflow:
            found.append((int(m["version"]), p))
    return [p for _, p in sorted(found)]


def version_path(workflow: str, version: int) -> Path:
    """The published file of one version, unread (an agent verifies what it downloads itself)."""
    for p in versions(workflow):
        m = VERSION_FILE.match(p.name)
        if m and int(m["version"]) == version:
            return p
    raise FlowlinkError(f"workflow {workflow!r} has no published version {version}")


def published(workflow: str, version: int | None = None) -> Artifact:
    """The latest (or a given) published version of a workflow."""
    files = versions(workflow)
    if not files:
        raise FlowlinkError(f"workflow {workflow!r} has not been published (flowlink publish FILE)")
    return read_artifact(files[-1] if version is None else version_path(workflow, version))


def _write_new_version(folder: Path, workflow: str, doc: dict[str, Any]) -> Path:
    """Write the next version file, read-only; a version file is never replaced: of two publishes racing for one
    number, the second takes the next number."""
    while True:
        try:
            return create_new(folder / f"{workflow}-v{doc['version']:04d}.json", _file_text(doc))
        except FileExistsError:
            doc["version"] += 1


def publish(spec_path: str | Path) -> PublishResult:
    """Publish a spec: a new immutable version if its compiled content changed, else the latest version."""
    return publish_content(compile_content(spec_path))


def publish_content(content: dict[str, Any]) -> PublishResult:
    """Publish compiled content (compile_content, draft_content), as :func:`publish` does."""
    workflow = content["spec"]["name"]
    sha = checksum(content)
    files = versions(workflow)
    if files:
        latest = read_artifact(files[-1])
        if latest.sha256 == sha:
            return PublishResult(latest, created=False)
        next_version = latest.version + 1
    else:
        next_version = 1
    doc = {
        "format": FORMAT,
        "workflow": workflow,
        "version": next_version,
        "published_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "sha256": sha,
        "content": content,
    }
    path = _write_new_version(settings.published_dir() / workflow, workflow, doc)
    return PublishResult(read_artifact(path), created=True)


def make_live(artifact: Artifact) -> Path:
    """Put a published version live without a deployment, as live/<workflow>.json (no environment: its tasks go to
    the default queue); the DAG factory picks it up at its next parse. Deploying installs live/<environment>/."""
    return write_atomic(settings.live_dir() / f"{artifact.workflow}.json", artifact.path.read_bytes())


def live(workflow: str) -> Artifact | None:
    """The live version of a workflow: live/<workflow>.json, else the one an agent installed in
    live/<environment>/<workflow>.json."""
    folder = settings.live_dir()
    paths = [folder / f"{workflow}.json", *sorted(folder.glob(f"*/{workflow}.json"))]
    path = next((p for p in paths if p.exists()), None)
    return read_artifact(path) if path else None
