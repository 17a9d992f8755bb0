"""OpenTelemetry tracing of a service.

Tracing is on when an OTLP endpoint is configured by the standard variables
(``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``),
unless ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``. The SDK and
the exporter read the rest themselves: ``OTEL_EXPORTER_OTLP_PROTOCOL``
(``http/protobuf``, the default, or ``grpc``), ``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``. Off, nothing is
instrumented and the caller's traceparent is passed on as it came.

On: a server span per request (the FastAPI instrumentation, health routes
left out), a client span per call to another service (the httpx
instrumentation), and for Kafka, where the outbox and the inbox put a
database between the request and the broker, spans of shopkit's own: the
event carries the request's trace context (``ce_traceparent``, the
CloudEvents distributed-tracing extension) through the outbox, the relay
publishes it in a producer span that is a child of it and sends the span's
context instead, and the consumer applies it in a consumer span that is a
child of the producer's.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.propagate import extract, inject
from opentelemetry.trace import SpanKind

from shopkit import logs

_enabled = False


def tracing_configured(env: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment asks for OTLP export of traces."""
    endpoint = bool(env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
    off = env.get("OTEL_SDK_DISABLED", "").lower() == "true" or env.get("OTEL_TRACES_EXPORTER", "").lower() == "none"
    return endpoint and not off


def setup_tracing(default_service_name: str, env: Mapping[str, str] = os.environ) -> bool:
    """Install the OTLP-exporting tracer provider once per process when the
    environment asks for it; return whether tracing is on."""
    global _enabled
    if _enabled or not tracing_configured(env):
        return _enabled
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or ""
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # type: ignore[assignment]
    # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES;
    # attributes given to it would win over them, so the default name is
    # given only when neither names the service.
    named = env.get("OTEL_SERVICE_NAME") or "service.name=" in env.get("OTEL_RESOURCE_ATTRIBUTES", "")
    resource = Resource.create({} if named else {"service.name": default_service_name})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _enabled = True
    return True


def enabled() -> bool:
    """Whether setup_tracing turned tracing on."""
    return _enabled


def shutdown() -> None:
    """Export the spans still queued (at shutdown)."""
    if _enabled:
        provider = trace.get_tracer_provider()
        with contextlib.suppress(Exception):
            provider.shutdown()  # type: ignore[attr-defined]


def instrument_app(app: Any) -> None:
    """Give every request but the health probes a server span."""
    if _enabled:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz")


def instrument_client(client: Any) -> None:
    """Give every call of an httpx client a client span and send its context."""
    if _enabled:
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

        HTTPXClientInstrumentor.instrument_client(client)


def current_traceparent() -> str:
    """The traceparent to hand on: the current span's when tracing is on,
    else the one the request came with ("" when none)."""
    if _enabled:
        carrier: dict[str, str] = {}
        inject(carrier)
        if tp := carrier.get("traceparent"):
            return tp
    return logs.traceparent.get()


_tracer = trace.get_tracer("shopkit")


@contextlib.contextmanager
def producer_span(topic: str, traceparent: str) -> Iterator[str]:
    """A producer span, child of traceparent, around the publication of one
    event; yields the traceparent to send with it (traceparent itself when
    tracing is off or it is empty)."""
    if not _enabled or not traceparent:
        yield traceparent
        return
    parent = extract({"traceparent": traceparent})
    with _tracer.start_as_current_span(
        f"{topic} publish",
        context=parent,
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "kafka",
            "messaging.destination.name": topic,
            "messaging.operation.type": "send",
        },
    ):
        carrier: dict[str, str] = {}
        inject(carrier)
        yield carrier.get("traceparent", traceparent)


@contextlib.contextmanager
def consumer_span(topic: str, event_type: str, traceparent: str) -> Iterator[None]:
    """A consumer span, child of the event's traceparent, around applying it."""
    if not _enabled:
        yield
        return
    parent = extract({"traceparent": traceparent}) if traceparent else None
    with _tracer.start_as_current_span(
        f"{topic} process",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": "kafka",
            "messaging.destination.name": topic,
            "messaging.operation.type": "process",
            "cloudevents.event_type": event_type,
        },
    ):
        yield
