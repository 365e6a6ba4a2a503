{{/* Chart name, truncated to the 63-character DNS label limit. */}}
{{- define "axon-cloud.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name; the release name alone when it already contains the chart name. */}}
{{- define "axon-cloud.fullname" -}}
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

{{- define "axon-cloud.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Common labels. Call with (dict "ctx" $ "component" "api"). */}}
{{- define "axon-cloud.labels" -}}
helm.sh/chart: {{ include "axon-cloud.chart" .ctx }}
{{ include "axon-cloud.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: axon-dagster
{{- end }}

{{- define "axon-cloud.selectorLabels" -}}
app.kubernetes.io/name: {{ include "axon-cloud.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end }}

{{- define "axon-cloud.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{- define "axon-cloud.rayImage" -}}
{{- printf "%s:%s" .Values.ray.image.repository (.Values.ray.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{- define "axon-cloud.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "axon-cloud.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "axon-cloud.runServiceAccountName" -}}
{{- if .Values.runServiceAccount.create }}
{{- default (printf "%s-runs" (include "axon-cloud.fullname" .)) .Values.runServiceAccount.name }}
{{- else }}
{{- default "default" .Values.runServiceAccount.name }}
{{- end }}
{{- end }}

{{- define "axon-cloud.rayClusterName" -}}
{{- default (printf "%s-ray" (include "axon-cloud.fullname" .)) .Values.ray.clusterName | trunc 40 | trimSuffix "-" }}
{{- end }}

{{- define "axon-cloud.apiServiceName" -}}
{{- printf "%s-api" (include "axon-cloud.fullname" .) }}
{{- end }}

{{- define "axon-cloud.codeServerServiceName" -}}
{{- printf "%s-code" (include "axon-cloud.fullname" .) }}
{{- end }}

{{- define "axon-cloud.envConfigMapName" -}}
{{- printf "%s-env" (include "axon-cloud.fullname" .) }}
{{- end }}

{{- define "axon-cloud.controlPlaneUrl" -}}
{{- printf "http://%s.%s.svc:%d" (include "axon-cloud.apiServiceName" .) .Release.Namespace (int .Values.api.port) }}
{{- end }}

{{- define "axon-cloud.rayAddress" -}}
{{- if .Values.inspection.rayAddress }}
{{- .Values.inspection.rayAddress }}
{{- else if eq .Values.inspection.runner "ray-job" }}
{{- printf "http://%s-head-svc.%s.svc:8265" (include "axon-cloud.rayClusterName" .) .Release.Namespace }}
{{- else }}
{{- printf "ray://%s-head-svc.%s.svc:10001" (include "axon-cloud.rayClusterName" .) .Release.Namespace }}
{{- end }}
{{- end }}

{{/* Secret-backed env for the API and the migration (explicit keys, not the whole Secret). */}}
{{- define "axon-cloud.databaseEnv" -}}
- name: AXON_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secrets.database.name }}
      key: {{ .Values.secrets.database.key }}
{{- end }}

{{- define "axon-cloud.adminTokenEnv" -}}
- name: AXON_ADMIN_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secrets.runtime.name }}
      key: AXON_ADMIN_TOKEN
{{- end }}

{{/* Env every Ray container needs: token auth and object-store access. */}}
{{- define "axon-cloud.rayEnv" -}}
- name: RAY_AUTH_MODE
  value: token
- name: RAY_AUTH_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secrets.runtime.name }}
      key: RAY_AUTH_TOKEN
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secrets.runtime.name }}
      key: AWS_ACCESS_KEY_ID
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secrets.runtime.name }}
      key: AWS_SECRET_ACCESS_KEY
{{- with .Values.objectStore.endpointUrl }}
- name: AWS_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- with .Values.objectStore.region }}
- name: AWS_DEFAULT_REGION
  value: {{ . | quote }}
{{- end }}
- name: HOME
  value: /tmp
{{- end }}

{{/* Writable scratch every read-only-root container gets. */}}
{{- define "axon-cloud.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 1Gi
{{- end }}

{{- define "axon-cloud.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext }}
{{- end }}

{{- define "axon-cloud.securityContext" -}}
{{- toYaml .Values.securityContext }}
{{- end }}

{{/* NetworkPolicy peer for Prometheus: its namespace, narrowed to its pods when labels are given. */}}
{{- define "axon-cloud.monitoringPeer" -}}
- namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {{ .Values.networkPolicy.monitoringNamespace }}
  {{- with .Values.networkPolicy.monitoringPodLabels }}
  podSelector:
    matchLabels:
      {{- toYaml . | nindent 6 }}
  {{- end }}
{{- end }}

{{/* AXON_PUBLIC_API_URL: api.publicUrl, else https://<ingress host> with the ingress on ("" = the request's URL). */}}
{{- define "axon-cloud.publicApiUrl" -}}
{{- if .Values.api.publicUrl -}}
{{- .Values.api.publicUrl }}
{{- else if .Values.api.ingress.enabled -}}
{{- printf "%s://%s" (ternary "http" "https" (and .Values.api.ingress.allowPlainHttp (not .Values.api.ingress.tlsSecretName))) .Values.api.ingress.host }}
{{- end }}
{{- end }}

{{/* The API's side of robots' uploads: where parts are staged (the object store, with its
credentials from the runtime Secret, each optional), the part URLs' base and signing key, limits. */}}
{{- define "axon-cloud.uploadApiEnv" -}}
{{- $file := hasPrefix "file://" .Values.objectStore.url -}}
{{- $key := .Values.uploads.signingKey -}}
{{- if and $file (not $key.secretName) }}
{{- fail "uploads.signingKey.secretName is required with a file:// object store: every API replica must verify the part URLs another signed" }}
{{- end }}
- name: AXON_OBJECT_STORE_URL
  value: {{ .Values.objectStore.url | quote }}
{{- with .Values.objectStore.endpointUrl }}
- name: {{ ternary "AZURE_STORAGE_BLOB_ENDPOINT" "AWS_ENDPOINT_URL" (hasPrefix "az://" $.Values.objectStore.url) }}
  value: {{ . | quote }}
{{- end }}
{{- with .Values.objectStore.region }}
- name: AWS_DEFAULT_REGION
  value: {{ . | quote }}
{{- end }}
{{- range list "AWS_ACCESS_KEY_ID" "AWS_SECRET_ACCESS_KEY" "AZURE_STORAGE_CONNECTION_STRING" "AZURE_STORAGE_KEY" }}
- name: {{ . }}
  valueFrom:
    secretKeyRef:
      name: {{ $.Values.secrets.runtime.name }}
      key: {{ . }}
      optional: true
{{- end }}
{{- with include "axon-cloud.publicApiUrl" . }}
- name: AXON_PUBLIC_API_URL
  value: {{ . | quote }}
{{- end }}
{{- if $key.secretName }}
- name: AXON_UPLOAD_SIGNING_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $key.secretName }}
      key: {{ $key.key }}
      {{- if not $file }}
      optional: true
      {{- end }}
{{- end }}
{{- if .Values.uploads.partBytes }}
- name: AXON_UPLOAD_PART_BYTES
  value: {{ .Values.uploads.partBytes | int64 | toString | quote }}
{{- end }}
- name: AXON_MAX_RECORDING_FILE_BYTES
  value: {{ .Values.uploads.maxRecordingFileBytes | int64 | toString | quote }}
- name: AXON_UPLOAD_GRANT_SWEEP_SECONDS
  value: {{ .Values.uploads.grantSweepSeconds | toString | quote }}
{{- end }}
