"""A test-only, PostgREST-compatible RPC endpoint on a real PostgreSQL database.

PostgREST cannot be installed where the tests run, yet the SDK's Supabase transport must be
exercised end to end: real HTTP requests from supabase-py, real JWT checks, real roles and
real SQL errors. This module serves ``POST /rest/v1/rpc/{function}`` the way PostgREST v12
does, behind a gateway that checks the API key the way Supabase's does:

- the ``apikey`` header must be one of the project's keys (an HS256 JWT signed with the
  project's secret whose role is ``anon`` or ``service_role``), else 401 with
  ``{"message": "Invalid API key"}`` and no ``code``, before the database is touched;
- it connects as an authenticator-like role (LOGIN, NOINHERIT, not a superuser, member
  of the API roles: ``prepare_database`` makes it) and, inside one transaction per
  request, switches to the role the bearer JWT names, applies that role's settings
  (Supabase sets ``statement_timeout`` 3 s for anon and 8 s for authenticated) and runs a
  STABLE or IMMUTABLE function in a read-only transaction;
- it calls ``public.{function}`` with named arguments converted by ``json_to_record`` and
  maps SQLSTATEs to HTTP statuses with PostgREST's error body.

Unlike PostgREST it keeps no schema cache: functions and role settings are looked up on
every request, so tests never need a cache reload.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, NamedTuple, Self, cast
from urllib.parse import unquote, urlsplit

import jwt
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

if TYPE_CHECKING:
    from types import TracebackType

RPC_PREFIX = "/rest/v1/rpc/"
SCHEMA = "public"
ANON_ROLE = "anon"
API_ROLES = ("anon", "authenticated", "service_role")
KEY_ROLES = frozenset({"anon", "service_role"})  # the roles a project's API keys carry
AUTHENTICATOR = "jobforge_test_authenticator"
AUTHENTICATOR_PASSWORD = "jobforge-test-authenticator"  # a test-only role on a test server
# What a hosted Supabase project sets on its API roles (ALTER ROLE ... SET statement_timeout).
SUPABASE_ROLE_TIMEOUTS = {"anon": "3s", "authenticated": "8s"}
SEARCH_PATH = "public, extensions"  # Supabase's db-schemas + db-extra-search-path
JWT_LEEWAY_SECONDS = 30  # PostgREST tolerates this much clock skew on exp/nbf/iat

# PostgREST's SQLSTATE -> HTTP table: exact codes, then two-character classes, else 400.
_STATUS_BY_CODE = {"23503": 409, "23505": 409, "25006": 405, "42883": 404, "42P01": 404}
_STATUS_BY_CODE |= {"42P17": 500, "53400": 500, "57P01": 503, "P0001": 400}
_STATUS_BY_CLASS = {"08": 503, "0L": 403, "0P": 403, "28": 403, "53": 503}
_STATUS_BY_CLASS |= dict.fromkeys(
    ["09", "25", "2D", "38", "39", "3B", "40", "54", "55", "57", "58", "F0", "HV", "P0", "XX"], 500
)

_LOOKUP = """
select p.proargnames, p.proargmodes::text[], p.pronargs, p.pronargdefaults, p.proretset,
       p.prorettype = 'pg_catalog.void'::pg_catalog.regtype, p.provolatile <> 'v',
       array(select pg_catalog.format_type(t.oid, null)
             from unnest(p.proargtypes::oid[]) with ordinality as t(oid, n) order by t.n)
from pg_catalog.pg_proc p join pg_catalog.pg_namespace ns on ns.oid = p.pronamespace
where ns.nspname = %s and p.proname = %s and p.prokind = 'f'
order by p.oid
"""

_SET_LOCALS = """
select pg_catalog.set_config('search_path', %s, true), pg_catalog.set_config('role', %s, true),
       pg_catalog.set_config('request.jwt.claims', %s, true),
       pg_catalog.set_config('request.method', 'POST', true),
       pg_catalog.set_config('request.path', %s, true),
       pg_catalog.set_config('request.headers', %s, true),
       pg_catalog.set_config('transaction_read_only', %s, true)
"""

# The role's own settings, then its settings in this database, which win (as at login).
_ROLE_SETTINGS = """
select s.setting
from pg_catalog.pg_db_role_setting d
cross join lateral unnest(d.setconfig) with ordinality as s(setting, n)
where d.setrole = (select r.oid from pg_catalog.pg_roles r where r.rolname = %s)
  and d.setdatabase in (0, (select b.oid from pg_catalog.pg_database b
                            where b.datname = pg_catalog.current_database()))
order by d.setdatabase, s.n
"""

_PREPARE_DATABASE = """
do $prepare$
begin
  begin
    execute pg_catalog.format('create role %I login noinherit', {authenticator});
  exception when duplicate_object or unique_violation then
    null;  -- made by an earlier session, or by a parallel one just now
  end;
  execute pg_catalog.format('alter role %I login noinherit nosuperuser password %L',
                            {authenticator}, {password});
  execute pg_catalog.format('grant anon, authenticated, service_role to %I', {authenticator});
  execute pg_catalog.format('alter role anon in database %I set statement_timeout = %L',
                            pg_catalog.current_database(), {anon_timeout});
  execute pg_catalog.format('alter role authenticated in database %I set statement_timeout = %L',
                            pg_catalog.current_database(), {authenticated_timeout});
end
$prepare$
"""


def prepare_database(superuser_url: str) -> None:
    """Make the database servable the way Supabase serves one: the authenticator login
    role (cluster-wide, idempotent) and the API roles' statement timeouts, set in this
    database only so that nothing outside the test databases changes."""
    statement = sql.SQL(_PREPARE_DATABASE).format(
        authenticator=sql.Literal(AUTHENTICATOR),
        password=sql.Literal(AUTHENTICATOR_PASSWORD),
        anon_timeout=sql.Literal(SUPABASE_ROLE_TIMEOUTS["anon"]),
        authenticated_timeout=sql.Literal(SUPABASE_ROLE_TIMEOUTS["authenticated"]),
    )
    with psycopg.connect(superuser_url, autocommit=True) as conn:
        conn.execute(statement)


def authenticator_url(database_url: str) -> str:
    """The same database, logging in as the authenticator role."""
    return make_conninfo(database_url, user=AUTHENTICATOR, password=AUTHENTICATOR_PASSWORD)


def gateway_refusal(status: int, message: str, hint: str) -> PgrstError:
    """What Supabase's API gateway answers itself: a message and a hint, no ``code``."""
    err = PgrstError(status, "", message, hint=hint)
    err.body = {"message": message, "hint": hint}
    err.headers = {}  # no RFC 6750 challenge: the gateway is not the resource server
    return err


def make_jwt(secret: str, role: str, **claims: object) -> str:
    """Mint an HS256 key like Supabase's anon/service_role keys; ``claims`` may override exp."""
    now = int(time.time())
    payload: dict[str, object] = {"role": role, "iat": now, "exp": now + 3600, **claims}
    return jwt.encode(payload, secret, algorithm="HS256")


class PgrstError(Exception):
    """An error answer; PostgREST always sends this four-key JSON body with its status."""

    def __init__(self, status: int, code: str, message: str, **fields: str | None) -> None:
        """Take the optional ``details`` and ``hint`` by keyword, as few errors have them."""
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.body: dict[str, str | None] = {"code": code, "message": message}
        self.body |= {"details": fields.get("details"), "hint": fields.get("hint")}
        self.headers: dict[str, str] = {}
        if status == HTTPStatus.UNAUTHORIZED:  # RFC 6750 challenge, as PostgREST sends it
            bad_token = f'error="invalid_token", error_description="{message}"'
            self.headers["WWW-Authenticate"] = (
                f"Bearer {bad_token}" if code == "PGRST301" else "Bearer"
            )

    def encode(self) -> bytes:
        """Return the JSON body."""
        return json.dumps(self.body).encode()


class _Routine(NamedTuple):
    """One overload of the function: its input parameters and what it returns."""

    params: list[tuple[str, str]]  # (name, formatted type) of input parameters, in order
    required: frozenset[str]  # names without a default
    returns_set: bool
    returns_void: bool
    read_only: bool  # STABLE or IMMUTABLE: PostgREST runs it in a read-only transaction


def _http_status(code: str, message: str, *, authed: bool) -> int:
    """Give a Postgres error the status PostgREST gives it, so clients see the same statuses."""
    if code == "42501":  # no JWT (anon) means "log in"; a known role lacking rights is forbidden
        return 403 if authed else 401
    if code == "22023" and message.startswith("role") and message.endswith("does not exist"):
        return 401  # the JWT names a role the database does not have
    if code == "21000":  # pg-safeupdate's refusal is the client's fault, other cases are not
        return 400 if message.endswith("requires a WHERE clause") else 500
    if code.startswith("PT"):  # status chosen by the function: raise ... errcode = 'PT404'
        digits = code[2:]
        return int(digits) if digits.isdigit() and 100 <= int(digits) <= 599 else 500
    return _STATUS_BY_CODE.get(code) or _STATUS_BY_CLASS.get(code[:2], 400)


def _raised_pgrst(message: str, detail: str | None) -> PgrstError:
    """Honour ``raise sqlstate 'PGRST'``: MESSAGE is the JSON body, DETAIL status and headers."""
    try:
        body, meta = json.loads(message), json.loads(detail or "null")
        err = PgrstError(int(meta["status"]), str(body["code"]), str(body["message"]))
        err.body |= {"details": body.get("details"), "hint": body.get("hint")}
        err.headers = {str(k): str(v) for k, v in dict(meta["headers"]).items()}
        return err
    except (ValueError, TypeError, KeyError) as exc:
        message = "Could not parse JSON in the \"RAISE SQLSTATE 'PGRST'\" error"
        return PgrstError(500, "PGRST121", message, details=f"Bad MESSAGE or DETAIL: {exc}")


def _database_error(exc: psycopg.Error, *, authed: bool) -> PgrstError:
    """Translate a psycopg error into PostgREST's status and body."""
    if exc.sqlstate is None:  # lost connection: there is no server error to forward
        message = "Database client error. Retrying the connection."
        return PgrstError(503, "PGRST001", message, details=str(exc))
    message = exc.diag.message_primary or str(exc)
    if exc.sqlstate == "PGRST":
        return _raised_pgrst(message, exc.diag.message_detail)
    status = _http_status(exc.sqlstate, message, authed=authed)
    details, hint = exc.diag.message_detail, exc.diag.message_hint
    return PgrstError(status, exc.sqlstate, message, details=details, hint=hint)


class PostgrestStub:
    """Serve PostgREST-style RPC calls for tests; ``url`` plays the part of SUPABASE_URL."""

    def __init__(self, database_url: str, jwt_secret: str, *, pool_size: int = 10) -> None:
        """Prepare, without connecting: ``start()`` opens the pool and the port."""
        self._secret = jwt_secret
        self._pool = ConnectionPool(
            database_url, min_size=1, max_size=pool_size, open=False, name="postgrest-stub"
        )
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL to give clients, e.g. ``http://127.0.0.1:54321``; RPCs live under it."""
        if self._server is None:
            msg = "PostgrestStub is not started"
            raise RuntimeError(msg)
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Self:
        """Open the pool (failing fast on a bad DSN), check that it logged in as an
        authenticator would, then serve on a free loopback port."""
        self._pool.open(wait=True, timeout=10)
        with self._pool.connection() as conn:
            row = conn.execute(
                "select rolsuper, rolinherit from pg_catalog.pg_roles where rolname = session_user"
            ).fetchone()
        if row is None or row[0] or row[1]:
            self._pool.close()
            msg = (
                "PostgrestStub must log in as a NOINHERIT role that is not a superuser (as "
                "PostgREST's authenticator does): use authenticator_url() after prepare_database()"
            )
            raise RuntimeError(msg)
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="postgrest-stub", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, wait for requests in flight, then close every pooled connection."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()  # joins the request threads (block_on_close)
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._pool.close()

    def __enter__(self) -> Self:
        """Start, so that ``with PostgrestStub(...) as stub:`` always stops it."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop, whatever happened in the block."""
        self.stop()

    def call(self, function: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """Answer one RPC (lower-cased header names): status and body, or raise PgrstError."""
        profile = headers.get("content-profile", SCHEMA)
        if profile != SCHEMA:
            hint = f"Only the following schemas are exposed: {SCHEMA}"
            raise PgrstError(406, "PGRST106", f"Invalid schema: {profile}", hint=hint)
        self._check_api_key(headers.get("apikey"))
        role, claims = self._authenticate(headers.get("authorization"))
        try:
            args = json.loads(body) if body.strip() else {}
        except ValueError as exc:
            raise PgrstError(400, "PGRST102", "Empty or invalid json", details=str(exc)) from exc
        if not isinstance(args, dict):
            raise PgrstError(400, "PGRST102", "Expected a JSON object of named arguments")
        try:
            with self._pool.connection() as conn, conn.transaction():
                routine = _resolve(conn, function, args)
                read_only = "on" if routine.read_only else "off"
                locals_ = [
                    SEARCH_PATH,
                    role,
                    json.dumps(claims),
                    RPC_PREFIX + function,
                    json.dumps(headers),
                    read_only,
                ]
                settings = _role_settings(conn, role)
                conn.execute(_SET_LOCALS, locals_)
                for name, value in settings.items():
                    conn.execute("select pg_catalog.set_config(%s, %s, true)", [name, value])
                row = conn.execute(*_call_query(function, routine, args)).fetchone()
        except psycopg.Error as exc:
            raise _database_error(exc, authed=role != ANON_ROLE) from exc
        except PoolTimeout as exc:
            msg = "Timed out acquiring connection from connection pool."
            raise PgrstError(504, "PGRST003", msg) from exc
        if routine.returns_void:
            return 204, b""
        return 200, (row[0] if row and row[0] is not None else "null").encode()

    def _check_api_key(self, apikey: str | None) -> None:
        """Refuse as the gateway does, before PostgREST: a project key must come along."""
        if not apikey:
            hint = "No `apikey` request header or url param was found."
            raise gateway_refusal(401, "No API key found in request", hint)
        try:
            claims = jwt.decode(
                apikey.strip(), self._secret, algorithms=["HS256"], options={"verify_aud": False}
            )
        except jwt.InvalidTokenError:
            claims = {}
        if claims.get("role") not in KEY_ROLES:
            hint = "Double check your Supabase `anon` or `service_role` API key."
            raise gateway_refusal(401, "Invalid API key", hint)

    def _authenticate(self, authorization: str | None) -> tuple[str, dict[str, Any]]:
        """Find the role and claims: anon without a bearer token, else the verified JWT's."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer":
            return ANON_ROLE, {"role": ANON_ROLE}
        try:
            claims: dict[str, Any] = jwt.decode(
                token.strip(),
                self._secret,
                algorithms=["HS256", "HS384", "HS512"],
                leeway=JWT_LEEWAY_SECONDS,
                options={"verify_aud": False},  # PostgREST checks aud only if configured to
            )
        except jwt.InvalidTokenError as exc:
            raise PgrstError(401, "PGRST301", _jwt_message(token, exc)) from exc
        role = claims.get("role")
        return (role if isinstance(role, str) and role else ANON_ROLE), claims


def _role_settings(conn: psycopg.Connection[Any], role: str) -> dict[str, str]:
    """The settings PostgREST applies when it switches to ``role`` (``name=value`` rows)."""
    settings: dict[str, str] = {}
    for (setting,) in conn.execute(_ROLE_SETTINGS, [role]):
        name, _, value = str(setting).partition("=")
        settings[name] = value
    return settings


def _jwt_message(token: str, exc: jwt.InvalidTokenError) -> str:
    """Word a rejected JWT the way PostgREST v12 does."""
    if not token.strip():
        return "Empty JWT is sent in Authorization header"
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "JWT expired"
    if isinstance(exc, jwt.InvalidSignatureError):
        return "JWSError JWSInvalidSignature"
    if (parts := token.strip().count(".") + 1) != 3:
        return (
            f"JWSError (CompactDecodeError Invalid number of parts: Expected 3 parts; got {parts})"
        )
    return f"JWSError {exc}"


def _resolve(conn: psycopg.Connection[Any], function: str, args: dict[str, Any]) -> _Routine:
    """Pick the overload PostgREST would: named parameters covering exactly the given keys."""
    named: list[_Routine] = []
    single_json: list[_Routine] = []
    for names, modes, nargs, ndefaults, retset, void, read_only, types in conn.execute(
        _LOOKUP, [SCHEMA, function]
    ):
        all_modes: list[str] = modes or ["i"] * nargs  # no modes: every argument is IN
        all_names: list[str] = names or [""] * len(all_modes)
        inputs = [n for n, m in zip(all_names, all_modes, strict=True) if m in {"i", "b", "v"}]
        params = list(zip(inputs, types, strict=True))
        required = frozenset(inputs[: nargs - ndefaults])
        routine = _Routine(params, required, retset, void, read_only)
        if inputs == [""] and types[0] in {"json", "jsonb"}:
            single_json.append(routine)  # PostgREST passes it the whole body
        elif all(inputs) and routine.required <= args.keys() <= set(inputs):
            named.append(routine)
    candidates = named or single_json
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        overloads = ", ".join(
            f"{SCHEMA}.{function}({', '.join(f'{n} => {t}' for n, t in r.params)})"
            for r in candidates
        )
        message = f"Could not choose the best candidate function between: {overloads}"
        hint = "Try renaming the parameters or the function itself in the database so function "
        raise PgrstError(300, "PGRST203", message, hint=hint + "overloading can be resolved")
    keys = ", ".join(sorted(args))
    shown = f"({keys})" if keys else " without parameters"
    searched = f" with parameter{'s' * (len(args) > 1)} {keys}" if keys else " without parameters"
    message = f"Could not find the function {SCHEMA}.{function}{shown} in the schema cache"
    details = (
        f"Searched for the function {SCHEMA}.{function}{searched} or with a single unnamed "
        "json/jsonb parameter, but no matches were found in the schema cache."
    )
    raise PgrstError(404, "PGRST202", message, details=details)


def _call_query(
    function: str, routine: _Routine, args: dict[str, Any]
) -> tuple[sql.Composed, list[str]]:
    """Build the call; json_to_record turns JSON values into the parameters' declared types."""
    target = sql.SQL("{}.{}").format(sql.Identifier(SCHEMA), sql.Identifier(function))
    given = [(n, t) for n, t in routine.params if n in args]
    params = [json.dumps(args)]
    source: sql.Composable = sql.SQL("")
    if routine.params and not routine.params[0][0]:  # the single unnamed json/jsonb parameter
        call = sql.SQL("{}(%s::{})").format(target, sql.SQL(routine.params[0][1]))
    else:
        named_args = (sql.SQL("{0} => _pgrst_args.{0}").format(sql.Identifier(n)) for n, _ in given)
        call = sql.SQL("{}({})").format(target, sql.SQL(", ").join(named_args))
        columns = (sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in given)
        source = sql.SQL(" from pg_catalog.json_to_record(%s::json) as _pgrst_args({})").format(
            sql.SQL(", ").join(columns)
        )
        if not given:  # json_to_record cannot describe a record without columns
            source, params = sql.SQL(""), []
    if routine.returns_set:
        rows = sql.SQL("{}, lateral {} as _pgrst_row" if given else " from {1} as _pgrst_row")
        query = sql.SQL("select coalesce(pg_catalog.json_agg(_pgrst_row), '[]')::text{}").format(
            rows.format(source, call)
        )
    elif routine.returns_void:
        query = sql.SQL("select {}{}").format(call, source)
    else:
        query = sql.SQL("select pg_catalog.to_json({})::text{}").format(call, source)
    return query, params


class _Server(ThreadingHTTPServer):
    """Threaded loopback server whose close waits for the requests still being answered."""

    daemon_threads = False
    block_on_close = True

    def __init__(self, stub: PostgrestStub) -> None:
        """Bind a free port; handlers reach the stub through ``self.server.stub``."""
        super().__init__(("127.0.0.1", 0), _Handler)
        self.stub = stub


class _Handler(BaseHTTPRequestHandler):
    """HTTP plumbing only: ``PostgrestStub.call`` holds the PostgREST behaviour."""

    server_version = "postgrest-stub/12"
    timeout = 30  # a silent client must not block stop() for ever

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: one stderr line per request would bury the test output."""

    def handle(self) -> None:
        """Serve, treating a client that hangs up early (a cancelled request) as normal."""
        with contextlib.suppress(ConnectionError):
            super().handle()

    def do_POST(self) -> None:
        """Call the function named by the path with the JSON body's named arguments."""
        function = self._function()
        if function is None:
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            status, payload = cast("_Server", self.server).stub.call(function, body, headers)
        except PgrstError as err:
            self._fail(err)
        except Exception as exc:  # a stub bug: answer 500, then let socketserver print it
            self._fail(PgrstError(500, "PGRSTX00", repr(exc)))
            raise
        else:
            self._send(status, payload or None)

    def do_GET(self) -> None:
        """Refuse: PostgREST allows GET only for read-only functions; this stub serves POST."""
        if self._function() is not None:
            self._fail(PgrstError(405, "PGRST101", f"Cannot use the {self.command} method on RPC"))

    do_HEAD = do_PUT = do_PATCH = do_DELETE = do_GET

    def _function(self) -> str | None:
        """Return the function named by the path, or None after answering 404 for others."""
        path = urlsplit(self.path).path
        name = unquote(path.removeprefix(RPC_PREFIX)) if path.startswith(RPC_PREFIX) else ""
        if name and "/" not in name:
            return name
        self._fail(PgrstError(404, "PGRST125", "Invalid path specified in request URL"))
        return None

    def _fail(self, err: PgrstError) -> None:
        self._send(err.status, err.encode(), err.headers)

    def _send(self, status: int, body: bytes | None, headers: dict[str, str] | None = None) -> None:
        """Write one response; ``None`` means no body and no Content-Type, as for 204."""
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if body is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body is not None and self.command != "HEAD":
            self.wfile.write(body)
