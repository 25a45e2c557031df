from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from jobforge_sdk import (
    ArtifactManifest,
    calculate_run_metrics,
    create_artifact_output,
    generate_env_fingerprint,
    generate_manifest_report,
    manifest_digest,
)
from jobforge_sdk.manifests import canonical_json, human_bytes, human_duration


def _manifest(**overrides: object) -> ArtifactManifest:
    start = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    values: dict[str, object] = {
        "job_type": "autopilot.ops.scan",
        "outputs": [
            create_artifact_output("report", "markdown", "s3://b/r.md", data=b"# hi\n"),
            create_artifact_output("findings", "json", "s3://b/f.json", data=b"x" * 5000),
        ],
        "metrics": calculate_run_metrics(start, start + timedelta(seconds=2.5), attempt=1),
        "env_fingerprint": {"python": "3.11.7", "os": "Linux", "arch": "x86_64"},
        "tool_versions": {"scanner": "1.2.3"},
        "status": "complete",
    }
    values.update(overrides)
    return ArtifactManifest.model_validate(values)


def test_artifact_output_checksums_data_and_files(tmp_path: Path) -> None:
    out = create_artifact_output("a", "text", "ref", data=b"hello", mime_type="text/plain")
    assert out.size == 5
    assert out.checksum == "sha256:" + hashlib.sha256(b"hello").hexdigest()
    path = tmp_path / "f.bin"
    path.write_bytes(b"\x00" * 3_000_000)
    from_file = create_artifact_output("f", "bin", "ref", path=path)
    assert from_file.size == 3_000_000
    assert from_file.checksum == "sha256:" + hashlib.sha256(b"\x00" * 3_000_000).hexdigest()


def test_run_metrics_measure_duration() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    metrics = calculate_run_metrics(start, start + timedelta(milliseconds=1234), queue_ms=7)
    assert metrics.duration_ms == pytest.approx(1234)
    assert "- queue_ms: 7" in generate_manifest_report(_manifest(metrics=metrics))
    with pytest.raises(ValueError, match="finished_at"):
        calculate_run_metrics(start, start - timedelta(seconds=1))


def test_digest_is_canonical_across_key_order_and_offsets() -> None:
    manifest = _manifest()
    as_dict = json.loads(manifest.model_dump_json())
    shuffled = dict(reversed(list(as_dict.items())))
    assert manifest_digest(manifest) == manifest_digest(shuffled)
    # The same instant written with another UTC offset is the same content.
    start = datetime(2026, 11, 29, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    other = _manifest(
        metrics=calculate_run_metrics(start, start + timedelta(seconds=2.5), attempt=1)
    )
    assert manifest_digest(other) == manifest_digest(manifest)
    assert manifest_digest(_manifest(status="failed")) != manifest_digest(manifest)
    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'


def test_digest_is_pinned() -> None:
    """A fixed manifest has a fixed digest on every machine (guards canonical_json)."""
    manifest = ArtifactManifest(job_type="t", tool_versions={"x": "1"}, status="complete")
    # Build the expected canonical text explicitly rather than trusting the code under test.
    text = (
        '{"env_fingerprint":{},"job_type":"t","manifest_version":"1.0","metrics":{},'
        '"outputs":[],"status":"complete","tool_versions":{"x":"1"}}'
    )
    expected = hashlib.sha256(text.encode())
    assert manifest_digest(manifest) == "sha256:" + expected.hexdigest()


def test_env_fingerprint_has_versions_and_nothing_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBFORGE_POLICY_TOKEN_SECRET", "do-not-leak-this-secret-value")
    fingerprint = generate_env_fingerprint()
    assert fingerprint["python"].count(".") == 2
    assert fingerprint["packages"]["pydantic"]
    assert fingerprint["packages"]["jobforge-sdk"] == "0.1.0"
    text = json.dumps(fingerprint)
    assert "do-not-leak" not in text
    assert "/" not in json.dumps(fingerprint["packages"])


def test_report_renders_outputs_metrics_environment_and_error() -> None:
    report = generate_manifest_report(_manifest(error={"type": "Timeout", "message": "slow"}))
    assert report.startswith("# Run report: autopilot.ops.scan\n")
    assert "| report | markdown | 5 B |" in report
    assert "| findings | json | 4.9 KiB |" in report
    assert "- Duration: 2.50 s" in report
    assert "- Attempt: 1" in report
    assert "- Started: 2026-11-29T12:00:00Z" in report
    assert "| scanner | 1.2.3 |" in report
    assert '"type": "Timeout"' in report
    assert "Status: **complete**" in report


def test_human_units() -> None:
    assert human_bytes(0) == "0 B"
    assert human_bytes(1536) == "1.5 KiB"
    assert human_bytes(5 * 1024**3) == "5.0 GiB"
    assert human_duration(12) == "12 ms"
    assert human_duration(61_000) == "1 min 1 s"
