"""Fixtures of the dashboard tests: one migrated database per module with two tenants'
jobs, events and a trigger, a service-role client on it, dashboards served on free ports
in this process, and Debian's Chromium driven by Playwright (never a downloaded browser).
"""

from __future__ import annotations

import secrets
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from jobforge_sdk import FeatureFlags, JobForgeClient
from jobforge_sdk.dashboard.server import DashboardServer
from jobforge_sdk.dashboard.settings import DashboardSettings
from jobforge_sdk.flags import Feature
from jobforge_sdk.models.jobs import JobRow, JobStatus
from tests.conftest import RUN_ID
from tests.support.database import Server

CHROMIUM = Path("/usr/bin/chromium")
SCAN = "autopilot.ops.scan"
# Every flag the dashboard reads through (action jobs would want a token secret).
FLAGS = FeatureFlags(**{f.value: True for f in Feature if f is not Feature.ACTION_JOBS})


@dataclass
class Seeded:
    """What the module's database holds, by name."""

    tenant_a: uuid.UUID
    tenant_b: uuid.UUID
    dead_a: list[JobRow]
    queued_a: list[JobRow]
    succeeded_a: list[JobRow]
    job_b: JobRow
    trigger_name: str
    pii_email: str


def _seed(client: JobForgeClient) -> Seeded:
    a, b = uuid.uuid4(), uuid.uuid4()
    worker = "seed-worker"
    made = client.enqueue_jobs(
        tenant_id=a,
        jobs=[{"type": f"report.build.{i % 2}", "payload": {"n": i}} for i in range(6)],
    )
    claimed = client.claim_jobs(
        worker_id=worker, limit=10, types=["report.build.0", "report.build.1"]
    )
    assert len(claimed) == 6
    # In enqueue order, so the dead jobs are n = 2, 3, 4 of both types: a claim answers
    # jobs enqueued in one batch in id order, which is random, and the browser tests
    # filter the dead jobs by type.
    claimed = sorted(claimed, key=lambda job: job.payload["n"])
    for job in claimed[:2]:
        client.complete_job(
            job_id=job.id, worker_id=worker, status=JobStatus.SUCCEEDED, result={"rows": 42}
        )
    for job in claimed[2:5]:
        client.complete_job(
            job_id=job.id,
            worker_id=worker,
            status=JobStatus.FAILED,
            error={"message": "upstream refused the report", "type": "HTTPError"},
            retryable=False,
        )
    client.release_job(job_id=claimed[5].id, worker_id=worker)
    queued = [client.enqueue_job(tenant_id=a, type="email.send", payload={"to": "ops"})]
    job_b = client.enqueue_job(tenant_id=b, type="billing.close", payload={"month": "2026-11"})
    email = f"someone-{secrets.token_hex(3)}@example.com"
    client.submit_event(
        tenant_id=a,
        event_type="user.signed_up",
        source_app="settler",
        payload={"email": email, "plan": "pro"},
        contains_pii=True,
        redaction_hints={"redact_fields": ["email"]},
    )
    client.submit_event(
        tenant_id=b, event_type="invoice.paid", source_app="settler", payload={"amount": 12}
    )
    name = f"nightly-scan-{secrets.token_hex(2)}"
    client.create_cron_trigger(
        tenant_id=a,
        name=name,
        cron_expression="0 3 * * *",
        target_template_key=SCAN,
        target_inputs={"target": "all"},
        enabled=True,
        actor_id="seed",
    )
    by_id = {job.id: job for job in made}
    ids = [job.id for job in claimed]
    refreshed = [client.get_job(job_id=i, tenant_id=a) for i in ids]
    rows = [r for r in refreshed if r is not None]
    assert len(rows) == 6
    assert set(by_id) >= set(ids)
    return Seeded(
        tenant_a=a,
        tenant_b=b,
        dead_a=[r for r in rows if r.status is JobStatus.DEAD],
        queued_a=queued + [r for r in rows if r.status is JobStatus.QUEUED],
        succeeded_a=[r for r in rows if r.status is JobStatus.SUCCEEDED],
        job_b=job_b,
        trigger_name=name,
        pii_email=email,
    )


@pytest.fixture(scope="module")
def dash_db(pg_server: Server, copy_template: Callable[[str], str]) -> Iterator[str]:
    name = f"jobforge_test_{RUN_ID}_{secrets.token_hex(4)}_dash"
    url = copy_template(name)
    try:
        yield url
    finally:
        pg_server.drop_database(name)


@pytest.fixture(scope="module")
def service_client(dash_db: str) -> Iterator[JobForgeClient]:
    with JobForgeClient.from_postgres(dash_db, flags=FLAGS, max_size=6) as client:
        yield client


@pytest.fixture(scope="module")
def seeded(service_client: JobForgeClient) -> Seeded:
    return _seed(service_client)


@pytest.fixture(scope="module")
def serve() -> Iterator[Callable[..., DashboardServer]]:
    """``serve(client, settings, host=...)``: a started dashboard on a free port."""
    started: list[DashboardServer] = []

    def start(
        client: JobForgeClient, settings: DashboardSettings, host: str = "127.0.0.1"
    ) -> DashboardServer:
        server = DashboardServer(client, settings, host=host, port=0).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def url_of(server: DashboardServer, path: str = "/") -> str:
    return f"http://127.0.0.1:{server.port}{path}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium under Playwright. Missing is a failure, never a skip."""
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        pytest.fail(
            f"{CHROMIUM} not found: the browser tests drive Debian's Chromium; "
            "run `make tools` (as root) to install it",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM if CHROMIUM.exists() else shutil.which("chromium"))
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()
