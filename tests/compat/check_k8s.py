"""Check the Kubernetes manifests in deploy/k8s against the Kubernetes API
schemas and the binaries they run.

Nothing here needs a cluster. Each kustomization (the base and every overlay)
is rendered with `kubectl kustomize`, every rendered object is validated
against the Kubernetes JSON schemas shipped by the kubernetes-validate package
(offline, strict: unknown fields are errors), and then the manifests are
checked for the mistakes a schema cannot see and a cluster shows only as pods
that never turn ready, or as an outage during the next rollout:

- every Switchyard container runs a binary the Dockerfile ships, with flags
  and SWITCHYARD_*/PROVIDER_SIM_* variables its `--help` lists (clap ignores
  unknown variables silently), listens on 0.0.0.0, declares exactly the ports
  it listens on, and runs as the image's non-root user with a read-only root
  filesystem (the router's spool on a writable volume);
- probes, Service targetPorts, NetworkPolicy ports and peer URLs name ports
  that exist; Services, PodDisruptionBudgets and NetworkPolicies select pods
  that exist; HorizontalPodAutoscalers target Deployments that exist;
- only the router is reachable from outside the namespace, and every URL one
  service uses to reach another is allowed by the NetworkPolicies;
- terminationGracePeriodSeconds covers the preStop pause plus the router's
  drain window (SWITCHYARD_DRAIN_SECS), also for the adapters its streams
  run through;
- the migration Job runs catalog and usage-metering with --migrate-only;
- the seed copy in deploy/k8s/base is identical to deploy/catalog.toml.

Usage:
    python3 tests/compat/check_k8s.py [--k8s-dir deploy/k8s]
        [--bin-dir target/debug] [--dockerfile Dockerfile]
        [--seed deploy/catalog.toml] [--kubectl kubectl]

Needs kubectl (for `kubectl kustomize`) and `pip install -r
tests/compat/requirements.txt`. The binaries in --bin-dir must exist
(`cargo build --workspace --bins`). Exits 1 listing every problem found.
"""

import argparse
import base64
import re
import shutil
import subprocess
import sys
import tomllib
import urllib.parse
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import yaml

# The shared --help and Dockerfile parsing lives next to this file.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_deploy import (  # noqa: E402
    CHECKED_ENV_PREFIXES,
    Binaries,
    interpolate,
    is_loopback,
    parse_dockerfile,
)

REPO = Path(__file__).resolve().parents[2]

# Oldest Kubernetes the manifests support: native gRPC probes (1.27) and
# the `sleep` preStop action (1.30).
KUBERNETES_VERSION = "1.30"
KUSTOMIZATIONS = ("base", "overlays/dev", "overlays/prod")
# Renders whose images must be pinned to a tag other than latest, or a digest.
PINNED = {"overlays/prod"}
# Repository name (last path segment) of the image built by the Dockerfile.
IMAGE = "switchyard"

SERVICES = {
    "switchyard-router",
    "switchyard-catalog",
    "switchyard-usage-metering",
    "switchyard-provider-adapter",
}
# The only binary whose pods may be reachable from outside the namespace.
PUBLIC = {"switchyard-router"}
AUTOSCALED = {"switchyard-router", "switchyard-provider-adapter"}
# Binaries that own a database schema, and how a Job migrates it.
MIGRATORS = {"switchyard-catalog", "switchyard-usage-metering"}
MIGRATE_FLAG = "--migrate-only"
# The router drains in-flight streams on SIGTERM for SWITCHYARD_DRAIN_SECS.
DRAINING = "switchyard-router"
DRAIN_ENV = "SWITCHYARD_DRAIN_SECS"
# Seconds after the drain for flushing stats and spooling usage.
DRAIN_MARGIN = 5
# Streams the router drains run through these, so they need its grace too.
STREAM_CARRIERS = {"switchyard-provider-adapter"}
# Ports with this name may be opened to other namespaces (for a scraper).
METRICS_PORT = "metrics"

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}
DEFAULT_GRACE = 30
SCHEME_PORTS = {"http": 80, "https": 443, "postgres": 5432, "postgresql": 5432, "redis": 6379}


class Problems:
    """Problems grouped by message, so one mistake in the base reads once
    with every render it shows up in."""

    def __init__(self):
        self.renders = defaultdict(list)
        self.render = None

    def add(self, where, message):
        renders = self.renders[(where, message)]
        if self.render and self.render not in renders:
            renders.append(self.render)

    def lines(self):
        for (where, message), renders in self.renders.items():
            prefix = f"[{', '.join(renders)}] " if renders else ""
            yield f"{prefix}{where}: {message}"

    def __len__(self):
        return len(self.renders)


# ------------------------------------------------------------ helpers


def selects(selector, labels):
    """Whether a label selector (matchLabels + matchExpressions) matches."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def image_repository(image):
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    return name


def image_pinned(image):
    if "@sha256:" in image:
        return True
    last = image.rsplit("/", 1)[-1]
    return ":" in last and last.split(":", 1)[1] not in ("", "latest")


QUANTITY = re.compile(r"^([0-9.]+)(m|k|Ki|M|Mi|G|Gi|T|Ti)?$")
FACTORS = {
    None: 1,
    "m": 1e-3,
    "k": 1e3,
    "Ki": 2**10,
    "M": 1e6,
    "Mi": 2**20,
    "G": 1e9,
    "Gi": 2**30,
    "T": 1e12,
    "Ti": 2**40,
}


def quantity(value):
    match = QUANTITY.match(str(value))
    return float(match.group(1)) * FACTORS[match.group(2)] if match else None


def prestop_seconds(container):
    handler = (container.get("lifecycle") or {}).get("preStop") or {}
    if "sleep" in handler:
        return int(handler["sleep"].get("seconds", 0))
    command = (handler.get("exec") or {}).get("command") or []
    text = " ".join(str(word) for word in command)
    match = re.search(r"\bsleep\s+(\d+)", text)
    return int(match.group(1)) if match else 0


def effective(container_field, pod_field, key):
    for source in (container_field or {}, pod_field or {}):
        if key in source:
            return source[key]
    return None


# ------------------------------------------------------------ model


@dataclass
class Workload:
    obj: dict
    kind: str
    name: str
    labels: dict
    pod: dict

    @property
    def where(self):
        return f"{self.kind}/{self.name}"

    @property
    def long_running(self):
        return self.kind != "Job"

    def containers(self, init=True):
        main = self.pod.get("containers") or []
        return main + (self.pod.get("initContainers") or []) if init else main

    def ports(self):
        """containerPort numbers and the names that map to them."""
        numbers, names = set(), {}
        for container in self.containers(init=False):
            for port in container.get("ports") or []:
                numbers.add(port["containerPort"])
                if port.get("name"):
                    names[port["name"]] = port["containerPort"]
        return numbers, names

    def resolve_port(self, port):
        numbers, names = self.ports()
        if isinstance(port, int):
            return port if port in numbers else None
        return names.get(port)


class Render:
    def __init__(self, name, objects):
        self.name = name
        self.objects = objects
        self.by_kind = defaultdict(dict)
        for obj in objects:
            self.by_kind[obj.get("kind")][obj.get("metadata", {}).get("name")] = obj
        self.workloads = []
        for obj in objects:
            if obj.get("kind") in WORKLOAD_KINDS:
                template = obj.get("spec", {}).get("template", {})
                self.workloads.append(
                    Workload(
                        obj,
                        obj["kind"],
                        obj["metadata"]["name"],
                        template.get("metadata", {}).get("labels") or {},
                        template.get("spec") or {},
                    )
                )
        namespaces = list(self.by_kind.get("Namespace", {}).values())
        self.namespace_labels = {}
        if namespaces:
            ns = namespaces[0]["metadata"]
            self.namespace_labels = dict(ns.get("labels") or {})
            self.namespace_labels["kubernetes.io/metadata.name"] = ns["name"]
        self.namespace = self.namespace_labels.get("kubernetes.io/metadata.name")
        self.external_secrets = set()

    def selected(self, selector):
        return [w for w in self.workloads if selects(selector, w.labels)]

    def data_of(self, kind, name):
        """Keys and decoded values of a ConfigMap or Secret in the render."""
        obj = self.by_kind.get(kind, {}).get(name)
        if obj is None:
            return None
        values = dict(obj.get("stringData") or {})
        for key, value in (obj.get("data") or {}).items():
            values[key] = base64.b64decode(value).decode() if kind == "Secret" else value
        for key in obj.get("binaryData") or {}:
            values[key] = None
        return values

    def service_for_host(self, host):
        """The Service a URL host names: `name` or `name.namespace[.svc…]`."""
        parts = host.split(".")
        if len(parts) == 1:
            return self.by_kind.get("Service", {}).get(host), True
        in_namespace = len(parts) >= 2 and parts[1] == self.namespace and (
            len(parts) == 2 or parts[2] == "svc"
        )
        if in_namespace:
            return self.by_kind.get("Service", {}).get(parts[0]), True
        return None, False


# ------------------------------------------------------------ rendering


def render(kubectl, directory, problems):
    run = subprocess.run(
        [kubectl, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if run.returncode != 0:
        problems.add(f"kubectl kustomize {directory}", run.stderr.strip()[:800])
        return None
    try:
        return [doc for doc in yaml.safe_load_all(run.stdout) if doc]
    except yaml.YAMLError as err:
        problems.add(f"kubectl kustomize {directory}", f"output is not YAML: {err}")
        return None


def validate_schemas(objects, problems):
    import kubernetes_validate

    for obj in objects:
        where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as err:
            path = ".".join(str(part) for part in err.path)
            problems.add(where, f"schema (Kubernetes {KUBERNETES_VERSION}): {path}: {err.message}")
        except kubernetes_validate.SchemaNotFoundError as err:
            problems.add(where, err.message)
        except Exception as err:  # e.g. a kubernetes-validate without these schemas
            problems.add(where, f"cannot validate against Kubernetes {KUBERNETES_VERSION}: {err!r}")


# ------------------------------------------------------------ containers


class ContainerCheck:
    """What one container runs and whether that matches its binary."""

    def __init__(self, render, workload, container, dockerfile, binaries, problems):
        self.r = render
        self.w = workload
        self.c = container
        self.dockerfile = dockerfile
        self.binaries = binaries
        self.problems = problems
        self.where = f"{workload.where} container {container.get('name')}"
        repository = image_repository(container.get("image", ""))
        self.ours = repository.rsplit("/", 1)[-1] == IMAGE
        self.argv = self.command() if self.ours else []
        self.binary = self.argv[0] if self.argv else None
        self.help = binaries.help(self.binary) if self.binary in dockerfile.shipped else None
        self.env = self.resolve_env()
        workdirs = re.findall(r"^WORKDIR\s+(\S+)", dockerfile.text, re.M)
        self.workdir = container.get("workingDir") or (workdirs[-1] if workdirs else "/")

    def add(self, message):
        self.problems.add(self.where, message)

    def command(self):
        command, args = self.c.get("command"), self.c.get("args")
        if command:
            return [str(word) for word in [*command, *(args or [])]]
        # The image has no ENTRYPOINT: args alone replace its CMD.
        return [str(word) for word in (args or self.dockerfile.cmd)]

    def resolve_env(self):
        """name -> value, or None where the value is not in the render."""
        env = {}
        for source in self.c.get("envFrom") or []:
            for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                ref = source.get(key)
                if not ref:
                    continue
                data = self.r.data_of(kind, ref.get("name"))
                if data is None:
                    self.missing_ref(kind, ref.get("name"), ref.get("optional"))
                else:
                    env.update({source.get("prefix", "") + k: v for k, v in data.items()})
        for item in self.c.get("env") or []:
            name = item.get("name")
            if "valueFrom" not in item:
                env[name] = str(item.get("value", ""))
                continue
            env[name] = None
            for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                ref = item["valueFrom"].get(key)
                if not ref:
                    continue
                data = self.r.data_of(kind, ref.get("name"))
                if data is None:
                    self.missing_ref(kind, ref.get("name"), ref.get("optional"))
                elif ref.get("key") not in data:
                    if not ref.get("optional"):
                        self.add(f"{name}: {kind} {ref.get('name')} has no key {ref.get('key')!r}")
                else:
                    env[name] = data[ref["key"]]
        return env

    def missing_ref(self, kind, name, optional):
        if kind == "Secret":
            # Secrets holding credentials are created outside the manifests.
            self.r.external_secrets.add(name + (" (optional)" if optional else ""))
        elif not optional:
            self.add(f"references ConfigMap {name}, which is not in the render")

    def effective(self, var):
        if var in self.env:
            return self.env[var]
        if var in self.dockerfile.env:
            return self.dockerfile.env[var]
        return self.help.envs.get(var) if self.help else None

    def listen_ports(self):
        ports = set()
        for var in self.help.envs:
            if var.endswith("_ADDR"):
                value = self.effective(var)
                port = str(value or "").rsplit(":", 1)[-1]
                if port.isdigit():
                    ports.add(int(port))
        return ports

    def check(self):
        self.check_resources()
        self.check_security()
        if self.w.long_running and self.c in self.w.containers(init=False):
            for probe in ("readinessProbe", "livenessProbe"):
                if not self.c.get(probe):
                    self.add(f"has no {probe}")
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            if self.c.get(probe):
                self.check_probe(probe, self.c[probe])
        if self.ours:
            self.check_ours()
        self.check_mounted_files()

    def check_resources(self):
        resources = self.c.get("resources") or {}
        for kind in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if resource not in (resources.get(kind) or {}):
                    self.add(f"sets no {kind}.{resource}")
        for resource in ("cpu", "memory"):
            request = quantity((resources.get("requests") or {}).get(resource, ""))
            limit = quantity((resources.get("limits") or {}).get(resource, ""))
            if request is not None and limit is not None and request > limit:
                self.add(f"requests more {resource} than its limit")

    def check_security(self):
        pod = self.w.pod.get("securityContext") or {}
        own = self.c.get("securityContext") or {}
        if effective(own, pod, "runAsNonRoot") is not True:
            self.add("must set runAsNonRoot: true (container or pod securityContext)")
        if own.get("allowPrivilegeEscalation") is not False:
            self.add("must set allowPrivilegeEscalation: false")
        if own.get("privileged"):
            self.add("must not be privileged")
        if "ALL" not in ((own.get("capabilities") or {}).get("drop") or []):
            self.add("must drop ALL capabilities")
        if own.get("readOnlyRootFilesystem") is not True:
            self.add("must set readOnlyRootFilesystem: true (mount volumes where it writes)")
        seccomp = effective(own, pod, "seccompProfile") or {}
        if seccomp.get("type") not in ("RuntimeDefault", "Localhost"):
            self.add("needs seccompProfile RuntimeDefault (container or pod)")
        if self.ours:
            uid = effective(own, pod, "runAsUser")
            image_uid = self.dockerfile.user.split(":", 1)[0]
            if uid is not None and str(uid) != image_uid:
                self.add(f"runAsUser {uid} differs from the image's USER {image_uid}")

    def check_probe(self, name, probe):
        for kind in ("httpGet", "tcpSocket", "grpc"):
            if kind in probe:
                port = probe[kind].get("port")
                if self.w.resolve_port(port) is None:
                    self.add(f"{name} probes port {port!r}, which no container declares")
        words = [str(w) for w in (probe.get("exec") or {}).get("command") or []]
        if words and words[0] in self.dockerfile.shipped:
            self.binaries.check_args(f"{self.where} {name}", words[0], words[1:])
            numbers, _ = self.w.ports()
            for word in words:
                port = urllib.parse.urlsplit(word).port if "://" in word else None
                if port is not None and port not in numbers:
                    self.add(f"{name} probes port {port}, but the pod declares {sorted(numbers)}")

    def check_ours(self):
        if not self.argv:
            self.add("runs no command")
            return
        if self.binary not in self.dockerfile.shipped:
            self.add(f"runs {self.binary}, which the Dockerfile does not copy into the image")
            return
        self.binaries.check_args(self.where, self.binary, self.argv[1:])
        if self.help is None:
            return
        for var in self.env:
            if var.startswith(CHECKED_ENV_PREFIXES) and var not in self.help.envs:
                self.add(f"sets {var}, which `{self.binary} --help` does not list")
        for var, default in self.help.envs.items():
            if default is None or not is_loopback(default):
                continue
            # A Job's container serves nothing; only its peer URLs matter.
            if not self.w.long_running and "://" not in default:
                continue
            value = self.effective(var)
            if value is not None and is_loopback(interpolate(value)):
                hint = "bind 0.0.0.0" if "://" not in value else "name the peer Service"
                self.add(f"{var} is {value} inside a pod: {hint}")
        if self.w.long_running:
            declared = {p["containerPort"] for p in self.c.get("ports") or []}
            listening = self.listen_ports()
            for port in sorted(listening - declared):
                self.add(f"listens on {port} but does not declare it as a containerPort")
            for port in sorted(declared - listening):
                self.add(f"declares containerPort {port}, but {self.binary} does not listen on it")
        self.check_data_dir()

    def check_data_dir(self):
        """A binary that writes its data dir needs it on a writable volume."""
        if "SWITCHYARD_DATA_DIR" not in self.help.envs:
            return
        uses_database = "SWITCHYARD_DATABASE_URL" in self.help.envs
        if uses_database and "SWITCHYARD_DATABASE_URL" in self.env:
            return
        data_dir = str(self.effective("SWITCHYARD_DATA_DIR") or "")
        mount = self.mount_for(data_dir)
        if mount is None or mount.get("readOnly"):
            self.add(
                f"writes SWITCHYARD_DATA_DIR ({data_dir}) but it is not on a writable volume"
            )

    def mount_for(self, path):
        if not path.startswith("/"):
            path = f"{self.workdir}/{path}"
        best = None
        for mount in self.c.get("volumeMounts") or []:
            root = mount["mountPath"].rstrip("/") + "/"
            if (path.rstrip("/") + "/").startswith(root):
                if best is None or len(root) > len(best["mountPath"]):
                    best = mount
        return best

    def check_mounted_files(self):
        """A variable naming a file in a mounted ConfigMap or Secret must
        name a key that is there."""
        volumes = {v["name"]: v for v in self.w.pod.get("volumes") or []}
        for var, value in self.env.items():
            if not value or not value.startswith("/"):
                continue
            mount = self.mount_for(value)
            if mount is None or mount.get("subPath"):
                continue
            volume = volumes.get(mount["name"], {})
            for kind, key in (("ConfigMap", "configMap"), ("Secret", "secret")):
                if key not in volume:
                    continue
                name = volume[key].get("name") or volume[key].get("secretName")
                data = self.r.data_of(kind, name)
                relative = value[len(mount["mountPath"].rstrip("/")) + 1 :]
                items = {i["path"]: i["key"] for i in volume[key].get("items") or []}
                file_key = items.get(relative, relative if not items else None)
                if data is None:
                    if kind == "ConfigMap" and not volume[key].get("optional"):
                        self.add(f"mounts ConfigMap {name}, which is not in the render")
                elif file_key not in data:
                    self.add(f"{var}={value}, but {kind} {name} has no key {relative!r}")


# ------------------------------------------------------------ network


def policy_types(policy):
    spec = policy.get("spec", {})
    types = spec.get("policyTypes")
    if types:
        return set(types)
    return {"Ingress"} | ({"Egress"} if "egress" in spec else set())


def port_allowed(rule_ports, number, name):
    if not rule_ports:
        return True
    for entry in rule_ports:
        if entry.get("protocol", "TCP") != "TCP":
            continue
        port = entry.get("port")
        if port is None or port == name:
            return True
        if isinstance(port, int) and port <= number <= entry.get("endPort", port):
            return True
    return False


def peer_matches(render, peer, labels):
    """Whether a NetworkPolicy peer matches a pod of this namespace."""
    if "ipBlock" in peer:
        return False
    if "namespaceSelector" in peer and not selects(
        peer["namespaceSelector"], render.namespace_labels
    ):
        return False
    return selects(peer.get("podSelector", {}), labels)


def peer_is_outside(render, peer):
    """Whether a peer admits anything beyond this namespace's pods."""
    if "ipBlock" in peer:
        return True
    if "namespaceSelector" in peer:
        name = render.namespace
        own = {"matchLabels": {"kubernetes.io/metadata.name": name}} if name else None
        return peer["namespaceSelector"] != own
    return False


def reachable(render, source, target, number, name):
    """Whether the NetworkPolicies let `source` pods open `number` on
    `target` pods (both in this namespace)."""
    policies = list(render.by_kind.get("NetworkPolicy", {}).values())
    for direction, selected, other, key in (
        ("Ingress", target, source, "from"),
        ("Egress", source, target, "to"),
    ):
        relevant = [
            p
            for p in policies
            if direction in policy_types(p)
            and selects(p.get("spec", {}).get("podSelector", {}), selected.labels)
        ]
        if not relevant:
            continue
        allowed = False
        for policy in relevant:
            for rule in policy["spec"].get(direction.lower()) or []:
                if not port_allowed(rule.get("ports"), number, name):
                    continue
                peers = rule.get(key)
                if not peers or any(peer_matches(render, p, other.labels) for p in peers):
                    allowed = True
        if not allowed:
            return False
    return True


def check_network_policies(render, problems):
    policies = render.by_kind.get("NetworkPolicy", {})
    for name, policy in policies.items():
        where = f"NetworkPolicy/{name}"
        spec = policy.get("spec", {})
        selected = render.selected(spec.get("podSelector", {}))
        if not selected:
            problems.add(where, "selects no pods")
        for direction, key in (("ingress", "from"), ("egress", "to")):
            for rule in spec.get(direction) or []:
                for peer in rule.get(key) or []:
                    if "podSelector" in peer and not peer_is_outside(render, peer):
                        if not render.selected(peer["podSelector"]):
                            problems.add(where, f"{direction} peer {peer} selects no pods")
                if direction != "ingress":
                    continue
                for entry in rule.get("ports") or []:
                    port = entry.get("port")
                    # A named port may exist on only some of the pods.
                    if port is not None and all(w.resolve_port(port) is None for w in selected):
                        problems.add(where, f"allows port {port!r}, which no selected pod declares")


def is_scrape_rule(workload, rule):
    """A rule letting other namespaces (not arbitrary addresses) reach only
    ports named `metrics`: the one exception for non-public pods."""
    peers, ports = rule.get("from"), rule.get("ports")
    if not peers or not ports or any("ipBlock" in peer for peer in peers):
        return False
    _, names = workload.ports()
    for entry in ports:
        port = entry.get("port")
        if isinstance(port, int):
            port = next((n for n, p in names.items() if p == port), None)
        if port != METRICS_PORT:
            return False
    return True


def check_exposure(render, workload, binaries, problems):
    """Only pods running a PUBLIC binary may be reachable from outside the
    namespace."""
    policies = [
        p
        for p in render.by_kind.get("NetworkPolicy", {}).values()
        if "Ingress" in policy_types(p)
        and selects(p.get("spec", {}).get("podSelector", {}), workload.labels)
    ]
    public = bool(binaries & PUBLIC)
    for service in render.by_kind.get("Service", {}).values():
        kind = service.get("spec", {}).get("type", "ClusterIP")
        if kind in ("NodePort", "LoadBalancer") and not public:
            if selects({"matchLabels": service["spec"].get("selector") or {}}, workload.labels):
                problems.add(
                    f"Service/{service['metadata']['name']}",
                    f"type {kind} exposes {workload.where}; only the router may be public",
                )
    if not policies:
        problems.add(
            workload.where, "no NetworkPolicy restricts its ingress: reachable from anywhere"
        )
        return
    open_ports = set()
    numbers, names = workload.ports()
    for policy in policies:
        for rule in policy["spec"].get("ingress") or []:
            peers = rule.get("from")
            outside = not peers or any(peer_is_outside(render, peer) for peer in peers)
            if not outside:
                continue
            if not public and not is_scrape_rule(workload, rule):
                problems.add(
                    workload.where,
                    f"NetworkPolicy/{policy['metadata']['name']} admits traffic from outside "
                    "the namespace; only the router may be reachable from outside "
                    f"(and ports named {METRICS_PORT!r}, from selected namespaces)",
                )
            anywhere = not peers or any(
                (peer.get("ipBlock") or {}).get("cidr") in ("0.0.0.0/0", "::/0") for peer in peers
            )
            for port in numbers if anywhere else ():
                name = next((n for n, p in names.items() if p == port), None)
                if port_allowed(rule.get("ports"), port, name):
                    open_ports.add(port)
    if public:
        for port in sorted(numbers - open_ports):
            if names.get(METRICS_PORT) != port:
                problems.add(workload.where, f"port {port} is not reachable from outside")


def check_peer_urls(render, check, problems):
    """A URL naming a Service must use one of its ports, and the
    NetworkPolicies must let this pod through to the pods behind it."""
    for var, value in check.env.items():
        if not value or "://" not in value:
            continue
        parts = urllib.parse.urlsplit(value)
        try:
            host, port = parts.hostname, parts.port or SCHEME_PORTS.get(parts.scheme)
        except ValueError:
            problems.add(check.where, f"{var} is not a valid URL")
            continue
        if not host:
            continue
        service, local = render.service_for_host(host)
        if service is None:
            if local and not is_loopback(value):
                problems.add(check.where, f"{var} names host {host!r}: no such Service")
            continue
        spec = service.get("spec", {})
        entry = next((p for p in spec.get("ports") or [] if p.get("port") == port), None)
        if entry is None:
            ports = sorted(p.get("port") for p in spec.get("ports") or [])
            problems.add(check.where, f"{var} uses {host}:{port}, but Service {host} has {ports}")
            continue
        for target in render.selected({"matchLabels": spec.get("selector") or {}}):
            number = target.resolve_port(entry.get("targetPort", entry["port"]))
            if number is None:
                continue
            name = next((n for n, p in target.ports()[1].items() if p == number), None)
            if not reachable(render, check.w, target, number, name):
                problems.add(
                    check.where,
                    f"{var} reaches {target.where} port {number}, "
                    "but the NetworkPolicies block it",
                )


# ------------------------------------------------------------ objects


def check_render(render, dockerfile, binaries, problems, pinned):
    checks = []
    for workload in render.workloads:
        spec = workload.obj.get("spec", {})
        if workload.kind != "Job":
            selector = spec.get("selector")
            if not selects(selector, workload.labels):
                problems.add(workload.where, "selector does not match its pod template labels")
        names = [c.get("name") for c in workload.containers()]
        for container in workload.containers():
            check = ContainerCheck(render, workload, container, dockerfile, binaries, problems)
            check.check()
            checks.append(check)
            if pinned and not image_pinned(container.get("image", "")):
                problems.add(check.where, f"image {container.get('image')} is not pinned")
        if len(set(names)) != len(names):
            problems.add(workload.where, "has two containers with the same name")

    binaries_of = defaultdict(set)
    for check in checks:
        if check.binary:
            binaries_of[check.w.where].add(check.binary)

    check_termination(render, checks, problems)
    check_services(render, problems)
    check_autoscalers(render, binaries_of, problems)
    check_disruption_budgets(render, binaries_of, problems)
    check_network_policies(render, problems)
    for workload in render.workloads:
        check_exposure(render, workload, binaries_of[workload.where], problems)
    for check in checks:
        if check.ours:
            check_peer_urls(render, check, problems)
    check_required(render, checks, problems)


def check_termination(render, checks, problems):
    needed = 0
    for check in checks:
        if check.binary != DRAINING or not check.w.long_running:
            continue
        drain = str(check.effective(DRAIN_ENV) or "")
        if not drain.isdigit():
            problems.add(check.where, f"{DRAIN_ENV} is {drain!r}, not a number of seconds")
            continue
        need = prestop_seconds(check.c) + int(drain) + DRAIN_MARGIN
        needed = max(needed, need)
        grace = check.w.pod.get("terminationGracePeriodSeconds", DEFAULT_GRACE)
        if grace < need:
            problems.add(
                check.w.where,
                f"terminationGracePeriodSeconds {grace} < preStop {prestop_seconds(check.c)} s "
                f"+ drain {drain} s + {DRAIN_MARGIN} s to flush usage",
            )
    for check in checks:
        if check.binary in STREAM_CARRIERS | {DRAINING} and check.w.long_running:
            if not prestop_seconds(check.c):
                problems.add(
                    check.where,
                    "needs a preStop pause so endpoint removal reaches every proxy before "
                    "SIGTERM",
                )
        if check.binary in STREAM_CARRIERS and check.w.long_running:
            grace = check.w.pod.get("terminationGracePeriodSeconds", DEFAULT_GRACE)
            if grace < needed:
                problems.add(
                    check.w.where,
                    f"terminationGracePeriodSeconds {grace} is shorter than the router's "
                    f"{needed} s, whose draining streams run through it",
                )


def check_services(render, problems):
    for name, service in render.by_kind.get("Service", {}).items():
        where = f"Service/{name}"
        spec = service.get("spec", {})
        selector = spec.get("selector")
        if not selector:
            problems.add(where, "has no selector")
            continue
        targets = render.selected({"matchLabels": selector})
        if not targets:
            problems.add(where, f"selector {selector} matches no pod template")
        for port in spec.get("ports") or []:
            target_port = port.get("targetPort", port.get("port"))
            for workload in targets:
                if workload.resolve_port(target_port) is None:
                    problems.add(
                        where,
                        f"targetPort {target_port!r} is not a containerPort of {workload.where}",
                    )


def replicas_of(render, workload):
    for hpa in render.by_kind.get("HorizontalPodAutoscaler", {}).values():
        ref = hpa.get("spec", {}).get("scaleTargetRef", {})
        if ref.get("kind") == workload.kind and ref.get("name") == workload.name:
            return hpa["spec"].get("minReplicas", 1)
    return workload.obj.get("spec", {}).get("replicas", 1)


def check_autoscalers(render, binaries_of, problems):
    scaled = set()
    for name, hpa in render.by_kind.get("HorizontalPodAutoscaler", {}).items():
        where = f"HorizontalPodAutoscaler/{name}"
        spec = hpa.get("spec", {})
        ref = spec.get("scaleTargetRef", {})
        target = render.by_kind.get(ref.get("kind"), {}).get(ref.get("name"))
        workload = next(
            (w for w in render.workloads if (w.kind, w.name) == (ref.get("kind"), ref.get("name"))),
            None,
        )
        if target is None or workload is None or ref.get("kind") != "Deployment":
            problems.add(where, f"targets {ref.get('kind')}/{ref.get('name')}: no such Deployment")
            continue
        scaled.add(workload.where)
        if spec.get("minReplicas", 1) > spec.get("maxReplicas", 0):
            problems.add(where, "minReplicas is above maxReplicas")
        if "replicas" in target.get("spec", {}):
            problems.add(
                workload.where,
                "sets spec.replicas although an HPA scales it: every apply resets the count",
            )
        for metric in spec.get("metrics") or []:
            resource = (metric.get("resource") or {}).get("name")
            if metric.get("type") != "Resource" or not resource:
                continue
            for container in workload.containers(init=False):
                requests = (container.get("resources") or {}).get("requests") or {}
                if resource not in requests:
                    problems.add(
                        where,
                        f"scales on {resource} but container {container.get('name')} "
                        f"requests no {resource}",
                    )
    for workload in render.workloads:
        if binaries_of[workload.where] & AUTOSCALED and workload.where not in scaled:
            problems.add(workload.where, "has no HorizontalPodAutoscaler")


def check_disruption_budgets(render, binaries_of, problems):
    covered = set()
    for name, pdb in render.by_kind.get("PodDisruptionBudget", {}).items():
        where = f"PodDisruptionBudget/{name}"
        spec = pdb.get("spec", {})
        targets = [w for w in render.selected(spec.get("selector")) if w.long_running]
        if not targets:
            problems.add(where, "selects no pods")
        for workload in targets:
            covered.add(workload.where)
            replicas = replicas_of(render, workload)
            min_available = spec.get("minAvailable")
            if isinstance(min_available, int) and min_available >= replicas:
                problems.add(
                    where,
                    f"minAvailable {min_available} with {replicas} replica(s) of "
                    f"{workload.where} blocks every node drain",
                )
            if spec.get("maxUnavailable") in (0, "0%"):
                problems.add(where, "maxUnavailable 0 blocks every node drain")
    for workload in render.workloads:
        if binaries_of[workload.where] & SERVICES and workload.long_running:
            if workload.where not in covered:
                problems.add(workload.where, "has no PodDisruptionBudget")


def check_required(render, checks, problems):
    running = defaultdict(list)
    for check in checks:
        if check.w.long_running and check.binary:
            running[check.binary].append(check.w)
    services = render.by_kind.get("Service", {}).values()
    for binary in sorted(SERVICES):
        if not running.get(binary):
            problems.add("render", f"no Deployment runs {binary}")
            continue
        for workload in running[binary]:
            if not any(
                selects({"matchLabels": s["spec"].get("selector") or {}}, workload.labels)
                for s in services
            ):
                problems.add(workload.where, "no Service selects its pods")
    migrated = {c.binary for c in checks if c.w.kind == "Job" and MIGRATE_FLAG in c.argv}
    for binary in sorted(MIGRATORS - migrated):
        problems.add("render", f"no Job runs `{binary} {MIGRATE_FLAG}`")
    for check in checks:
        if check.binary == "switchyard-catalog" and "SWITCHYARD_CATALOG_SEED" not in check.env:
            problems.add(check.where, "does not set SWITCHYARD_CATALOG_SEED (the seed ConfigMap)")


# ------------------------------------------------------------ main


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k8s-dir", type=Path, default=REPO / "deploy" / "k8s")
    parser.add_argument("--dockerfile", type=Path, default=REPO / "Dockerfile")
    parser.add_argument("--bin-dir", type=Path, default=REPO / "target" / "debug")
    parser.add_argument("--seed", type=Path, default=REPO / "deploy" / "catalog.toml")
    parser.add_argument("--kubectl", default="kubectl")
    args = parser.parse_args(argv)

    problems = Problems()
    if shutil.which(args.kubectl) is None:
        print(f"check_k8s: {args.kubectl} not found (it renders the manifests)", file=sys.stderr)
        return 1
    try:
        import kubernetes_validate  # noqa: F401
    except ImportError:
        print(
            "check_k8s: kubernetes-validate is missing: "
            "pip install -r tests/compat/requirements.txt",
            file=sys.stderr,
        )
        return 1

    dockerfile, _ = parse_dockerfile(args.dockerfile.read_text())
    binaries = Binaries(args.bin_dir, problems)

    # kustomize reads only files inside a kustomization, so the base holds
    # a copy of the seed.
    seed_copy = args.k8s_dir / "base" / "catalog.toml"
    if not seed_copy.is_file() or seed_copy.read_bytes() != args.seed.read_bytes():
        problems.add(str(seed_copy), f"differs from {args.seed}; copy it over again")

    counts = []
    external = set()
    for name in KUSTOMIZATIONS:
        label = name.rsplit("/", 1)[-1]
        problems.render = label
        objects = render(args.kubectl, args.k8s_dir / name, problems)
        if objects is None:
            continue
        validate_schemas(objects, problems)
        rendered = Render(label, objects)
        check_render(rendered, dockerfile, binaries, problems, pinned=name in PINNED)
        counts.append(f"{label} {len(objects)}")
        external |= {f"{label}: {s}" for s in rendered.external_secrets}
    problems.render = None

    if len(problems):
        print(f"check_k8s: {len(problems)} problem(s)", file=sys.stderr)
        for line in problems.lines():
            print(f"  - {line}", file=sys.stderr)
        return 1
    checked = sorted({b for b, _ in binaries.cache})
    print(
        f"check_k8s: ok (objects: {', '.join(counts)}; Kubernetes {KUBERNETES_VERSION} "
        f"schemas; binaries checked: {', '.join(checked)})"
    )
    print(f"check_k8s: Secrets created outside the manifests: {', '.join(sorted(external))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
