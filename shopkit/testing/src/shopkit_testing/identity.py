"""The identity assertions of tests: this run's signing keys, the headers of a
user, an admin or a service, and forged ones a service must refuse."""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from shopkit import identity
from shopkit.identity import ADMIN_SCOPE, ASSERTION_HEADER, SERVICE_SCOPE


def write_key(directory: Path, issuer: str) -> tuple[Path, Path]:
    """A new Ed25519 key for issuer: (private JWK file, public JWKS file)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from jwt.algorithms import OKPAlgorithm

    key = Ed25519PrivateKey.generate()
    private = json.loads(OKPAlgorithm.to_jwk(key))
    public = json.loads(OKPAlgorithm.to_jwk(key.public_key()))
    kid = f"test-{issuer}-{uuid.uuid4().hex[:8]}"
    private.update(kid=kid, alg="EdDSA", use="sig")
    public.update(kid=kid, alg="EdDSA", use="sig")
    private_path, public_path = directory / f"{issuer}.key.json", directory / f"{issuer}.jwks.json"
    private_path.write_text(json.dumps(private))
    private_path.chmod(0o600)
    public_path.write_text(json.dumps({"keys": [public]}))
    return private_path, public_path


class TestIdentity:
    """Signing keys of a test run, made once per process in a temporary
    directory: one as the gateway (``shop-gateway``, may assert users) and one
    as service B (``service_b``), and the settings that make a service trust
    both."""

    __test__ = False  # not a test class, despite its name

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="shop-identity-"))
        gw_key, gw_jwks = write_key(self.directory, "shop-gateway")
        b_key, b_jwks = write_key(self.directory, "service_b")
        self.gateway = identity.Signer(str(gw_key), "shop-gateway", ttl_seconds=identity.MAX_LIFETIME_SECONDS)
        self.service_b = identity.Signer(str(b_key), "service_b", ttl_seconds=identity.MAX_LIFETIME_SECONDS)
        self.keys = f"shop-gateway={gw_jwks},service_b={b_jwks}"
        self.service_b_key = str(b_key)

    def env(self) -> dict[str, str]:
        """The environment variables of a service process that trusts these keys."""
        return {"IDENTITY_KEYS": self.keys, "IDENTITY_SIGNING_KEY": self.service_b_key}

    def settings(self) -> dict[str, str]:
        """The same as Settings keyword arguments."""
        return {"identity_keys": self.keys, "identity_signing_key": self.service_b_key}


TEST_IDENTITY = TestIdentity()
"""The keys of this test process (see TestIdentity)."""

_audience = "service_a"


def use_audience(audience: str) -> None:
    """Set the service the identity helpers below sign for by default (a
    service's conftest calls it once)."""
    global _audience
    _audience = audience


def as_user(user_id: int, *scopes: str, audience: str = "") -> dict[str, str]:
    """The identity header the gateway sends for a token with subject user_id
    and scopes (none: a plain user)."""
    token = TEST_IDENTITY.gateway.assertion(audience or _audience, scopes, str(user_id))
    return {ASSERTION_HEADER: token}


def as_admin(user_id: int, audience: str = "") -> dict[str, str]:
    """as_user for an administrator (scope ``shop:admin``)."""
    return as_user(user_id, ADMIN_SCOPE, audience=audience)


def as_service(*scopes: str, audience: str = "", issuer: str = "shop-gateway") -> dict[str, str]:
    """The identity header of a service calling (the gateway by default; or
    ``service_b``) with scopes (default ``shop:service shop:admin``: the
    unrestricted caller of the services' own tests)."""
    signer = TEST_IDENTITY.service_b if issuer == "service_b" else TEST_IDENTITY.gateway
    return {ASSERTION_HEADER: signer.assertion(audience or _audience, scopes or (SERVICE_SCOPE, ADMIN_SCOPE))}


def forged_assertions(audience: str = "") -> list[tuple[str, list[tuple[str, str]]]]:
    """Identity headers a service must refuse with 401, by name: missing,
    malformed, for another audience, expired, too long-lived, a user asserted
    by an issuer that may not, a service posing as another, an untrusted key,
    HS256 and ``none``, two assertions, and X-User-Id / X-Auth-Scopes alone."""
    import jwt as pyjwt

    aud = audience or _audience
    now = time.time()
    gw, b = TEST_IDENTITY.gateway, TEST_IDENTITY.service_b

    def signed(signer: identity.Signer, claims: dict[str, Any], kid: str | None = None) -> str:
        key = signer._key  # noqa: SLF001 - a test forging tokens with the real keys
        return pyjwt.encode(claims, key.key, algorithm="EdDSA", headers={"kid": kid or key.key_id})

    def claims(**over: Any) -> dict[str, Any]:
        base = {"iss": "shop-gateway", "sub": "10", "aud": aud, "iat": int(now), "exp": int(now) + 60}
        base.update(over)
        return base

    untrusted = identity.Signer(
        str(write_key(Path(tempfile.mkdtemp(prefix="shop-untrusted-")), "shop-gateway")[0]), "x"
    )
    header = ASSERTION_HEADER
    return [
        ("missing", []),
        ("not a JWT", [(header, "not-a-jwt")]),
        ("identity headers only", [("X-User-Id", "10"), ("X-Auth-Scopes", "shop:admin shop:service")]),
        ("other audience", [(header, signed(gw, claims(aud="another-service")))]),
        ("two audiences", [(header, signed(gw, claims(aud=[aud, "another-service"])))]),
        ("expired", [(header, signed(gw, claims(iat=int(now) - 600, exp=int(now) - 60)))]),
        ("too long-lived", [(header, signed(gw, claims(exp=int(now) + 3600)))]),
        ("no exp", [(header, signed(gw, {k: v for k, v in claims().items() if k != "exp"}))]),
        ("user from service_b", [(header, signed(b, claims(iss="service_b", scope="shop:admin")))]),
        ("service_b as the gateway", [(header, signed(b, claims(iss="service_b", sub="svc:shop-gateway")))]),
        ("service_b key, gateway issuer", [(header, signed(b, claims(scope="shop:admin")))]),
        ("untrusted key", [(header, signed(untrusted, claims(scope="shop:admin")))]),
        ("unknown issuer", [(header, signed(gw, claims(iss="mallory")))]),
        ("sub not a user id", [(header, signed(gw, claims(sub="0")))]),
        (
            "HS256",
            [
                (
                    header,
                    pyjwt.encode(
                        claims(), "secret-secret-secret-secret-32b!", algorithm="HS256", headers={"kid": gw._key.key_id}
                    ),
                )
            ],
        ),  # noqa: SLF001
        ("alg none", [(header, pyjwt.encode(claims(), "", algorithm="none", headers={"kid": gw._key.key_id}))]),  # noqa: SLF001
        ("twice", [(header, gw.assertion(aud, (), "10")), (header, gw.assertion(aud, (), "10"))]),
    ]
