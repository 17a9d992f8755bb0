"""Static checks of docker-compose.yml and the Dockerfiles it builds.

They need no Docker engine: they read the compose file, the Dockerfiles, the
.dockerignore files and the code the images are built from, and check that
they agree with each other (paths, ports, environment names, healthchecks,
Kafka listeners, database URLs).
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"

EXPECTED_SERVICES = {"kafka", "postgres", "service_a", "service_b", "gateway", "keys", "identity-keys"}
# One-shot jobs: they run to completion before what depends on them starts.
ONE_SHOT = {"keys", "identity-keys"}
# The host ports of `make run` that the compose stack publishes too: not the
# services' (reached through the gateway only).
EXPECTED_HOST_PORTS = {8080, 9090, 9092, 5432}
PYTHON_SERVICES = {"service_a": 8002, "service_b": 8001}
GATEWAY_MAIN = ROOT / "gateway" / "cmd" / "gateway" / "main.go"
PYTHON_DOCKERFILE = ROOT / "deploy" / "service.Dockerfile"
REQUIREMENTS = ROOT / "requirements.txt"
# Environment the gateway container gets; each name must be read by the binary.
GATEWAY_ENV = {
    "GATEWAY_HTTP_ADDR",
    "GATEWAY_RATE_LIMIT",
    "GATEWAY_RATE_BURST",
    "GATEWAY_GRPC_ADDR",
    "SERVICE_A_URL",
    "SERVICE_B_URL",
    "KAFKA_BROKERS",
    "GATEWAY_OUTBOX_DIR",
    "GATEWAY_EVENT_SCHEMA_BASE",
    "GATEWAY_AUTH_JWKS",
    "GATEWAY_AUTH_ISSUER",
    "GATEWAY_AUTH_AUDIENCE",
    "GATEWAY_SERVICE_SIGNING_KEY",
}
DEVKEYS = ROOT / "gateway" / "devkeys" / "devkeys.go"
# SQLAlchemy dialect+driver -> the requirement that provides the driver.
DB_DRIVERS = {
    "asyncpg": {"asyncpg"},
    "psycopg": {"psycopg", "psycopg-binary"},
    "psycopg2": {"psycopg2", "psycopg2-binary"},
    "aiosqlite": {"aiosqlite"},
}


# ---- reading compose, Dockerfiles, ignore files and requirements ---------------


# ${NAME:-default}, the only interpolation the file uses (host ports).
INTERPOLATION = re.compile(r"\$\{([A-Z][A-Z0-9_]*):-([^}]*)\}")


def interpolate(value: object) -> object:
    """The value as compose reads it with no variables set: each default."""
    if isinstance(value, str):
        return INTERPOLATION.sub(lambda m: m.group(2), value)
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def compose_raw() -> dict:
    """The file as written, variables not substituted."""
    assert COMPOSE_FILE.is_file(), f"{COMPOSE_FILE} is missing"
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


@pytest.fixture(scope="module")
def compose(compose_raw) -> dict:
    """The file as compose reads it when no SHOP_*_PORT variable is set."""
    return interpolate(compose_raw)


def env_of(service: dict) -> dict[str, str]:
    """A service's environment as a dict, from either compose syntax."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        out = {}
        for item in env:
            name, _, value = str(item).partition("=")
            out[name] = value
        return out
    return {k: "" if v is None else str(v) for k, v in env.items()}


@dataclass
class PortMapping:
    host: int | None
    container: int
    host_ip: str = ""


def exposed_of(service: dict) -> set[int]:
    """The container ports a service exposes to the compose network only."""
    return {int(str(p).split("/")[0]) for p in service.get("expose") or []}


def ports_of(service: dict) -> list[PortMapping]:
    out = []
    for item in service.get("ports") or []:
        if isinstance(item, dict):
            published = item.get("published")
            out.append(
                PortMapping(
                    int(published) if published is not None else None,
                    int(item["target"]),
                    str(item.get("host_ip", "")),
                )
            )
            continue
        spec = str(item).split("/", 1)[0]
        parts = spec.rsplit(":", 2)
        if len(parts) == 1:
            out.append(PortMapping(None, int(parts[0])))
        elif len(parts) == 2:
            out.append(PortMapping(int(parts[0]), int(parts[1])))
        else:
            out.append(PortMapping(int(parts[1]), int(parts[2]), parts[0].strip("[]")))
    return out


def depends_on(service: dict) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: (cfg or {}).get("condition", "service_started") for name, cfg in deps.items()}


def build_of(service: dict) -> tuple[Path, Path] | None:
    """(context dir, Dockerfile) of a service that is built, else None."""
    build = service.get("build")
    if build is None:
        return None
    if isinstance(build, str):
        context, dockerfile = build, "Dockerfile"
    else:
        context, dockerfile = build.get("context", "."), build.get("dockerfile", "Dockerfile")
    ctx = (ROOT / context).resolve()
    return ctx, (ctx / dockerfile).resolve()


def build_args_of(service: dict) -> dict[str, str]:
    """The build arguments compose passes to a service's Dockerfile."""
    build = service.get("build")
    args = build.get("args") or {} if isinstance(build, dict) else {}
    if isinstance(args, list):
        args = dict(str(a).partition("=")[::2] for a in args)
    return {str(k): str(v) for k, v in args.items()}


def stages_of(service: dict) -> list[Stage]:
    """The stages of a built service's Dockerfile, with compose's build arguments."""
    built = build_of(service)
    assert built is not None
    return parse_dockerfile(built[1], build_args_of(service))


def healthcheck_cmd(service: dict) -> str:
    test = (service.get("healthcheck") or {}).get("test")
    if isinstance(test, list):
        return " ".join(test[1:])
    return str(test or "")


@dataclass
class Instruction:
    cmd: str
    args: str  # the rest of the line, continuations joined


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)


def parse_dockerfile(path: Path, build_args: dict[str, str] | None = None) -> list[Stage]:
    """The stages of a Dockerfile, with ``$NAME`` and ``${NAME}`` of its ARGs
    replaced by build_args (else the ARG's default, else "")."""
    lines, buf = [], ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        lines.append(buf + stripped)
        buf = ""
    if buf.strip():
        lines.append(buf)
    stages: list[Stage] = []
    arg_values: dict[str, str] = {}
    for line in lines:
        cmd, _, args = line.partition(" ")
        cmd = cmd.upper()
        args = re.sub(
            r"\$\{(\w+)\}|\$(\w+)",
            lambda m: arg_values.get(m.group(1) or m.group(2), m.group(0)),
            args.strip(),
        )
        if cmd == "ARG":
            name, _, default = args.partition("=")
            arg_values[name] = (build_args or {}).get(name, default)
            continue
        if cmd == "FROM":
            words = [w for w in args.split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
            continue
        assert stages, f"{path}: {cmd} before the first FROM"
        stages[-1].instructions.append(Instruction(cmd, args))
    assert stages, f"{path} has no FROM"
    return stages


def split_args(args: str) -> tuple[list[str], list[str]]:
    """(flags, words) of a COPY/ADD/ENTRYPOINT/CMD argument string."""
    if args.startswith("["):
        return [], json.loads(args)
    words = shlex.split(args)
    flags = [w for w in words if w.startswith("--")]
    return flags, [w for w in words if not w.startswith("--")]


def env_instructions(stage: Stage) -> dict[str, str]:
    out = {}
    for ins in stage.instructions:
        if ins.cmd != "ENV":
            continue
        words = shlex.split(ins.args)
        if words and "=" not in words[0]:
            out[words[0]] = " ".join(words[1:])  # legacy `ENV NAME value`
            continue
        for w in words:
            name, _, value = w.partition("=")
            out[name] = value
    return out


def exec_form(stage: Stage, cmd: str) -> list[str] | None:
    found = None
    for ins in stage.instructions:
        if ins.cmd == cmd:
            found = ins.args
    if found is None:
        return None
    assert found.startswith("["), f"{cmd} should be in exec form (JSON array): {found}"
    return json.loads(found)


def _pattern_regex(pattern: str) -> re.Pattern:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        elif pattern[i] == "[":
            end = pattern.find("]", i)
            out += pattern[i : end + 1] if end > 0 else re.escape(pattern[i])
            i = end + 1 if end > 0 else i + 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + r"\Z")


def dockerignore_file(context: Path, dockerfile: Path | None = None) -> Path:
    """The ignore file BuildKit applies to a build: <Dockerfile>.dockerignore
    next to the Dockerfile when there is one, else the context's .dockerignore."""
    if dockerfile is not None:
        specific = dockerfile.with_name(dockerfile.name + ".dockerignore")
        if specific.is_file():
            return specific
    return context / ".dockerignore"


class DockerIgnore:
    """The .dockerignore rules of a build, as the builder applies them: the
    last pattern that matches a path or one of its parent folders decides, and
    a pattern starting with ! re-includes."""

    def __init__(self, context: Path, dockerfile: Path | None = None):
        self.rules: list[tuple[bool, re.Pattern]] = []
        path = dockerignore_file(context, dockerfile)
        if not path.is_file():
            return
        for line in path.read_text().splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            pat = line[1:].strip() if negate else line
            pat = re.sub(r"/+", "/", pat).strip("/")
            if pat.startswith("./"):
                pat = pat[2:]
            self.rules.append((negate, _pattern_regex(pat or ".")))

    def excluded(self, rel: str) -> bool:
        parts = rel.strip("/").split("/")
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        result = False
        for negate, rx in self.rules:
            if any(rx.match(c) for c in candidates):
                result = not negate
        return result


def sent_files(context: Path, source: Path, dockerfile: Path | None = None) -> list[Path]:
    """The files under source that reach the builder (not .dockerignored)."""
    ignore = DockerIgnore(context, dockerfile)
    files = [source] if source.is_file() else [p for p in source.rglob("*") if p.is_file()]
    return [p for p in files if not ignore.excluded(p.relative_to(context).as_posix())]


def requirement_names(req: Path) -> set[str]:
    names = set()
    for line in req.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        m = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
        if m:
            names.add(m.group(0).lower().replace("_", "-"))
    return names


def local_requirement_paths(req: Path) -> list[str]:
    """The local directories a requirements file installs (``-e DIR``,
    ``--editable DIR`` or a bare ``./DIR`` / ``../DIR``), as written: pip
    resolves them from its current directory, not from the file's."""
    paths = []
    for line in req.read_text().splitlines():
        line = line.split(" #", 1)[0].strip()
        if line.startswith(("-e ", "--editable ", "--editable=")):
            line = re.split(r"[ =]", line, maxsplit=1)[1].strip()
        elif not line.startswith(("./", "../", "/")):
            continue
        paths.append(line.split("[", 1)[0])
    return paths


@dataclass
class ImageCopy:
    source: Path  # in the build context
    dest: PurePosixPath  # where it lands in the image (a folder's contents go there)
    before_run: int  # how many RUN instructions came before it


def image_copies(stage: Stage, context: Path) -> list[ImageCopy]:
    """The COPY/ADD instructions of a stage from the build context, with their
    destinations resolved against the WORKDIR in force."""
    workdir, runs, out = PurePosixPath("/"), 0, []
    for ins in stage.instructions:
        if ins.cmd == "WORKDIR":
            workdir = workdir / ins.args.strip()
        elif ins.cmd == "RUN":
            runs += 1
        elif ins.cmd in ("COPY", "ADD"):
            flags, words = split_args(ins.args)
            if any(f.startswith("--from") for f in flags):
                continue
            dest = workdir / words[-1]
            for src in words[:-1]:
                path = (context / src).resolve()
                into = dest / path.name if words[-1].endswith("/") and path.is_file() else dest
                out.append(ImageCopy(path, PurePosixPath(posixpath.normpath(str(into))), runs))
    return out


def workdir_of_run(stage: Stage, needle: str) -> tuple[PurePosixPath, int]:
    """(WORKDIR, index among the RUNs) of the first RUN whose text contains needle."""
    workdir, runs = PurePosixPath("/"), 0
    for ins in stage.instructions:
        if ins.cmd == "WORKDIR":
            workdir = workdir / ins.args.strip()
        elif ins.cmd == "RUN":
            if needle in ins.args:
                return workdir, runs
            runs += 1
    raise AssertionError(f"no RUN contains {needle!r}")


# Prints, as JSON, the environment names the service's Settings class reads
# (its own fields and those it inherits from shopkit), upper-cased as
# pydantic-settings matches them case-insensitively by default.
_SETTINGS_ENV_SCRIPT = """
import json, sys
from app.settings import Settings
prefix = Settings.model_config.get("env_prefix", "")
names = set()
for name, info in Settings.model_fields.items():
    alias = info.validation_alias or info.alias
    choices = getattr(alias, "choices", None)
    if choices:
        names.update(str(c) for c in choices)
    elif alias:
        names.add(str(alias))
    else:
        names.add(prefix + name)
json.dump(sorted(n.upper() for n in names), sys.stdout)
"""


def settings_env_names(service_dir: Path) -> set[str]:
    """Env names read by the service's app.settings.Settings, imported in a
    child interpreter (both services' packages are called app)."""
    out = subprocess.run(
        [sys.executable, "-c", _SETTINGS_ENV_SCRIPT],
        cwd=service_dir,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, f"importing {service_dir.name}'s app.settings failed:\n{out.stderr}"
    return set(json.loads(out.stdout))


def go_sources(folder: Path) -> str:
    return "\n".join(p.read_text() for p in sorted(folder.rglob("*.go")) if not p.name.endswith("_test.go"))


def kafka_listeners(value: str) -> dict[str, tuple[str, int]]:
    """NAME://host:port,... -> {NAME: (host, port)}."""
    out = {}
    for item in value.split(","):
        name, _, addr = item.strip().partition("://")
        host, _, port = addr.rpartition(":")
        out[name] = (host, int(port))
    return out


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text))


# ---- the compose file -----------------------------------------------------------


def test_compose_spec_shape(compose):
    assert "version" not in compose, "the Compose spec has no top-level version key"
    assert set(compose["services"]) == EXPECTED_SERVICES


def test_no_top_level_name(compose):
    # docker-compose 1.29 (with podman) rejects it; -p names the project.
    assert "name" not in compose, "no top-level name: give the project with -p (see the header)"
    assert "-p shop" in COMPOSE_FILE.read_text().split("\nservices:")[0]


def test_healthchecks_are_cmd_shell(compose):
    # CMD arrays are split on spaces by podman's Docker API; CMD-SHELL with
    # one string is run the same way by every engine.
    for name, svc in compose["services"].items():
        test = (svc.get("healthcheck") or {}).get("test")
        if test is None:
            continue
        assert isinstance(test, list) and len(test) == 2 and test[0] == "CMD-SHELL", (
            f'{name}: healthcheck {test!r} should be ["CMD-SHELL", "command"]'
        )
        shlex.split(test[1])  # quotes balanced


def test_published_ports_are_movable(compose_raw):
    # Every host port comes from a SHOP_*_PORT variable (default: make run's).
    names = set()
    for name, svc in compose_raw["services"].items():
        for item in svc.get("ports") or []:
            spec = re.fullmatch(r"(?P<ip>[^:]+):(?P<host>\$\{[^}]*\}|\d+):(?P<container>\d+)", str(item))
            assert spec and spec["ip"] == "127.0.0.1", f"{name}: {item} is not on loopback"
            m = INTERPOLATION.fullmatch(spec["host"])
            assert m and m.group(1).startswith("SHOP_") and m.group(1).endswith("_PORT"), (
                f"{name}: host port of {item} should be ${{SHOP_..._PORT:-default}}"
            )
            names.add(m.group(1))
    assert len(names) == len(EXPECTED_HOST_PORTS)
    # What Kafka advertises to the host follows its published port.
    kafka = compose_raw["services"]["kafka"]
    published = str(kafka["ports"][0]).split(":", 1)[1].rsplit(":", 1)[0]
    assert f"EXTERNAL://localhost:{published}" in env_of(kafka)["KAFKA_ADVERTISED_LISTENERS"]
    # compose-test publishes on ports of its own: the script sets every one.
    script = (ROOT / "scripts" / "compose-test.sh").read_text()
    for var in names:
        assert var in script, f"scripts/compose-test.sh does not choose {var}"


def test_ci_images_stand_in_for_every_upstream_image(compose):
    # make compose-test builds a stand-in for each image pulled from a
    # registry (by the compose file or a Dockerfile's FROM), tagged with its
    # fully qualified name.
    build_sh = (ROOT / "deploy" / "ci-images" / "build.sh").read_text()
    tags = set(re.findall(r"^readonly [A-Z]+_TAG=(\S+)$", build_sh, re.M))
    built_here = {svc["image"] for svc in compose["services"].values() if svc.get("build") and svc.get("image")}
    upstream = set()
    for svc in compose["services"].values():
        if svc.get("image") and svc["image"] not in built_here:
            upstream.add(svc["image"])
        if svc.get("build"):
            stages = stages_of(svc)
            names = {st.name for st in stages if st.name}
            upstream |= {st.base for st in stages if st.base not in names and st.base != "scratch"}

    def qualified(image: str) -> str:
        first = image.split("/", 1)[0]
        if "/" in image and ("." in first or ":" in first):
            return image
        return f"docker.io/{image}" if "/" in image else f"docker.io/library/{image}"

    missing = {qualified(i) for i in upstream} - tags
    assert not missing, f"no stand-in in deploy/ci-images/build.sh for {sorted(missing)}"


def test_every_service_has_an_image_or_a_buildable_context(compose):
    for name, svc in compose["services"].items():
        built = build_of(svc)
        if built is None:
            assert svc.get("image"), f"{name}: neither image nor build"
            continue
        ctx, dockerfile = built
        assert ctx.is_dir(), f"{name}: build context {ctx} does not exist"
        assert dockerfile.is_file(), f"{name}: Dockerfile {dockerfile} does not exist"
        assert ctx in dockerfile.parents, f"{name}: {dockerfile} is outside its context {ctx}"


def test_depends_on_targets_exist_and_are_healthchecked(compose):
    services = compose["services"]
    for name, svc in services.items():
        for dep, condition in depends_on(svc).items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            assert condition in ("service_started", "service_healthy", "service_completed_successfully")
            if condition == "service_healthy":
                hc = services[dep].get("healthcheck")
                assert hc and hc.get("test") and not hc.get("disable"), (
                    f"{name} waits for {dep} to be healthy, but {dep} has no healthcheck"
                )
    # No cycles: a topological order exists.
    order, pending = [], dict((n, set(depends_on(s))) for n, s in services.items())
    while pending:
        ready = [n for n, deps in pending.items() if deps <= set(order)]
        assert ready, f"depends_on has a cycle among {sorted(pending)}"
        order += ready
        for n in ready:
            del pending[n]


def test_startup_order(compose):
    services = compose["services"]
    for name in PYTHON_SERVICES:
        deps = depends_on(services[name])
        assert deps.get("postgres") == "service_healthy", name
        assert deps.get("kafka") == "service_healthy", name
    deps = depends_on(services["gateway"])
    for dep in ("service_a", "service_b", "kafka"):
        assert deps.get(dep) == "service_healthy", f"gateway should wait for {dep} to be healthy"


def test_every_long_running_service_has_a_healthcheck(compose):
    for name, svc in compose["services"].items():
        if name in ONE_SHOT:
            assert svc.get("restart") == "no", f"{name} is a one-shot job and must not restart"
            continue
        hc = svc.get("healthcheck") or {}
        assert hc.get("test") and not hc.get("disable"), f"{name} has no healthcheck"


def test_published_ports_are_those_of_make_run(compose):
    published = []
    for name, svc in compose["services"].items():
        for p in ports_of(svc):
            assert p.host is not None, f"{name}: port {p.container} is published on a random host port"
            published.append(p.host)
    assert sorted(published) == sorted(EXPECTED_HOST_PORTS), (
        f"published host ports {sorted(published)} != {sorted(EXPECTED_HOST_PORTS)}"
    )


def test_built_services_expose_their_published_ports(compose):
    for name, svc in compose["services"].items():
        if build_of(svc) is None:
            continue
        final = stages_of(svc)[-1]
        exposed = set()
        for ins in final.instructions:
            if ins.cmd == "EXPOSE":
                exposed |= {int(w.split("/")[0]) for w in ins.args.split()}
        for p in ports_of(svc):
            assert p.container in exposed, f"{name}: publishes {p.container}, Dockerfile exposes {exposed}"


def test_volumes_are_declared_and_bind_mounts_exist(compose):
    declared = set((compose.get("volumes") or {}).keys())
    for name, svc in compose["services"].items():
        for vol in svc.get("volumes") or []:
            source = vol.get("source") if isinstance(vol, dict) else str(vol).split(":")[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name}: bind mount source {source} does not exist"
            else:
                assert source in declared, f"{name}: named volume {source} is not declared"


def test_service_urls_point_at_services_and_their_ports(compose):
    services = compose["services"]
    for name, svc in services.items():
        for var, value in env_of(svc).items():
            # A token issuer is a name the tokens carry, not an address.
            if var == "GATEWAY_AUTH_ISSUER" or not value.startswith(("http://", "https://")):
                continue
            u = urlsplit(value)
            assert u.hostname in services, f"{name}: {var}={value} names no service"
            target = services[u.hostname]
            ports = {p.container for p in ports_of(target)} | exposed_of(target)
            assert u.port in ports, f"{name}: {var}={value} but {u.hostname} listens on {ports}"


def test_healthchecks_probe_the_service_port(compose):
    for name, port in PYTHON_SERVICES.items():
        svc = compose["services"][name]
        assert ports_of(svc) == [], f"{name}: publishes a port; the services are reached through the gateway"
        assert exposed_of(svc) == {port}
        assert env_of(svc).get("PORT") == str(port), f"{name}: PORT should be {port}"
        cmd = healthcheck_cmd(svc)
        assert f"127.0.0.1:{port}/healthz" in cmd, f"{name}: healthcheck {cmd!r}"
        assert "urllib" in cmd, f"{name}: the slim image has no curl; probe with python's urllib"
    cmd = healthcheck_cmd(compose["services"]["gateway"])
    assert "127.0.0.1:8080/healthz" in cmd, f"gateway: healthcheck {cmd!r}"


# ---- Kafka ------------------------------------------------------------------------


def test_kafka_single_node_kraft(compose):
    kafka = compose["services"]["kafka"]
    assert str(kafka.get("image", "")).startswith("apache/kafka:")
    env = env_of(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node_id = env["KAFKA_NODE_ID"]
    listeners = kafka_listeners(env["KAFKA_LISTENERS"])
    advertised = kafka_listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert set(listeners) <= set(protocols), "every listener needs a security protocol"
    assert controller in listeners and controller not in advertised
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised
    for lname, (_, port) in advertised.items():
        assert listeners[lname][1] == port, f"{lname} advertises port {port} but listens on {listeners[lname][1]}"
    voter_id, _, voter = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].partition("@")
    assert voter_id == node_id
    assert int(voter.rpartition(":")[2]) == listeners[controller][1]
    for var, value in env.items():
        if var.endswith(("REPLICATION_FACTOR", "_MIN_ISR", "MIN_INSYNC_REPLICAS")):
            assert value == "1", f"single broker: {var} must be 1, is {value}"
    # The host listener: advertised as localhost on the published port.
    host_side = {port: lname for lname, (host, port) in advertised.items() if host in ("localhost", "127.0.0.1")}
    for p in ports_of(kafka):
        assert p.host == p.container == 9092
        assert p.container in host_side, f"published {p.container} is no listener advertised to the host"
    hc = healthcheck_cmd(kafka)
    assert "/opt/kafka/bin/kafka-" in hc and "--bootstrap-server" in hc
    hc_port = int(re.search(r"--bootstrap-server\s+\S+:(\d+)", hc).group(1))
    assert hc_port in {port for _, port in listeners.values()}


def test_containers_use_the_in_network_kafka_listener(compose):
    kafka_env = env_of(compose["services"]["kafka"])
    advertised = kafka_listeners(kafka_env["KAFKA_ADVERTISED_LISTENERS"])
    in_network = {f"{host}:{port}" for host, port in advertised.values() if host == "kafka"}
    assert len(in_network) == 1, f"one listener should be advertised as kafka:PORT, got {in_network}"
    for name in ("service_a", "service_b", "gateway"):
        brokers = env_of(compose["services"][name]).get("KAFKA_BROKERS")
        assert brokers in in_network, f"{name}: KAFKA_BROKERS={brokers}, in-network listener is {in_network}"


def test_kafka_image_matches_the_local_broker(compose):
    script = ROOT / "scripts" / "kafka.sh"
    assert script.is_file(), "scripts/kafka.sh (the make run broker) is missing"
    m = re.search(r'KAFKA_VERSION="([^"]+)"', script.read_text())
    assert m, "KAFKA_VERSION not found in scripts/kafka.sh"
    image = compose["services"]["kafka"]["image"]
    assert image == f"apache/kafka:{m.group(1)}", (
        f"docker-compose.yml runs {image}, make run Kafka {m.group(1)}: keep them on one release"
    )


# ---- PostgreSQL ---------------------------------------------------------------------


def test_database_urls(compose):
    services = compose["services"]
    pg = services["postgres"]
    pg_env = env_of(pg)
    assert "pg_isready" in healthcheck_cmd(pg)
    init_sql = ""
    for vol in pg.get("volumes") or []:
        src, _, dst = str(vol).partition(":")
        if dst.startswith("/docker-entrypoint-initdb.d/"):
            init_sql += (ROOT / src).read_text()
    created = set(re.findall(r"CREATE\s+DATABASE\s+\"?(\w+)", init_sql, re.I))
    created.add(pg_env.get("POSTGRES_DB") or pg_env.get("POSTGRES_USER") or "postgres")
    assert {"shop_a", "shop_b"} <= created, f"init script creates {created}"
    seen = set()
    for name in PYTHON_SERVICES:
        url = env_of(services[name])["DATABASE_URL"]
        u = urlsplit(url)
        dialect, _, driver = u.scheme.partition("+")
        assert dialect in ("postgresql", "postgres"), f"{name}: {url}"
        assert u.hostname == "postgres" and (u.port or 5432) == 5432, f"{name}: {url}"
        assert u.username == pg_env["POSTGRES_USER"] and u.password == pg_env["POSTGRES_PASSWORD"]
        db = u.path.lstrip("/")
        assert db in created, f"{name}: database {db} is not created by the init script"
        assert db not in seen, f"{name} shares database {db} with another service"
        seen.add(db)
        reqs = requirement_names(REQUIREMENTS)
        if driver:
            assert driver in DB_DRIVERS, f"{name}: unknown driver {driver} in {url}"
            assert reqs & DB_DRIVERS[driver], f"{name}: {url} needs {DB_DRIVERS[driver]} in requirements.txt"
            assert "sqlalchemy" in reqs, f"{name}: a dialect+driver URL is SQLAlchemy's; it is not required"
        else:
            assert reqs & (DB_DRIVERS["psycopg"] | DB_DRIVERS["psycopg2"] | DB_DRIVERS["asyncpg"])


# ---- Dockerfiles ---------------------------------------------------------------------


def _built(compose):
    for name, svc in compose["services"].items():
        built = build_of(svc)
        if built is not None:
            yield name, built[0], built[1], stages_of(svc)


def test_dockerfile_copy_sources_exist_in_the_context(compose):
    for name, ctx, dockerfile, stages in _built(compose):
        for stage in stages:
            for ins in stage.instructions:
                if ins.cmd not in ("COPY", "ADD"):
                    continue
                flags, words = split_args(ins.args)
                if any(f.startswith("--from") for f in flags):
                    continue
                assert len(words) >= 2, f"{dockerfile}: {ins.cmd} {ins.args}"
                for src in words[:-1]:
                    path = (ctx / src).resolve()
                    assert path.exists(), f"{name}: {ins.cmd} source {src} is not in {ctx}"
                    assert sent_files(ctx, path, dockerfile), f"{name}: {ins.cmd} {src}: all of it is .dockerignored"


def test_dockerfiles_run_as_non_root(compose):
    for name, _, _, stages in _built(compose):
        final = stages[-1]
        users = [ins.args.split(":")[0] for ins in final.instructions if ins.cmd == "USER"]
        assert users, f"{name}: the final stage sets no USER (runs as root)"
        assert users[-1] not in ("root", "0"), f"{name}: runs as {users[-1]}"


def test_gateway_dockerfile(compose):
    _, dockerfile = build_of(compose["services"]["gateway"])
    stages = parse_dockerfile(dockerfile)
    assert len(stages) >= 2, "the gateway image should be multi-stage"
    build, final = stages[0], stages[-1]
    m = re.match(r"golang:(\d+\.\d+)", build.base)
    assert m, f"build stage base {build.base}"
    gomod = (ROOT / "go.mod").read_text()
    go_directive = re.search(r"^go\s+(\S+)", gomod, re.M).group(1)
    assert version_tuple(m.group(1)) >= version_tuple(go_directive)[:2], (
        f"{build.base} is older than go.mod's go {go_directive}"
    )
    runs = " ".join(ins.args for ins in build.instructions if ins.cmd == "RUN")
    env = env_instructions(build)
    assert "go mod download" in runs
    assert env.get("CGO_ENABLED") == "0" or "CGO_ENABLED=0" in runs, "the binary must be static"
    build_cmd = re.search(r"go build\s+(.*?)(?:&&|$)", runs).group(1)
    assert "./gateway/cmd/gateway" in build_cmd
    out = re.search(r"-o\s+(\S+)", build_cmd).group(1)
    copied = {}
    for ins in final.instructions:
        if ins.cmd == "COPY":
            flags, words = split_args(ins.args)
            if any(f.startswith("--from") for f in flags):
                copied[words[0]] = words[-1]
    assert out in copied, f"the final stage does not copy the built binary {out}"
    entrypoint = exec_form(final, "ENTRYPOINT")
    assert entrypoint and entrypoint[0] == copied[out], f"ENTRYPOINT {entrypoint} vs binary at {copied[out]}"
    # The healthcheck's tool must exist in the final image.
    hc = compose["services"]["gateway"]["healthcheck"]["test"]
    tool = hc[1] if hc[0] == "CMD" else shlex.split(hc[1])[0]
    if tool in ("wget", "curl"):
        assert not final.base.startswith(("gcr.io/distroless", "scratch")), f"{tool} is not in {final.base}"


def test_gateway_binary_sources_are_in_the_image():
    """Every file the gateway binary is built from (its module's packages, with
    embedded files) is copied into the build stage and not .dockerignored."""
    assert GATEWAY_MAIN.is_file(), f"{GATEWAY_MAIN.relative_to(ROOT)} does not exist yet"
    go = shutil.which("go")
    assert go, "go is not on PATH"
    res = subprocess.run(
        [go, "list", "-deps", "-json=ImportPath,Dir,Module,GoFiles,EmbedFiles", "./gateway/cmd/gateway"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    copied_roots = set()
    for ins in parse_dockerfile(ROOT / "gateway" / "Dockerfile")[0].instructions:
        if ins.cmd == "COPY":
            flags, words = split_args(ins.args)
            copied_roots |= set(words[:-1])
    ignore = DockerIgnore(ROOT, ROOT / "gateway" / "Dockerfile")
    decoder, text, i = json.JSONDecoder(), res.stdout, 0
    local = 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        pkg, i = decoder.raw_decode(text, i)
        if (pkg.get("Module") or {}).get("Path") != "github.com/shopgateway/shop":
            continue
        local += 1
        rel_dir = Path(pkg["Dir"]).relative_to(ROOT).as_posix()
        assert rel_dir.split("/")[0] in copied_roots, f"{pkg['ImportPath']} ({rel_dir}) is not copied"
        for f in pkg.get("GoFiles", []) + pkg.get("EmbedFiles", []):
            assert not ignore.excluded(f"{rel_dir}/{f}"), f"{rel_dir}/{f} is .dockerignored"
    assert local, "no package of the module found"


def test_gateway_reads_the_environment_compose_sets(compose):
    env = env_of(compose["services"]["gateway"])
    assert set(env) == GATEWAY_ENV
    assert GATEWAY_MAIN.is_file(), f"{GATEWAY_MAIN.relative_to(ROOT)} does not exist yet"
    src = go_sources(GATEWAY_MAIN.parent)
    missing = sorted(n for n in env if f'"{n}"' not in src)
    assert not missing, f"the gateway (gateway/cmd/gateway) does not read {missing}"
    assert env["GATEWAY_OUTBOX_DIR"] in {
        str(v).split(":", 1)[1] for v in compose["services"]["gateway"].get("volumes") or []
    }, "the outbox dir must be on a volume"


def test_gateway_rate_limits_clients(compose):
    """Compose runs the gateway with its per-client rate limit on, at the
    figures the README states."""
    env = env_of(compose["services"]["gateway"])
    rate, burst = float(env["GATEWAY_RATE_LIMIT"]), int(env["GATEWAY_RATE_BURST"])
    assert rate > 0, "the rate limit is off in compose"
    assert burst >= rate, f"a burst of {burst} is below the rate {rate}"
    readme = (ROOT / "README.md").read_text()
    stated = f"{env['GATEWAY_RATE_LIMIT']} requests per second per client, bursts of {env['GATEWAY_RATE_BURST']}"
    assert stated in readme, f"the README does not state compose's rate limit ({stated!r})"


def test_gateway_verifies_tokens_of_the_keys_job(compose):
    """Secure by default in compose too: the gateway gets the JWKS the keys job
    writes (same volume and path), waits for the job, and requires the issuer
    and audience the development tokens carry."""
    services = compose["services"]
    gw, keys = services["gateway"], services["keys"]
    assert depends_on(gw).get("keys") == "service_completed_successfully"
    env = env_of(gw)
    assert "GATEWAY_AUTH_DISABLED" not in env, "compose must not run the gateway with auth off"
    entry = keys["entrypoint"]
    assert entry[0] == "/usr/local/bin/devtoken", entry
    assert "-init" in (keys.get("command") or []), keys.get("command")
    jwks = entry[entry.index("-jwks") + 1]
    assert env["GATEWAY_AUTH_JWKS"] == jwks
    volume_of = lambda svc, path: {  # noqa: E731
        str(v).split(":")[0] for v in svc.get("volumes") or [] if str(v).split(":")[1] == path
    }
    key_dir = str(PurePosixPath(jwks).parent)
    assert volume_of(keys, key_dir) and volume_of(keys, key_dir) == volume_of(gw, key_dir), (
        f"the keys job and the gateway must share the volume on {key_dir}"
    )
    src = DEVKEYS.read_text()
    for name, const in (("GATEWAY_AUTH_ISSUER", "DefaultIssuer"), ("GATEWAY_AUTH_AUDIENCE", "DefaultAudience")):
        m = re.search(const + r'\s*=\s*"([^"]+)"', src)
        assert m and env[name] == m.group(1), f"{name}={env[name]!r}, the dev tokens carry {m and m.group(1)!r}"
    _, dockerfile = build_of(gw)
    final = parse_dockerfile(dockerfile)[-1]
    copied = [split_args(i.args)[1][-1] for i in final.instructions if i.cmd == "COPY"]
    assert entry[0] in copied, f"the image has no {entry[0]}"


def test_gateway_serves_the_probed_path():
    assert GATEWAY_MAIN.is_file(), f"{GATEWAY_MAIN.relative_to(ROOT)} does not exist yet"
    assert '"/healthz"' in go_sources(ROOT / "gateway"), "the gateway serves no /healthz"


@pytest.mark.parametrize("name", sorted(PYTHON_SERVICES))
def test_python_service_image(compose, name):
    svc = compose["services"][name]
    ctx, dockerfile = build_of(svc)
    # The repository root: the image needs the requirements and the shared package.
    assert ctx == ROOT, f"{name}: build context {ctx}, want the repository root"
    # One Dockerfile for both services, told which by its build arguments.
    assert dockerfile == PYTHON_DOCKERFILE, f"{name}: Dockerfile {dockerfile}, want {PYTHON_DOCKERFILE}"
    assert build_args_of(svc) == {"SERVICE": name, "PORT": str(PYTHON_SERVICES[name])}
    final = stages_of(svc)[-1]
    assert final.base.startswith("python:3.11"), final.base
    cmd = exec_form(final, "CMD") or exec_form(final, "ENTRYPOINT")
    assert cmd and cmd[:2] == ["python", "-m"], cmd
    module = cmd[2]
    assert (ROOT / name / module / "__main__.py").is_file(), f"{name}/{module}/__main__.py does not exist yet"
    env = env_instructions(final)
    # python -m <module> finds the service's own package on PYTHONPATH.
    wanted = PurePosixPath(env.get("PYTHONPATH", "")) / module
    sources = [c.source for c in image_copies(final, ctx) if c.dest == wanted]
    assert sources == [ROOT / name / module], f"{name}: {wanted} is copied from {sources}, want {name}/{module}"
    assert ROOT / name / module / "__main__.py" in sent_files(ctx, ROOT / name / module, dockerfile)
    assert env.get("HOST") == "0.0.0.0", f"{name}: the image should listen on all interfaces"
    assert env.get("PORT") == str(PYTHON_SERVICES[name])


@pytest.mark.parametrize("name", sorted(PYTHON_SERVICES))
def test_python_service_requirements_are_in_the_image(compose, name):
    """The image installs the one pinned requirements.txt (the file make venv
    installs) and then the shared package, copied from the repository before
    the RUN that installs it; no requirements file names a local path, which
    pip would resolve from its working directory."""
    svc = compose["services"][name]
    ctx, dockerfile = build_of(svc)
    final = stages_of(svc)[-1]
    assert not local_requirement_paths(REQUIREMENTS), "requirements.txt names a local path"
    workdir, run_index = workdir_of_run(final, "-r requirements.txt")
    copies = [c for c in image_copies(final, ctx) if c.before_run <= run_index]
    assert [c.source for c in copies if c.dest == workdir / "requirements.txt"] == [REQUIREMENTS], (
        f"{name}: the pip RUN in {workdir} does not read the repository's requirements.txt"
    )
    shopkit = ROOT / "shopkit"
    _, kit_run = workdir_of_run(final, "/opt/shopkit")
    kit_copies = [c for c in image_copies(final, ctx) if c.before_run <= kit_run and c.source == shopkit]
    assert [c.dest for c in kit_copies] == [PurePosixPath("/opt/shopkit")], f"{name}: shopkit is copied to {kit_copies}"
    sent = sent_files(ctx, shopkit, dockerfile)
    assert shopkit / "pyproject.toml" in sent, f"{name}: shopkit/pyproject.toml is .dockerignored"
    assert any(p.suffix == ".py" for p in sent), f"{name}: no Python file of shopkit reaches the image"


@pytest.mark.parametrize("name", sorted(PYTHON_SERVICES))
def test_python_service_reads_the_environment_compose_sets(compose, name):
    names = settings_env_names(ROOT / name)
    image_env = env_instructions(stages_of(compose["services"][name])[-1])
    wanted = set(env_of(compose["services"][name])) | {k for k in image_env if not k.startswith(("PYTHON", "PIP_"))}
    missing = sorted(n for n in wanted if n.upper() not in names)
    assert not missing, f"{name}: {missing} are not settings of {name}/app/settings.py (reads {sorted(names)})"


@pytest.mark.parametrize("name", sorted(PYTHON_SERVICES))
def test_python_service_serves_the_probed_path(compose, name):
    """The Python code in the image (the service's app/ and the shared package)
    has a /healthz route."""
    app = ROOT / name / "app"
    assert app.is_dir(), f"{name}/app does not exist yet"
    ctx, dockerfile = build_of(compose["services"][name])
    files = [
        p
        for c in image_copies(stages_of(compose["services"][name])[-1], ctx)
        for p in sent_files(ctx, c.source, dockerfile)
        if p.suffix == ".py"
    ]
    src = "\n".join(p.read_text() for p in files)
    assert re.search(r"""\.get\(\s*["']/healthz["']""", src), f"{name}: no /healthz route in the image's code"
