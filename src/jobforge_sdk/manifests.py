"""Manifests in Python: build the parts of a run's manifest, hash it canonically, and
render it as the Markdown report apps show to people."""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from jobforge_sdk.models.manifests import ArtifactManifest, ArtifactOutput, ManifestRow, RunMetrics

__all__ = [
    "calculate_run_metrics",
    "canonical_json",
    "create_artifact_output",
    "generate_env_fingerprint",
    "generate_manifest_report",
    "manifest_digest",
]

DEFAULT_PACKAGES = ("jobforge-sdk", "psycopg", "pydantic", "supabase", "httpx", "pyjwt")


def generate_env_fingerprint(packages: Iterable[str] = DEFAULT_PACKAGES) -> dict[str, Any]:
    """Where a run happened: interpreter, OS, architecture and package versions.

    Deliberately nothing that identifies a host or leaks configuration: no hostname, no
    environment variables, no paths.
    """
    versions: dict[str, str | None] = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "os": platform.system(),
        "os_release": platform.release(),
        "arch": platform.machine(),
        "packages": versions,
    }


def calculate_run_metrics(
    started_at: datetime, finished_at: datetime | None = None, **extra: Any
) -> RunMetrics:
    """Metrics of a run from its start and end (end defaults to now)."""
    end = finished_at or datetime.now(UTC)
    duration = (end - started_at).total_seconds() * 1000
    if duration < 0:
        raise ValueError("finished_at: must not be before started_at")
    return RunMetrics(started_at=started_at, finished_at=end, duration_ms=duration, **extra)


def create_artifact_output(
    name: str,
    type: str,
    ref: str,
    *,
    data: bytes | None = None,
    path: str | Path | None = None,
    mime_type: str | None = None,
) -> ArtifactOutput:
    """Describe an output; with ``data`` or ``path`` its size and sha256 are computed."""
    size: int | None = None
    checksum: str | None = None
    if data is not None and path is not None:
        raise ValueError("give data or path, not both")
    if path is not None:
        digest = hashlib.sha256()
        size = 0
        with Path(path).open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
                size += len(chunk)
        checksum = f"sha256:{digest.hexdigest()}"
    elif data is not None:
        size = len(data)
        checksum = f"sha256:{hashlib.sha256(data).hexdigest()}"
    return ArtifactOutput(
        name=name, type=type, ref=ref, size=size, checksum=checksum, mime_type=mime_type
    )


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 text, datetimes in UTC, null fields dropped: the
    same bytes on any machine for the same content."""
    return json.dumps(_canonical(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def manifest_digest(manifest: ArtifactManifest | ManifestRow | Mapping[str, Any]) -> str:
    """``sha256:<hex>`` of the manifest's content (ids and timestamps of the row excluded),
    equal on every machine for the same content."""
    if isinstance(manifest, ArtifactManifest | ManifestRow):
        data = manifest.model_dump(mode="json")
    else:
        data = dict(manifest)
    content = {k: v for k, v in data.items() if k not in _ROW_ONLY}
    return "sha256:" + hashlib.sha256(canonical_json(content).encode()).hexdigest()


_ROW_ONLY = {"id", "run_id", "tenant_id", "project_id", "created_at", "updated_at"}


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, Mapping):
        # An absent field and a null one mean the same: neither changes the digest.
        return {str(k): _canonical(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, str):
        return _normalize_timestamp(value)
    return value


def _normalize_timestamp(text: str) -> str:
    # Timestamps that went through JSON keep their offset; one instant, one spelling.
    if len(text) >= 20 and text[4] == "-" and text[10] == "T":
        try:
            return _canonical(datetime.fromisoformat(text))  # type: ignore[no-any-return]
        except ValueError:
            return text
    return text


def human_bytes(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - loop always returns


def human_duration(ms: float | None) -> str:
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms:.0f} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)} min {rest:.0f} s"


def generate_manifest_report(
    manifest: ArtifactManifest | ManifestRow, *, title: str | None = None
) -> str:
    """The manifest as a Markdown report: status, outputs, metrics, environment, error."""
    heading = title or f"Run report: {manifest.job_type or 'job'}"
    lines = [f"# {heading}", ""]
    if isinstance(manifest, ManifestRow):
        lines.append(f"- Run: `{manifest.run_id}`")
    lines += [
        f"- Status: **{manifest.status.value}**",
        f"- Manifest version: {manifest.manifest_version}",
        f"- Digest: `{manifest_digest(manifest)}`",
        "",
        "## Outputs",
        "",
    ]
    if manifest.outputs:
        lines += ["| name | type | size | checksum | ref |", "|---|---|---|---|---|"]
        for out in manifest.outputs:
            checksum = f"`{out.checksum[:19]}…`" if out.checksum else "-"
            lines.append(
                f"| {_cell(out.name)} | {_cell(out.type)} | {human_bytes(out.size)} | "
                f"{checksum} | {_cell(out.ref or '-')} |"
            )
    else:
        lines.append("_No outputs._")
    metrics = manifest.metrics
    lines += ["", "## Metrics", "", f"- Duration: {human_duration(metrics.duration_ms)}"]
    if metrics.started_at is not None:
        lines.append(f"- Started: {_canonical(metrics.started_at)}")
    if metrics.finished_at is not None:
        lines.append(f"- Finished: {_canonical(metrics.finished_at)}")
    if metrics.attempt is not None:
        lines.append(f"- Attempt: {metrics.attempt}")
    if metrics.cpu_time_ms is not None:
        lines.append(f"- CPU time: {human_duration(metrics.cpu_time_ms)}")
    if metrics.peak_memory_bytes is not None:
        lines.append(f"- Peak memory: {human_bytes(metrics.peak_memory_bytes)}")
    for key, value in sorted((metrics.model_extra or {}).items()):
        lines.append(f"- {key}: {value}")
    lines += ["", "## Environment", ""]
    env = manifest.env_fingerprint
    for key in ("python", "implementation", "os", "os_release", "arch"):
        if key in env:
            lines.append(f"- {key}: {env[key]}")
    tools = {**manifest.tool_versions}
    packages = env.get("packages")
    if isinstance(packages, dict):
        tools.update({k: str(v) for k, v in packages.items() if v is not None})
    if tools:
        lines += ["", "| tool | version |", "|---|---|"]
        lines += [f"| {_cell(k)} | {_cell(v)} |" for k, v in sorted(tools.items())]
    if manifest.error is not None:
        lines += ["", "## Error", "", "```", json.dumps(manifest.error, indent=2), "```"]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
