"""The dashboard's rules checked over HTTP without a browser: the bind rule, the token,
CSRF, read-only, redirects that stay on the site, and /metrics."""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from jobforge_sdk import JobForgeClient
from jobforge_sdk.dashboard import DashboardSettings, claims_tenants, create_app, is_loopback
from jobforge_sdk.dashboard.security import CSRF_COOKIE, CSRF_FIELD, TOKEN_COOKIE
from jobforge_sdk.dashboard.server import check_bind
from jobforge_sdk.errors import ConfigurationError
from jobforge_sdk.models.jobs import JobStatus
from tests.dashboard.conftest import Seeded
from tests.support.cli import JOBFORGE, run_cli

TOKEN = "app-test-token-0123456789abcdef"


@pytest.fixture
def http(service_client: JobForgeClient, seeded: Seeded) -> Iterator[TestClient]:
    with TestClient(create_app(service_client, DashboardSettings(operator="ops:bob"))) as client:
        yield client


def _csrf(http: TestClient) -> str:
    assert http.get("/dead").status_code == 200
    value = http.cookies.get(CSRF_COOKIE)
    assert value
    return value


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("example.org", False),
    ],
)
def test_only_loopback_binds_go_without_a_token(host: str, local: bool) -> None:
    assert is_loopback(host) is local
    if local:
        check_bind(host, DashboardSettings())
    else:
        with pytest.raises(ConfigurationError, match="--auth-token"):
            check_bind(host, DashboardSettings())
    check_bind(host, DashboardSettings(auth_token=TOKEN))


def test_cli_refuses_a_public_bind_without_a_token() -> None:
    result = run_cli(
        "dashboard",
        "--host",
        "0.0.0.0",
        "--database-url",
        "postgresql://127.0.0.1:1/none",
        env={"JOBFORGE_DASHBOARD_TOKEN": ""},
    )
    assert result.returncode == 2, result.stderr
    assert "--auth-token" in result.stderr
    assert "Traceback" not in result.stderr


def test_short_tokens_and_empty_operators_are_refused() -> None:
    with pytest.raises(ValueError, match="16 characters"):
        DashboardSettings(auth_token="short")
    with pytest.raises(ValueError, match="operator"):
        DashboardSettings(operator=" ")


def test_claims_tenants_reads_app_metadata() -> None:
    one, two = uuid.uuid4(), uuid.uuid4()
    claims = {"app_metadata": {"tenant_id": str(one), "tenant_ids": [str(two), str(one), "x"]}}
    assert claims_tenants(claims) == (one, two)
    assert claims_tenants({"sub": "nobody"}) == ()


def test_token_is_required_on_every_request(service_client: JobForgeClient, seeded: Seeded) -> None:
    app = create_app(service_client, DashboardSettings(auth_token=TOKEN))
    with TestClient(app) as http:
        for path in ("/", "/jobs", f"/jobs/{seeded.job_b.id}", "/metrics", "/audit"):
            refused = http.get(path)
            assert refused.status_code == 401, path
            assert "billing.close" not in refused.text
        assert (
            http.get("/", headers={"Authorization": "Bearer " + TOKEN[:-1] + "x"}).status_code
            == 401
        )
        assert http.get("/", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert http.post(f"/jobs/{seeded.job_b.id}/cancel").status_code == 401
        # The static files and the sign-in form are all a stranger gets.
        assert http.get("/static/dashboard.css").status_code == 200
        wrong = http.post("/login", data={"token": "nope", "next": "/jobs"}, follow_redirects=False)
        assert wrong.status_code == 401
        assert TOKEN_COOKIE not in wrong.cookies
        signed = http.post(
            "/login", data={"token": TOKEN, "next": "https://evil.example/"}, follow_redirects=False
        )
        assert signed.status_code == 303
        assert signed.headers["location"] == "/"
        assert http.get("/jobs").status_code == 200  # the cookie now rides along


def test_writes_need_the_csrf_token(
    http: TestClient, seeded: Seeded, service_client: JobForgeClient
) -> None:
    job = service_client.enqueue_job(tenant_id=seeded.tenant_a, type="csrf.probe")
    csrf = _csrf(http)
    for form in ({}, {CSRF_FIELD: "forged-value-forged-value-forged-value"}):
        refused = http.post(f"/jobs/{job.id}/cancel", data=form, follow_redirects=False)
        assert refused.status_code == 403
    still = service_client.get_job(job_id=job.id, tenant_id=seeded.tenant_a)
    assert still is not None
    assert still.status is JobStatus.QUEUED
    done = http.post(
        f"/jobs/{job.id}/cancel",
        data={CSRF_FIELD: csrf, "next": "//evil.example/x"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert done.headers["location"].startswith("/?done=")
    gone = service_client.get_job(job_id=job.id, tenant_id=seeded.tenant_a)
    assert gone is not None
    assert gone.status is JobStatus.CANCELED
    audit = service_client.list_audit_logs(
        tenant_id=seeded.tenant_a, action="job_cancel", target_id=str(job.id)
    )
    assert [row.actor_id for row in audit] == ["ops:bob"]


def test_a_conflict_comes_back_as_a_message(http: TestClient, seeded: Seeded) -> None:
    csrf = _csrf(http)
    done = seeded.succeeded_a[0]
    answer = http.post(f"/jobs/{done.id}/retry", data={CSRF_FIELD: csrf, "next": "/dead"})
    assert answer.status_code == 200
    assert "only dead or failed jobs can be retried" in answer.text


def test_retry_requeues_the_dead_job_itself_once_audited(
    http: TestClient, seeded: Seeded, service_client: JobForgeClient
) -> None:
    csrf = _csrf(http)
    dead = seeded.dead_a[2]
    first = http.post(f"/jobs/{dead.id}/retry", data={CSRF_FIELD: csrf, "next": "/dead"})
    assert f"retried {dead.id} (queued again)" in first.text
    # A double click meets a queued job: refused, nothing queued twice.
    second = http.post(f"/jobs/{dead.id}/retry", data={CSRF_FIELD: csrf, "next": "/dead"})
    assert f"job {dead.id} is queued" in second.text
    job = service_client.get_job(job_id=dead.id, tenant_id=seeded.tenant_a)
    assert job is not None
    assert (job.status, job.attempts, job.error) == (JobStatus.QUEUED, 0, None)
    assert not [
        j
        for j in service_client.list_jobs(tenant_id=seeded.tenant_a, type=dead.type, limit=1000)
        if j.idempotency_key == f"retry-of:{dead.id}"
    ]
    audit = service_client.list_audit_logs(
        tenant_id=seeded.tenant_a, action="job_retry", target_id=str(dead.id)
    )
    assert [row.actor_id for row in audit] == ["ops:bob"]


def test_template_switch_is_audited_with_the_operator(
    http: TestClient, service_client: JobForgeClient
) -> None:
    key = "autopilot.ops.scan"
    before = service_client.get_template(template_key=key)
    assert before is not None
    csrf = _csrf(http)
    flip = "false" if before.enabled else "true"
    answer = http.post(
        f"/templates/{key}/enabled", data={CSRF_FIELD: csrf, "enabled": flip, "next": "/templates"}
    )
    assert answer.status_code == 200
    after = service_client.get_template(template_key=key)
    assert after is not None
    assert after.enabled is (flip == "true")
    rows = service_client.list_audit_logs(tenant_id=None, action="template_update", target_id=key)
    assert rows
    assert rows[0].actor_id == "ops:bob"
    service_client.set_template_enabled(template_key=key, enabled=before.enabled)


def test_read_only_hides_and_refuses_writes(service_client: JobForgeClient, seeded: Seeded) -> None:
    app = create_app(service_client, DashboardSettings(read_only=True))
    with TestClient(app) as http:
        page = http.get("/dead")
        assert page.status_code == 200
        assert "retry-" not in page.text
        assert "Retry" not in page.text
        csrf = http.cookies.get(CSRF_COOKIE)
        dead = seeded.dead_a[0]
        refused = http.post(f"/jobs/{dead.id}/retry", data={CSRF_FIELD: csrf or ""})
        assert refused.status_code == 403
        assert "read-only" in refused.text


def test_bad_filters_are_refused_with_a_message(http: TestClient) -> None:
    answer = http.get("/jobs?status=exploded")
    assert answer.status_code == 400
    assert "status: must be one of" in answer.text
    assert http.get("/jobs?tenant=not-a-uuid").status_code == 400
    assert http.get("/jobs/not-a-uuid").status_code == 400


def test_fragment_requests_get_the_main_region_only(http: TestClient) -> None:
    whole = http.get("/jobs")
    part = http.get("/jobs", headers={"X-Dashboard-Fragment": "1"})
    assert "<html" in whole.text
    assert "<html" not in part.text
    assert 'data-testid="jobs-table"' in part.text


def test_metrics_endpoint_has_queue_gauges(http: TestClient, seeded: Seeded) -> None:
    text = http.get("/metrics").text
    assert 'jobforge_queue_depth{type="email.send"}' in text
    assert 'jobforge_oldest_queued_age_seconds{type="billing.close"}' in text
    assert "jobforge_queue_scrape_errors 0.0" in text


def test_trigger_switch_is_audited_with_the_operator(
    http: TestClient, service_client: JobForgeClient, seeded: Seeded
) -> None:
    (trigger,) = [
        t
        for t in service_client.list_triggers(tenant_id=seeded.tenant_a)
        if t.name == seeded.trigger_name
    ]
    csrf = _csrf(http)
    form = {CSRF_FIELD: csrf, "enabled": "false", "tenant": str(seeded.tenant_a)}
    answer = http.post(f"/triggers/{trigger.id}/enabled", data={**form, "next": "/triggers"})
    assert answer.status_code == 200
    assert f"disabled trigger {trigger.id}" in answer.text
    rows = service_client.list_audit_logs(
        tenant_id=seeded.tenant_a, action="trigger_update", target_id=str(trigger.id)
    )
    assert rows
    assert rows[0].actor_id == "ops:bob"
    service_client.set_trigger_enabled(
        trigger_id=trigger.id, tenant_id=seeded.tenant_a, enabled=True
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_cli_serves_the_dashboard(dash_db: str, seeded: Seeded) -> None:
    port = _free_port()
    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [JOBFORGE, "dashboard", "--database-url", dash_db, "--port", str(port), "--read-only"],
        stdout=subprocess.DEVNULL,
        stderr=log,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        page = ""
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/dead", timeout=5) as r:
                    page = r.read().decode()
                break
            except OSError:
                time.sleep(0.2)
        log.seek(0)
        assert "upstream refused the report" in page, log.read()[-2000:]
        assert "read-only" in page
        assert "retry-" not in page
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_the_limits_page_lists_every_limit_with_its_running_jobs(
    http: TestClient, service_client: JobForgeClient
) -> None:
    job_type = f"dash.{uuid.uuid4().hex[:8]}"
    limit = service_client.set_limit(type=job_type, max_running=0)
    try:
        page = http.get("/limits")
        assert page.status_code == 200
        assert 'aria-current="page"' in page.text.split("Limits</a>")[0].rsplit("<a", 1)[1]
        row = page.text.split(f'data-limit="{limit.id}"')[1].split("</tr>")[0]
        assert job_type in row
        assert "paused" in row
        assert "each high-tier template" in page.text
    finally:
        service_client.delete_limit(type=job_type)
    assert f'data-limit="{limit.id}"' not in http.get("/limits").text
