{{/* Names and labels. */}}
{{- define "portcullis.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "portcullis.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "portcullis.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "portcullis.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "portcullis.selectorLabels" -}}
app.kubernetes.io/name: {{ include "portcullis.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "portcullis.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "portcullis.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: portcullis
{{- end -}}

{{- define "portcullis.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "portcullis.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "portcullis.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The TLS Secret: the existing one, or the one cert-manager fills. */}}
{{- define "portcullis.tlsSecretName" -}}
{{- if .Values.tls.certManager.enabled -}}
{{- printf "%s-tls" (include "portcullis.fullname" .) -}}
{{- else -}}
{{- .Values.tls.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "portcullis.tlsEnabled" -}}
{{- if or .Values.tls.enabled .Values.tls.certManager.enabled -}}true{{- end -}}
{{- end -}}

{{/* The most replicas this release can run: what a single-replica-only setting must be checked against. */}}
{{- define "portcullis.maxReplicas" -}}
{{- if .Values.autoscaling.enabled -}}{{ .Values.autoscaling.maxReplicas }}{{- else -}}{{ .Values.replicaCount }}{{- end -}}
{{- end -}}

{{/*
The policy file: `config` with the parts the chart owns set from the other values — the
listeners, TLS paths (the mounts below) and the session keys (environment from the Secret).
*/}}
{{- define "portcullis.policy" -}}
{{- $config := deepCopy (default dict .Values.config) -}}
{{- $_ := set $config "listen" (dict "host" "0.0.0.0" "port" (int .Values.ports.main)) -}}
{{- $_ := set $config "admin" (dict "host" "0.0.0.0" "port" (int .Values.ports.admin)) -}}
{{- if include "portcullis.tlsEnabled" . -}}
{{- $tls := dict "cert" "/etc/portcullis/tls/tls.crt" "key" "/etc/portcullis/tls/tls.key" -}}
{{- if .Values.tls.clientCA.enabled -}}
{{- $_ := set $tls "clientCA" "/etc/portcullis/client-ca/ca.crt" -}}
{{- $_ := set $tls "clientCertificate" .Values.tls.clientCA.mode -}}
{{- end -}}
{{- $_ := set $config "tls" $tls -}}
{{- end -}}
{{- if .Values.sessionKeys.existingSecret -}}
{{- $sessions := default dict (get $config "sessions") -}}
{{- $keys := list -}}
{{- range $i, $_ := .Values.sessionKeys.secretKeys -}}
{{- $keys = append $keys (printf "${PORTCULLIS_SESSION_KEY_%d}" $i) -}}
{{- end -}}
{{- $_ := set $sessions "keys" $keys -}}
{{- $_ := set $config "sessions" $sessions -}}
{{- end -}}
{{- if .Values.identityKeys.signingKeys -}}
{{- $identity := default dict (get $config "gatewayIdentity") -}}
{{- $paths := list -}}
{{- range .Values.identityKeys.signingKeys -}}
{{- $paths = append $paths (printf "/etc/portcullis/identity/%s" .) -}}
{{- end -}}
{{- $_ := set $identity "signingKeys" $paths -}}
{{- $_ := set $config "gatewayIdentity" $identity -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}

{{/*
Settings that cannot be correct with more than one replica refuse to render: each replica would
count rate limits alone, and a session sealed by one replica would 404 on the next.
*/}}
{{- define "portcullis.validate" -}}
{{- $replicas := int (include "portcullis.maxReplicas" .) -}}
{{- $config := default dict .Values.config -}}
{{- if and .Values.identityKeys.signingKeys (not .Values.identityKeys.existingSecret) -}}
{{- fail "identityKeys.signingKeys names keys of identityKeys.existingSecret: set the Secret" -}}
{{- end -}}
{{- if and .Values.identityKeys.signingKeys (not (get (default dict (get $config "gatewayIdentity")) "issuer")) -}}
{{- fail "identityKeys.signingKeys sign the gateway's assertions: set config.gatewayIdentity.issuer (the gateway's issuer URL)" -}}
{{- end -}}
{{- $stdio := include "portcullis.stdioRoutes" . | fromYamlArray -}}
{{- if and $stdio (gt $replicas 1) (not .Values.stdio.sessionAffinity) -}}
{{- fail (printf "config.routes %v run stdio servers: a legacy session lives in the replica that started its process, so %d replicas need ingress affinity on the Mcp-Session-Id header. Configure it and set stdio.sessionAffinity=true, or run one replica." $stdio $replicas) -}}
{{- end -}}
{{- if .Values.stdio.separateUser -}}
{{- $without := list -}}
{{- range $route := (default list (get $config "routes")) -}}
{{- range $upstream := include "portcullis.upstreamsOf" $route | fromYamlArray -}}
{{- if and (kindIs "map" $upstream) (not (hasKey $upstream "user")) (not (has (get $route "route") $without)) -}}{{- $without = append $without (get $route "route") -}}{{- end -}}
{{- end -}}
{{- end -}}
{{- if $without -}}
{{- fail (printf "stdio.separateUser is set but config.routes %v run their stdio server without upstream.user: set user: 10002 (the image's mcp user) on each (servers.<name>.upstream.user on a federated route)" $without) -}}
{{- end -}}
{{- end -}}
{{- if gt $replicas 1 -}}
{{- $limited := list -}}
{{- range $route := (default list (get $config "routes")) -}}
{{- if (get $route "rateLimits") -}}{{- $limited = append $limited (get $route "route") -}}{{- end -}}
{{- end -}}
{{- if and $limited (not (get $config "redis")) -}}
{{- fail (printf "config.routes %v set rateLimits but config.redis is not set: with %d replicas each would count alone and allow %d times the limit. Configure Redis, or run one replica." $limited $replicas $replicas) -}}
{{- end -}}
{{- $sessions := default dict (get $config "sessions") -}}
{{- if and (not .Values.sessionKeys.existingSecret) (not (get $sessions "keys")) -}}
{{- fail (printf "no session keys: with %d replicas a session sealed by one replica would be refused (404) by the next. Set sessionKeys.existingSecret (a Secret of base64 32-byte keys), or run one replica." $replicas) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.tls.enabled (not .Values.tls.certManager.enabled) (not .Values.tls.existingSecret) -}}
{{- fail "tls.enabled needs tls.existingSecret (a kubernetes.io/tls Secret), or use tls.certManager.enabled" -}}
{{- end -}}
{{- if and .Values.tls.certManager.enabled (not .Values.tls.certManager.issuerRef.name) -}}
{{- fail "tls.certManager.enabled needs tls.certManager.issuerRef.name" -}}
{{- end -}}
{{- if and .Values.tls.clientCA.enabled (not (include "portcullis.tlsEnabled" .)) -}}
{{- fail "tls.clientCA needs TLS on the main listener (tls.enabled or tls.certManager.enabled)" -}}
{{- end -}}
{{- if and .Values.tls.clientCA.enabled (not .Values.tls.clientCA.secret.name) (not .Values.tls.clientCA.configMap.name) -}}
{{- fail "tls.clientCA.enabled needs tls.clientCA.secret.name or tls.clientCA.configMap.name" -}}
{{- end -}}
{{- end -}}

{{/* The paths of the routes with a stdio server: their upstream, or one of their federated servers' (a YAML list). */}}
{{- define "portcullis.stdioRoutes" -}}
{{- $paths := list -}}
{{- range $route := (default list (get (default dict .Values.config) "routes")) -}}
{{- range $upstream := include "portcullis.upstreamsOf" $route | fromYamlArray -}}
{{- if and (kindIs "map" $upstream) (not (has (get $route "route") $paths)) -}}{{- $paths = append $paths (get $route "route") -}}{{- end -}}
{{- end -}}
{{- end -}}
{{- toYaml $paths -}}
{{- end -}}

{{/* Every upstream of one route (a YAML list): its `upstream`, or each of its `servers`' (federation). */}}
{{- define "portcullis.upstreamsOf" -}}
{{- $upstreams := list -}}
{{- if hasKey . "upstream" -}}{{- $upstreams = append $upstreams (get . "upstream") -}}{{- end -}}
{{- range $name, $server := (default dict (get . "servers")) -}}
{{- $upstreams = append $upstreams (get $server "upstream") -}}
{{- end -}}
{{- toYaml $upstreams -}}
{{- end -}}

{{/*
The gateway container's securityContext: the values' own, or — to start stdio servers as another
user — root holding only the three capabilities that needs (its children run with none).
*/}}
{{- define "portcullis.securityContext" -}}
{{- if .Values.stdio.separateUser -}}
{{- $context := deepCopy .Values.securityContext -}}
{{- $_ := set $context "runAsUser" 0 -}}
{{- $_ := set $context "runAsGroup" 0 -}}
{{- $_ := set $context "runAsNonRoot" false -}}
{{- $_ := set $context "capabilities" (dict "drop" (list "ALL") "add" (list "SETUID" "SETGID" "CHOWN")) -}}
{{- toYaml $context -}}
{{- else -}}
{{- toYaml .Values.securityContext -}}
{{- end -}}
{{- end -}}

{{/* Seconds Kubernetes waits before killing the pod: the preStop pause, the drain, and a margin. */}}
{{- define "portcullis.terminationGracePeriodSeconds" -}}
{{- $limits := default dict (get (default dict .Values.config) "limits") -}}
{{- $drainMs := default 30000 (get $limits "drainTimeoutMs") -}}
{{- add (int .Values.preStopSleepSeconds) (div (add (int $drainMs) 999) 1000) 5 -}}
{{- end -}}
