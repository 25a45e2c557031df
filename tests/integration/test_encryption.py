"""Field encryption at rest on a real PostgreSQL: what the SDK encrypts never reaches a
table, the audit trail or the server's log in the clear; a worker's handler and a reader
holding the key see the plaintext; rotation; and the refusals (bad lists, no keys, wrong
or unknown keys, tampering, plaintext sent around the SDK) write nothing.

The leak test runs on a private cluster (tests/support/private_cluster.py) that logs
every statement with its parameters, so its log can be searched."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from jobforge_sdk import (
    ConfigurationError,
    DecryptionError,
    FeatureFlags,
    InvalidInputError,
    JobContext,
    JobForgeClient,
    KeyRing,
    Worker,
)
from jobforge_sdk.encryption import ENVELOPE_PREFIX, is_ciphertext
from tests.integration.sql.helpers import sql_error
from tests.support.private_cluster import ClusterError, PrivateCluster
from tests.support.roles import tenant_claims

SCAN = "autopilot.ops.scan"
OLD = KeyRing.generate_entry("old")
NEW = KeyRing.generate_entry("new")
SCAN_RESULT = {"findings": [], "summary": {"total": 0}}


def _flags(keys: str | None) -> FeatureFlags:
    return FeatureFlags(
        events=True, autopilot_jobs=True, audit_logging=True, manifests=True, encryption_keys=keys
    )


def _enable_scan(url: str, fields: list[str]) -> None:
    with JobForgeClient.from_postgres(url, flags=_flags(None)) as admin:
        admin.set_template_enabled(
            template_key=SCAN, enabled=True, actor_id="tests", encrypt_fields=fields
        )


def _all_text(url: str) -> str:
    """Every row of every jobforge table (public and private schemas) as text."""
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "select format('%I.%I', n.nspname, c.relname) from pg_catalog.pg_class c"
            " join pg_catalog.pg_namespace n on n.oid = c.relnamespace"
            " where c.relkind in ('r', 'p')"
            " and ((n.nspname = 'public' and c.relname like 'jobforge\\_%')"
            "   or n.nspname like 'jobforge\\_%')"
        ).fetchall()
        assert len(tables) > 5
        return "\n".join(
            str(row[0])
            for (table,) in tables
            for row in conn.execute(f"select t::text from {table} t").fetchall()
        )


def _run_worker(client: JobForgeClient, seen: list[dict[str, Any]]) -> None:
    def handler(ctx: JobContext) -> Any:
        seen.append(dict(ctx.inputs))
        return SCAN_RESULT

    Worker(client, {SCAN: handler}).run_until_idle(timeout=30)


# -- nothing in the clear ---------------------------------------------------------------


@pytest.fixture(scope="module")
def logged_cluster() -> Iterator[PrivateCluster]:
    """A private cluster that logs every statement, its parameters and every message."""
    try:
        cluster = PrivateCluster()
        cluster.start()
    except ClusterError as exc:
        pytest.fail(f"cannot run a private PostgreSQL cluster: {exc}", pytrace=False)
    try:
        with psycopg.connect(cluster.admin_url, autocommit=True) as conn:
            for name, value in (
                ("log_statement", "all"),
                ("log_min_messages", "debug1"),
                ("log_min_error_statement", "debug1"),
                ("log_parameter_max_length", "-1"),
                ("log_parameter_max_length_on_error", "-1"),
            ):
                conn.execute(f"alter system set {name} = '{value}'")
            conn.execute("select pg_catalog.pg_reload_conf()")
        yield cluster
    finally:
        cluster.remove()


def test_encrypted_fields_are_nowhere_in_the_clear(logged_cluster: PrivateCluster) -> None:
    url = logged_cluster.create_migrated_database(f"crypt_{secrets.token_hex(4)}")
    _enable_scan(url, ["target", "environment"])
    marker = f"plaintext-marker-{secrets.token_hex(8)}"
    visible = f"visible-marker-{secrets.token_hex(8)}"
    tenant = uuid.uuid4()
    seen: list[dict[str, Any]] = []
    with JobForgeClient.from_postgres(url, flags=_flags(OLD)) as client:
        requested = client.request_job(
            tenant_id=tenant,
            template_key=SCAN,
            inputs={"target": f"{marker}-target", "environment": f"{marker}-env", "depth": 2},
            trace_id=visible,
        )
        assert requested is not None
        assert requested.job is not None
        # The caller holds the key: the job comes back as requested.
        assert requested.job.payload["inputs"]["target"] == f"{marker}-target"
        # A bad input is refused on the plaintext before anything is encrypted or sent.
        with pytest.raises(InvalidInputError, match=r"inputs.depth: must be at most 5"):
            client.request_job(
                tenant_id=tenant, template_key=SCAN, inputs={"target": marker, "depth": 9}
            )
        _run_worker(client, seen)
        event = client.submit_event(
            tenant_id=tenant,
            event_type="billing.card_added",
            source_app="settler",
            payload={"card": f"{marker}-card", "note": visible, "amount": 7},
            encrypt_fields=["card"],
            contains_pii=True,
        )
        assert event is not None
        assert event.payload == {"card": f"{marker}-card", "note": visible, "amount": 7}
        [listed] = client.list_events(tenant_id=tenant, raw=True)
        assert listed.payload["card"] == f"{marker}-card"
        job = client.get_job(job_id=requested.job.id, tenant_id=tenant)
        assert job is not None
        assert job.status == "succeeded"

    assert seen == [{"target": f"{marker}-target", "environment": f"{marker}-env", "depth": 2}]
    stored = _all_text(url)
    assert visible in stored  # the scan sees what is not encrypted...
    assert ENVELOPE_PREFIX in stored  # ...and the ciphertexts
    assert marker not in stored
    logged = logged_cluster.log.read_text(errors="replace")
    assert visible in logged  # the log holds the calls' parameters...
    assert ENVELOPE_PREFIX in logged
    assert marker not in logged  # ...and never the plaintext


# -- round trips, rotation, keys --------------------------------------------------------


def test_the_worker_decrypts_and_a_reader_without_keys_gets_the_ciphertext(
    fresh_db_url: str,
) -> None:
    _enable_scan(fresh_db_url, ["target"])
    tenant = uuid.uuid4()
    with JobForgeClient.from_postgres(fresh_db_url, flags=_flags(OLD)) as writer:
        writer.request_job(tenant_id=tenant, template_key=SCAN, inputs={"target": "db-1"})
        writer.submit_event(
            tenant_id=tenant,
            event_type="billing.card_added",
            source_app="settler",
            payload={"card": "4111"},
            encrypt_fields=["card"],
        )
    with JobForgeClient.from_postgres(fresh_db_url, flags=_flags(None)) as reader:
        [row] = reader.list_events(tenant_id=tenant)
        assert is_ciphertext(row.payload["card"])
        assert row.payload["card"].startswith(f"{ENVELOPE_PREFIX}old:")
        [job] = reader.list_jobs(tenant_id=tenant)
        assert is_ciphertext(job.payload["inputs"]["target"])
        # A worker without keys cannot hand the handler the plaintext: the job fails
        # saying why, and the handler never runs.
        seen: list[dict[str, Any]] = []
        _run_worker(reader, seen)
        assert seen == []
        failed = reader.get_job(job_id=job.id, tenant_id=tenant)
        assert failed is not None
        assert failed.error["type"] == "DecryptionError"
        assert "inputs.target: encrypted with key old" in failed.error["message"]


def test_rotation_keeps_old_ciphertexts_readable(fresh_db_url: str) -> None:
    tenant = uuid.uuid4()
    event: dict[str, Any] = {
        "event_type": "billing.card_added",
        "source_app": "settler",
        "tenant_id": tenant,
    }
    with JobForgeClient.from_postgres(fresh_db_url, flags=_flags(OLD)) as before:
        before.submit_event(**event, payload={"card": "one"}, encrypt_fields=["card"])
    with JobForgeClient.from_postgres(fresh_db_url, flags=_flags(f"{NEW},{OLD}")) as rotated:
        rotated.submit_event(**event, payload={"card": "two"}, encrypt_fields=["card"])
        rows = rotated.list_events(tenant_id=tenant)
        assert sorted(r.payload["card"] for r in rows) == ["one", "two"]
    with JobForgeClient.from_postgres(fresh_db_url, flags=_flags(None)) as raw:
        prefixes = sorted(r.payload["card"][:13] for r in raw.list_events(tenant_id=tenant))
        assert prefixes == ["jfenc:v1:new:", "jfenc:v1:old:"]
    # The old key dropped too early: a clear error naming the field and the key.
    with JobForgeClient.from_postgres(fresh_db_url, flags=_flags(NEW)) as dropped:
        with pytest.raises(DecryptionError, match=r"payload.card: encrypted with key old") as e:
            dropped.list_events(tenant_id=tenant)
        assert (e.value.field, e.value.key_id) == ("payload.card", "old")


def test_a_tampered_or_moved_ciphertext_is_a_clear_error(fresh_db_url: str) -> None:
    tenant, other = uuid.uuid4(), uuid.uuid4()
    with JobForgeClient.from_postgres(fresh_db_url, flags=_flags(OLD)) as client:
        row = client.submit_event(
            tenant_id=tenant,
            event_type="billing.card_added",
            source_app="settler",
            payload={"card": "4111"},
            encrypt_fields=["card"],
        )
        assert row is not None
        with psycopg.connect(fresh_db_url, autocommit=True) as owner:
            stored = owner.execute(
                "select payload ->> 'card' from public.jobforge_events where id = %s", (row.id,)
            ).fetchone()
            assert stored is not None
            # The same ciphertext under another tenant, and altered in place.
            owner.execute(
                "insert into public.jobforge_events (tenant_id, event_type, occurred_at,"
                " trace_id, source_app, payload) select %s, event_type, occurred_at, trace_id,"
                " source_app, payload from public.jobforge_events where id = %s",
                (other, row.id),
            )
            flipped = stored[0][:-5] + ("A" if stored[0][-5] != "A" else "B") + stored[0][-4:]
            owner.execute(
                "update public.jobforge_events set payload = jsonb_build_object('card', %s::text)"
                " where id = %s",
                (flipped, row.id),
            )
        for tenant_id in (tenant, other):
            with pytest.raises(DecryptionError, match=r"payload.card: the ciphertext does not"):
                client.list_events(tenant_id=tenant_id)


# -- refusals -----------------------------------------------------------------------------


def _counts(url: str) -> tuple[int, int, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "select (select count(*) from public.jobforge_events),"
            " (select count(*) from public.jobforge_jobs),"
            " (select count(*) from public.jobforge_audit_logs)"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


@pytest.mark.parametrize(
    ("names", "error", "match"),
    [
        (["cvv"], InvalidInputError, r"encrypt_fields: payload.cvv is not in the payload"),
        ("card", InvalidInputError, r"encrypt_fields: must be a list of field names"),
        ([7], InvalidInputError, r"encrypt_fields.0: must be the name"),
        (["card.number"], InvalidInputError, r"encrypt_fields.0: must be the name"),
        ([f"f{i}" for i in range(33)], InvalidInputError, r"encrypt_fields: at most 32"),
    ],
)
def test_bad_encrypt_fields_write_nothing(
    fresh_db_url: str, names: Any, error: type[Exception], match: str
) -> None:
    before = _counts(fresh_db_url)
    with (
        JobForgeClient.from_postgres(fresh_db_url, flags=_flags(OLD)) as client,
        pytest.raises(error, match=match),
    ):
        client.submit_event(
            tenant_id=uuid.uuid4(),
            event_type="billing.card_added",
            source_app="settler",
            payload={"card": "4111"},
            encrypt_fields=names,
        )
    assert _counts(fresh_db_url) == before


def test_encryption_without_keys_is_refused_before_anything_is_written(fresh_db_url: str) -> None:
    _enable_scan(fresh_db_url, ["target"])
    before = _counts(fresh_db_url)
    tenant = uuid.uuid4()
    with JobForgeClient.from_postgres(fresh_db_url, flags=_flags(None)) as client:
        with pytest.raises(
            ConfigurationError, match=r"^payload.card: .*ENCRYPTION_KEYS is not set"
        ):
            client.submit_event(
                tenant_id=tenant,
                event_type="billing.card_added",
                source_app="settler",
                payload={"card": "4111"},
                encrypt_fields=["card"],
            )
        with pytest.raises(ConfigurationError, match=r"^inputs.target: .*ENCRYPTION_KEYS is not"):
            client.request_job(tenant_id=tenant, template_key=SCAN, inputs={"target": "x"})
    assert _counts(fresh_db_url) == before


Session = Callable[..., Any]


def test_the_database_refuses_plaintext_in_an_encrypted_input(
    fresh_db_url: str, act_as: Session
) -> None:
    _enable_scan(fresh_db_url, ["target"])
    tenant = uuid.uuid4()
    before = _counts(fresh_db_url)
    user = act_as("authenticated", tenant_claims(tenant), url=fresh_db_url)
    service = act_as("service_role", url=fresh_db_url)
    for caller in (user, service):
        for value in ("db-1", 5, {"a": 1}, "jfenc:v1:old:short"):
            with sql_error("PT400", "inputs.target: must be encrypted"):
                caller.call(
                    "jobforge_request_job",
                    p_tenant_id=tenant,
                    p_template_key=SCAN,
                    p_inputs={"target": value},
                )
    assert _counts(fresh_db_url) == before
    # A ciphertext stands in for the plaintext, whatever type the schema gives it.
    sealed = KeyRing.parse(OLD).encrypt(
        "db-1", tenant_id=tenant, scope=f"job:{SCAN}", field="target"
    )
    done = user.call(
        "jobforge_request_job", p_tenant_id=tenant, p_template_key=SCAN, p_inputs={"target": sealed}
    )
    assert done["job"]["payload"]["inputs"]["target"] == sealed
    # Still required; the other inputs are still checked against the schema.
    with sql_error("PT400", "inputs.target: is required"):
        user.call("jobforge_request_job", p_tenant_id=tenant, p_template_key=SCAN, p_inputs={})
    with sql_error("PT400", "inputs.depth: must be integer"):
        user.call(
            "jobforge_request_job",
            p_tenant_id=tenant,
            p_template_key=SCAN,
            p_inputs={"target": sealed, "depth": "deep"},
        )


def test_setting_encrypt_fields_is_checked_audited_and_service_role_only(
    fresh_db_url: str, act_as: Session
) -> None:
    service = act_as("service_role", url=fresh_db_url)
    user = act_as("authenticated", tenant_claims(uuid.uuid4()), url=fresh_db_url)

    def state() -> tuple[Any, int]:
        template = service.call("jobforge_get_template", p_template_key=SCAN)
        with psycopg.connect(fresh_db_url) as conn:
            row = conn.execute(
                "select count(*) from public.jobforge_audit_logs where action = 'template_update'"
            ).fetchone()
        assert row is not None
        return template["encrypt_fields"], int(row[0])

    assert state() == ([], 0)
    with sql_error("42501"):
        user.call(
            "jobforge_set_template_enabled",
            p_template_key=SCAN,
            p_enabled=True,
            p_encrypt_fields=["target"],
        )
    for fields, reason in (
        (["nope"], "encrypt_fields: nope is not an input of template autopilot.ops.scan"),
        (["target", "target"], "encrypt_fields: a field is named twice"),
        (["target", None], "encrypt_fields: must not hold null"),
        ([f"f{i}" for i in range(33)], "encrypt_fields: at most 32 fields"),
    ):
        with sql_error("PT400", reason):
            service.call(
                "jobforge_set_template_enabled",
                p_template_key=SCAN,
                p_enabled=True,
                p_encrypt_fields=fields,
            )
    with sql_error("PT404"):
        service.call(
            "jobforge_set_template_enabled",
            p_template_key="autopilot.ops.nope",
            p_enabled=True,
            p_encrypt_fields=["target"],
        )
    assert state() == ([], 0)
    with JobForgeClient.from_postgres(fresh_db_url, flags=_flags(None)) as admin:
        with pytest.raises(InvalidInputError) as caught:
            admin.set_template_enabled(template_key=SCAN, enabled=True, encrypt_fields=["a.b"])
        assert caught.value.field == "encrypt_fields.0"
        with pytest.raises(InvalidInputError, match="encrypt_fields: nope is not an input"):
            admin.set_template_enabled(template_key=SCAN, enabled=True, encrypt_fields=["nope"])
        assert state() == ([], 0)
        row = admin.set_template_enabled(
            template_key=SCAN, enabled=True, encrypt_fields=["target", "environment"]
        )
        assert row is not None
        assert row.encrypt_fields == ["target", "environment"]
        # Enabling again without the argument keeps the list.
        again = admin.set_template_enabled(template_key=SCAN, enabled=True)
        assert again is not None
        assert again.encrypt_fields == ["target", "environment"]
    assert state() == (["target", "environment"], 2)
    with psycopg.connect(fresh_db_url) as conn:
        details = conn.execute(
            "select details from public.jobforge_audit_logs where action = 'template_update'"
            " order by created_at, id"
        ).fetchall()
    assert details[0][0]["encrypt_fields"] == ["target", "environment"]
    assert details[0][0]["previous_encrypt_fields"] == []
    assert "encrypt_fields" not in details[1][0]


def test_a_triggers_encrypted_inputs_reach_its_jobs_encrypted_and_decrypt(
    fresh_db_url: str,
) -> None:
    """A trigger keeps its target inputs for every job it requests: the SDK encrypts the
    template's fields when the trigger is made, the database refuses plaintext there,
    and the jobs it fires decrypt for a worker with the key."""
    _enable_scan(fresh_db_url, ["target"])
    tenant = uuid.uuid4()
    flags = _flags(OLD).model_copy(update={"triggers": True})
    with JobForgeClient.from_postgres(fresh_db_url, flags=flags) as client:
        trigger = client.create_cron_trigger(
            tenant_id=tenant,
            name="nightly-scan",
            cron_expression="0 3 * * *",
            target_template_key=SCAN,
            target_inputs={"target": "vault-7"},
            enabled=True,
        )
        assert trigger is not None
        assert is_ciphertext(trigger.target_inputs["target"])
        fired = client.fire_cron_trigger(
            trigger_id=trigger.id, scheduled_for=datetime(2026, 1, 1, 3, tzinfo=UTC)
        )
        assert fired is not None
        assert fired.fired
        seen: list[dict[str, Any]] = []
        _run_worker(client, seen)
        assert seen == [{"target": "vault-7"}]
    assert "vault-7" not in _all_text(fresh_db_url)

    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute("select set_config('role', 'service_role', false)")
        with sql_error("PT400", "target_inputs.target: must be encrypted"):
            conn.execute(
                "select public.jobforge_create_trigger(p_tenant_id => %s, p_name => 'plain',"
                " p_trigger_type => 'cron', p_cron_expression => '0 4 * * *',"
                " p_target_template_key => %s, p_target_inputs => %s)",
                (tenant, SCAN, Jsonb({"target": "vault-7"})),
            )
