"""The dashboard in a real browser (Debian's Chromium through Playwright): every page
against a seeded database, filtering, a job's detail, retrying a dead job, auto-refresh,
the token on a non-local bind, and a user's dashboard that cannot see another tenant."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from jobforge_sdk import JobForgeClient
from jobforge_sdk.dashboard.server import DashboardServer
from jobforge_sdk.dashboard.settings import DashboardSettings
from jobforge_sdk.models.jobs import JobStatus
from tests.dashboard.conftest import Seeded, url_of

DOCS = Path(__file__).resolve().parents[2] / "docs"
TOKEN = "browser-test-token-0123456789"
OPERATOR = "ops:alice"

Serve = Callable[..., DashboardServer]


@pytest.fixture(scope="module")
def dashboard(service_client: JobForgeClient, seeded: Seeded, serve: Serve) -> DashboardServer:
    return serve(service_client, DashboardSettings(operator=OPERATOR, refresh_seconds=1))


def test_overview_counts_types_tenants_and_chart(
    page: Page, dashboard: DashboardServer, seeded: Seeded
) -> None:
    page.goto(url_of(dashboard, f"/?tenant={seeded.tenant_a}"))
    counts = page.get_by_test_id("status-counts")
    expect(counts.locator("[data-status=dead] .count")).to_have_text("3")
    expect(counts.locator("[data-status=succeeded] .count")).to_have_text("2")
    expect(counts.locator("[data-status=queued] .count")).to_have_text("2")
    expect(page.get_by_test_id("by-type")).to_contain_text("report.build.0")
    expect(page.get_by_test_id("by-type")).to_contain_text("email.send")
    expect(page.get_by_test_id("by-tenant")).to_contain_text(str(seeded.tenant_a)[:12])
    expect(page.get_by_test_id("by-tenant")).not_to_contain_text(str(seeded.tenant_b)[:12])
    # Five runs finished in the last minutes: the chart draws them. Which minute's bar they
    # fall in depends on the clock (the newest bar is empty when a minute has just begun),
    # so any bar with a height will do.
    bars = page.get_by_test_id("throughput").locator("rect.ok")
    drawn = bars.evaluate_all(
        "bars => bars.filter(b => parseFloat(b.getAttribute('height')) > 0).length"
    )
    assert drawn >= 1, "no succeeded bar was drawn"
    if os.environ.get("JOBFORGE_UPDATE_SCREENSHOT") == "1":
        page.goto(url_of(dashboard, "/"))
        page.screenshot(path=str(DOCS / "dashboard-overview.png"))


@pytest.mark.parametrize(
    ("path", "heading", "expected"),
    [
        ("/jobs", "Jobs", "billing.close"),
        ("/dead", "Dead letters", "upstream refused the report"),
        ("/events", "Events", "user.signed_up"),
        ("/templates", "Templates", "autopilot.ops.scan"),
        ("/triggers", "Triggers", "0 3 * * *"),
        ("/audit", "Audit log", "trigger_create"),
    ],
)
def test_each_page_loads(
    page: Page, dashboard: DashboardServer, path: str, heading: str, expected: str
) -> None:
    page.goto(url_of(dashboard, path))
    expect(page.get_by_role("heading", level=1)).to_have_text(heading)
    expect(page.locator("main")).to_contain_text(expected)
    expect(page.locator("nav a[aria-current=page]")).to_have_count(1)


def test_events_are_shown_redacted(page: Page, dashboard: DashboardServer, seeded: Seeded) -> None:
    page.goto(url_of(dashboard, f"/events?tenant={seeded.tenant_a}"))
    table = page.get_by_test_id("events-table")
    expect(table).to_contain_text("[REDACTED]")
    expect(table).not_to_contain_text(seeded.pii_email)
    expect(table).not_to_contain_text("invoice.paid")  # tenant B's event


def test_triggers_show_next_and_last_fire(
    page: Page, dashboard: DashboardServer, seeded: Seeded
) -> None:
    page.goto(url_of(dashboard, "/triggers"))
    row = page.get_by_test_id("triggers-table").locator("tr", has_text=seeded.trigger_name)
    expect(row).to_contain_text(re.compile(r"\d{4}-\d\d-\d\d 03:00:00"))
    expect(row).to_contain_text("never")


def test_filter_jobs_by_status_and_type(
    page: Page, dashboard: DashboardServer, seeded: Seeded
) -> None:
    page.goto(url_of(dashboard, "/jobs"))
    filters = page.get_by_test_id("job-filters")
    filters.get_by_label("Status").select_option("dead")
    filters.get_by_label("Type").fill("report.build.0")
    filters.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"status=dead"))
    rows = page.get_by_test_id("jobs-table").locator("tbody tr")
    expected = [j for j in seeded.dead_a if j.type == "report.build.0"]
    expect(rows).to_have_count(len(expected))
    for job in expected:
        expect(page.locator(f"tr[data-job-id='{job.id}']")).to_contain_text("dead")
    filters = page.get_by_test_id("job-filters")
    filters.get_by_label("Tenant").select_option(str(seeded.tenant_b))
    filters.get_by_label("Status").select_option("")
    filters.get_by_label("Type").fill("")
    filters.get_by_label("Created").select_option("1h")
    filters.get_by_role("button", name="Filter").click()
    expect(page.get_by_test_id("jobs-table").locator("tbody tr")).to_have_count(1)
    expect(page.get_by_test_id("jobs-table")).to_contain_text("billing.close")


def test_open_a_job_shows_payload_attempts_and_error(
    page: Page, dashboard: DashboardServer, seeded: Seeded
) -> None:
    job = seeded.dead_a[0]
    page.goto(url_of(dashboard, "/dead"))
    page.locator(f"tr[data-job-id='{job.id}'] a").first.click()
    expect(page).to_have_url(url_of(dashboard, f"/jobs/{job.id}"))
    expect(page.get_by_role("heading", level=1)).to_contain_text(str(job.id))
    expect(page.get_by_test_id("payload")).to_contain_text('"n":')
    attempts = page.get_by_test_id("attempts")
    expect(attempts).to_contain_text("seed-worker")
    expect(attempts).to_contain_text("upstream refused the report")
    succeeded = seeded.succeeded_a[0]
    page.goto(url_of(dashboard, f"/jobs/{succeeded.id}"))
    expect(page.get_by_test_id("result")).to_contain_text('"rows": 42')


def test_retry_a_dead_job_and_see_it_queued_then_cancel_it_audited(
    page: Page, dashboard: DashboardServer, seeded: Seeded, service_client: JobForgeClient
) -> None:
    dead = seeded.dead_a[1]
    page.goto(url_of(dashboard, "/dead"))
    page.get_by_test_id(f"retry-{dead.id}").click()
    expect(page.get_by_role("status")).to_contain_text(f"retried {dead.id} (queued again)")
    # The same job, not a copy, is back in the queue with its attempts reset.
    job = service_client.get_job(job_id=dead.id, tenant_id=seeded.tenant_a)
    assert job is not None
    assert (job.status, job.attempts) == (JobStatus.QUEUED, 0)
    expect(page.get_by_test_id(f"retry-{dead.id}")).to_have_count(0)

    page.goto(url_of(dashboard, f"/jobs/{dead.id}"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("queued")
    page.get_by_test_id(f"cancel-{dead.id}").click()
    expect(page.get_by_role("status")).to_contain_text(f"canceled {dead.id}")
    expect(page.get_by_role("heading", level=1)).to_contain_text("canceled")

    for action in ("job_retry", "job_cancel"):
        page.goto(url_of(dashboard, f"/audit?tenant={seeded.tenant_a}&action={action}"))
        row = page.get_by_test_id("audit-table").locator("tr", has_text=str(dead.id))
        expect(row).to_contain_text(OPERATOR)


def test_pages_refresh_without_reloading(
    page: Page, dashboard: DashboardServer, seeded: Seeded, service_client: JobForgeClient
) -> None:
    page.goto(url_of(dashboard, f"/jobs?tenant={seeded.tenant_b}&type=late.arrival"))
    expect(page.get_by_test_id("jobs-table")).to_contain_text("No jobs.")
    page.evaluate("window.__sameDocument = true")
    job = service_client.enqueue_job(tenant_id=seeded.tenant_b, type="late.arrival")
    expect(page.locator(f"tr[data-job-id='{job.id}']")).to_be_visible()
    assert page.evaluate("window.__sameDocument") is True


def test_non_local_bind_refuses_requests_without_the_token(
    page: Page, service_client: JobForgeClient, seeded: Seeded, serve: Serve
) -> None:
    server = serve(service_client, DashboardSettings(auth_token=TOKEN), host="0.0.0.0")
    response = page.goto(url_of(server, "/jobs"))
    assert response is not None
    assert response.status == 401
    expect(page.get_by_role("heading", level=1)).to_have_text("JobForge dashboard")
    expect(page.locator("body")).not_to_contain_text("billing.close")
    page.get_by_label("Token").fill("not-the-token-at-all")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("wrong token")
    page.get_by_label("Token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(url_of(server, "/jobs"))
    expect(page.get_by_test_id("jobs-table")).to_contain_text("billing.close")
    # A client without the cookie (another browser context) is refused everywhere but
    # with the bearer token.
    bare: Any = page.context.browser
    other = bare.new_context()
    try:
        assert other.request.get(url_of(server, "/")).status == 401
        assert other.request.get(url_of(server, "/metrics")).status == 401
        assert (
            other.request.get(
                url_of(server, "/metrics"), headers={"Authorization": f"Bearer {TOKEN}"}
            ).status
            == 200
        )
    finally:
        other.close()


def test_a_users_dashboard_shows_nothing_of_another_tenant(
    page: Page, service_client: JobForgeClient, seeded: Seeded, serve: Serve
) -> None:
    claims = {
        "sub": "user-of-a",
        "role": "authenticated",
        "app_metadata": {"tenant_id": str(seeded.tenant_a)},
    }
    user = service_client.with_claims(claims)
    server = serve(
        user,
        DashboardSettings(tenants=(seeded.tenant_a,), claims=claims, refresh_seconds=0),
    )
    response = page.goto(url_of(server, f"/jobs/{seeded.job_b.id}"))
    assert response is not None
    assert response.status == 404
    expect(page.get_by_test_id("no-job")).to_be_visible()
    expect(page.locator("main")).not_to_contain_text("billing.close")

    page.goto(url_of(server, "/jobs"))
    expect(page.get_by_test_id("jobs-table")).to_contain_text("email.send")
    expect(page.get_by_test_id("jobs-table")).not_to_contain_text("billing.close")

    response = page.goto(url_of(server, f"/jobs?tenant={seeded.tenant_b}"))
    assert response is not None
    assert response.status == 403
    expect(page.get_by_test_id("problem")).to_contain_text("not permitted")

    page.goto(url_of(server, f"/events?tenant={seeded.tenant_b}"))
    expect(page.locator("main")).not_to_contain_text("invoice.paid")
    page.goto(url_of(server, "/"))
    expect(page.get_by_test_id("by-tenant")).not_to_contain_text(str(seeded.tenant_b)[:12])
