"""The path README.md promises, end to end and through the real entry points: an empty
database is migrated with `jobforge migrate`, a `jobforge worker` process runs, an app
turns the features on, enables a template, submits an event that fires a trigger and
requests a job, and both jobs are run by the worker, each leaving a manifest."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
import uuid

import psycopg

from jobforge_sdk import FeatureFlags, JobForgeClient, JobStatus, ManifestStatus
from tests.support.cli import JOBFORGE, run_cli

FLAGS = {
    "JOBFORGE_EVENTS_ENABLED": "1",
    "JOBFORGE_TRIGGERS_ENABLED": "1",
    "JOBFORGE_AUTOPILOT_JOBS_ENABLED": "1",
    "JOBFORGE_MANIFESTS_ENABLED": "1",
    "JOBFORGE_AUDIT_LOGGING_ENABLED": "1",
}


def test_readme_flow_from_an_empty_database(empty_db: str) -> None:
    migrated = run_cli("migrate", "--database-url", empty_db)
    assert migrated.returncode == 0, migrated.stderr
    assert "applied 001_jobforge_baseline.sql" in migrated.stdout

    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed below
    worker = subprocess.Popen(
        [
            JOBFORGE,
            "worker",
            "--database-url",
            empty_db,
            "--app",
            "jobforge_sdk.tooling.smoke:demo_handlers",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
        text=True,
        env={**os.environ, **FLAGS},
    )
    tenant = uuid.uuid4()
    try:
        with JobForgeClient.from_postgres(
            empty_db,
            flags=FeatureFlags(
                **dict.fromkeys(
                    ("events", "triggers", "autopilot_jobs", "manifests", "audit_logging"), True
                )
            ),
        ) as app:
            app.set_template_enabled(template_key="autopilot.ops.scan", enabled=True)
            app.create_event_trigger(
                tenant_id=tenant,
                name="scan on alert",
                event_type_filter="infrastructure.*",
                target_template_key="autopilot.ops.scan",
                target_inputs={"target": "api-1"},
                enabled=True,
            )
            event = app.submit_event(
                tenant_id=tenant, event_type="infrastructure.alert", source_app="settler"
            )
            assert event is not None
            assert event.processing_job_id is not None
            requested = app.request_job(
                tenant_id=tenant, template_key="autopilot.ops.scan", inputs={"target": "db-1"}
            )
            assert requested is not None
            assert requested.job is not None
            run_ids = [event.processing_job_id, requested.job.id]

            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                jobs = [app.get_job(job_id=r, tenant_id=tenant) for r in run_ids]
                if all(j is not None and j.status is JobStatus.SUCCEEDED for j in jobs):
                    break
                time.sleep(0.1)
            else:
                log.seek(0)
                raise AssertionError(f"jobs not run: {jobs}\n{log.read()[-3000:]}")
            for run_id in run_ids:
                manifest = app.get_run_manifest(run_id=run_id, tenant_id=tenant)
                assert manifest is not None
                assert manifest.status is ManifestStatus.COMPLETE
                assert manifest.outputs[0].name == "scan-report"
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
        log.close()
    with psycopg.connect(empty_db) as conn:
        stuck = conn.execute("select count(*) from jobforge_jobs where status = 'running'")
        assert stuck.fetchone() == (0,)
