{{- define "onair.labels" -}}
app.kubernetes.io/part-of: onair
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{- define "onair.selector" -}}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/name: {{ .component }}
{{- end -}}

{{- define "onair.connectionsSecret" -}}
{{- default (printf "%s-connections" .Release.Name) .Values.connections.existingSecret -}}
{{- end -}}

{{- define "onair.internalSecret" -}}
{{- default (printf "%s-internal" .Release.Name) .Values.internalToken.existingSecret -}}
{{- end -}}

{{/* The stream namespaces, as a list (streams.namespaces, else the release namespace). */}}
{{- define "onair.streamsNamespaces" -}}
{{- if .Values.streams.namespaces }}{{ toJson .Values.streams.namespaces }}{{ else }}{{ list .Release.Namespace | toJson }}{{ end -}}
{{- end -}}

{{/* Where the apiserver creates LiveStreams (and the ingest gateway finds them): the first. */}}
{{- define "onair.streamsNamespace" -}}
{{- first (include "onair.streamsNamespaces" . | fromJsonArray) -}}
{{- end -}}

{{- define "onair.publicUrl" -}}
{{ .Values.publicScheme }}://{{ .Values.publicHost }}
{{- end -}}

{{/* Non-root, read-only root filesystem, no capabilities: every onair container. */}}
{{- define "onair.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{- define "onair.podSecurity" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "onair.connectionEnv" -}}
- name: ONAIR_DATABASE_URL
  valueFrom: {secretKeyRef: {name: {{ include "onair.connectionsSecret" . }}, key: database-url}}
- name: ONAIR_REDIS_URL
  valueFrom: {secretKeyRef: {name: {{ include "onair.connectionsSecret" . }}, key: redis-url}}
- name: ONAIR_NATS_URL
  valueFrom: {secretKeyRef: {name: {{ include "onair.connectionsSecret" . }}, key: nats-url}}
- name: ONAIR_INTERNAL_TOKEN
  valueFrom: {secretKeyRef: {name: {{ include "onair.internalSecret" . }}, key: internal-token}}
- name: ONAIR_LOG_FORMAT
  value: json
{{- end -}}
