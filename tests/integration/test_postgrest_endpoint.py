"""The PostgREST stand-in (tests/support/postgrest.py) behaves as PostgREST v12 does.

The Supabase transport's tests trust this endpoint to answer like the real thing, so each
behaviour they depend on is pinned here, as a client meets it: through supabase-py (sync
and async) and through plain httpx where the HTTP status or headers matter, since
supabase-py's ``APIError`` carries the JSON body but not the status.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import httpx
import psycopg
import pytest
import supabase
from postgrest.exceptions import APIError
from psycopg.conninfo import make_conninfo

from jobforge_sdk import AsyncJobForgeClient, JobForgeClient, PermissionDeniedError, TransportError
from tests.support.clients import user_jwt_claims
from tests.support.postgrest import AUTHENTICATOR, PostgrestStub, make_jwt
from tests.support.roles import tenant_claims

SECRET = "pgrst-test-jwt-secret-that-is-long-enough-for-hs256"
ANON_KEY = make_jwt(SECRET, "anon")  # the project's public key: what the gateway checks

# supabase-py 2.x warns about its own internal use of deprecated postgrest-py arguments.
pytestmark = pytest.mark.filterwarnings(
    "ignore:The '(timeout|verify)' parameter is deprecated:DeprecationWarning"
)

DROP_SQL = r"""
do $drop$
declare
  f regprocedure;
begin
  for f in
    select p.oid::regprocedure from pg_catalog.pg_proc p
    where p.pronamespace = 'public'::regnamespace and p.proname like 'pgrst\_test\_%'
  loop
    execute pg_catalog.format('drop function %s', f);
  end loop;
end
$drop$;
drop table if exists public.pgrst_test_log;
"""

# Throwaway functions, one per behaviour under test. Every one is revoked from PUBLIC and
# from the API roles first (the test template carries Supabase's default grants), so the
# grants below are the whole truth about who may call it.
CREATE_SQL = """
create table public.pgrst_test_log (label text primary key);

create function public.pgrst_test_echo(
  p_id uuid, p_doc jsonb, p_tags text[], p_at timestamptz,
  p_limit integer default 7, p_note text default null
) returns jsonb language sql stable set search_path = '' as $$
  select pg_catalog.jsonb_build_object(
    'id', p_id, 'doc_kind', pg_catalog.jsonb_typeof(p_doc), 'nested', p_doc -> 'nested',
    'tag_count', pg_catalog.cardinality(p_tags), 'first_tag', p_tags[1],
    'epoch', extract(epoch from p_at)::bigint, 'limit', p_limit, 'note', p_note)
$$;

create function public.pgrst_test_whoami() returns jsonb language sql stable
set search_path = '' as $$
  select pg_catalog.jsonb_build_object(
    'role', pg_catalog.current_setting('role'), 'current_user', current_user,
    'session_user', session_user, 'claims', auth.jwt(), 'uid', auth.uid())
$$;

create function public.pgrst_test_settings() returns jsonb language sql volatile
set search_path = '' as $$
  select pg_catalog.jsonb_build_object(
    'statement_timeout', pg_catalog.current_setting('statement_timeout'),
    'read_only', pg_catalog.current_setting('transaction_read_only'))
$$;


create function public.pgrst_test_raise(p_code text, p_message text default 'boom')
returns jsonb language plpgsql set search_path = '' as $$
begin
  raise exception using errcode = p_code, message = p_message,
    detail = 'the detail', hint = 'the hint';
end
$$;

create function public.pgrst_test_private() returns integer language sql as 'select 1';

create function public.pgrst_test_record(p_label text) returns void
language sql security definer set search_path = '' as $$
  insert into public.pgrst_test_log (label) values (p_label)
$$;

create function public.pgrst_test_record_then_fail(p_label text) returns integer
language plpgsql security definer set search_path = '' as $$
begin
  insert into public.pgrst_test_log (label) values (p_label);
  raise exception using errcode = 'PT409', message = 'refused after writing';
end
$$;

-- Mislabelled STABLE, as an RPC that calls an audit writer would be: PL/pgSQL refuses an
-- INSERT in its own body, but not in a volatile function it calls.
create function public.pgrst_test_stable_write(p_label text) returns integer
language sql stable security definer set search_path = '' as $$
  select public.pgrst_test_record(p_label);
  select 1
$$;

create function public.pgrst_test_series(p_n integer) returns setof integer
language sql immutable as 'select pg_catalog.generate_series(1, p_n)';

create function public.pgrst_test_overloaded(p_a integer) returns integer
language sql as 'select p_a';
create function public.pgrst_test_overloaded(p_a text) returns text
language sql as 'select p_a';

create function public.pgrst_test_body(jsonb) returns jsonb language sql as 'select $1';

create function public.pgrst_test_full_control() returns void language plpgsql as $$
begin
  raise sqlstate 'PGRST' using
    message = '{"code": "123", "message": "Payment required", "hint": "Top up"}',
    detail = '{"status": 402, "headers": {"X-Powered-By": "stub"}}';
end
$$;

revoke all on function
  public.pgrst_test_echo(uuid, jsonb, text[], timestamptz, integer, text),
  public.pgrst_test_whoami(), public.pgrst_test_raise(text, text),
  public.pgrst_test_private(), public.pgrst_test_record(text),
  public.pgrst_test_record_then_fail(text), public.pgrst_test_series(integer),
  public.pgrst_test_overloaded(integer), public.pgrst_test_overloaded(text),
  public.pgrst_test_body(jsonb), public.pgrst_test_full_control(),
  public.pgrst_test_settings(), public.pgrst_test_stable_write(text)
from public, anon, authenticated, service_role;

grant execute on function
  public.pgrst_test_echo(uuid, jsonb, text[], timestamptz, integer, text),
  public.pgrst_test_record(text), public.pgrst_test_record_then_fail(text),
  public.pgrst_test_series(integer), public.pgrst_test_overloaded(integer),
  public.pgrst_test_overloaded(text), public.pgrst_test_body(jsonb),
  public.pgrst_test_full_control()
to authenticated, service_role;

grant execute on function public.pgrst_test_whoami(), public.pgrst_test_raise(text, text),
  public.pgrst_test_settings(), public.pgrst_test_stable_write(text)
to anon, authenticated, service_role;
"""


# A function that outlasts a statement timeout, for the timeout tests' own database.
SLEEP_SQL = """
create function public.pgrst_test_sleep(p_seconds double precision) returns integer
language sql set search_path = '' as 'select 1 from pg_catalog.pg_sleep(p_seconds)';
grant execute on function public.pgrst_test_sleep(double precision) to anon;
"""


@pytest.fixture(scope="module")
def stub(migrated_db_url: str, start_stub: Callable[..., PostgrestStub]) -> Iterator[PostgrestStub]:
    with psycopg.connect(migrated_db_url, autocommit=True) as conn:
        conn.execute(DROP_SQL)
        conn.execute(CREATE_SQL)
    running = start_stub(migrated_db_url, SECRET)
    try:
        yield running
    finally:
        running.stop()
        with psycopg.connect(migrated_db_url, autocommit=True) as conn:
            conn.execute(DROP_SQL)


@pytest.fixture(scope="module")
def service(stub: PostgrestStub) -> supabase.Client:
    return supabase.create_client(stub.url, make_jwt(SECRET, "service_role"))


@pytest.fixture(scope="module")
def anon(stub: PostgrestStub) -> supabase.Client:
    return supabase.create_client(stub.url, ANON_KEY)


@pytest.fixture
def http(stub: PostgrestStub) -> Iterator[httpx.Client]:
    """Plain HTTP with the project's anon key, as every browser request carries it."""
    with httpx.Client(base_url=f"{stub.url}/rest/v1/rpc/", headers={"apikey": ANON_KEY}) as client:
        yield client


def user_client(stub: PostgrestStub, token: str) -> supabase.Client:
    """supabase-py as a signed-in app uses it: the anon key, and the user's JWT as bearer."""
    options = supabase.ClientOptions(headers={"Authorization": f"Bearer {token}"})
    return supabase.create_client(stub.url, ANON_KEY, options)


def bearer(role: str, **claims: object) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_jwt(SECRET, role, **claims)}"}


def as_object(data: object) -> dict[str, Any]:
    """Narrow supabase-py's JSON-typed ``data`` to the object these RPCs return."""
    assert isinstance(data, dict)
    return data


def logged(url: str, label: str) -> bool:
    with psycopg.connect(url) as conn:
        row = conn.execute("select 1 from public.pgrst_test_log where label = %s", [label])
        return row.fetchone() is not None


def test_json_values_become_the_declared_argument_types(service: supabase.Client) -> None:
    ident = uuid.uuid4()
    at = "2024-01-02T03:04:05+02:00"
    result = service.rpc(
        "pgrst_test_echo",
        {
            "p_id": str(ident).upper(),
            "p_doc": {"nested": [1, {"k": "v"}]},
            "p_tags": ["a", "b", "c"],
            "p_at": at,
            "p_limit": 3,
            "p_note": "hi",
        },
    ).execute()

    assert result.data == {
        "id": str(ident),  # parsed as uuid: the upper-case input comes back canonical
        "doc_kind": "object",
        "nested": [1, {"k": "v"}],
        "tag_count": 3,
        "first_tag": "a",
        "epoch": int(datetime.fromisoformat(at).timestamp()),
        "limit": 3,
        "note": "hi",
    }


def test_missing_arguments_take_their_defaults(http: httpx.Client) -> None:
    args = {"p_id": str(uuid.uuid4()), "p_doc": [], "p_tags": [], "p_at": "2024-01-01Z"}
    response = http.post("pgrst_test_echo", json=args, headers=bearer("authenticated"))

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert (body["limit"], body["note"], body["doc_kind"], body["tag_count"]) == (
        7,
        None,
        "array",
        0,
    )


def test_argument_names_must_match_a_signature(http: httpx.Client) -> None:
    args = {"p_id": str(uuid.uuid4()), "p_bogus": 1}
    response = http.post("pgrst_test_echo", json=args, headers=bearer("authenticated"))

    assert response.status_code == 404
    body = response.json()
    assert body["code"] == "PGRST202"
    assert body["message"] == (
        "Could not find the function public.pgrst_test_echo(p_bogus, p_id) in the schema cache"
    )


def test_unknown_function_is_pgrst202(service: supabase.Client) -> None:
    with pytest.raises(APIError) as caught:
        service.rpc("pgrst_test_nowhere", {}).execute()

    assert caught.value.code == "PGRST202"
    assert caught.value.message is not None
    assert "public.pgrst_test_nowhere without parameters" in caught.value.message


@pytest.mark.parametrize("role", ["service_role", "authenticated"])
def test_function_runs_as_the_jwt_role_with_its_claims(stub: PostgrestStub, role: str) -> None:
    sub = str(uuid.uuid4())
    client = user_client(stub, make_jwt(SECRET, role, sub=sub))

    seen = as_object(client.rpc("pgrst_test_whoami", {}).execute().data)

    assert (seen["role"], seen["current_user"], seen["uid"]) == (role, role, sub)
    assert seen["session_user"] == AUTHENTICATOR
    assert seen["claims"]["sub"] == sub
    assert seen["claims"]["exp"] > time.time() + 3000  # make_jwt: an hour ahead


def test_no_authorization_header_means_anon(http: httpx.Client) -> None:
    response = http.post("pgrst_test_whoami")  # no body at all: called without arguments

    assert response.status_code == 200
    assert response.json() == {
        "role": "anon",
        "current_user": "anon",
        "session_user": AUTHENTICATOR,
        "claims": {"role": "anon"},
        "uid": None,
    }


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (make_jwt("some-other-secret-which-is-also-long-enough", "service_role"), "JWSError"),
        (make_jwt(SECRET, "service_role", exp=int(time.time()) - 3600), "JWT expired"),
        ("not-a-jwt", "JWSError (CompactDecodeError"),
    ],
    ids=["forged", "expired", "malformed"],
)
def test_unverifiable_jwt_is_401(http: httpx.Client, token: str, message: str) -> None:
    response = http.post("pgrst_test_whoami", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 401
    assert response.json()["code"] == "PGRST301"
    assert response.json()["message"].startswith(message)
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


def test_forged_jwt_reaches_supabase_as_pgrst301(stub: PostgrestStub) -> None:
    forged = make_jwt("some-other-secret-which-is-also-long-enough", "service_role")
    client = user_client(stub, forged)

    with pytest.raises(APIError) as caught:
        client.rpc("pgrst_test_whoami", {}).execute()

    assert (caught.value.code, caught.value.message) == ("PGRST301", "JWSError JWSInvalidSignature")


def test_pt_sqlstate_sets_the_status_and_reaches_supabase(
    service: supabase.Client, http: httpx.Client
) -> None:
    args = {"p_code": "PT404", "p_message": "no such job"}
    with pytest.raises(APIError) as caught:
        service.rpc("pgrst_test_raise", args).execute()
    response = http.post("pgrst_test_raise", json=args, headers=bearer("service_role"))

    error = caught.value
    assert (error.code, error.message, error.details, error.hint) == (
        "PT404",
        "no such job",
        "the detail",
        "the hint",
    )
    assert response.status_code == 404
    assert response.json() == error.json()


@pytest.mark.parametrize(
    ("sqlstate", "status"),
    [
        ("PT400", 400),
        ("PT403", 403),
        ("PT409", 409),
        ("PT418", 418),
        ("P0001", 400),  # a plain RAISE EXCEPTION
        ("23505", 409),
        ("23503", 409),
        ("23502", 400),
        ("23514", 400),
        ("22P02", 400),
        ("22023", 400),
        ("40001", 500),
        ("40P01", 500),
        ("57014", 500),
        ("57P01", 503),
        ("53300", 503),
        ("08006", 503),
        ("25006", 405),
        ("0P000", 403),
        ("42883", 404),
        ("42P01", 404),
        ("XX000", 500),
        ("P0002", 500),
    ],
)
def test_sqlstate_maps_to_postgrest_status(http: httpx.Client, sqlstate: str, status: int) -> None:
    args = {"p_code": sqlstate}
    response = http.post("pgrst_test_raise", json=args, headers=bearer("authenticated"))

    assert response.status_code == status
    assert response.json() == {
        "code": sqlstate,
        "message": "boom",
        "details": "the detail",
        "hint": "the hint",
    }


def test_missing_execute_grant_is_401_for_anon_and_403_otherwise(
    anon: supabase.Client, http: httpx.Client
) -> None:
    with pytest.raises(APIError) as caught:
        anon.rpc("pgrst_test_private", {}).execute()
    as_anon = http.post("pgrst_test_private")
    as_user = http.post("pgrst_test_private", headers=bearer("authenticated"))
    as_service = http.post("pgrst_test_private", headers=bearer("service_role"))

    assert caught.value.code == "42501"
    assert (as_anon.status_code, as_anon.headers["www-authenticate"]) == (401, "Bearer")
    assert as_user.status_code == 403
    assert as_service.status_code == 403
    assert as_user.json()["message"] == "permission denied for function pgrst_test_private"


def test_jwt_role_unknown_to_the_database_is_401(http: httpx.Client) -> None:
    response = http.post("pgrst_test_whoami", headers=bearer("pgrst_test_no_such_role"))

    assert response.status_code == 401
    assert response.json()["code"] == "22023"


def test_void_function_commits_and_answers_204(
    service: supabase.Client, http: httpx.Client, migrated_db_url: str
) -> None:
    first, second = f"void-{uuid.uuid4()}", f"void-{uuid.uuid4()}"
    response = http.post(
        "pgrst_test_record", json={"p_label": first}, headers=bearer("service_role")
    )
    result = service.rpc("pgrst_test_record", {"p_label": second}).execute()

    assert response.status_code == 204
    assert response.content == b""
    assert "content-type" not in response.headers
    assert result.data == []  # supabase-py's reading of an empty 204 body
    assert logged(migrated_db_url, first)
    assert logged(migrated_db_url, second)


def test_error_rolls_the_transaction_back(service: supabase.Client, migrated_db_url: str) -> None:
    label = f"doomed-{uuid.uuid4()}"

    with pytest.raises(APIError) as caught:
        service.rpc("pgrst_test_record_then_fail", {"p_label": label}).execute()

    assert caught.value.code == "PT409"
    assert not logged(migrated_db_url, label)


def test_set_returning_function_answers_an_array(service: supabase.Client) -> None:
    assert service.rpc("pgrst_test_series", {"p_n": 3}).execute().data == [1, 2, 3]
    assert service.rpc("pgrst_test_series", {"p_n": 0}).execute().data == []


def test_ambiguous_overloads_are_300(http: httpx.Client) -> None:
    response = http.post("pgrst_test_overloaded", json={"p_a": 1}, headers=bearer("service_role"))

    assert response.status_code == 300
    assert response.json()["code"] == "PGRST203"
    assert "pgrst_test_overloaded(p_a => integer)" in response.json()["message"]


def test_single_unnamed_jsonb_parameter_receives_the_whole_body(
    service: supabase.Client,
) -> None:
    body = {"any": ["shape", 1], "at": "all"}

    assert service.rpc("pgrst_test_body", body).execute().data == body


def test_raise_sqlstate_pgrst_controls_status_body_and_headers(http: httpx.Client) -> None:
    response = http.post("pgrst_test_full_control", headers=bearer("service_role"))

    assert response.status_code == 402
    assert response.headers["x-powered-by"] == "stub"
    assert response.json() == {
        "code": "123",
        "message": "Payment required",
        "details": None,
        "hint": "Top up",
    }


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("POST", "pgrst_test_whoami", {"content": b"{not json"}, 400, "PGRST102"),
        ("POST", "pgrst_test_whoami", {"json": [1, 2]}, 400, "PGRST102"),
        ("POST", "pgrst_test_whoami", {"headers": {"Content-Profile": "auth"}}, 406, "PGRST106"),
        ("GET", "pgrst_test_whoami", {}, 405, "PGRST101"),
        ("POST", "/rest/v1/pgrst_test_log", {}, 404, "PGRST125"),
    ],
    ids=["invalid-json", "not-an-object", "other-schema", "get", "not-rpc"],
)
def test_malformed_requests_get_postgrest_errors(
    http: httpx.Client, method: str, path: str, kwargs: dict[str, Any], status: int, code: str
) -> None:
    response = http.request(method, path, **kwargs)

    assert response.status_code == status
    assert response.json()["code"] == code


async def test_async_client_calls_and_errors(stub: PostgrestStub) -> None:
    sub = str(uuid.uuid4())
    token = make_jwt(SECRET, "authenticated", sub=sub)
    options = supabase.AsyncClientOptions(headers={"Authorization": f"Bearer {token}"})
    client = await supabase.acreate_client(stub.url, ANON_KEY, options)

    seen = as_object((await client.rpc("pgrst_test_whoami", {}).execute()).data)
    with pytest.raises(APIError) as caught:
        await client.rpc("pgrst_test_raise", {"p_code": "PT403"}).execute()

    assert (seen["role"], seen["uid"]) == ("authenticated", sub)
    assert caught.value.code == "PT403"


def test_concurrent_requests_keep_their_own_role_and_claims(
    stub: PostgrestStub, migrated_db_url: str, start_stub: Callable[..., PostgrestStub]
) -> None:
    subs = [str(uuid.uuid4()) for _ in range(24)]
    roles = ["authenticated", "service_role", "anon"]

    with start_stub(migrated_db_url, SECRET, pool_size=3) as small:

        def call(index: int) -> dict[str, Any]:
            headers = bearer(roles[index % 3], sub=subs[index]) | {"apikey": ANON_KEY}
            url = f"{small.url}/rest/v1/rpc/pgrst_test_whoami"
            response = httpx.post(url, headers=headers, timeout=30)
            assert response.status_code == 200
            result: dict[str, Any] = response.json()
            return result

        with ThreadPoolExecutor(max_workers=12) as pool:
            results = list(pool.map(call, range(len(subs))))

    assert [(r["role"], r["uid"]) for r in results] == [
        (roles[i % 3], sub) for i, sub in enumerate(subs)
    ]


def test_stop_releases_the_port_and_every_connection(
    stub: PostgrestStub, migrated_db_url: str, start_stub: Callable[..., PostgrestStub]
) -> None:
    app = f"pgrst-test-{uuid.uuid4().hex[:8]}"
    count = "select count(*) from pg_catalog.pg_stat_activity where application_name = %s"

    with start_stub(make_conninfo(migrated_db_url, application_name=app), SECRET) as own:
        url = f"{own.url}/rest/v1/rpc/pgrst_test_whoami"
        assert httpx.post(url, headers={"apikey": ANON_KEY}).status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.post(url)

    with psycopg.connect(migrated_db_url, autocommit=True) as conn:
        deadline = time.monotonic() + 5
        while (conn.execute(count, [app]).fetchone() or (0,))[0] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert conn.execute(count, [app]).fetchone() == (0,)


# -- what Supabase puts around PostgREST: the gateway's key check, the authenticator login,
# -- read-only transactions for STABLE functions, per-role statement timeouts ------------


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "No API key found in request"),
        ({"apikey": "not-a-key"}, "Invalid API key"),
        (
            {"apikey": make_jwt("some-other-secret-which-is-also-long-enough", "anon")},
            "Invalid API key",
        ),
        ({"apikey": make_jwt(SECRET, "authenticated")}, "Invalid API key"),  # a user's JWT
    ],
    ids=["missing", "garbage", "forged", "user-jwt"],
)
def test_the_gateway_refuses_a_call_without_a_project_key(
    stub: PostgrestStub, migrated_db_url: str, headers: dict[str, str], message: str
) -> None:
    label = f"no-key-{uuid.uuid4()}"
    url = f"{stub.url}/rest/v1/rpc/pgrst_test_record"
    headers |= bearer("service_role")

    response = httpx.post(url, json={"p_label": label}, headers=headers)

    assert response.status_code == 401
    body = response.json()
    assert body["message"] == message
    assert "code" not in body  # the gateway answers, not PostgREST
    assert not logged(migrated_db_url, label)


def test_the_stub_logs_in_as_an_authenticator_and_never_as_a_superuser(
    stub: PostgrestStub, pg_server: Any, migrated_db_url: str
) -> None:
    dbname = str(psycopg.conninfo.conninfo_to_dict(migrated_db_url)["dbname"])
    with psycopg.connect(migrated_db_url) as conn:
        row = conn.execute(
            "select rolcanlogin, rolinherit, rolsuper from pg_catalog.pg_roles where rolname = %s",
            [AUTHENTICATOR],
        ).fetchone()

    assert row == (True, False, False)
    with pytest.raises(RuntimeError, match="NOINHERIT role that is not a superuser"):
        PostgrestStub(pg_server.url_for(dbname), SECRET).start()


def test_a_stable_function_runs_in_a_read_only_transaction(
    http: httpx.Client, migrated_db_url: str
) -> None:
    label = f"stable-{uuid.uuid4()}"

    refused = http.post(
        "pgrst_test_stable_write", json={"p_label": label}, headers=bearer("service_role")
    )
    volatile = http.post("pgrst_test_settings", headers=bearer("service_role"))

    assert refused.status_code == 405
    assert refused.json()["code"] == "25006"
    assert not logged(migrated_db_url, label)
    assert volatile.json()["read_only"] == "off"


@pytest.mark.parametrize(
    ("role", "timeout"), [("anon", "3s"), ("authenticated", "8s"), ("service_role", "0")]
)
def test_each_role_runs_under_its_own_statement_timeout(
    http: httpx.Client, role: str, timeout: str
) -> None:
    headers = {} if role == "anon" else bearer(role)

    response = http.post("pgrst_test_settings", headers=headers)

    assert response.status_code == 200
    assert response.json()["statement_timeout"] == timeout


@pytest.fixture
def slow_stub(
    fresh_db_url: str, pg_server: Any, start_stub: Callable[..., PostgrestStub]
) -> Iterator[PostgrestStub]:
    """A stub on a database of its own whose anon role times out after 200 ms: the
    database's role setting, which the stub must apply over the cluster-wide one."""
    dbname = str(psycopg.conninfo.conninfo_to_dict(fresh_db_url)["dbname"])
    running = start_stub(fresh_db_url, SECRET)
    with psycopg.connect(pg_server.url_for(dbname), autocommit=True) as conn:
        conn.execute(SLEEP_SQL)
        conn.execute(f"alter role anon in database {dbname} set statement_timeout = '200ms'")
    try:
        yield running
    finally:
        running.stop()


def test_a_statement_timeout_is_57014_and_the_sdk_raises_transport_error(
    slow_stub: PostgrestStub,
) -> None:
    response = httpx.post(
        f"{slow_stub.url}/rest/v1/rpc/pgrst_test_sleep",
        json={"p_seconds": 5},
        headers={"apikey": ANON_KEY},
    )
    with (
        JobForgeClient.from_supabase(slow_stub.url, ANON_KEY) as client,
        pytest.raises(TransportError) as caught,
    ):
        client.transport.call("pgrst_test_sleep", {"p_seconds": 5})

    assert response.status_code == 500
    assert response.json()["code"] == "57014"
    assert (caught.value.code, caught.value.retryable) == ("57014", True)
    assert "statement timeout" in caught.value.message


async def test_the_async_sdk_raises_transport_error_on_a_statement_timeout(
    slow_stub: PostgrestStub,
) -> None:
    async with AsyncJobForgeClient.from_supabase(slow_stub.url, ANON_KEY) as client:
        with pytest.raises(TransportError) as caught:
            await client.transport.call("pgrst_test_sleep", {"p_seconds": 5})

    assert caught.value.code == "57014"


def test_a_direct_connection_maps_a_statement_timeout_the_same_way(fresh_db_url: str) -> None:
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute(SLEEP_SQL)
    url = make_conninfo(fresh_db_url, options="-c statement_timeout=200")
    with JobForgeClient.from_postgres(url) as client, pytest.raises(TransportError) as caught:
        client.transport.call("pgrst_test_sleep", {"p_seconds": 5})

    assert (caught.value.code, caught.value.retryable) == ("57014", True)


@pytest.mark.parametrize("key", ["not-a-key", make_jwt(SECRET, "authenticated")])
def test_a_bad_api_key_is_permission_denied_in_the_sdk(stub: PostgrestStub, key: str) -> None:
    tenant = uuid.uuid4()
    with (
        JobForgeClient.from_supabase(stub.url, key) as client,
        pytest.raises(PermissionDeniedError) as caught,
    ):
        client.enqueue_job(tenant_id=tenant, type="pgrst.test", payload={})

    assert caught.value.message == "Invalid API key"
    assert caught.value.code is None


async def test_a_bad_api_key_is_permission_denied_in_the_async_sdk(stub: PostgrestStub) -> None:
    async with AsyncJobForgeClient.from_supabase(stub.url, "not-a-key") as client:
        with pytest.raises(PermissionDeniedError) as caught:
            await client.list_jobs(tenant_id=uuid.uuid4())

    assert caught.value.message == "Invalid API key"


def test_a_user_client_sends_the_anon_key_and_runs_as_the_user(
    stub: PostgrestStub, migrated_db_url: str
) -> None:
    tenant = uuid.uuid4()
    token = make_jwt(SECRET, "authenticated", **user_jwt_claims(tenant_claims(tenant)))
    with (
        JobForgeClient.from_supabase(stub.url, ANON_KEY, access_token=token) as user,
        JobForgeClient.from_supabase(stub.url, ANON_KEY) as anonymous,
    ):
        job = user.enqueue_job(tenant_id=tenant, type="pgrst.user", payload={})
        with pytest.raises(PermissionDeniedError):
            anonymous.enqueue_job(tenant_id=tenant, type="pgrst.user", payload={})

    assert job.tenant_id == tenant
