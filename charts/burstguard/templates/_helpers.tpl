{{/*
Names, labels and small shared pieces. Every object is named `<fullname>-<component>` and
labelled with the component, so selectors never match another component's pods.
*/}}

{{- define "burstguard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "burstguard.fullname" -}}
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

{{- define "burstguard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "burstguard.labels" -}}
helm.sh/chart: {{ include "burstguard.chart" . }}
app.kubernetes.io/name: {{ include "burstguard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: burstguard
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: include "burstguard.selectorLabels" (list . "operator") */}}
{{- define "burstguard.selectorLabels" -}}
{{- $top := index . 0 -}}
app.kubernetes.io/name: {{ include "burstguard.name" $top }}
app.kubernetes.io/instance: {{ $top.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* Labels of one component's objects: include "burstguard.componentLabels" (list . "agent") */}}
{{- define "burstguard.componentLabels" -}}
{{ include "burstguard.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- /* The image reference: repository@digest when image.digest is set, else repository:tag. */ -}}
{{- define "burstguard.image" -}}
{{- $repo := required "image.repository is empty: build the image with `make image` (it writes dist/burstguard-<version>.oci.tar, tagged localhost/burstguard:<version>), load it into the nodes or push it to your registry, and set image.repository" .Values.image.repository -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- /*
Pod-level network settings of every burstguard pod (operator, agent, release hook):
hostNetwork.enabled puts them in the node's network namespace.
*/ -}}
{{- define "burstguard.podNetwork" -}}
{{- if .Values.hostNetwork.enabled -}}
hostNetwork: true
dnsPolicy: ClusterFirstWithHostNet
{{- end -}}
{{- end -}}

{{- /*
Container env that points the in-cluster client at hostNetwork.apiServerHost:apiServerPort
instead of the `kubernetes` Service (the kubelet's KUBERNETES_SERVICE_* values are overridden
by the container's own env).
*/ -}}
{{- define "burstguard.apiServerEnv" -}}
{{- with .Values.hostNetwork.apiServerHost -}}
- name: KUBERNETES_SERVICE_HOST
  value: {{ . | quote }}
- name: KUBERNETES_SERVICE_PORT
  value: {{ $.Values.hostNetwork.apiServerPort | quote }}
{{- end -}}
{{- end -}}

{{- define "burstguard.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (printf "%s-operator" (include "burstguard.fullname" .)) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- required "operator.serviceAccount.create=false needs operator.serviceAccount.name: the chart binds its ClusterRole to that account, never to the namespace's default one" .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "burstguard.agent.serviceAccountName" -}}
{{- if .Values.agent.serviceAccount.create -}}
{{- default (printf "%s-agent" (include "burstguard.fullname" .)) .Values.agent.serviceAccount.name -}}
{{- else -}}
{{- required "agent.serviceAccount.create=false needs agent.serviceAccount.name: the chart binds its ClusterRole to that account, never to the namespace's default one" .Values.agent.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "burstguard.operator.serviceName" -}}
{{- printf "%s-operator" (include "burstguard.fullname" .) -}}
{{- end -}}

{{/* Secret holding the webhook's serving certificate (tls.crt, tls.key, ca.crt). */}}
{{- define "burstguard.webhook.secretName" -}}
{{- default (printf "%s-webhook-tls" (include "burstguard.fullname" .)) .Values.webhook.existingSecret -}}
{{- end -}}

{{/* Where the operator container finds the webhook's certificate. */}}
{{- define "burstguard.webhook.certDir" -}}
/etc/burstguard/webhook
{{- end -}}

{{/*
Metrics protection: the flags both workloads get, the mount of the serving certificate, and
its volume (metrics.auth, metrics.tls).
*/}}
{{- define "burstguard.metrics.certDir" -}}
/etc/burstguard/metrics-tls
{{- end -}}

{{- define "burstguard.metrics.args" -}}
{{- if .Values.metrics.auth.enabled }}
- --metrics-auth
{{- end }}
{{- if .Values.metrics.tls.enabled }}
{{- if not .Values.metrics.tls.secretName }}
{{- fail "metrics.tls.enabled needs metrics.tls.secretName (a Secret with tls.crt and tls.key)" }}
{{- end }}
- --metrics-cert-file={{ include "burstguard.metrics.certDir" . }}/tls.crt
- --metrics-key-file={{ include "burstguard.metrics.certDir" . }}/tls.key
{{- end }}
{{- end -}}

{{- define "burstguard.metrics.volumeMounts" -}}
{{- if .Values.metrics.tls.enabled }}
- name: metrics-tls
  mountPath: {{ include "burstguard.metrics.certDir" . }}
  readOnly: true
{{- end }}
{{- end -}}

{{- define "burstguard.metrics.volumes" -}}
{{- if .Values.metrics.tls.enabled }}
- name: metrics-tls
  secret:
    secretName: {{ .Values.metrics.tls.secretName }}
    items:
      - {key: tls.crt, path: tls.crt}
      - {key: tls.key, path: tls.key}
{{- end }}
{{- end -}}

{{- define "burstguard.metrics.reviewRules" -}}
{{- if .Values.metrics.auth.enabled }}
# metrics.auth: ask the apiserver who a scraper's token is and whether it may get /metrics.
- apiGroups: [authentication.k8s.io]
  resources: [tokenreviews]
  verbs: [create]
- apiGroups: [authorization.k8s.io]
  resources: [subjectaccessreviews]
  verbs: [create]
{{- end }}
{{- end -}}

{{- define "burstguard.metrics.scrapeAuth" -}}
{{- if .Values.metrics.tls.enabled }}
scheme: https
{{- with .Values.metrics.serviceMonitor.tlsConfig }}
tlsConfig:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
{{- if .Values.metrics.auth.enabled }}
bearerTokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token
{{- end }}
{{- end -}}
