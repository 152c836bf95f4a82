"""Check docker-compose.yml and the Dockerfile against the binaries they run.

Nothing here needs a Docker engine. It catches the mistakes that otherwise
show up only as a container that never turns healthy: a misspelt environment
variable (clap ignores unknown variables silently), a flag the binary does not
have, a binary the image does not ship, a listener left on 127.0.0.1, a peer
URL pointing at the wrong port, a dependency that does not exist.

Usage:
    python3 tests/compat/check_deploy.py [--compose docker-compose.yml]
        [--dockerfile Dockerfile] [--bin-dir target/debug]
        [--seed deploy/catalog.toml] [--env-example .env.example]

The binaries in --bin-dir must exist (`cargo build --workspace --bins`); a
missing one is a failure, not a skip. Exits 1 listing every problem found.
"""

import argparse
import os
import re
import shlex
import subprocess
import sys
import tomllib
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]

# Environment variables checked against a binary's --help.
CHECKED_ENV_PREFIXES = ("SWITCHYARD_", "PROVIDER_SIM_")
# Services that may publish ports on the host's interfaces: the public API,
# and the simulator for scripting it from the host.
PUBLISHERS = {"router", "provider-sim"}
# Listen ports of third-party images, for checking URLs that point at them.
WELL_KNOWN_PORTS = {"postgres": {5432}, "redis": {6379}}
RESTART_POLICIES = {"always", "unless-stopped", "on-failure"}
DEPENDS_CONDITIONS = {
    "service_started",
    "service_healthy",
    "service_completed_successfully",
}
LOOPBACK_HOSTS = ("127.", "localhost", "[::1]", "::1")


class Problems:
    def __init__(self):
        self.items = []

    def add(self, where, message):
        self.items.append(f"{where}: {message}")


def interpolate(value):
    """Resolves compose `${VAR:-default}` to its default and `${VAR}` to "",
    so the result is the same on every machine, whatever its environment."""

    def replace(match):
        return match.group(2) or ""

    text = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?]([^}]*))?\}", replace, str(value))
    return text.replace("$$", "$")


# ------------------------------------------------------------ clap --help


@dataclass
class Help:
    """What one clap (sub)command's --help says it accepts."""

    text: str
    flags: dict = field(default_factory=dict)  # "--name" -> takes a value
    envs: dict = field(default_factory=dict)  # "ENV_NAME" -> default or None
    subcommands: set = field(default_factory=set)


def parse_help(text):
    help_ = Help(text=text)
    entries = []
    section = None
    for line in text.splitlines():
        stripped = line.strip()
        if not line.startswith(" ") and stripped.endswith(":"):
            section = stripped[:-1]
            continue
        if section == "Commands" and stripped:
            help_.subcommands.add(stripped.split()[0])
        elif section in ("Options", "Arguments") or (section and "Options" in section):
            if re.match(r"^\s*(-\w, )?--[\w-]", line):
                entries.append(stripped)
            elif entries and stripped:
                entries[-1] += " " + stripped
    for entry in entries:
        head = re.match(r"^(?:-\w, )?(--[\w-]+)(?:[ =]?[\[<])?", entry)
        if head:
            help_.flags[head.group(1)] = head.group(0).endswith(("<", "["))
        env = re.search(r"\[env: ([A-Za-z0-9_]+)", entry)
        if env:
            default = re.search(r"\[default: ([^\]]*)\]", entry)
            help_.envs[env.group(1)] = default.group(1) if default else None
    return help_


class Binaries:
    """Runs `--help` of the binaries in one directory, once each."""

    def __init__(self, bin_dir, problems):
        self.bin_dir = bin_dir
        self.problems = problems
        self.cache = {}
        self.missing = set()

    def help(self, binary, subcommands=()):
        key = (binary, tuple(subcommands))
        if key in self.cache:
            return self.cache[key]
        path = self.bin_dir / binary
        result = None
        if not path.is_file():
            if binary not in self.missing:
                self.missing.add(binary)
                self.problems.add(
                    binary,
                    f"binary not found at {path}; build it first "
                    "(`cargo build --workspace --bins`)",
                )
        else:
            # Our own SWITCHYARD_* settings would show up as values in the
            # help text; keep the output about the binary alone.
            env = {k: v for k, v in os.environ.items() if not k.startswith(CHECKED_ENV_PREFIXES)}
            run = subprocess.run(
                [str(path), *subcommands, "--help"],
                capture_output=True,
                text=True,
                timeout=60,
                env=env,
            )
            if run.returncode != 0:
                self.problems.add(
                    binary,
                    f"`{' '.join([binary, *subcommands, '--help'])}` exited "
                    f"{run.returncode}: {run.stderr.strip()[:300]}",
                )
            else:
                result = parse_help(run.stdout)
        self.cache[key] = result
        return result

    def check_args(self, where, binary, args):
        """Every `--flag` and subcommand in `args` must be in the help of the
        (sub)command it is given to."""
        path = []
        help_ = self.help(binary)
        expect_value = False
        for arg in args:
            if help_ is None:
                return
            if expect_value:
                expect_value = False
                continue
            if arg.startswith("--"):
                flag = arg.split("=", 1)[0]
                if flag not in help_.flags:
                    self.problems.add(
                        where,
                        f"`{' '.join([binary, *path])}` has no flag {flag} (see its --help)",
                    )
                    return
                expect_value = help_.flags[flag] and "=" not in arg
            elif arg.startswith("-"):
                continue
            elif arg in help_.subcommands:
                path.append(arg)
                help_ = self.help(binary, path)
            else:
                self.problems.add(
                    where,
                    f"`{' '.join([binary, *path])}` has no subcommand {arg!r}",
                )
                return


# ------------------------------------------------------------ Dockerfile


@dataclass
class Dockerfile:
    shipped: set  # binary names copied from a build stage into the final one
    env: dict  # ENV of the final stage
    cmd: list
    healthcheck: list
    user: str
    text: str


def instructions(text):
    """(INSTRUCTION, arguments) pairs, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        yield word.upper(), rest.strip()


def command_words(rest):
    """Exec form `["a", "b"]` or shell form `a b`."""
    rest = rest.strip()
    if rest.startswith("["):
        return yaml.safe_load(rest)
    return shlex.split(rest)


def parse_env(rest):
    if "=" not in rest.split()[0]:
        name, _, value = rest.partition(" ")
        return {name: value.strip()}
    return dict(word.split("=", 1) for word in shlex.split(rest))


def parse_dockerfile(text):
    stages = 0
    shipped, env, cmd, healthcheck, user = set(), {}, [], [], ""
    for word, rest in instructions(text):
        if word == "FROM":
            stages += 1
            shipped, env, cmd, healthcheck, user = set(), {}, [], [], ""
        elif word == "COPY" and "--from=" in rest:
            sources = [w for w in shlex.split(rest) if not w.startswith("--")][:-1]
            shipped |= {Path(s).name for s in sources}
        elif word == "ENV":
            env.update(parse_env(rest))
        elif word == "CMD":
            cmd = command_words(rest)
        elif word == "HEALTHCHECK":
            match = re.search(r"\bCMD\b(.*)$", rest)
            healthcheck = command_words(match.group(1)) if match else []
        elif word == "USER":
            user = rest
    return Dockerfile(shipped, env, cmd, healthcheck, user, text), stages


# ------------------------------------------------------------ compose


def env_of(service):
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        pairs = (item.split("=", 1) if "=" in item else (item, None) for item in environment)
        return {k: v for k, v in pairs}
    return dict(environment)


def depends_of(service):
    depends = service.get("depends_on") or {}
    if isinstance(depends, list):
        return {name: {"condition": "service_started"} for name in depends}
    return {name: (spec or {}) for name, spec in depends.items()}


def healthcheck_enabled(service):
    check = service.get("healthcheck")
    if not check or check.get("disable"):
        return False
    return check.get("test") not in (None, [], ["NONE"])


def healthcheck_words(service):
    test = (service.get("healthcheck") or {}).get("test")
    if isinstance(test, str):
        return shlex.split(test)
    if not test:
        return []
    if test[0] == "CMD-SHELL":
        return shlex.split(" ".join(test[1:]))
    if test[0] == "CMD":
        return list(test[1:])
    return list(test)


def command_of(service, dockerfile):
    """The argv a service's container runs (the image has no ENTRYPOINT)."""

    def words(key):
        value = service.get(key)
        if not value:
            return []
        return shlex.split(value) if isinstance(value, str) else list(value)

    entrypoint, command = words("entrypoint"), words("command")
    return entrypoint + command if entrypoint else command or list(dockerfile.cmd)


def published_ports(service):
    """(host_ip, published) of every published port."""
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            if port.get("published") is not None:
                yield port.get("host_ip", ""), str(port["published"])
            continue
        parts = interpolate(port).rsplit(":", 2)
        if len(parts) == 3:
            yield parts[0], parts[1]
        elif len(parts) == 2:
            yield "", parts[0]
        else:
            # A bare container port is published on a random host port.
            yield "", ""


def is_loopback(value):
    """Whether an address (`host:port`) or URL names the local host."""
    value = interpolate(value)
    if "://" in value:
        host = urllib.parse.urlsplit(value).hostname or ""
    else:
        host = value.rsplit(":", 1)[0]
    return host.startswith(LOOPBACK_HOSTS) or host in ("::1", "[::1]")


def listen_ports(env):
    ports = set()
    for name, value in env.items():
        if name.endswith("_ADDR") and value:
            port = interpolate(value).rsplit(":", 1)[-1]
            if port.isdigit():
                ports.add(int(port))
    return ports


def check_compose(compose, compose_dir, dockerfile, binaries, problems):
    if "version" in compose:
        problems.add("compose", "drop the obsolete top-level `version:` key")
    services = compose.get("services") or {}
    if not services:
        problems.add("compose", "no services")
        return
    volumes = set((compose.get("volumes") or {}).keys())

    # Ports each service listens on, for checking URLs between services.
    ports_of = {name: set(WELL_KNOWN_PORTS.get(name, ())) for name in services}

    for name, service in services.items():
        where = f"service {name}"
        if not isinstance(service, dict):
            problems.add(where, "is not a mapping")
            continue
        if "image" not in service and "build" not in service:
            problems.add(where, "has neither image nor build")
        restart = str(service.get("restart", "")).split(":")[0]
        if restart not in RESTART_POLICIES:
            problems.add(where, f"needs a restart policy (one of {sorted(RESTART_POLICIES)})")
        check = service.get("healthcheck")
        if not check:
            problems.add(where, "has no healthcheck")
        elif not check.get("disable") and not healthcheck_enabled(service):
            problems.add(where, "healthcheck has no test")

        profiles = service.get("profiles") or []
        for target, spec in depends_of(service).items():
            if target not in services:
                problems.add(where, f"depends_on unknown service {target!r}")
                continue
            condition = spec.get("condition", "service_started")
            if condition not in DEPENDS_CONDITIONS:
                problems.add(where, f"depends_on {target}: unknown condition {condition!r}")
            if condition == "service_healthy" and not healthcheck_enabled(services[target]):
                problems.add(where, f"waits for {target} to be healthy, but it has no healthcheck")
            if not profiles and services[target].get("profiles"):
                problems.add(where, f"depends on {target}, which only runs in a profile")

        for host_ip, published in published_ports(service):
            loopback = host_ip.startswith(LOOPBACK_HOSTS)
            if name in PUBLISHERS or (profiles and loopback):
                continue
            problems.add(
                where,
                f"publishes port {published or '(random)'}; only {sorted(PUBLISHERS)} "
                "may publish (profile-only tools on 127.0.0.1)",
            )

        for mount in service.get("volumes") or []:
            source = mount.get("source") if isinstance(mount, dict) else str(mount).split(":")[0]
            if source and not source.startswith((".", "/", "~")) and source not in volumes:
                problems.add(where, f"uses volume {source!r}, not declared under volumes:")

        env_files = service.get("env_file") or []
        for entry in [env_files] if isinstance(env_files, (str, dict)) else env_files:
            if isinstance(entry, str):
                entry = {"path": entry}
            path = entry.get("path", "")
            if entry.get("required", True) and not (compose_dir / path).exists():
                problems.add(
                    where, f"env_file {path} is required but absent; mark it `required: false`"
                )

        ports_of[name] |= listen_ports(env_of(service))

    for name, service in services.items():
        if isinstance(service, dict) and "build" in service:
            check_switchyard_service(
                name, service, services, ports_of, dockerfile, binaries, problems
            )


def check_switchyard_service(name, service, services, ports_of, dockerfile, binaries, problems):
    where = f"service {name}"
    command = command_of(service, dockerfile)
    if not command:
        problems.add(where, "runs no command (none in compose, no CMD in the Dockerfile)")
        return
    binary = command[0]
    if binary not in dockerfile.shipped:
        problems.add(where, f"runs {binary}, which the Dockerfile does not copy into the image")
    binaries.check_args(where, binary, command[1:])

    help_ = binaries.help(binary)
    env = env_of(service)
    if help_ is not None:
        for var in env:
            if var.startswith(CHECKED_ENV_PREFIXES) and var not in help_.envs:
                problems.add(where, f"sets {var}, which `{binary} --help` does not list")
        # A listener or peer URL left on its loopback default means the
        # container itself, which is wrong for every address we have. A
        # one-shot `--migrate-only` step binds nothing and calls no peer.
        one_shot = "--migrate-only" in command[1:]
        for var, default in help_.envs.items():
            if one_shot or default is None or not is_loopback(default):
                continue
            effective = interpolate(env.get(var) or dockerfile.env.get(var) or default)
            if is_loopback(effective):
                hint = "bind 0.0.0.0" if "://" not in effective else "name the peer service"
                problems.add(where, f"{var} is {effective} inside a container: {hint}")

    for var, value in env.items():
        if value is None:
            continue
        check_peer_url(where, var, interpolate(value), service, services, ports_of, problems)

    words = healthcheck_words(service)
    ours = words and words[0].startswith(("switchyard", "provider-sim"))
    if ours or (words and words[0] in dockerfile.shipped):
        if words[0] not in dockerfile.shipped:
            problems.add(where, f"healthcheck runs {words[0]}, which the image does not ship")
        binaries.check_args(f"{where} healthcheck", words[0], words[1:])
        own_ports = ports_of.get(name, set())
        for word in words:
            port = urllib.parse.urlsplit(word).port if "://" in word else None
            if port is not None and own_ports and port not in own_ports:
                problems.add(
                    where,
                    f"healthcheck probes port {port}, but the service listens on "
                    f"{sorted(own_ports)}",
                )


def check_peer_url(where, var, value, service, services, ports_of, problems):
    """A URL naming another compose service must use a port it listens on,
    and the service must be started after it."""
    if "://" not in value:
        return
    parts = urllib.parse.urlsplit(value)
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        problems.add(where, f"{var} is not a valid URL")
        return
    if host not in services:
        return
    known = ports_of.get(host, set())
    if port is not None and known and port not in known:
        problems.add(where, f"{var} points at {host}:{port}, but {host} listens on {sorted(known)}")
    if host not in depends_of(service):
        problems.add(where, f"{var} points at {host}, which is not in depends_on")


def check_dockerfile(dockerfile, stages, binaries, problems):
    if stages < 2:
        problems.add("Dockerfile", "expected a multi-stage build (builder, runtime)")
    if not dockerfile.shipped:
        problems.add("Dockerfile", "copies no binaries from a build stage")
    for binary in sorted(dockerfile.shipped):
        if f"target/release/{binary}" not in dockerfile.text:
            problems.add("Dockerfile", f"ships {binary} but never copies it out of target/release")
    if dockerfile.user in ("", "root", "0") or dockerfile.user.startswith(("root:", "0:")):
        problems.add("Dockerfile", "the runtime stage must run as a non-root USER")
    if not dockerfile.healthcheck:
        problems.add("Dockerfile", "has no HEALTHCHECK")
    for words, what in ((dockerfile.cmd, "CMD"), (dockerfile.healthcheck, "HEALTHCHECK")):
        if not words:
            continue
        if words[0] not in dockerfile.shipped:
            problems.add("Dockerfile", f"{what} runs {words[0]}, which the image does not ship")
        else:
            binaries.check_args(f"Dockerfile {what}", words[0], words[1:])
    # Image-wide settings must mean something to at least one shipped binary.
    known = set()
    for binary in sorted(dockerfile.shipped):
        help_ = binaries.help(binary)
        if help_ is not None:
            known |= set(help_.envs)
    if binaries.missing:
        return
    for var in dockerfile.env:
        if var.startswith(CHECKED_ENV_PREFIXES) and var not in known:
            problems.add("Dockerfile", f"ENV {var} is not read by any shipped binary")


def check_env_example(seed_path, env_example_path, problems):
    seed = tomllib.loads(seed_path.read_text())
    refs = {p.get("credential_ref", "") for p in seed.get("providers", [])} - {""}
    if not env_example_path.is_file():
        problems.add(".env.example", "missing")
        return
    listed = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", env_example_path.read_text(), re.M))
    for ref in sorted(refs - listed):
        problems.add(".env.example", f"does not list {ref} (credential_ref in {seed_path.name})")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compose", type=Path, default=REPO / "docker-compose.yml")
    parser.add_argument("--dockerfile", type=Path, default=REPO / "Dockerfile")
    parser.add_argument("--bin-dir", type=Path, default=REPO / "target" / "debug")
    parser.add_argument("--seed", type=Path, default=REPO / "deploy" / "catalog.toml")
    parser.add_argument("--env-example", type=Path, default=REPO / ".env.example")
    args = parser.parse_args(argv)

    problems = Problems()
    compose = yaml.safe_load(args.compose.read_text())
    dockerfile, stages = parse_dockerfile(args.dockerfile.read_text())
    binaries = Binaries(args.bin_dir, problems)

    check_dockerfile(dockerfile, stages, binaries, problems)
    check_compose(compose, args.compose.resolve().parent, dockerfile, binaries, problems)
    check_env_example(args.seed, args.env_example, problems)

    if problems.items:
        print(f"check_deploy: {len(problems.items)} problem(s)", file=sys.stderr)
        for item in problems.items:
            print(f"  - {item}", file=sys.stderr)
        return 1
    services = len(compose.get("services") or {})
    checked = sorted({b for b, _ in binaries.cache})
    print(f"check_deploy: ok ({services} services; binaries checked: {', '.join(checked)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
