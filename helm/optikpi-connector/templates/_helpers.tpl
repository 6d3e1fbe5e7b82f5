{{/* Names and labels. */}}
{{- define "optikpi-connector.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "optikpi-connector.fullname" -}}
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

{{- define "optikpi-connector.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "optikpi-connector.selectorLabels" -}}
app.kubernetes.io/name: {{ include "optikpi-connector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "optikpi-connector.labels" -}}
helm.sh/chart: {{ include "optikpi-connector.chart" . }}
{{ include "optikpi-connector.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "optikpi-connector.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "optikpi-connector.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "optikpi-connector.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "optikpi-connector.metricsServiceName" -}}
{{- printf "%s-metrics" (include "optikpi-connector.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Where the connector reads its configuration. */}}
{{- define "optikpi-connector.configDir" -}}/etc/optikpi-connector{{- end -}}

{{/* The health, readiness and metrics port: the configuration's server.port. */}}
{{- define "optikpi-connector.port" -}}
{{- dig "server" "port" 8080 .Values.config | int -}}
{{- end -}}

{{/* shutdown_timeout_s as the connector reads it (default 25 s). */}}
{{- define "optikpi-connector.shutdownTimeout" -}}
{{- dig "shutdown_timeout_s" 25 .Values.config -}}
{{- end -}}

{{/*
The pod's grace period must outlast the connector's drain (shutdown_timeout_s) plus the final
commit and leaving the group: ceil(shutdown_timeout_s) + terminationGracePaddingSeconds, unless
terminationGracePeriodSeconds is set, which must then be above shutdown_timeout_s.
*/}}
{{- define "optikpi-connector.terminationGracePeriodSeconds" -}}
{{- $shutdown := include "optikpi-connector.shutdownTimeout" . | float64 -}}
{{- if .Values.terminationGracePeriodSeconds -}}
{{- if le (.Values.terminationGracePeriodSeconds | float64) $shutdown -}}
{{- fail (printf "terminationGracePeriodSeconds (%v) must be above config.shutdown_timeout_s (%v): the connector needs that long to drain and commit" .Values.terminationGracePeriodSeconds $shutdown) -}}
{{- end -}}
{{- .Values.terminationGracePeriodSeconds | int -}}
{{- else -}}
{{- add (ceil $shutdown | int) .Values.terminationGracePaddingSeconds -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding one token per destination. */}}
{{- define "optikpi-connector.authSecretName" -}}
{{- if .Values.auth.existingSecret -}}
{{- .Values.auth.existingSecret -}}
{{- else -}}
{{- printf "%s-auth" (include "optikpi-connector.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* True (non-empty) when the chart creates the token Secret itself. */}}
{{- define "optikpi-connector.createAuthSecret" -}}
{{- if and (not .Values.auth.existingSecret) (or .Values.auth.token .Values.auth.tokens) -}}true{{- end -}}
{{- end -}}

{{/* Every destination of the configuration: `optikpi` and each name under `destinations`. */}}
{{- define "optikpi-connector.destinationNames" -}}
{{- $names := list -}}
{{- if .Values.config.optikpi -}}{{- $names = append $names "optikpi" -}}{{- end -}}
{{- range $name, $_ := (.Values.config.destinations | default dict) -}}{{- $names = append $names $name -}}{{- end -}}
{{- toJson $names -}}
{{- end -}}

{{/* The key (= file name in the mounted Secret) holding one destination's token. */}}
{{- define "optikpi-connector.tokenKey" -}}
{{- $keys := .root.Values.auth.secretKeys | default dict -}}
{{- get $keys .name | default .name -}}
{{- end -}}

{{/*
The configuration file: config as given, with every destination's token read from the mounted
Secret (auth_token_file), so no token is ever written into the ConfigMap.
*/}}
{{- define "optikpi-connector.configYaml" -}}
{{- $cfg := deepCopy .Values.config -}}
{{- $mount := .Values.auth.mountPath | trimSuffix "/" -}}
{{- if $cfg.optikpi -}}
{{- $_ := unset $cfg.optikpi "auth_token" -}}
{{- $_ := set $cfg.optikpi "auth_token_file" (printf "%s/%s" $mount (include "optikpi-connector.tokenKey" (dict "root" . "name" "optikpi"))) -}}
{{- end -}}
{{- range $name, $dest := ($cfg.destinations | default dict) -}}
{{- $_ := unset $dest "auth_token" -}}
{{- $_ := set $dest "auth_token_file" (printf "%s/%s" $mount (include "optikpi-connector.tokenKey" (dict "root" $ "name" $name))) -}}
{{- end -}}
{{- include "optikpi-connector.splitRateLimits" (dict "root" . "cfg" $cfg) -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* The replica count the rate limits are shared by: replicaCount, or KEDA's minimum. */}}
{{- define "optikpi-connector.rateLimitReplicas" -}}
{{- $n := .Values.replicaCount | int -}}
{{- if .Values.keda.enabled -}}{{- $n = .Values.keda.minReplicaCount | int -}}{{- end -}}
{{- max 1 $n -}}
{{- end -}}

{{/*
The API's limits are per account, while every pod has its own token buckets: each destination's
rate_limits (the API's limits where config sets none) divided by the replica count, so the pods
together stay under the limit. KEDA changes the count at run time; the connector's adaptive
limits (AIMD on 429) keep it right then. Changes .cfg in place.
*/}}
{{- define "optikpi-connector.splitRateLimits" -}}
{{- $root := .root -}}
{{- $replicas := include "optikpi-connector.rateLimitReplicas" $root | int -}}
{{- if and $root.Values.rateLimits.splitAcrossReplicas (gt $replicas 1) -}}
{{- $dests := list -}}
{{- if .cfg.optikpi -}}{{- $dests = append $dests .cfg.optikpi -}}{{- end -}}
{{- range $_, $dest := (.cfg.destinations | default dict) -}}{{- $dests = append $dests $dest -}}{{- end -}}
{{- range $dest := $dests -}}
{{- $limits := merge (deepCopy ($dest.rate_limits | default dict)) $root.Values.rateLimits.apiLimits -}}
{{- $split := dict -}}
{{- range $endpoint, $limit := $limits -}}
{{- $_ := set $split $endpoint (round (divf $limit $replicas) 3) -}}
{{- end -}}
{{- $_ := set $dest "rate_limits" $split -}}
{{- end -}}
{{- end -}}
{{- end -}}
