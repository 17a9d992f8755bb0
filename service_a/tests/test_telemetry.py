"""shopkit.telemetry: when tracing is on, and that off it changes nothing."""

from __future__ import annotations

import pytest

from shopkit import telemetry


@pytest.mark.parametrize(
    ("env", "want"),
    [
        pytest.param({}, False, id="nothing set"),
        pytest.param({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, True, id="endpoint"),
        pytest.param({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318"}, True, id="traces endpoint"),
        pytest.param({"OTEL_EXPORTER_OTLP_ENDPOINT": "x", "OTEL_SDK_DISABLED": "true"}, False, id="sdk disabled"),
        pytest.param({"OTEL_EXPORTER_OTLP_ENDPOINT": "x", "OTEL_TRACES_EXPORTER": "none"}, False, id="exporter none"),
        pytest.param({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, False, id="protocol alone"),
    ],
)
def test_tracing_configured(env: dict[str, str], want: bool) -> None:
    assert telemetry.tracing_configured(env) is want


def test_off_passes_the_trace_context_through() -> None:
    assert not telemetry.setup_tracing("service_a", {})
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    with telemetry.producer_span("topic", tp) as sent:
        assert sent == tp
    with telemetry.producer_span("topic", "") as sent:
        assert sent == ""
    with telemetry.consumer_span("topic", "type", tp):
        pass
