"""OpenTelemetry spans for JobForge (the optional ``otel`` extra).

- ``instrument(client)``: a CLIENT span around every RPC the client makes, named
  ``jobforge <rpc>``, with the tenant and the outcome (``ok`` or the error class). When
  an app calls ``request_job`` or ``submit_event`` inside a span of its own and passes no
  ``trace_id``, the SDK passes that span's trace id, so the job carries it.
- ``enable()``: workers of this process open a CONSUMER span per job execution. A job
  whose ``trace_id`` reads as an OpenTelemetry trace id (32 hex digits, or a UUID, which
  is what the database generates when none is given) runs in that trace, so the app's
  trace continues into the job; any other ``trace_id`` is kept as an attribute.

Nothing is recorded until one of them is called: a worker that does not ask pays for no
span. Spans go to the global tracer provider unless one is passed.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jobforge_sdk._instrument import wrap_calls
from jobforge_sdk.models.jobs import JobRow

if TYPE_CHECKING:
    from opentelemetry.trace import Span, TracerProvider

__all__ = [
    "JobSpan",
    "disable",
    "enable",
    "end_job_span",
    "instrument",
    "otel_trace_id",
    "start_job_span",
]

TRACER_NAME = "jobforge_sdk"
_CARRY_TRACE = frozenset({"jobforge_request_job", "jobforge_submit_event"})
_HEX32 = re.compile(r"^[0-9a-f]{32}$")


@dataclass
class _State:
    jobs: bool = False
    provider: TracerProvider | None = None


_state = _State()


def _require() -> None:
    try:
        import opentelemetry.trace  # noqa: F401
    except ImportError:
        raise ImportError("tracing needs OpenTelemetry: pip install 'jobforge-sdk[otel]'") from None


def _tracer(provider: TracerProvider | None) -> Any:
    from opentelemetry import trace

    return trace.get_tracer(TRACER_NAME, tracer_provider=provider or _state.provider)


def enable(tracer_provider: TracerProvider | None = None) -> None:
    """Open a span per job in this process's workers (``tracer_provider``: default the
    global one). ``enable(None)`` after ``disable()`` turns them back on."""
    _require()
    _state.jobs = True
    _state.provider = tracer_provider


def disable() -> None:
    _state.jobs = False
    _state.provider = None


def otel_trace_id(value: str | None) -> int | None:
    """The OpenTelemetry trace id a JobForge ``trace_id`` stands for, if it is one."""
    if not value:
        return None
    text = value.strip().lower().replace("-", "")
    if not _HEX32.match(text):
        return None
    number = int(text, 16)
    return number or None


# -- client calls -----------------------------------------------------------------------------


def _carried(fn: str, args: Any) -> Any:
    """``args`` with the current span's trace id as ``p_trace_id`` where the RPC carries
    one and the caller gave none."""
    if fn not in _CARRY_TRACE or not isinstance(args, dict) or args.get("p_trace_id"):
        return args
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return args
    return {**args, "p_trace_id": format(context.trace_id, "032x")}


def _attributes(fn: str, args: Any) -> dict[str, Any]:
    attributes: dict[str, Any] = {"rpc.system": "jobforge", "rpc.method": fn}
    if isinstance(args, dict):
        tenant = args.get("p_tenant_id")
        if tenant is not None:
            attributes["jobforge.tenant_id"] = str(tenant)
        trace_id = args.get("p_trace_id")
        if trace_id:
            attributes["jobforge.trace_id"] = str(trace_id)
    return attributes


def instrument(client: Any, *, tracer_provider: TracerProvider | None = None) -> Any:
    """A span per RPC of ``client`` (sync or async); returns the client. A client made
    later by ``with_claims`` is a new one: instrument it too."""
    _require()
    from opentelemetry.trace import SpanKind, Status, StatusCode

    def start(fn: str, args: Any) -> Any:
        return _tracer(tracer_provider).start_as_current_span(
            f"jobforge {fn}",
            kind=SpanKind.CLIENT,
            attributes=_attributes(fn, args),
            record_exception=True,
            set_status_on_exception=False,
        )

    def failed(span: Span, exc: BaseException) -> None:
        span.set_attribute("jobforge.outcome", type(exc).__name__)
        span.set_status(Status(StatusCode.ERROR, str(exc).splitlines()[0] if str(exc) else ""))

    def around(fn: str, args: Any, run: Callable[[Any], Any]) -> Any:
        args = _carried(fn, args)
        with start(fn, args) as span:
            try:
                answer = run(args)
            except Exception as exc:
                failed(span, exc)
                raise
            span.set_attribute("jobforge.outcome", "ok")
            return answer

    async def around_async(fn: str, args: Any, run: Callable[[Any], Awaitable[Any]]) -> Any:
        args = _carried(fn, args)
        with start(fn, args) as span:
            try:
                answer = await run(args)
            except Exception as exc:
                failed(span, exc)
                raise
            span.set_attribute("jobforge.outcome", "ok")
            return answer

    wrap_calls(client.transport, "tracing", around=around, around_async=around_async)
    return client


# -- job executions ---------------------------------------------------------------------------


@dataclass
class JobSpan:
    span: Any
    token: Any


def start_job_span(job: JobRow, trace_id: str | None) -> JobSpan | None:
    """Open the job's span and make it current in this thread (the handler's own spans
    become its children); ``None`` when job spans are off."""
    if not _state.jobs:
        return None
    from opentelemetry import context, trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

    parent = None
    carried = otel_trace_id(trace_id)
    if carried is not None:
        # The app's span id is not stored with the job, only its trace id: the job's span
        # joins that trace under a remote parent of that trace.
        remote = SpanContext(
            trace_id=carried,
            span_id=secrets.randbits(64) or 1,
            is_remote=True,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
        parent = trace.set_span_in_context(NonRecordingSpan(remote))
    attributes: dict[str, Any] = {
        "jobforge.job_id": str(job.id),
        "jobforge.job_type": job.type,
        "jobforge.tenant_id": str(job.tenant_id),
        "jobforge.attempt": job.attempts,
    }
    if trace_id:
        attributes["jobforge.trace_id"] = trace_id
    span = _tracer(None).start_span(
        f"jobforge job {job.type}", context=parent, kind=SpanKind.CONSUMER, attributes=attributes
    )
    token = context.attach(trace.set_span_in_context(span))
    return JobSpan(span, token)


def end_job_span(handle: JobSpan | None, error: dict[str, Any] | None, *, retryable: bool) -> None:
    if handle is None:
        return
    from opentelemetry import context
    from opentelemetry.trace import Status, StatusCode

    span = handle.span
    if error is None:
        span.set_attribute("jobforge.outcome", "succeeded")
    else:
        span.set_attribute("jobforge.outcome", "failed")
        span.set_attribute("jobforge.retryable", retryable)
        span.set_attribute("jobforge.error_type", str(error.get("type", "")))
        span.set_status(Status(StatusCode.ERROR, str(error.get("message", ""))[:200]))
    context.detach(handle.token)
    span.end()
