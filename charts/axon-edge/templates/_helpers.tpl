{{- define "axon-edge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* One release per robot: the release name (e.g. robot-1) already identifies it. */}}
{{- define "axon-edge.fullname" -}}
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

{{- define "axon-edge.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Call with (dict "ctx" $ "component" "agent"). */}}
{{- define "axon-edge.labels" -}}
helm.sh/chart: {{ include "axon-edge.chart" .ctx }}
{{ include "axon-edge.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: axon-dagster
axon.io/robot-id: {{ .ctx.Values.robotId | quote }}
{{- end }}

{{- define "axon-edge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "axon-edge.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end }}

{{- define "axon-edge.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{- define "axon-edge.simulatorImage" -}}
{{- printf "%s:%s" .Values.simulator.image.repository (.Values.simulator.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{- define "axon-edge.tokenSecretName" -}}
{{- default (printf "axon-robot-%s" .Values.robotId) .Values.robotToken.secretName }}
{{- end }}

{{/* The robot's node label first; explicit nodeSelector entries win. */}}
{{- define "axon-edge.nodeSelector" -}}
{{- $sel := dict .Values.scheduling.nodeLabelKey .Values.robotId }}
{{- toYaml (mergeOverwrite $sel .Values.scheduling.nodeSelector) }}
{{- end }}

{{/* "true" when the agent listens on loopback only (empty string otherwise, so it reads as false). */}}
{{- define "axon-edge.loopbackOnly" -}}
{{- $h := .Values.listenHost -}}
{{- if or (hasPrefix "127." $h) (eq $h "::1") (eq $h "localhost") -}}true{{- end -}}
{{- end }}

{{/* /healthz over HTTP from the kubelet, or from inside the container when the agent is loopback-only. */}}
{{- define "axon-edge.healthProbe" -}}
{{- if include "axon-edge.loopbackOnly" . -}}
exec:
  command: ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:{{ .Values.port }}/healthz', timeout=2)"]
{{- else -}}
httpGet:
  path: /healthz
  port: {{ .Values.port }}
{{- end }}
{{- end }}

{{/* AXON_EDGE_CACHE_DIR: on the recordings volume (one filesystem and mount: moves are renames) or its own volume. */}}
{{- define "axon-edge.cacheDir" -}}
{{- if eq .Values.edgeCache.volume "recordings" -}}
{{- printf "%s/%s" (trimSuffix "/" .Values.recordings.mountPath) (trimSuffix "/" .Values.edgeCache.subPath) }}
{{- else -}}
{{- .Values.edgeCache.mountPath }}
{{- end }}
{{- end }}

{{/* AXON_EDGE_UPLOAD_WINDOWS: [{start, end}] -> "HH:MM-HH:MM,HH:MM-HH:MM". Called with .Values.upload. */}}
{{- define "axon-edge.uploadWindows" -}}
{{- $parts := list }}
{{- range .windows }}
{{- $parts = append $parts (printf "%s-%s" .start .end) }}
{{- end }}
{{- join "," $parts }}
{{- end }}

{{/* The port of controlPlaneUrl when it names one ("" otherwise: 443 for https, 80 for http). */}}
{{- define "axon-edge.controlPlanePort" -}}
{{- $host := (urlParse .Values.controlPlaneUrl).host -}}
{{- if contains ":" $host -}}{{ last (splitList ":" $host) }}{{- else if hasPrefix "http://" .Values.controlPlaneUrl -}}80{{- end -}}
{{- end }}
