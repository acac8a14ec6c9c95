{{/*
Names.
*/}}
{{- define "switchboard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "switchboard.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "switchboard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* gateway on the edge; agent (with the gateway inside) in sidecar mode. */}}
{{- define "switchboard.component" -}}
{{- if eq .Values.mode "sidecar" -}}agent{{- else -}}gateway{{- end -}}
{{- end -}}

{{- define "switchboard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "switchboard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: {{ include "switchboard.component" . }}
{{- end -}}

{{- define "switchboard.labels" -}}
helm.sh/chart: {{ include "switchboard.chart" . }}
{{ include "switchboard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "switchboard.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "switchboard.secretName" -}}
{{- default (include "switchboard.fullname" .) .Values.existingSecret -}}
{{- end -}}

{{- define "switchboard.envConfigMapName" -}}
{{- printf "%s-env" (include "switchboard.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "switchboard.fileConfigMapName" -}}
{{- printf "%s-config" (include "switchboard.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Whether the chart creates the Secret. */}}
{{- define "switchboard.createSecret" -}}
{{- if not .Values.existingSecret -}}true{{- end -}}
{{- end -}}

{{/* Whether this release's gateway has a bootstrap key (the sidecar's agent needs one). */}}
{{- define "switchboard.hasBootstrapKey" -}}
{{- if or .Values.existingSecret .Values.secret.bootstrapKey -}}true{{- end -}}
{{- end -}}

{{/* The pod's grace period: the drain plus the preStop sleep plus a margin. */}}
{{- define "switchboard.terminationGrace" -}}
{{- $pre := ternary (int .Values.preStopSleepSeconds) 0 (eq .Values.mode "edge") -}}
{{- add (int .Values.shutdownGraceSeconds) $pre 10 -}}
{{- end -}}

{{/*
Refuses configurations that would deploy a broken gateway. Included by every template, so any
render fails with the message.
*/}}
{{- define "switchboard.validate" -}}
{{- $mode := .Values.mode -}}
{{- if not (has $mode (list "edge" "sidecar")) -}}
{{- fail (printf "mode must be \"edge\" or \"sidecar\", got %q" $mode) -}}
{{- end -}}
{{- if not .Values.existingSecret -}}
{{- if not .Values.secret.vaultKey -}}
{{- fail "secret.vaultKey is required (or set existingSecret): generate one with echo \"k1:$(head -c 32 /dev/urandom | base64)\"" -}}
{{- end -}}
{{- if eq $mode "edge" -}}
{{- if not .Values.secret.storeUrl -}}
{{- fail "secret.storeUrl is required in edge mode (or set existingSecret): postgres://user:password@host:5432/db" -}}
{{- end -}}
{{- if and (hasPrefix "sqlite:" .Values.secret.storeUrl) (or .Values.hpa.enabled (gt (int .Values.replicaCount) 1)) -}}
{{- fail "secret.storeUrl: several edge replicas need PostgreSQL (each replica would have its own SQLite file); use postgres://... or mode: sidecar" -}}
{{- end -}}
{{- else -}}
{{- if and .Values.sidecar.agent.apiKeyEnv (not .Values.secret.bootstrapKey) -}}
{{- fail "secret.bootstrapKey is required in sidecar mode: the agent authenticates to the gateway with it (sbk_..., 16+ characters)" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range $i, $c := .Values.config.connectors -}}
{{- range $field := list "name" "description" "server" -}}
{{- if not (get $c $field) -}}
{{- fail (printf "config.connectors[%d]: %s is required" $i $field) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The config file: extraToml, then the connectors as [[connectors]] tables (toToml quotes and
escapes every value).
*/}}
{{- define "switchboard.configToml" -}}
# Rendered by the switchboard Helm chart (release {{ .Release.Name }}). SWITCHBOARD_*
# environment variables override anything here.
{{- with .Values.config.extraToml }}

{{ . | trim }}
{{- end }}
{{- with .Values.config.connectors }}

{{ dict "connectors" . | toToml }}
{{- end }}
{{- end -}}

{{/*
Environment variables set by the chart (rendered into the env ConfigMap).
*/}}
{{- define "switchboard.chartEnv" -}}
{{- $sidecar := eq .Values.mode "sidecar" -}}
SWITCHBOARD_API_LISTEN: {{ printf "%s:%d" (ternary "127.0.0.1" "0.0.0.0" $sidecar) (int .Values.ports.api) | quote }}
SWITCHBOARD_ADMIN_LISTEN: {{ printf "0.0.0.0:%d" (int .Values.ports.admin) | quote }}
SWITCHBOARD_SHUTDOWN_GRACE_SECONDS: {{ .Values.shutdownGraceSeconds | int | quote }}
{{- if $sidecar }}
SWITCHBOARD_STORE_URL: "sqlite:///data/switchboard.db"
SWITCHBOARD_VAULT_KEY_FILE: "/data/vault.key"
SWITCHBOARD_OUTBOUND_ALLOW: {{ .Values.sidecar.outboundAllow | quote }}
SWITCHBOARD_OUTBOUND_ALLOW_HTTP: {{ .Values.sidecar.outboundAllowHttp | toString | quote }}
{{- end }}
{{- end -}}

{{/*
The gateway container (one list item). Used by the Deployment in both modes; a parent chart
that has this chart as a dependency can include it in its own pod spec.
*/}}
{{- define "switchboard.container" -}}
{{- $sidecar := eq .Values.mode "sidecar" -}}
{{- $secret := include "switchboard.secretName" . -}}
- name: switchboard
  image: {{ include "switchboard.image" . | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  {{- if and $sidecar .Values.sidecar.native }}
  restartPolicy: Always
  {{- end }}
  args: ["--config", "/etc/switchboard/switchboard.toml", "serve"]
  envFrom:
    - configMapRef:
        name: {{ include "switchboard.envConfigMapName" . }}
  env:
    {{- if not $sidecar }}
    - name: SWITCHBOARD_STORE_URL
      valueFrom:
        secretKeyRef:
          name: {{ $secret }}
          key: {{ .Values.secretKeys.storeUrl }}
    {{- end }}
    - name: SWITCHBOARD_VAULT_KEY
      valueFrom:
        secretKeyRef:
          name: {{ $secret }}
          key: {{ .Values.secretKeys.vaultKey }}
    {{- if include "switchboard.hasBootstrapKey" . }}
    - name: SWITCHBOARD_AUTH_BOOTSTRAP_KEY
      valueFrom:
        secretKeyRef:
          name: {{ $secret }}
          key: {{ .Values.secretKeys.bootstrapKey }}
          {{- if not $sidecar }}
          # Without it the gateway generates one on the first start and logs it once.
          optional: true
          {{- end }}
    {{- end }}
    {{- if not .Values.existingSecret }}
    {{- range $k, $_ := .Values.secret.extra }}
    - name: {{ $k }}
      valueFrom:
        secretKeyRef:
          name: {{ $secret }}
          key: {{ $k }}
    {{- end }}
    {{- end }}
    {{- with .Values.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    {{- if not $sidecar }}
    - name: http
      containerPort: {{ .Values.ports.api }}
      protocol: TCP
    {{- end }}
    - name: admin
      containerPort: {{ .Values.ports.admin }}
      protocol: TCP
  startupProbe:
    httpGet:
      path: /healthz
      port: admin
    {{- toYaml .Values.probes.startup | nindent 4 }}
  livenessProbe:
    httpGet:
      path: /healthz
      port: admin
    {{- toYaml .Values.probes.liveness | nindent 4 }}
  readinessProbe:
    httpGet:
      path: /readyz
      port: admin
    {{- toYaml .Values.probes.readiness | nindent 4 }}
  {{- if and (not $sidecar) (gt (int .Values.preStopSleepSeconds) 0) }}
  lifecycle:
    preStop:
      sleep:
        seconds: {{ .Values.preStopSleepSeconds | int }}
  {{- end }}
  resources:
    {{- toYaml .Values.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: switchboard-config
      mountPath: /etc/switchboard
      readOnly: true
    - name: switchboard-tmp
      mountPath: /tmp
    {{- if $sidecar }}
    - name: switchboard-data
      mountPath: /data
    {{- end }}
{{- end -}}
