{{/* Chart name, truncated to the 63 characters Kubernetes names allow. */}}
{{- define "mcpedge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects. */}}
{{- define "mcpedge.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "mcpedge.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mcpedge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mcpedge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "mcpedge.labels" -}}
helm.sh/chart: {{ include "mcpedge.chart" . }}
{{ include "mcpedge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "mcpedge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mcpedge.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The configuration file: the user's config map with the keys the chart
owns set (listen on the pod's port, data_dir on the volume, the store and
Redis URLs from the environment).
*/}}
{{- define "mcpedge.config" -}}
{{- $cfg := deepCopy (default dict .Values.config) }}
{{- $server := default dict (get $cfg "server") }}
{{- $_ := set $server "listen" (printf "0.0.0.0:%d" (int .Values.service.port)) }}
{{- $_ := set $server "data_dir" "/data" }}
{{- if .Values.tls.enabled }}
{{- $tls := default dict (get $server "tls") }}
{{- $_ := set $tls "cert_file" "/etc/mcpedge-tls/tls.crt" }}
{{- $_ := set $tls "key_file" "/etc/mcpedge-tls/tls.key" }}
{{- $_ := set $tls "min_version" (toString .Values.tls.minVersion) }}
{{- if .Values.tls.clientCA.secretName }}
{{- $_ := set $tls "client_ca_file" (printf "/etc/mcpedge-client-ca/%s" .Values.tls.clientCA.key) }}
{{- $_ := set $tls "client_auth" .Values.tls.clientCA.clientAuth }}
{{- end }}
{{- $_ := set $server "tls" $tls }}
{{- end }}
{{- $_ := set $cfg "server" $server }}
{{- if .Values.postgresql.enabled }}
{{- $store := default dict (get $cfg "store") }}
{{- $_ := set $store "url" "${MCPEDGE_DATABASE_URL}" }}
{{- $_ := set $cfg "store" $store }}
{{- end }}
{{- if .Values.redis.enabled }}
{{- $redis := default dict (get $cfg "redis") }}
{{- $_ := set $redis "url" "${MCPEDGE_REDIS_URL}" }}
{{- $_ := set $cfg "redis" $redis }}
{{- end }}
{{- if not (get $cfg "upstreams") }}
{{- $_ := unset $cfg "upstreams" }}
{{- end }}
{{- /*
Helm reads every number of the values as a float, which toToml writes as
"5.0"; the gateway wants integers for counts and sizes (and takes an
integer where it wants a float), so whole numbers lose their ".0". Twice,
for neighbours in an array.
*/}}
{{- $toml := toToml $cfg }}
{{- $toml = regexReplaceAll "(?m)(= |\\[|, )(-?[0-9]+)\\.0(\\]|,|$)" $toml "${1}${2}${3}" }}
{{- $toml = regexReplaceAll "(?m)(= |\\[|, )(-?[0-9]+)\\.0(\\]|,|$)" $toml "${1}${2}${3}" }}
{{- $toml }}
{{- end }}

{{/* Refuse values that would deploy something broken. */}}
{{- define "mcpedge.validate" -}}
{{- $replicas := int .Values.replicaCount }}
{{- $several := or (gt $replicas 1) .Values.autoscaling.enabled }}
{{- if and $several (not .Values.postgresql.enabled) }}
{{- fail "several replicas (replicaCount > 1 or autoscaling) need a shared store: set postgresql.enabled and postgresql.urlSecret" }}
{{- end }}
{{- if and $several .Values.persistence.enabled (has "ReadWriteOnce" .Values.persistence.accessModes) }}
{{- fail "several replicas cannot share a ReadWriteOnce volume: set persistence.enabled=false (the store is PostgreSQL) or a ReadWriteMany access mode" }}
{{- end }}
{{- if and .Values.postgresql.enabled (not .Values.postgresql.urlSecret.name) }}
{{- fail "postgresql.enabled needs postgresql.urlSecret.name: the Secret with the database URL" }}
{{- end }}
{{- if and .Values.postgresql.enabled (not .Values.secrets.storeKey.name) }}
{{- fail "a PostgreSQL store needs secrets.storeKey.name: every replica must seal secrets with the same master key" }}
{{- end }}
{{- if and .Values.tls.enabled (not .Values.tls.secretName) }}
{{- fail "tls.enabled needs tls.secretName: the kubernetes.io/tls Secret with tls.crt and tls.key" }}
{{- end }}
{{- if and .Values.tls.clientCA.secretName (not .Values.tls.enabled) }}
{{- fail "tls.clientCA needs tls.enabled: client certificates are checked in the gateway's own TLS" }}
{{- end }}
{{- if and .Values.tls.clientCA.secretName (not (has .Values.tls.clientCA.clientAuth (list "optional" "required"))) }}
{{- fail "tls.clientCA.clientAuth must be optional or required" }}
{{- end }}
{{- if and .Values.redis.enabled (not .Values.redis.urlSecret.name) }}
{{- fail "redis.enabled needs redis.urlSecret.name: the Secret with the Redis URL" }}
{{- end }}
{{- if and .Values.serviceMonitor.enabled (not .Values.serviceMonitor.bearerTokenSecret.name) }}
{{- fail "serviceMonitor.enabled needs serviceMonitor.bearerTokenSecret.name: /metrics wants an operator admin key with admin:read" }}
{{- end }}
{{- end }}

{{/* A probe of the values, speaking HTTPS when the gateway terminates TLS. */}}
{{- define "mcpedge.probe" -}}
{{- $p := deepCopy .probe }}
{{- if and .tls $p.httpGet }}
{{- $_ := set $p.httpGet "scheme" "HTTPS" }}
{{- end }}
{{- toYaml $p }}
{{- end }}
