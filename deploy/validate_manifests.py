"""Checks for Switchboard's deployment artifacts, called by deploy/validate.sh.

Subcommands:
  manifests FILE...         every object: Kubernetes JSON schemas (strict, each --kube-versions)
                            or, for CRDs, a schema from --schemas; then Switchboard's rules over
                            the whole batch (one shape, or one rendering, at a time).
  dockerfile DF IGNORE ROOT every COPY source (not --from a stage) exists under ROOT and is not
                            excluded by the ignore file.
  envfile FILE              SWITCHBOARD_* names in a KEY=VALUE file (commented ones too) exist.
  unit FILE                 a systemd unit: SWITCHBOARD_* names exist, TimeoutStopSec > grace.
  check-config BIN FILE     loads the gateway container's config file and environment from a
                            rendered manifest with the real `switchboard check-config`.

The known SWITCHBOARD_* settings are read from --reference-config (config/switchboard.toml,
which lists every field).
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import shlex
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path, PurePosixPath

import jsonschema
import yaml

CLI_VARS = {"SWITCHBOARD_CONFIG"}
# A declared connector is a create body of the Connectors API (POST /v1/connectors).
CONNECTOR_FIELDS = {
    "name", "protocol", "description", "server", "visibility", "headers", "global_headers",
    "title", "icon_url", "system_prompt", "auth_methods", "auth_data",
    "oauth2_server_metadata", "oauth2_server_metadata_url",
}
CONNECTOR_REQUIRED = {"name", "description", "server"}
PROTOCOLS = {"mcp", "http"}
VISIBILITIES = {"private", "shared_workspace", "shared_org"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "Pod"}
DEFAULT_GRACE = 30


# --------------------------------------------------------------------------------------------
# YAML loading that refuses duplicate keys (PyYAML keeps the last one silently).


class StrictLoader(yaml.SafeLoader):
    pass


def _mapping(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen[key] = True
    return loader.construct_mapping(node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


class Reporter:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.notes: list[str] = []

    def error(self, where: str, msg: str) -> None:
        self.errors.append(f"{where}: {msg}")

    def note(self, msg: str) -> None:
        self.notes.append(msg)

    def finish(self) -> int:
        for n in self.notes:
            print(n)
        for e in self.errors:
            print(f"ERROR {e}")
        return 1 if self.errors else 0


# --------------------------------------------------------------------------------------------
# Known settings


class Settings:
    def __init__(self, reference: Path) -> None:
        data = tomllib.loads(reference.read_text())
        self.sections: dict[str, dict] = {k: v for k, v in data.items() if isinstance(v, dict)}
        self.env: dict[str, object] = {}
        for section, fields in self.sections.items():
            for field, default in fields.items():
                self.env[f"SWITCHBOARD_{section}_{field}".upper()] = default

    def env_ok(self, name: str) -> bool:
        return name in self.env or name in CLI_VARS

    def check_toml(self, rep: Reporter, where: str, text: str) -> dict | None:
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            rep.error(where, f"invalid TOML: {e}")
            return None
        for key, value in doc.items():
            if key == "connectors":
                self._check_connectors(rep, where, value)
                continue
            if key not in self.sections:
                rep.error(where, f"unknown config section [{key}]")
                continue
            if not isinstance(value, dict):
                rep.error(where, f"[{key}] must be a table")
                continue
            for field, v in value.items():
                if field not in self.sections[key]:
                    rep.error(where, f"unknown field {key}.{field}")
                    continue
                ref = self.sections[key][field]
                if type(v) is not type(ref):
                    rep.error(
                        where,
                        f"{key}.{field}: expected {type(ref).__name__}, found {type(v).__name__}",
                    )
        return doc

    @staticmethod
    def _check_connectors(rep: Reporter, where: str, value: object) -> None:
        if not isinstance(value, list):
            rep.error(where, "connectors must be an array of tables ([[connectors]])")
            return
        names = set()
        for i, c in enumerate(value):
            w = f"{where}: connectors[{i}]"
            if not isinstance(c, dict):
                rep.error(w, "must be a table")
                continue
            for missing in sorted(CONNECTOR_REQUIRED - c.keys()):
                rep.error(w, f"missing `{missing}`")
            for unknown in sorted(c.keys() - CONNECTOR_FIELDS):
                rep.error(w, f"unknown field `{unknown}`")
            if "protocol" in c and c["protocol"] not in PROTOCOLS:
                rep.error(w, f"protocol must be one of {sorted(PROTOCOLS)}")
            if "visibility" in c and c["visibility"] not in VISIBILITIES:
                rep.error(w, f"visibility must be one of {sorted(VISIBILITIES)}")
            if "server" in c and not re.match(r"^https?://", str(c["server"])):
                rep.error(w, "server must be an http(s) URL")
            headers = c.get("headers", {})
            if not isinstance(headers, dict) or not all(
                isinstance(v, str) for v in headers.values()
            ):
                rep.error(w, "headers must be a table of strings")
            if c.get("name") in names:
                rep.error(w, f"duplicate connector name {c.get('name')!r}")
            names.add(c.get("name"))


# --------------------------------------------------------------------------------------------
# manifests


def load_docs(files: list[str], rep: Reporter) -> list[tuple[str, dict]]:
    docs = []
    for f in files:
        try:
            with open(f) as fh:
                for i, d in enumerate(yaml.load_all(fh, Loader=StrictLoader)):
                    if d is None:
                        continue
                    if not isinstance(d, dict):
                        rep.error(f"{f}#{i}", "document is not a mapping")
                        continue
                    docs.append((f"{os.path.relpath(f)}#{i}", d))
        except yaml.YAMLError as e:
            rep.error(f, f"YAML: {e}")
    return docs


def obj_name(d: dict) -> str:
    return f"{d.get('kind', '?')}/{(d.get('metadata') or {}).get('name', '?')}"


def validate_schemas(docs, rep: Reporter, versions: list[str], schema_dir: Path) -> None:
    import kubernetes_validate
    from kubernetes_validate.utils import SchemaNotFoundError

    crd_schemas = {}
    for p in sorted(schema_dir.glob("*.schema.json")):
        import json

        s = json.loads(p.read_text())
        crd_schemas[(s["x-apiVersion"], s["x-kind"])] = (p.name, s)

    for where, d in docs:
        for field in ("apiVersion", "kind"):
            if not d.get(field):
                rep.error(where, f"missing {field}")
        if not (d.get("metadata") or {}).get("name"):
            rep.error(where, "missing metadata.name")
        if "namespace" in (d.get("metadata") or {}):
            rep.error(where, f"{obj_name(d)}: sets metadata.namespace (keep manifests namespace-agnostic)")
        if not d.get("apiVersion") or not d.get("kind"):
            continue
        key = (d["apiVersion"], d["kind"])
        if key in crd_schemas:
            name, schema = crd_schemas[key]
            errs = sorted(
                jsonschema.Draft7Validator(schema).iter_errors(d), key=lambda e: list(e.path)
            )
            for e in errs:
                path = ".".join(str(p) for p in e.path) or "(root)"
                rep.error(where, f"{obj_name(d)} against {name}: {path}: {e.message}")
            if not errs:
                rep.note(f"ok    {where} {obj_name(d)} (CRD schema {name})")
            continue
        ok_versions = []
        for v in versions:
            try:
                kubernetes_validate.validate(d, v, strict=True)
                ok_versions.append(v)
            except SchemaNotFoundError as e:
                rep.error(where, f"{obj_name(d)}: {e.message}")
                break
            except kubernetes_validate.ValidationError as e:
                path = ".".join(str(p) for p in e.path) or "(root)"
                rep.error(where, f"{obj_name(d)} (Kubernetes {e.version}): {path}: {e.message}")
        if len(ok_versions) == len(versions):
            rep.note(f"ok    {where} {obj_name(d)} (Kubernetes {', '.join(ok_versions)}, strict)")


def pod_spec(d: dict) -> dict | None:
    kind = d.get("kind")
    if kind == "Pod":
        return d.get("spec") or {}
    if kind in WORKLOAD_KINDS:
        return ((d.get("spec") or {}).get("template") or {}).get("spec") or {}
    return None


def pod_labels(d: dict) -> dict:
    if d.get("kind") == "Pod":
        return (d.get("metadata") or {}).get("labels") or {}
    return (((d.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}


def selector_matches(selector: dict, labels: dict) -> bool:
    if not selector:
        return False
    return all(labels.get(k) == v for k, v in selector.items())


def is_gateway(c: dict) -> bool:
    return c.get("name") == "switchboard"


def port_of(listen: str) -> int | None:
    m = re.match(r"^(?:\[[^\]]*\]|[^:]*):(\d+)$", listen.strip())
    return int(m.group(1)) if m else None


def host_of(listen: str) -> str:
    return listen.strip().rsplit(":", 1)[0].strip("[]")


class Batch:
    def __init__(self, docs) -> None:
        self.docs = docs
        self.by_kind: dict[str, list[tuple[str, dict]]] = {}
        for where, d in docs:
            self.by_kind.setdefault(d.get("kind", ""), []).append((where, d))

    def get(self, kind: str, name: str) -> dict | None:
        for _, d in self.by_kind.get(kind, []):
            if (d.get("metadata") or {}).get("name") == name:
                return d
        return None

    def container_env(self, c: dict) -> dict[str, object]:
        """The container's environment: literal values as str, references as ('secret'|'field', ...)."""
        env: dict[str, object] = {}
        for src in c.get("envFrom") or []:
            ref = src.get("configMapRef")
            if ref:
                cm = self.get("ConfigMap", ref.get("name"))
                if cm:
                    for k, v in (cm.get("data") or {}).items():
                        env[src.get("prefix", "") + k] = str(v)
                else:
                    env[f"<configmap {ref.get('name')}>"] = ("unresolved", ref.get("name"))
            ref = src.get("secretRef")
            if ref:
                env[f"<secret {ref.get('name')}>"] = ("unresolved", ref.get("name"))
        for e in c.get("env") or []:
            if "value" in e:
                env[e["name"]] = str(e["value"])
            elif "valueFrom" in e:
                vf = e["valueFrom"]
                if "secretKeyRef" in vf:
                    env[e["name"]] = ("secret", vf["secretKeyRef"].get("name"), vf["secretKeyRef"].get("key"))
                elif "configMapKeyRef" in vf:
                    r = vf["configMapKeyRef"]
                    cm = self.get("ConfigMap", r.get("name"))
                    val = ((cm or {}).get("data") or {}).get(r.get("key"))
                    env[e["name"]] = str(val) if val is not None else ("unresolved", r.get("name"))
                else:
                    env[e["name"]] = ("field",)
            else:
                env[e["name"]] = ""
        return env

    def secret_value(self, name: str, key: str) -> str | None:
        s = self.get("Secret", name)
        if not s:
            return None
        if key in (s.get("stringData") or {}):
            return str(s["stringData"][key])
        if key in (s.get("data") or {}):
            return base64.b64decode(s["data"][key]).decode()
        return None


def check_rules(docs, rep: Reporter, settings: Settings) -> None:
    b = Batch(docs)

    # ConfigMaps: SWITCHBOARD_* keys exist, *.toml files parse and name real fields.
    for where, d in b.by_kind.get("ConfigMap", []):
        for k, v in (d.get("data") or {}).items():
            if k.startswith("SWITCHBOARD_") and not settings.env_ok(k):
                rep.error(where, f"{obj_name(d)}: {k} is not a Switchboard setting")
            if k.endswith(".toml"):
                settings.check_toml(rep, f"{where} {obj_name(d)} {k}", str(v))

    hpa_targets = {
        (h.get("spec") or {}).get("scaleTargetRef", {}).get("name")
        for _, h in b.by_kind.get("HorizontalPodAutoscaler", [])
    }

    for where, d in b.docs:
        spec = pod_spec(d)
        if spec is None:
            continue
        name = obj_name(d)
        labels = pod_labels(d)
        if d.get("kind") != "Pod":
            sel = ((d.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
            if not selector_matches(sel, labels):
                rep.error(where, f"{name}: spec.selector.matchLabels do not match the pod template labels")
        containers = list(spec.get("containers") or [])
        inits = list(spec.get("initContainers") or [])
        gateways = [c for c in containers + inits if is_gateway(c)]
        if not gateways:
            continue
        if len(gateways) > 1:
            rep.error(where, f"{name}: more than one switchboard container")
        c = gateways[0]
        w = f"{where} {name} container switchboard"
        sidecar = len(containers + inits) > 1
        if c in inits and c.get("restartPolicy") != "Always":
            rep.error(w, "an init container without restartPolicy: Always would block the pod (native sidecar needs it)")
        pod_sc = spec.get("securityContext") or {}
        sc = c.get("securityContext") or {}
        if spec.get("automountServiceAccountToken") is not False:
            rep.error(w, "automountServiceAccountToken should be false (the gateway needs no API access)")
        if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
            rep.error(w, "runAsNonRoot is not set")
        if sc.get("allowPrivilegeEscalation") is not False:
            rep.error(w, "allowPrivilegeEscalation must be false")
        if sc.get("readOnlyRootFilesystem") is not True:
            rep.error(w, "readOnlyRootFilesystem must be true")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            rep.error(w, "capabilities.drop must include ALL")
        if ((sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")) not in ("RuntimeDefault", "Localhost"):
            rep.error(w, "seccompProfile RuntimeDefault is not set")
        res = c.get("resources") or {}
        for part, keys in (("requests", ("cpu", "memory")), ("limits", ("memory",))):
            for k in keys:
                if k not in (res.get(part) or {}):
                    rep.error(w, f"resources.{part}.{k} is not set")

        names = [e.get("name") for e in c.get("env") or []]
        for dup in sorted({n for n in names if names.count(n) > 1}):
            rep.error(w, f"env {dup} is set more than once (the last one wins)")
        env = b.container_env(c)
        for k, v in env.items():
            if k.startswith("<"):
                rep.error(w, f"{k} is not in this batch of manifests; cannot check its settings")
            elif k.startswith("SWITCHBOARD_") and not settings.env_ok(k):
                rep.error(w, f"env {k} is not a Switchboard setting")

        def literal(key: str) -> str | None:
            v = env.get(key)
            return v if isinstance(v, str) else None

        admin = literal("SWITCHBOARD_ADMIN_LISTEN")
        api = literal("SWITCHBOARD_API_LISTEN")
        if admin is None:
            rep.error(w, "SWITCHBOARD_ADMIN_LISTEN is not set to a literal value (the probes need it)")
        elif host_of(admin) not in ("0.0.0.0", "::"):
            rep.error(w, f"admin listener {admin} is not reachable by the kubelet (use 0.0.0.0)")
        if api is None:
            rep.error(w, "SWITCHBOARD_API_LISTEN is not set to a literal value")
        elif sidecar and host_of(api) != "127.0.0.1":
            rep.error(w, f"sidecar API listener {api} must be on 127.0.0.1 only")
        elif not sidecar and host_of(api) not in ("0.0.0.0", "::"):
            rep.error(w, f"edge API listener {api} must listen on all interfaces")

        ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
        admin_port = port_of(admin) if admin else None
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", None)):
            pr = c.get(probe)
            if pr is None:
                if probe != "startupProbe":
                    rep.error(w, f"{probe} is missing")
                continue
            hg = pr.get("httpGet") or {}
            if path and hg.get("path") != path:
                rep.error(w, f"{probe} must GET {path}, not {hg.get('path')}")
            port = hg.get("port")
            port = ports.get(port) if isinstance(port, str) else port
            if admin_port is not None and port != admin_port:
                rep.error(w, f"{probe} port {hg.get('port')} is not the admin port {admin_port}")
        for pname, num in ports.items():
            if api and num == port_of(api) and sidecar:
                rep.error(w, f"port {pname} ({num}) exposes the loopback-only API port")

        grace = literal("SWITCHBOARD_SHUTDOWN_GRACE_SECONDS")
        grace_s = int(grace) if grace and grace.isdigit() else DEFAULT_GRACE
        pre = ((c.get("lifecycle") or {}).get("preStop") or {}).get("sleep", {}).get("seconds", 0)
        tgp = spec.get("terminationGracePeriodSeconds", 30)
        if tgp <= grace_s + pre:
            rep.error(w, f"terminationGracePeriodSeconds {tgp} must exceed shutdown grace {grace_s} + preStop {pre}")

        # --config FILE must be a file of a mounted ConfigMap in the batch.
        args = list(c.get("args") or []) + list(c.get("command") or [])
        cfg = None
        if "--config" in args and args.index("--config") + 1 < len(args):
            cfg = args[args.index("--config") + 1]
        elif isinstance(env.get("SWITCHBOARD_CONFIG"), str):
            cfg = env["SWITCHBOARD_CONFIG"]
        if cfg:
            mount = next((m for m in c.get("volumeMounts") or [] if str(PurePosixPath(cfg).parent) == m.get("mountPath")), None)
            vol = mount and next((v for v in spec.get("volumes") or [] if v.get("name") == mount.get("name")), None)
            cm_name = vol and (vol.get("configMap") or {}).get("name")
            cm = cm_name and b.get("ConfigMap", cm_name)
            if not mount:
                rep.error(w, f"--config {cfg}: no volume is mounted at {PurePosixPath(cfg).parent}")
            elif cm_name and not cm:
                rep.error(w, f"--config {cfg}: ConfigMap {cm_name} is not in this batch")
            elif cm and PurePosixPath(cfg).name not in (cm.get("data") or {}):
                rep.error(w, f"--config {cfg}: ConfigMap {cm_name} has no key {PurePosixPath(cfg).name}")

        # Writable paths under a read-only root filesystem.
        mounts = [m.get("mountPath") for m in c.get("volumeMounts") or [] if not m.get("readOnly")]
        store = literal("SWITCHBOARD_STORE_URL")
        for label, path in (
            ("store", store and re.sub(r"^sqlite:(//)?", "", store).split("?")[0] if store and store.startswith("sqlite:") else None),
            ("vault key file", literal("SWITCHBOARD_VAULT_KEY_FILE") if "SWITCHBOARD_VAULT_KEY" not in env else None),
        ):
            if path and not any(path.startswith(m.rstrip("/") + "/") for m in mounts):
                rep.error(w, f"{label} path {path} is not on a writable volume (the root filesystem is read-only)")
        if d.get("kind") == "Deployment" and not sidecar:
            replicas = (d.get("spec") or {}).get("replicas", 1)
            scaled = replicas > 1 or (d.get("metadata") or {}).get("name") in hpa_targets
            if store and store.startswith("sqlite:") and scaled:
                rep.error(w, "several replicas on SQLite: each would have its own database (use PostgreSQL)")
            if not scaled:
                rep.error(w, "edge Deployment with a single replica and no HPA")
            ru = ((d.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}
            if ru.get("maxUnavailable") not in (0, "0%"):
                rep.error(w, "rolling update maxUnavailable should be 0")
        if "SWITCHBOARD_VAULT_KEY" not in env:
            rep.note(f"note  {w}: no SWITCHBOARD_VAULT_KEY; the gateway generates a key file (development only)")

    # Services select a workload; their named targetPorts exist on it.
    workloads = [(w, d) for w, d in b.docs if pod_spec(d) is not None]
    for where, s in b.by_kind.get("Service", []):
        sel = (s.get("spec") or {}).get("selector") or {}
        targets = [d for _, d in workloads if selector_matches(sel, pod_labels(d))]
        if workloads and not targets:
            rep.error(where, f"{obj_name(s)}: selector matches no workload in this batch")
        for p in (s.get("spec") or {}).get("ports") or []:
            tp = p.get("targetPort")
            if isinstance(tp, str) and targets:
                names = {
                    cp.get("name")
                    for d in targets
                    for c in (pod_spec(d).get("containers") or []) + (pod_spec(d).get("initContainers") or [])
                    for cp in c.get("ports") or []
                }
                if tp not in names:
                    rep.error(where, f"{obj_name(s)}: targetPort {tp} is not a container port name")
    for where, m in b.by_kind.get("ServiceMonitor", []):
        sel = (((m.get("spec") or {}).get("selector") or {}).get("matchLabels")) or {}
        svcs = [s for _, s in b.by_kind.get("Service", []) if selector_matches(sel, (s.get("metadata") or {}).get("labels") or {})]
        if b.by_kind.get("Service") and not svcs:
            rep.error(where, f"{obj_name(m)}: selector matches no Service in this batch")
        for ep in (m.get("spec") or {}).get("endpoints") or []:
            if svcs and ep.get("port") not in {p.get("name") for s in svcs for p in (s.get("spec") or {}).get("ports") or []}:
                rep.error(where, f"{obj_name(m)}: endpoint port {ep.get('port')} is not a port name of the Service")
    for where, h in b.by_kind.get("HorizontalPodAutoscaler", []):
        ref = (h.get("spec") or {}).get("scaleTargetRef") or {}
        if b.by_kind.get(ref.get("kind")) is not None and not b.get(ref.get("kind"), ref.get("name")):
            rep.error(where, f"{obj_name(h)}: scaleTargetRef {ref.get('kind')}/{ref.get('name')} is not in this batch")
    for where, p in b.by_kind.get("PodDisruptionBudget", []):
        sel = (((p.get("spec") or {}).get("selector") or {}).get("matchLabels")) or {}
        if workloads and not any(selector_matches(sel, pod_labels(d)) for _, d in workloads):
            rep.error(where, f"{obj_name(p)}: selector matches no workload in this batch")


def cmd_manifests(a) -> int:
    rep = Reporter()
    settings = Settings(Path(a.reference_config))
    docs = load_docs(a.files, rep)
    if not docs and not rep.errors:
        rep.error(",".join(a.files), "no Kubernetes objects found")
    validate_schemas(docs, rep, [v for v in a.kube_versions.split(",") if v], Path(a.schemas))
    check_rules(docs, rep, settings)
    print(f"{len(docs)} objects, {len(rep.errors)} errors")
    return rep.finish()


# --------------------------------------------------------------------------------------------
# Dockerfile


def _ignore_regex(pattern: str) -> re.Pattern:
    out = ""
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            continue
        out += {"*": "[^/]*", "?": "[^/]"}.get(ch, re.escape(ch))
        i += 1
    return re.compile(f"^{out}$")


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for raw in patterns:
        neg = raw.startswith("!")
        pat = os.path.normpath(raw[1:] if neg else raw).lstrip("/")
        rx = _ignore_regex(pat)
        if any(rx.match(c) for c in candidates):
            excluded = not neg
    return excluded


def cmd_dockerfile(a) -> int:
    rep = Reporter()
    root = Path(a.root)
    text = Path(a.dockerfile).read_text()
    patterns = [
        ln.strip() for ln in Path(a.ignore).read_text().splitlines() if ln.strip() and not ln.strip().startswith("#")
    ]
    logical = re.sub(r"\\\n", " ", text).splitlines()
    copies = 0
    for ln in logical:
        words = shlex.split(ln, comments=True) if ln.strip() else []
        if not words or words[0].upper() not in ("COPY", "ADD"):
            continue
        args = [w for w in words[1:] if not w.startswith("--")]
        if any(w.startswith("--from") for w in words[1:]):
            continue
        for src in args[:-1]:
            copies += 1
            p = root / src
            if not p.exists():
                rep.error(a.dockerfile, f"COPY source {src} does not exist in {root}")
            if dockerignored(src.rstrip("/"), patterns):
                rep.error(a.ignore, f"COPY source {src} is excluded from the build context")
            elif p.is_dir():
                for f in p.rglob("*"):
                    rel = f.relative_to(root).as_posix()
                    if f.is_file() and dockerignored(rel, patterns):
                        rep.error(a.ignore, f"{rel} (under COPY source {src}) is excluded")
                        break
    for must_exclude in ("target", "data", ".git"):
        if not dockerignored(must_exclude, patterns):
            rep.error(a.ignore, f"{must_exclude}/ is not excluded from the build context")
    print(f"{copies} COPY sources checked")
    return rep.finish()


def cmd_healthcheck(a) -> int:
    """Runs the Dockerfile's HEALTHCHECK command against a local HTTP server (loopback only)."""
    import http.server
    import json
    import socket
    import threading

    rep = Reporter()
    text = re.sub(r"\\\n", " ", Path(a.dockerfile).read_text())
    m = re.search(r"^HEALTHCHECK\b.*?\bCMD\s+(\[.*\])\s*$", text, re.M)
    if not m:
        rep.error(a.dockerfile, "no HEALTHCHECK ... CMD [exec form] found")
        return rep.finish()
    timeout = re.search(r"^HEALTHCHECK\b.*--timeout=(\d+)s", text, re.M)
    timeout_s = int(timeout.group(1)) if timeout else 30
    cmd = [w.replace("/usr/local/bin/busybox", a.busybox) for w in json.loads(m.group(1))]
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        status = 200

        def do_GET(self) -> None:  # noqa: N802
            seen.append(self.path)
            self.send_response(Handler.status)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"status":"ok"}')

        def log_message(self, *args) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def run(listen: str) -> int:
        env = {"PATH": "/usr/bin:/bin", "SWITCHBOARD_ADMIN_LISTEN": listen}
        return subprocess.run(cmd, env=env, capture_output=True, timeout=timeout_s).returncode

    def crashed(rc: int) -> bool:
        return rc < 0 or rc >= 128

    rc = run(f"0.0.0.0:{port}")
    if rc != 0 or seen != ["/healthz"]:
        rep.error("HEALTHCHECK", f"against a 200 /healthz: exit {rc}, requests {seen}")
    Handler.status = 503
    rc = run(f"[::]:{port}")
    if rc == 0 or crashed(rc):
        rep.error("HEALTHCHECK", f"against a 503: exit {rc} (want a non-zero exit, not a crash)")
    server.shutdown()
    server.server_close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    rc = run(f"0.0.0.0:{free}")
    if rc == 0 or crashed(rc):
        rep.error("HEALTHCHECK", f"with nothing listening: exit {rc} (want a non-zero exit, not a crash)")
    if not rep.errors:
        rep.note(f"HEALTHCHECK {cmd}: 200 -> 0, 503 -> non-zero, no listener -> non-zero")
    return rep.finish()


# --------------------------------------------------------------------------------------------
# systemd


def cmd_envfile(a) -> int:
    rep = Reporter()
    settings = Settings(Path(a.reference_config))
    n = 0
    for i, ln in enumerate(Path(a.file).read_text().splitlines(), 1):
        m = re.match(r"^\s*#?\s*(SWITCHBOARD_[A-Z0-9_]+)=", ln)
        if m:
            n += 1
            if not settings.env_ok(m.group(1)):
                rep.error(f"{a.file}:{i}", f"{m.group(1)} is not a Switchboard setting")
    print(f"{n} SWITCHBOARD_* names checked")
    return rep.finish()


def cmd_unit(a) -> int:
    rep = Reporter()
    settings = Settings(Path(a.reference_config))
    text = Path(a.file).read_text()
    env = {}
    for m in re.finditer(r"^Environment=(.*)$", text, re.M):
        for item in shlex.split(m.group(1)):
            k, _, v = item.partition("=")
            env[k] = v
            if k.startswith("SWITCHBOARD_") and not settings.env_ok(k):
                rep.error(a.file, f"Environment {k} is not a Switchboard setting")
    grace = int(env.get("SWITCHBOARD_SHUTDOWN_GRACE_SECONDS", DEFAULT_GRACE))
    m = re.search(r"^TimeoutStopSec=(\d+)s?$", text, re.M)
    if not m:
        rep.error(a.file, "TimeoutStopSec (in seconds) is not set")
    elif int(m.group(1)) <= grace:
        rep.error(a.file, f"TimeoutStopSec {m.group(1)} must exceed the shutdown grace {grace}")
    if not re.search(r"^ExecStart=.*--config \S+", text, re.M):
        rep.error(a.file, "ExecStart does not pass --config")
    return rep.finish()


# --------------------------------------------------------------------------------------------
# check-config with the real binary


def cmd_check_config(a) -> int:
    rep = Reporter()
    docs = load_docs([a.file], rep)
    b = Batch(docs)
    for where, d in docs:
        spec = pod_spec(d)
        if spec is None:
            continue
        for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
            if not is_gateway(c):
                continue
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
            with tempfile.TemporaryDirectory() as tmp:
                placeholders = {
                    "SWITCHBOARD_VAULT_KEY": "k1:" + base64.b64encode(b"\x07" * 32).decode(),
                    "SWITCHBOARD_AUTH_BOOTSTRAP_KEY": "sbk_validate0123456789abcdef",
                    "SWITCHBOARD_STORE_URL": "postgres://switchboard@127.0.0.1:5432/switchboard",
                }
                for k, v in b.container_env(c).items():
                    if isinstance(v, str):
                        env[k] = v.replace("/data/", tmp + "/")
                    elif v and v[0] == "secret":
                        real = b.secret_value(v[1], v[2])
                        env[k] = placeholders.get(k, "placeholder") if real is None or "REPLACE_ME" in real else real
                args = list(c.get("args") or [])
                cfg = args[args.index("--config") + 1] if "--config" in args else None
                if cfg:
                    mount = next(m for m in c.get("volumeMounts") or [] if m.get("mountPath") == str(PurePosixPath(cfg).parent))
                    vol = next(v for v in spec.get("volumes") or [] if v.get("name") == mount.get("name"))
                    cm = b.get("ConfigMap", vol["configMap"]["name"])
                    path = Path(tmp) / "switchboard.toml"
                    path.write_text(cm["data"][PurePosixPath(cfg).name])
                    cfg = str(path)
                cmd = [a.binary] + (["--config", cfg] if cfg else []) + ["check-config"]
                r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
                out = (r.stdout + r.stderr).strip()
                if r.returncode != 0:
                    rep.error(f"{where} {obj_name(d)}", f"switchboard check-config exited {r.returncode}: {out}")
                else:
                    rep.note(f"ok    {where} {obj_name(d)}:\n" + "\n".join("      " + ln for ln in out.splitlines()))
                    if "warning" in out:
                        rep.error(f"{where} {obj_name(d)}", "check-config printed warnings")
    if not rep.errors and not rep.notes:
        rep.error(a.file, "no switchboard container found")
    return rep.finish()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--kube-versions", default="1.37.0")
    p.add_argument("--schemas", default=str(Path(__file__).parent / "schemas"))
    p.add_argument("--reference-config", default=str(Path(__file__).parent.parent / "config/switchboard.toml"))
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("manifests")
    s.add_argument("files", nargs="+")
    s.set_defaults(fn=cmd_manifests)
    s = sub.add_parser("dockerfile")
    s.add_argument("dockerfile")
    s.add_argument("ignore")
    s.add_argument("root")
    s.set_defaults(fn=cmd_dockerfile)
    s = sub.add_parser("healthcheck")
    s.add_argument("dockerfile")
    s.add_argument("busybox")
    s.set_defaults(fn=cmd_healthcheck)
    s = sub.add_parser("envfile")
    s.add_argument("file")
    s.set_defaults(fn=cmd_envfile)
    s = sub.add_parser("unit")
    s.add_argument("file")
    s.set_defaults(fn=cmd_unit)
    s = sub.add_parser("check-config")
    s.add_argument("binary")
    s.add_argument("file")
    s.set_defaults(fn=cmd_check_config)
    a = p.parse_args()
    return a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
