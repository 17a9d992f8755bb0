"""pytest utilities of the services' test suites: real uvicorn servers, fresh
databases, the broker, waiting, identity headers and error-response checks.

A test-only package: installed by ``make venv`` (``shopkit/testing``), not by
the services' image, and the services' runtime code may not import it (a ruff
rule and ``tests/test_runtime_imports.py`` of each service check that). The
fixtures ``client``, ``bare_client``, ``kafka`` and ``run_id`` are defined
here; a conftest makes them available by importing them.
"""

from shopkit_testing.brokers import broker_reachable, kafka, kafka_bootstrap, local_kafka_script_env, run_id
from shopkit_testing.checks import assert_error, eventually
from shopkit_testing.ci import IN_CI, missing_dependency
from shopkit_testing.databases import database_backends, fresh_database_url, schema_differences
from shopkit_testing.events import event_record
from shopkit_testing.identity import (
    TEST_IDENTITY,
    TestIdentity,
    as_admin,
    as_service,
    as_user,
    forged_assertions,
    use_audience,
    write_key,
)
from shopkit_testing.ports import free_port, server_port
from shopkit_testing.runtime import runtime_modules, test_helpers_in
from shopkit_testing.servers import Server, bare_client, client, running, start_server, started

__all__ = [
    "IN_CI",
    "TEST_IDENTITY",
    "Server",
    "TestIdentity",
    "as_admin",
    "as_service",
    "as_user",
    "assert_error",
    "bare_client",
    "broker_reachable",
    "client",
    "database_backends",
    "event_record",
    "eventually",
    "forged_assertions",
    "free_port",
    "fresh_database_url",
    "kafka",
    "kafka_bootstrap",
    "local_kafka_script_env",
    "missing_dependency",
    "run_id",
    "running",
    "runtime_modules",
    "schema_differences",
    "server_port",
    "start_server",
    "started",
    "test_helpers_in",
    "use_audience",
    "write_key",
]
