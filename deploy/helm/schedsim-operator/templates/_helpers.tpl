{{/* Names and labels shared by the templates. */}}
{{- define "schedsim.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "schedsim.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "schedsim.labels" -}}
{{ include "schedsim.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "schedsim.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "schedsim.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "schedsim.scriptsConfigMap" -}}
{{- default (printf "%s-scripts" (include "schedsim.fullname" .)) .Values.scripts.configMap.name -}}
{{- end -}}

{{/* The rules of deploy/rbac/cluster_role.yaml (one source; files/ links to it). */}}
{{- define "schedsim.rules" -}}
{{- (.Files.Get "files/cluster_role.yaml" | fromYaml).rules | toYaml -}}
{{- end -}}
