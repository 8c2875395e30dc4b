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

{{- /* The Secret holding the recordings store's keys ("" when credentials come from the
       environment). */ -}}
{{- define "onair.recordingsSecret" -}}
{{- if .Values.recordings.existingSecret -}}
{{- .Values.recordings.existingSecret -}}
{{- else if .Values.recordings.accessKeyId -}}
{{- printf "%s-recordings" .Release.Name -}}
{{- end -}}
{{- end -}}

{{- /* ONAIR_RECORDINGS_* for the apiserver and the operator (which hands them to ingest pods). */ -}}
{{- /* Signed playback links' keys, for the apiserver (signs) and the operator (hands them to
       media pods, which verify). */ -}}
{{- define "onair.playbackKeysEnv" -}}
{{- with .Values.delivery.playbackKeysSecret -}}
- name: ONAIR_PLAYBACK_KEYS
  valueFrom: {secretKeyRef: {name: {{ . }}, key: playback-keys}}
{{- end }}
{{- end -}}

{{- define "onair.recordingsEnv" -}}
{{- $r := .Values.recordings -}}
{{- if and $r.url (not (hasPrefix "s3://" $r.url)) -}}
{{- fail "recordings.url: pods cannot share a directory (file:// or a path); use s3://bucket[/prefix]" -}}
{{- end -}}
- {name: ONAIR_RECORDINGS_URL, value: {{ $r.url | quote }}}
- {name: ONAIR_RECORDINGS_ENDPOINT, value: {{ $r.endpoint | quote }}}
- {name: ONAIR_RECORDINGS_REGION, value: {{ $r.region | quote }}}
{{- if ne (toString $r.allowHttp) "" }}
- {name: ONAIR_RECORDINGS_ALLOW_HTTP, value: {{ $r.allowHttp | toString | quote }}}
{{- end }}
- {name: ONAIR_RECORDINGS_VIRTUAL_HOSTED, value: {{ $r.virtualHostedStyle | toString | quote }}}
{{- with include "onair.recordingsSecret" . }}
- name: ONAIR_RECORDINGS_ACCESS_KEY_ID
  valueFrom: {secretKeyRef: {name: {{ . }}, key: access-key-id}}
- name: ONAIR_RECORDINGS_SECRET_ACCESS_KEY
  valueFrom: {secretKeyRef: {name: {{ . }}, key: secret-access-key}}
{{- end }}
{{- end -}}
