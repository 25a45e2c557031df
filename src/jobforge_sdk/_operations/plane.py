"""Operations of the execution plane (``supabase/schema/30_events.sql`` to ``60_triggers.sql``
and ``10_audit.sql``), each behind its flag.

A gated operation whose flag is off never builds its call: the client returns ``None``
(or ``[]``) without I/O, or raises ``FeatureDisabledError`` when strict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

from pydantic import JsonValue

from jobforge_sdk._operations._machinery import (
    FLAGS,
    Gate,
    Plan,
    RpcCall,
    Steps,
    operation,
    parse_list,
    parse_one,
    parse_optional,
    parse_uuids,
    steps_of,
    validate,
)
from jobforge_sdk._schema_check import schema_problem
from jobforge_sdk.encryption import (
    check_field_names,
    decrypt_event,
    decrypt_job,
    encrypt_fields,
    event_scope,
    job_scope,
    keys_of,
)
from jobforge_sdk.errors import InvalidInputError, PolicyDeniedError
from jobforge_sdk.flags import Feature, FeatureFlags
from jobforge_sdk.models.audit import AuditAction, AuditLogEntry, AuditOutcome, ListAuditLogsParams
from jobforge_sdk.models.events import (
    EventEnvelope,
    EventRow,
    ListEventsParams,
    SourceApp,
    SourceModule,
    SubmitEventParams,
    SubmitEventsParams,
)
from jobforge_sdk.models.manifests import (
    ArtifactManifest,
    CreateManifestParams,
    GetManifestParams,
    ManifestRow,
)
from jobforge_sdk.models.policy import (
    AddPolicyKeyParams,
    PolicyCheckResult,
    PolicyKeyRow,
    RetirePolicyKeyParams,
    VerifyPolicyTokenParams,
)
from jobforge_sdk.models.retention import (
    MAX_PURGE_BATCH,
    BatchedDaysParams,
    ClaimDailyPurgeParams,
    DailyPurgeClaim,
    PurgeResult,
    RetentionParams,
)
from jobforge_sdk.models.templates import (
    ACTION_TEMPLATE_KEYS,
    GetTemplateParams,
    ListTemplatesParams,
    RequestJobParams,
    RequestJobResult,
    SetTemplateEnabledParams,
    TemplateCategory,
    TemplateRow,
)
from jobforge_sdk.models.triggers import (
    CreateCronTriggerParams,
    CreateEventTriggerParams,
    CronFireResult,
    FireCronTriggerParams,
    ListTriggersParams,
    MisfirePolicy,
    SetTriggerEnabledParams,
    SetTriggerMisfirePolicyParams,
    Trigger,
    TriggerRef,
    TriggerType,
)
from jobforge_sdk.policy import generate_policy_token

__all__ = [
    "add_policy_key",
    "claim_daily_purge",
    "create_cron_trigger",
    "create_event_trigger",
    "create_manifest",
    "delete_trigger",
    "fire_cron_trigger",
    "get_run_manifest",
    "get_template",
    "list_audit_logs",
    "list_cron_triggers",
    "list_events",
    "list_templates",
    "list_triggers",
    "purge_audit_logs",
    "purge_expired_events",
    "purge_manifests",
    "request_job",
    "retire_policy_key",
    "set_template_enabled",
    "set_trigger_enabled",
    "set_trigger_misfire_policy",
    "submit_event",
    "submit_event_ids",
    "submit_events",
    "template_of_job",
    "verify_policy_token",
]

Id = UUID | str

# How long a client answers a template read from memory. A template's schema changes only
# with a migration; enabling it is checked by the database at request time anyway.
TEMPLATE_CACHE_SECONDS = 60.0


# -- events ---------------------------------------------------------------------------


def _event_fields(envelope: EventEnvelope | Mapping[str, Any] | None) -> dict[str, Any]:
    if envelope is None:
        return {}
    if not isinstance(envelope, EventEnvelope):
        if not isinstance(envelope, Mapping):
            raise InvalidInputError(
                "envelope: must be an EventEnvelope or a mapping of its fields", field="envelope"
            )
        envelope = validate(EventEnvelope, dict(envelope))
    return envelope.submit_fields()


@operation(Feature.EVENTS)
def submit_event(
    envelope: EventEnvelope | Mapping[str, Any] | None = None,
    /,
    *,
    tenant_id: Id | None = None,
    event_type: str | None = None,
    source_app: SourceApp | str | None = None,
    payload: Mapping[str, JsonValue] | None = None,
    source_module: SourceModule | str | None = None,
    project_id: Id | None = None,
    trace_id: str | None = None,
    actor_id: str | None = None,
    subject_type: str | None = None,
    subject_id: str | None = None,
    occurred_at: datetime | None = None,
    event_version: str | None = None,
    contains_pii: bool | None = None,
    redaction_hints: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
    encrypt_fields: Sequence[str] | None = None,
) -> Plan[EventRow | None]:
    """Store one event (an ``EventEnvelope``, its dict, or keyword fields) and fire the
    tenant's matching event triggers. Re-submitting the same event (same
    ``idempotency_key``, or same ``trace_id``, ``event_type`` and ``occurred_at``) returns
    the stored row.

    ``encrypt_fields`` names top-level payload fields to store encrypted with the
    client's ``JOBFORGE_ENCRYPTION_KEYS`` (see ``jobforge_sdk.encryption``); the row
    returned holds them decrypted."""
    given = locals()
    names = given.pop("encrypt_fields")
    fields = _event_fields(given.pop("envelope"))
    for name, value in given.items():
        if value is None:
            continue  # not given: the envelope's value, or the model's default
        if name in fields and str(fields[name]) != str(value):
            raise InvalidInputError(f"{name}: the envelope and the argument differ")
        fields[name] = value
    params = validate(SubmitEventParams, fields)
    call = RpcCall("jobforge_submit_event", params.rpc_args(), parse_optional(EventRow))
    if names is None:
        return call
    return _encrypted_event(params, check_field_names(names, "payload"))


def _encrypted_event(params: SubmitEventParams, names: list[str]) -> Steps[EventRow | None]:
    """submit_event with the named payload fields encrypted (keys from the flags)."""
    flags: FeatureFlags = yield FLAGS
    keys = keys_of(flags)
    payload = encrypt_fields(
        params.payload or {},
        names,
        keys=keys,
        tenant_id=params.tenant_id,
        scope=event_scope(params.event_type),
        where="payload",
        required=True,
    )
    params = params.model_copy(update={"payload": payload})
    row: EventRow | None = yield RpcCall(
        "jobforge_submit_event", params.rpc_args(), parse_optional(EventRow)
    )
    return None if row is None else decrypt_event(row, keys)


@operation(Feature.EVENTS, empty=list)
def submit_events(
    *, tenant_id: Id, events: Sequence[EventEnvelope | Mapping[str, Any]]
) -> RpcCall[list[EventRow]]:
    """Store up to 1,000 events in one statement; rows come back in input order.

    Items may be ``EventEnvelope`` objects or their JSON (which carry a ``tenant_id``: it
    must then be this batch's tenant), or plain dicts of ``submit_event`` fields.
    """
    params = validate(SubmitEventsParams, {**locals(), "events": _batch_items(events, tenant_id)})
    return RpcCall("jobforge_submit_events", params.rpc_args(), parse_list(EventRow))


@operation(Feature.EVENTS, empty=list)
def submit_event_ids(
    *, tenant_id: Id, events: Sequence[EventEnvelope | Mapping[str, Any]]
) -> RpcCall[list[UUID]]:
    """Store up to 1,000 events as ``submit_events`` does, and answer only their ids, in
    input order (a duplicate's is the stored event's id): the lean call for producers that
    do not read the rows back, which spares the database building them."""
    params = validate(SubmitEventsParams, {**locals(), "events": _batch_items(events, tenant_id)})
    return RpcCall(
        "jobforge_submit_events", {**params.rpc_args(), "p_returning": "ids"}, parse_uuids
    )


def _batch_items(events: Sequence[EventEnvelope | Mapping[str, Any]], tenant_id: Id) -> Any:
    # Anything but a list or tuple (a string, a mapping, a number) is left to the params
    # model, which refuses it as "events: Input should be a valid list".
    if not isinstance(events, list | tuple):
        return events
    return [_batch_item(index, event, tenant_id) for index, event in enumerate(events)]


def _batch_item(index: int, event: EventEnvelope | Mapping[str, Any], tenant_id: Id) -> Any:
    if isinstance(event, EventEnvelope):
        fields = event.submit_fields()
    elif not isinstance(event, Mapping):
        raise InvalidInputError(
            f"events.{index}: must be an EventEnvelope or a mapping of its fields",
            field=f"events.{index}",
        )
    elif "subject" in event or "schema_version" in event:
        try:
            fields = validate(EventEnvelope, dict(event)).submit_fields()
        except InvalidInputError as exc:
            field = f"events.{index}.{exc.field}"
            raise InvalidInputError(f"events.{index}.{exc.message}", field=field) from None
    else:
        fields = dict(event)
    given = fields.pop("tenant_id", None)
    if given is not None and str(given) != str(tenant_id):
        raise InvalidInputError(f"events.{index}.tenant_id: differs from the batch's tenant_id")
    return fields


@operation(Feature.EVENTS, empty=list)
def list_events(
    *,
    tenant_id: Id,
    project_id: Id | None = None,
    event_type: str | None = None,
    source_app: SourceApp | str | None = None,
    source_module: SourceModule | str | None = None,
    processed: bool | None = None,
    trace_id: str | None = None,
    subject_type: str | None = None,
    subject_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
    raw: bool = False,
) -> Steps[list[EventRow]]:
    """Events of the tenant, newest first. Redacted fields read ``"[REDACTED]"`` unless a
    service-role caller asks for ``raw`` payloads. Encrypted payload fields are decrypted
    when the client holds ``JOBFORGE_ENCRYPTION_KEYS``, and left as ciphertext otherwise."""
    params = validate(ListEventsParams, locals())
    flags: FeatureFlags = yield FLAGS
    rows: list[EventRow] = yield RpcCall(
        "jobforge_list_events", params.rpc_args(), parse_list(EventRow)
    )
    keys = keys_of(flags)
    return rows if keys is None else [decrypt_event(row, keys) for row in rows]


@operation(Feature.EVENTS)
def purge_expired_events(
    *, retention_days: int = 30, batch_size: int = MAX_PURGE_BATCH
) -> RpcCall[PurgeResult | None]:
    """Delete up to ``batch_size`` (at most 10,000) events created more than
    ``retention_days`` ago, with as many stale trigger-fire and token-use records
    (service role). Call again while the answer's ``more`` is true."""
    params = validate(BatchedDaysParams, locals())
    return RpcCall("jobforge_purge_expired_events", params.rpc_args(), parse_one(PurgeResult))


# -- templates and job requests -------------------------------------------------------


@operation(Feature.AUTOPILOT_JOBS, empty=list)
def list_templates(
    *, category: TemplateCategory | str | None = None, enabled: bool | None = None
) -> RpcCall[list[TemplateRow]]:
    """The template registry, by key."""
    params = validate(ListTemplatesParams, locals())
    return RpcCall("jobforge_list_templates", params.rpc_args(), parse_list(TemplateRow))


@operation(Feature.AUTOPILOT_JOBS)
def get_template(*, template_key: str) -> RpcCall[TemplateRow | None]:
    """One template; ``NotFoundError`` for an unknown key."""
    params = validate(GetTemplateParams, locals())
    return RpcCall("jobforge_get_template", params.rpc_args(), parse_one(TemplateRow))


@operation(internal=True)
def template_of_job(*, template_key: str) -> RpcCall[TemplateRow]:
    """The template of a job a worker is about to run (internal: the worker's call). Not
    gated, on purpose: the job exists, so whoever requested it had AUTOPILOT_JOBS on, and a
    worker must check its inputs against the template whatever its own flags say."""
    params = validate(GetTemplateParams, locals())
    return RpcCall(
        "jobforge_get_template",
        params.rpc_args(),
        parse_one(TemplateRow),
        cache_seconds=TEMPLATE_CACHE_SECONDS,
    )


@operation(Feature.AUTOPILOT_JOBS)
def set_template_enabled(
    *,
    template_key: str,
    enabled: bool,
    actor_id: str | None = None,
    encrypt_fields: Sequence[str] | None = None,
    default_priority: int | None = None,
) -> RpcCall[TemplateRow | None]:
    """Enable or disable a template for everyone (service role; audited). With
    ``encrypt_fields``, also set which top-level inputs of its jobs are stored encrypted
    (``[]``: none); with ``default_priority``, the priority of the jobs requested from it
    or fired by its triggers from now on."""
    params = validate(SetTemplateEnabledParams, locals())
    return RpcCall("jobforge_set_template_enabled", params.rpc_args(), parse_one(TemplateRow))


@operation(Feature.AUTOPILOT_JOBS)
def request_job(
    *,
    tenant_id: Id,
    template_key: str,
    inputs: Mapping[str, JsonValue] | None = None,
    project_id: Id | None = None,
    trace_id: str | None = None,
    actor_id: str | None = None,
    dry_run: bool = False,
    idempotency_key: str | None = None,
    policy_token: str | None = None,
) -> Steps[RequestJobResult | None]:
    """Request a job from a template (or only show what would run, with ``dry_run``).

    An action template needs a policy token: the SDK first has the database verify it
    (which audits the verdict even when the token is refused), then requests the job,
    which verifies it again and consumes its ``jti``.
    """
    params = validate(RequestJobParams, locals())
    # Known action templates, and any request that brings a token (a template the SDK
    # does not know may still be an action job: the database decides), go through the
    # ACTION_JOBS gate and the audited verification.
    action = params.template_key in ACTION_TEMPLATE_KEYS or params.policy_token is not None
    if action and not (yield Gate(Feature.ACTION_JOBS, "request_job")):
        return None
    flags: FeatureFlags = yield FLAGS
    if action and params.policy_token is None and not _may_sign(flags):
        raise PolicyDeniedError(
            f"policy token refused: policy_token is required for action template "
            f"{params.template_key}",
            code=None,
        )
    # The inputs meet the template's whole JSON Schema before anything is written (the
    # token check below writes an audit row); the database checks them again.
    template = yield from steps_of(template_of_job(template_key=params.template_key))
    problem = schema_problem(template.input_schema, params.inputs or {}, "inputs")
    if problem is not None:
        raise InvalidInputError(problem, field=problem.partition(":")[0])
    keys = keys_of(flags)
    if template.encrypt_fields:
        # The inputs the template names leave the process encrypted (encryption.py).
        inputs = encrypt_fields(
            params.inputs or {},
            template.encrypt_fields,
            keys=keys,
            tenant_id=params.tenant_id,
            scope=job_scope(params.template_key),
            where="inputs",
            required=False,
        )
        params = params.model_copy(update={"inputs": inputs})
    if action:
        token = params.policy_token or _self_issued_token(params, flags, template)
        verdict: PolicyCheckResult = yield _verify_call(
            params.tenant_id, params.template_key, token, params.actor_id
        )
        if not verdict.allowed:
            raise PolicyDeniedError(
                f"policy token refused: {verdict.reason}", code="PT403", details=verdict.reason
            )
        params = params.model_copy(update={"policy_token": token})
    result: RequestJobResult = yield RpcCall(
        "jobforge_request_job", params.rpc_args(), parse_one(RequestJobResult)
    )
    if result.job is not None and keys is not None:
        result = result.model_copy(update={"job": decrypt_job(result.job, keys)})
    return result


def _may_sign(flags: FeatureFlags) -> bool:
    """With REQUIRE_POLICY_TOKENS off and a secret set, a trusted backend signs its own
    tokens; otherwise the caller must bring one."""
    return not flags.require_policy_tokens and flags.policy_token_secret is not None


def _self_issued_token(params: RequestJobParams, flags: FeatureFlags, template: TemplateRow) -> str:
    """A token signed with POLICY_TOKEN_SECRET for the template's scopes (see _may_sign)."""
    assert flags.policy_token_secret is not None
    return generate_policy_token(
        secret=flags.policy_token_secret.get_secret_value(),
        kid=flags.policy_token_kid,
        tenant_id=params.tenant_id,
        actor_id=params.actor_id or "jobforge-sdk",
        action=params.template_key,
        scopes=template.required_scopes,
        project_id=params.project_id,
        expires_in=timedelta(hours=flags.policy_token_expiry_hours),
    )


def _verify_call(
    tenant_id: UUID, template_key: str, token: str, actor_id: str | None
) -> RpcCall[PolicyCheckResult]:
    params = VerifyPolicyTokenParams(
        tenant_id=tenant_id, template_key=template_key, policy_token=token, actor_id=actor_id
    )
    return RpcCall("jobforge_verify_policy_token", params.rpc_args(), parse_one(PolicyCheckResult))


@operation(Feature.ACTION_JOBS)
def verify_policy_token(
    *, tenant_id: Id, template_key: str, policy_token: str, actor_id: str | None = None
) -> RpcCall[PolicyCheckResult | None]:
    """Have the database check a token for an action (audited, ``jti`` not consumed)."""
    params = validate(VerifyPolicyTokenParams, locals())
    return RpcCall("jobforge_verify_policy_token", params.rpc_args(), parse_one(PolicyCheckResult))


@operation(Feature.ACTION_JOBS)
def add_policy_key(*, kid: str, secret: str) -> RpcCall[PolicyKeyRow | None]:
    """Register a signing key in the database's private key table (service role)."""
    params = validate(AddPolicyKeyParams, locals())
    return RpcCall("jobforge_add_policy_key", params.rpc_args(), parse_one(PolicyKeyRow))


@operation(Feature.ACTION_JOBS)
def retire_policy_key(*, kid: str) -> RpcCall[PolicyKeyRow | None]:
    """Stop accepting tokens signed with ``kid`` (service role)."""
    params = validate(RetirePolicyKeyParams, locals())
    return RpcCall("jobforge_retire_policy_key", params.rpc_args(), parse_one(PolicyKeyRow))


# -- manifests ------------------------------------------------------------------------


@operation(Feature.MANIFESTS)
def create_manifest(
    *, run_id: Id, tenant_id: Id, manifest: ArtifactManifest | Mapping[str, Any]
) -> RpcCall[ManifestRow | None]:
    """Write the run's manifest (service role); a pending one may be updated later."""
    params = validate(CreateManifestParams, locals())
    return RpcCall("jobforge_create_manifest", params.rpc_args(), parse_one(ManifestRow))


@operation(Feature.MANIFESTS)
def get_run_manifest(*, run_id: Id, tenant_id: Id) -> RpcCall[ManifestRow | None]:
    """The manifest of a run, or ``None`` when it has none."""
    params = validate(GetManifestParams, locals())
    return RpcCall("jobforge_get_manifest", params.rpc_args(), parse_optional(ManifestRow))


@operation(Feature.MANIFESTS)
def purge_manifests(
    *, older_than: timedelta, batch_size: int = MAX_PURGE_BATCH
) -> RpcCall[PurgeResult | None]:
    """Delete up to ``batch_size`` (at most 10,000) manifests of runs that finished
    (succeeded, dead, canceled) more than ``older_than`` ago, keeping the jobs (service
    role): manifests can be kept for less time than jobs, never longer (they go with their
    job). Call again while the answer's ``more`` is true."""
    params = validate(RetentionParams, locals())
    return RpcCall("jobforge_purge_manifests", params.rpc_args(), parse_one(PurgeResult))


# -- triggers -------------------------------------------------------------------------


@operation(Feature.TRIGGERS)
def create_cron_trigger(
    *,
    tenant_id: Id,
    name: str,
    cron_expression: str,
    target_template_key: str,
    target_inputs: Mapping[str, JsonValue] | None = None,
    enabled: bool = False,
    dry_run: bool = False,
    cooldown_seconds: int = 0,
    max_fires_per_hour: int = 60,
    project_id: Id | None = None,
    actor_id: str | None = None,
    misfire_policy: MisfirePolicy | str = MisfirePolicy.SKIP,
    max_catch_up: int = 10,
) -> Steps[Trigger | None]:
    """A trigger that requests ``target_template_key`` on a 5-field cron schedule (UTC).
    ``misfire_policy`` says what the scheduler does with slots that passed while none
    ran: ``skip`` them, fire the latest ``run_once``, or ``catch_up`` on each (at most
    ``max_catch_up``, 1-1000, oldest first)."""
    params = validate(CreateCronTriggerParams, locals())
    return _create_trigger(params)


@operation(Feature.TRIGGERS)
def create_event_trigger(
    *,
    tenant_id: Id,
    name: str,
    event_type_filter: str,
    target_template_key: str,
    event_source_filter: SourceApp | str | None = None,
    target_inputs: Mapping[str, JsonValue] | None = None,
    enabled: bool = False,
    dry_run: bool = False,
    cooldown_seconds: int = 0,
    max_fires_per_hour: int = 60,
    project_id: Id | None = None,
    actor_id: str | None = None,
) -> Steps[Trigger | None]:
    """A trigger that requests ``target_template_key`` for each matching event
    (``event_type_filter``: an exact type, or a prefix ending in ``.*``)."""
    params = validate(CreateEventTriggerParams, locals())
    return _create_trigger(params)


TriggerParams = TypeVar("TriggerParams", CreateCronTriggerParams, CreateEventTriggerParams)


def _create_trigger(params: TriggerParams) -> Steps[Trigger | None]:
    """Create the trigger, with the inputs its template stores encrypted encrypted first:
    the trigger keeps them for every job it requests, and the database refuses plaintext
    there (the ciphertext is bound to the tenant, the template and the field, as a
    request_job's is, so the jobs it makes decrypt alike)."""
    try:
        plan = template_of_job(template_key=params.target_template_key)
    except InvalidInputError as exc:
        # The key is the trigger's target_template_key: name it so.
        reason = exc.message.partition(": ")[2]
        raise InvalidInputError(
            f"target_template_key: {reason}", field="target_template_key", code=None
        ) from None
    template = yield from steps_of(plan)
    if template.encrypt_fields:
        flags: FeatureFlags = yield FLAGS
        inputs = encrypt_fields(
            params.target_inputs or {},
            template.encrypt_fields,
            keys=keys_of(flags),
            tenant_id=params.tenant_id,
            scope=job_scope(params.target_template_key),
            where="target_inputs",
            required=False,
        )
        params = params.model_copy(update={"target_inputs": inputs})
    trigger: Trigger = yield RpcCall(
        "jobforge_create_trigger", params.rpc_args(), parse_one(Trigger)
    )
    return trigger


@operation(Feature.TRIGGERS, empty=list, internal=True)
def list_cron_triggers() -> RpcCall[list[Trigger]]:
    """Every enabled cron trigger of every tenant: what the scheduler fires (internal: the
    scheduler's call; service role)."""
    return RpcCall("jobforge_list_cron_triggers", {}, parse_list(Trigger))


@operation(Feature.TRIGGERS, empty=list)
def list_triggers(
    *,
    tenant_id: Id,
    trigger_type: TriggerType | str | None = None,
    enabled: bool | None = None,
    limit: int = 100,
    offset: int = 0,
) -> RpcCall[list[Trigger]]:
    """Triggers of the tenant, newest first."""
    params = validate(ListTriggersParams, locals())
    return RpcCall("jobforge_list_triggers", params.rpc_args(), parse_list(Trigger))


@operation(Feature.TRIGGERS)
def set_trigger_enabled(
    *, trigger_id: Id, tenant_id: Id, enabled: bool, actor_id: str | None = None
) -> RpcCall[Trigger | None]:
    """Turn a trigger on or off (audited)."""
    params = validate(SetTriggerEnabledParams, locals())
    return RpcCall("jobforge_set_trigger_enabled", params.rpc_args(), parse_one(Trigger))


@operation(Feature.TRIGGERS)
def set_trigger_misfire_policy(
    *,
    trigger_id: Id,
    tenant_id: Id,
    misfire_policy: MisfirePolicy | str,
    max_catch_up: int | None = None,
    actor_id: str | None = None,
) -> RpcCall[Trigger | None]:
    """Change what the scheduler does with a cron trigger's missed slots (audited);
    ``max_catch_up`` left out keeps the current value."""
    params = validate(SetTriggerMisfirePolicyParams, locals())
    return RpcCall("jobforge_set_trigger_misfire_policy", params.rpc_args(), parse_one(Trigger))


@operation(Feature.TRIGGERS)
def delete_trigger(
    *, trigger_id: Id, tenant_id: Id, actor_id: str | None = None
) -> RpcCall[Trigger | None]:
    """Delete a trigger; returns the deleted row (audited)."""
    params = validate(TriggerRef, locals())
    return RpcCall("jobforge_delete_trigger", params.rpc_args(), parse_one(Trigger))


@operation(Feature.TRIGGERS)
def fire_cron_trigger(*, trigger_id: Id, scheduled_for: datetime) -> RpcCall[CronFireResult | None]:
    """Fire a cron trigger for one slot: at most one job per trigger and slot, however
    often or concurrently this is called (service role; the scheduler's call)."""
    params = validate(FireCronTriggerParams, locals())
    return RpcCall("jobforge_fire_cron_trigger", params.rpc_args(), parse_one(CronFireResult))


@operation(internal=True)
def claim_daily_purge(
    *, taken_by: str | None = None, settings: Mapping[str, JsonValue] | None = None
) -> RpcCall[DailyPurgeClaim]:
    """Take today's (UTC) scheduled purge: ``taken`` for exactly one caller a day across
    every scheduler of the database (internal: the scheduler's call; service role)."""
    params = validate(ClaimDailyPurgeParams, locals())
    return RpcCall("jobforge_claim_daily_purge", params.rpc_args(), parse_one(DailyPurgeClaim))


# -- audit ----------------------------------------------------------------------------


@operation(Feature.AUDIT_LOGGING, empty=list)
def list_audit_logs(
    *,
    tenant_id: Id | None,
    action: AuditAction | str | None = None,
    actor_id: str | None = None,
    trace_id: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    outcome: AuditOutcome | str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> RpcCall[list[AuditLogEntry]]:
    """The tenant's audit trail, newest first. ``tenant_id=None`` lists the global rows
    (template and policy-key changes); only the service role may."""
    params = validate(ListAuditLogsParams, locals())
    return RpcCall("jobforge_list_audit_logs", params.rpc_args(), parse_list(AuditLogEntry))


@operation(Feature.AUDIT_LOGGING)
def purge_audit_logs(
    *, retention_days: int = 365, batch_size: int = MAX_PURGE_BATCH
) -> RpcCall[PurgeResult | None]:
    """The only way audit rows are ever removed: up to ``batch_size`` (at most 10,000) of
    those older than ``retention_days`` per call, each call audited (service role). Call
    again while the answer's ``more`` is true."""
    params = validate(BatchedDaysParams, locals())
    return RpcCall("jobforge_purge_audit_logs", params.rpc_args(), parse_one(PurgeResult))
