"""Code shared by the shop's Python services (service_a and service_b).

One module per job:

- :mod:`shopkit.kafka`: the transactional outbox relay and the idempotent
  consumer, a module per job (outbox, relay, election, admin, consumer,
  pruning, config) composed by :class:`~shopkit.kafka.KafkaBridge`.
- :mod:`shopkit.events`: the event types of the services' own topics and
  their CloudEvents form (:class:`~shopkit.events.Event`).
- :mod:`shopkit.cart`: the cart line columns and the one cart query.
- :mod:`shopkit.db`: the declarative ``Base`` of a service's tables, the
  ``outbox`` and ``inbox`` tables, engines for SQLite and PostgreSQL, schema
  creation.
- :mod:`shopkit.identity`: the signed identity assertion every call carries
  (verified by a middleware; 401 without one), and the signer of a service's
  own calls.
- :mod:`shopkit.auth`: the caller that assertion names and the ownership and
  scope checks built on it.
- :mod:`shopkit.errors`: :class:`~shopkit.errors.ApiError` and the handlers
  that answer every error as ``{"code", "message"}``.
- :mod:`shopkit.logs`: logging setup (text or JSON lines) and the middleware
  that keeps ``X-Request-Id`` and ``traceparent``.
- :mod:`shopkit.wire`: the JSON field types (int64 ids, timestamps) and UTC
  time functions.
- :mod:`shopkit.deps`, :mod:`shopkit.health`, :mod:`shopkit.serve`: FastAPI
  dependencies, ``/healthz`` and ``/readyz``, and ``python -m app``.

A service's app keeps ``engine``, ``sessions`` and ``bridge`` in
``app.state``; the dependencies and the health routes read them from there.

The test suites' utilities are the separate, test-only package
``shopkit_testing`` (``shopkit/testing/``), which runtime code may not import.
"""

__version__ = "1.0.0"
