{{/* Names and labels shared by the templates. */}}
{{- define "imgsink.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "imgsink.fullname" -}}
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

{{- define "imgsink.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "imgsink.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "imgsink.workerSelector" -}}
app.kubernetes.io/name: {{ include "imgsink.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: worker
{{- end -}}

{{- define "imgsink.apiSelector" -}}
app.kubernetes.io/name: {{ include "imgsink.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: api
{{- end -}}

{{- define "imgsink.analyticsSelector" -}}
app.kubernetes.io/name: {{ include "imgsink.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: analytics
{{- end -}}

{{- define "imgsink.rollupSelector" -}}
app.kubernetes.io/name: {{ include "imgsink.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: analytics-rollup
{{- end -}}

{{/* The ServiceAccount of the API, the analytics sink or the rollup:
     (dict "root" $ "sa" THE-VALUES "suffix" "analytics"). */}}
{{- define "imgsink.ownServiceAccountName" -}}
{{- if .sa.create -}}
{{- default (printf "%s-%s" (include "imgsink.fullname" .root) .suffix) .sa.name -}}
{{- else -}}
{{- required (printf "the %s ServiceAccount's name is required when its create is false" .suffix) .sa.name -}}
{{- end -}}
{{- end -}}

{{- define "imgsink.apiServiceAccountName" -}}
{{- include "imgsink.ownServiceAccountName" (dict "root" . "sa" .Values.api.serviceAccount "suffix" "api") -}}
{{- end -}}

{{- define "imgsink.analyticsServiceAccountName" -}}
{{- include "imgsink.ownServiceAccountName" (dict "root" . "sa" .Values.analytics.serviceAccount "suffix" "analytics") -}}
{{- end -}}

{{- define "imgsink.rollupServiceAccountName" -}}
{{- include "imgsink.ownServiceAccountName" (dict "root" . "sa" .Values.analytics.rollup.serviceAccount "suffix" "analytics-rollup") -}}
{{- end -}}

{{- define "imgsink.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "imgsink.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "imgsink.image" -}}
{{- if .Values.image.digest -}}
{{- if not (regexMatch "^sha256:[0-9a-f]{64}$" .Values.image.digest) -}}
{{- fail (printf "image.digest=%s: expected sha256: and 64 hex digits" .Values.image.digest) -}}
{{- end -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* checkov skips, with their reasons, on the workloads. */}}
{{- define "imgsink.checkovSkips" -}}
checkov.io/skip1: CKV_K8S_15=IfNotPresent on purpose - the image is pinned (tag or digest), and Always makes every scale-out depend on the registry
checkov.io/skip2: CKV_K8S_35=imgsink reads credentials from IMGSINK_* variables, here only secretKeyRef references (none with IRSA), never values
{{- end -}}

{{/* Worker resources from the pixel budget (README: "Sizing"):
     memory MiB = baseMiB + maxInflightPixels * bytesPerPixel / 1MiB + 2 * maxInflightMiB
     cpu request = threads * cpuMilliPerThread, cpu limit = threads cores. */}}
{{- define "imgsink.workerMemoryMiB" -}}
{{- $w := .Values.worker -}}
{{- $pix := div (mul (int64 $w.maxInflightPixels) (int64 $w.sizing.bytesPerPixel)) 1048576 -}}
{{- add (int64 $w.sizing.baseMiB) $pix (mul 2 (int64 $w.maxInflightMiB)) -}}
{{- end -}}

{{- define "imgsink.workerResources" -}}
{{- if .Values.worker.resources -}}
{{- toYaml .Values.worker.resources -}}
{{- else -}}
{{- $w := .Values.worker -}}
{{- $mem := include "imgsink.workerMemoryMiB" . -}}
requests:
  cpu: {{ mul (int64 $w.threads) (int64 $w.sizing.cpuMilliPerThread) }}m
  memory: {{ $mem }}Mi
limits:
  cpu: {{ $w.threads | quote }}
  memory: {{ $mem }}Mi
{{- end -}}
{{- end -}}

{{/* The hardened security contexts of every container and pod. */}}
{{- define "imgsink.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "imgsink.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* IMGSINK_* variables from Secret references: never inline values. */}}
{{- define "imgsink.secretEnv" -}}
{{- range $name, $ref := .Values.secrets.env }}
{{- if not (hasPrefix "IMGSINK_" $name) }}
{{- fail (printf "secrets.env.%s: expected a variable name starting with IMGSINK_" $name) }}
{{- end }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ required (printf "secrets.env.%s.secret is required" $name) $ref.secret }}
      key: {{ required (printf "secrets.env.%s.key is required" $name) $ref.key }}
{{- end }}
{{- end -}}

{{/* NetworkPolicy egress: DNS, Kafka (when .kafka), the object store and
     the Schema Registry (when .registry and networkPolicy.schemaRegistry
     has CIDRs and ports).
     (dict "root" $ "kafka" true "registry" true) */}}
{{- define "imgsink.egress" -}}
{{- $n := .root.Values.networkPolicy -}}
# DNS
- ports:
    {{- range $n.dnsPorts }}
    - port: {{ . }}
      protocol: UDP
    - port: {{ . }}
      protocol: TCP
    {{- end }}
{{- if .kafka }}
# Kafka
- to:
    {{- range $n.kafka.cidrs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  ports:
    {{- range $n.kafka.ports }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
{{- end }}
# The object store
- to:
    {{- range $n.store.cidrs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  ports:
    {{- range $n.store.ports }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
{{- $sr := $n.schemaRegistry }}
{{- if and .registry $sr.cidrs $sr.ports }}
# The Schema Registry (schema.registry.url)
- to:
    {{- range $sr.cidrs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  ports:
    {{- range $sr.ports }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
{{- end }}
{{- end -}}
