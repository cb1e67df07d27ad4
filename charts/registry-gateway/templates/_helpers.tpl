{{/* Names, labels and the rendered service configurations. */}}

{{- define "rg.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "rg.fullname" -}}
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

{{/* "rg.component" takes (dict "root" $ "c" "gateway"|"tokenserver"). */}}
{{- define "rg.component" -}}
{{- printf "%s-%s" (include "rg.fullname" .root | trunc 50 | trimSuffix "-") .c -}}
{{- end -}}

{{- define "rg.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rg.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .c }}
{{- end -}}

{{- define "rg.labels" -}}
{{ include "rg.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: registry-gateway
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "rg.serviceAccountName" -}}
{{- $sa := (index .root.Values .c).serviceAccount -}}
{{- if $sa.create -}}
{{- default (include "rg.component" .) $sa.name -}}
{{- else -}}
{{- default "default" $sa.name -}}
{{- end -}}
{{- end -}}

{{/* The port of a `listen: host:port` value. */}}
{{- define "rg.port" -}}
{{- $p := splitList ":" (toString .) | last -}}
{{- if not (regexMatch "^[0-9]+$" $p) -}}
{{- fail (printf "listen %q: the chart needs host:port with a numeric port" .) -}}
{{- end -}}
{{- $p -}}
{{- end -}}

{{- define "rg.tokenserver.port" -}}
{{- include "rg.port" (.Values.tokenserver.config.listen | default "0.0.0.0:5001") -}}
{{- end -}}

{{- define "rg.gateway.port" -}}
{{- include "rg.port" (.Values.gateway.config.listen | default "0.0.0.0:5000") -}}
{{- end -}}

{{/* The `metrics` port of a component ("gateway"|"tokenserver" in .c): the
port of its config's `metrics.listen`, or "" when that is unset or on a
loopback address (nothing outside the pod could reach it). */}}
{{- define "rg.metricsPort" -}}
{{- $cfg := (index .root.Values .c).config -}}
{{- $listen := "" -}}
{{- if kindIs "map" $cfg.metrics -}}{{- $listen = $cfg.metrics.listen | default "" | toString -}}{{- end -}}
{{- if $listen -}}
{{- $host := regexReplaceAll ":[^:]*$" $listen "" | trimPrefix "[" | trimSuffix "]" -}}
{{- if not (or (eq $host "localhost") (eq $host "::1") (hasPrefix "127." $host)) -}}
{{- $port := include "rg.port" $listen -}}
{{- if eq $port (include (printf "rg.%s.port" .c) .root) -}}
{{- fail (printf "%s.config.metrics.listen %q: the metrics port must differ from listen's" .c $listen) -}}
{{- end -}}
{{- $port -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The Service of a component's metrics port: ClusterIP always, so that a
LoadBalancer or NodePort type of the customer Service never publishes it. */}}
{{- define "rg.metricsService" -}}
{{- printf "%s-%s-metrics" (include "rg.fullname" .root | trunc 42 | trimSuffix "-") .c -}}
{{- end -}}

{{/* trusted_proxies for a service's config: the config's own when it sets
the key (even to []), else the chart's trustedProxies. */}}
{{- define "rg.trustProxies" -}}
{{- if kindIs "invalid" (index .cfg "trusted_proxies") -}}
{{- $_ := set .cfg "trusted_proxies" (.root.Values.trustedProxies | default list) -}}
{{- end -}}
{{- end -}}

{{- define "rg.tokenserver.url" -}}
{{- printf "http://%s.%s.svc:%s" (include "rg.component" (dict "root" . "c" "tokenserver")) .Release.Namespace (include "rg.tokenserver.port" .) -}}
{{- end -}}

{{/* The token service's configuration: values as given, `service` from host,
`trusted_proxies` from trustedProxies (the gateways and the ingress
controller: both set X-Forwarded-For); admin.listen from
tokenserver.admin, usage from usage. */}}
{{- define "rg.tokenserver.config" -}}
{{- $cfg := deepCopy .Values.tokenserver.config -}}
{{- /* The service's own default is loopback, which no probe or Service reaches. */ -}}
{{- if not $cfg.listen -}}{{- $_ := set $cfg "listen" "0.0.0.0:5001" -}}{{- end -}}
{{- if not $cfg.service -}}{{- $_ := set $cfg "service" .Values.host -}}{{- end -}}
{{- include "rg.trustProxies" (dict "root" . "cfg" $cfg) -}}
{{- if .Values.tokenserver.admin.enabled -}}
{{- $_ := set $cfg "admin" (dict "listen" (printf "0.0.0.0:%s" (include "rg.adminPort" .))) -}}
{{- end -}}
{{- if include "rg.hasConsole" . -}}
{{- /* The console reads the gateway's licence-filtered view in the
cluster, and shows customers the registry's public host. */ -}}
{{- $con := deepCopy $cfg.console -}}
{{- if not $con.registry_url -}}{{- $_ := set $con "registry_url" (include "rg.gateway.url" .) -}}{{- end -}}
{{- if not $con.registry_host -}}{{- $_ := set $con "registry_host" .Values.host -}}{{- end -}}
{{- $_ := set $cfg "console" $con -}}
{{- end -}}
{{- if .Values.usage.enabled -}}
{{- $u := $cfg.usage | default dict -}}
{{- $_ := set $u "secret_file" (include "rg.usageSecretFile" .) -}}
{{- with .Values.usage.retention }}{{- $_ := set $u "retention" . -}}{{- end -}}
{{- with .Values.usage.rollupRetention }}{{- $_ := set $u "rollup_retention" . -}}{{- end -}}
{{- $_ := set $cfg "usage" $u -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{- define "rg.gateway.url" -}}
{{- printf "http://%s.%s.svc:%s" (include "rg.component" (dict "root" . "c" "gateway")) .Release.Namespace (include "rg.gateway.port" .) -}}
{{- end -}}

{{/* "true" when tokenserver.config.console.enabled; the console is served
on the admin listener, so it fails without tokenserver.admin.enabled. */}}
{{- define "rg.hasConsole" -}}
{{- $c := .Values.tokenserver.config.console -}}
{{- if and (kindIs "map" $c) $c.enabled -}}
{{- if not .Values.tokenserver.admin.enabled -}}
{{- fail "tokenserver.config.console.enabled: the console is served on the admin listener; set tokenserver.admin.enabled (and tokenserver.admin.from or its ingress for the browsers)" -}}
{{- end -}}
true
{{- end -}}
{{- end -}}

{{/* "true" when the console signs the vendor in with OpenID Connect
(console.oidc.issuer), whose provider the NetworkPolicy's console.oidc
egress is for. */}}
{{- define "rg.hasConsoleOIDC" -}}
{{- if include "rg.hasConsole" . -}}
{{- $o := .Values.tokenserver.config.console.oidc -}}
{{- if and (kindIs "map" $o) $o.issuer -}}true{{- end -}}
{{- end -}}
{{- end -}}

{{/* "true" when the token service's licence backends include licenses.sql,
which both the admin API and usage recording store into; "" otherwise. */}}
{{- define "rg.hasSQL" -}}
{{- $l := .Values.tokenserver.config.licenses -}}
{{- if and (kindIs "map" $l) (kindIs "map" $l.sql) -}}
{{- if $l.sql -}}true{{- end -}}
{{- end -}}
{{- end -}}

{{/* The admin API's port (tokenserver.admin.port), "" when it is off. The
chart owns admin.listen: set in the config, it would open a listener no
Service, NetworkPolicy rule or NOTES know about. */}}
{{- define "rg.adminPort" -}}
{{- $a := .Values.tokenserver.admin -}}
{{- if hasKey .Values.tokenserver.config "admin" -}}
{{- if not (kindIs "invalid" .Values.tokenserver.config.admin) -}}
{{- fail "tokenserver.config.admin: the chart sets admin.listen; use tokenserver.admin.enabled and tokenserver.admin.port instead" -}}
{{- end -}}
{{- end -}}
{{- if $a.enabled -}}
{{- if not (include "rg.hasSQL" .) -}}
{{- fail "tokenserver.admin.enabled: the admin API administers the accounts of licenses.sql; configure tokenserver.config.licenses.sql (and drop the other backend, e.g. licenses.http: null), or leave the admin API off" -}}
{{- end -}}
{{- $port := toString $a.port -}}
{{- if eq $port (include "rg.tokenserver.port" .) -}}
{{- fail (printf "tokenserver.admin.port %s: the admin API needs a port of its own, not listen's" $port) -}}
{{- end -}}
{{- if eq $port (include "rg.metricsPort" (dict "root" . "c" "tokenserver")) -}}
{{- fail (printf "tokenserver.admin.port %s: the admin API needs a port of its own, not the metrics port" $port) -}}
{{- end -}}
{{- $port -}}
{{- end -}}
{{- end -}}

{{- define "rg.adminService" -}}
{{- printf "%s-tokenserver-admin" (include "rg.fullname" .root | trunc 44 | trimSuffix "-") -}}
{{- end -}}

{{/* Usage recording: one shared secret, mounted into both services at
rg.usageSecretFile. "rg.usageSecretName" is the Secret holding it (the
chart's own, or usage.existingSecret), and fails without licenses.sql. */}}
{{- define "rg.usageSecretName" -}}
{{- if not (include "rg.hasSQL" .) -}}
{{- fail "usage.enabled: usage events are stored in the token service's account database; configure tokenserver.config.licenses.sql (and drop the other backend, e.g. licenses.http: null), or leave usage off" -}}
{{- end -}}
{{- .Values.usage.existingSecret | default (printf "%s-usage" (include "rg.fullname" . | trunc 57 | trimSuffix "-")) -}}
{{- end -}}

{{- define "rg.usageSecretDir" -}}/etc/registry-gateway/usage{{- end -}}
{{- define "rg.usageSecretFile" -}}{{ include "rg.usageSecretDir" . }}/usage.secret{{- end -}}

{{/* The generated shared secret, base64: the one already in the cluster when
the Secret exists (so that an upgrade keeps it), else 64 random
alphanumerics (about 380 bits). It is chosen once per rendering and kept in
.Values, so that the Secret and the pods' checksum/usage agree. Without
access to the cluster (helm template, --dry-run=client) lookup finds
nothing and every rendering makes a new one. */}}
{{- define "rg.usageSecretData" -}}
{{- if not (hasKey .Values "__usageSecret") -}}
{{- $name := include "rg.usageSecretName" . -}}
{{- $found := lookup "v1" "Secret" .Release.Namespace $name -}}
{{- $v := "" -}}
{{- if and $found $found.data -}}{{- $v = index $found.data "secret" | default "" -}}{{- end -}}
{{- if or (not $v) (lt (len (b64dec $v | trim)) 32) -}}{{- $v = randAlphaNum 64 | b64enc -}}{{- end -}}
{{- $_ := set .Values "__usageSecret" $v -}}
{{- end -}}
{{- index .Values "__usageSecret" -}}
{{- end -}}

{{/* A hash of the shared secret, so that both services roll when it
changes: the generated one, or an existing Secret's content when the
cluster can be asked. An existing Secret found with a short or missing key
fails the rendering. */}}
{{- define "rg.usageChecksum" -}}
{{- if .Values.usage.existingSecret -}}
{{- $name := include "rg.usageSecretName" . -}}
{{- $key := .Values.usage.existingSecretKey -}}
{{- $found := lookup "v1" "Secret" .Release.Namespace $name -}}
{{- if $found -}}
{{- $v := index ($found.data | default dict) $key | default "" -}}
{{- if lt (len (b64dec $v | trim)) 32 -}}
{{- fail (printf "usage.existingSecret %s: key %q must hold the shared secret, at least 32 bytes" $name $key) -}}
{{- end -}}
{{- end -}}
{{- printf "%s/%s" $name (toJson ($found.data | default dict)) | sha256sum -}}
{{- else -}}
{{- include "rg.usageSecretData" . | sha256sum -}}
{{- end -}}
{{- end -}}

{{/* The gateway's configuration: values as given, the links to the token
service filled in where left out, so that both agree by default;
`trusted_proxies` from trustedProxies (the ingress controller); with
usage.enabled, usage.endpoint (where left out) and usage.secret_file. */}}
{{- define "rg.gateway.config" -}}
{{- $ts := fromYaml (include "rg.tokenserver.config" .) -}}
{{- $cfg := deepCopy .Values.gateway.config -}}
{{- if not $cfg.listen -}}{{- $_ := set $cfg "listen" "0.0.0.0:5000" -}}{{- end -}}
{{- include "rg.trustProxies" (dict "root" . "cfg" $cfg) -}}
{{- if not $cfg.realm -}}{{- $_ := set $cfg "realm" (printf "https://%s/token" .Values.host) -}}{{- end -}}
{{- if not $cfg.service -}}{{- $_ := set $cfg "service" $ts.service -}}{{- end -}}
{{- if not $cfg.issuer -}}{{- $_ := set $cfg "issuer" $ts.issuer -}}{{- end -}}
{{- if not (hasKey $cfg "token_endpoint") -}}{{- $_ := set $cfg "token_endpoint" (printf "%s/token" (include "rg.tokenserver.url" .)) -}}{{- end -}}
{{- if .Values.usage.enabled -}}
{{- $u := $cfg.usage | default dict -}}
{{- if not (hasKey $u "endpoint") -}}{{- $_ := set $u "endpoint" (printf "%s/internal/v1/usage" (include "rg.tokenserver.url" .)) -}}{{- end -}}
{{- $_ := set $u "secret_file" (include "rg.usageSecretFile" .) -}}
{{- $_ := set $cfg "usage" $u -}}
{{- end -}}
{{- $keys := $cfg.keys | default dict -}}
{{- if and (not $keys.jwks_url) (not $keys.public_keys) -}}
{{- $_ := set $keys "jwks_url" (printf "%s/.well-known/jwks.json" (include "rg.tokenserver.url" .)) -}}
{{- $_ := set $cfg "keys" $keys -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{- define "rg.image" -}}
{{- $repo := (index .root.Values .c).repository -}}
{{- $tag := .root.Values.image.tag | default .root.Chart.AppVersion -}}
{{- if .root.Values.image.registry -}}
{{- printf "%s/%s:%s" .root.Values.image.registry $repo $tag -}}
{{- else -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}
{{- end -}}

{{/* The name of the component's Secret of files, "" when there is none. */}}
{{- define "rg.secretName" -}}
{{- $s := (index .root.Values .c).secret -}}
{{- if $s.files -}}
{{- printf "%s-files" (include "rg.component" .) -}}
{{- else -}}
{{- $s.existingSecret -}}
{{- end -}}
{{- end -}}

{{/* A hash of the Secret's content: the created one from values, an existing
one when the cluster can be asked (install, upgrade; not `helm template`). */}}
{{- define "rg.secretChecksum" -}}
{{- $s := (index .root.Values .c).secret -}}
{{- if $s.files -}}
{{- toJson $s.files | sha256sum -}}
{{- else if $s.existingSecret -}}
{{- $found := lookup "v1" "Secret" .root.Release.Namespace $s.existingSecret -}}
{{- printf "%s/%s" $s.existingSecret (toJson ($found.data | default dict)) | sha256sum -}}
{{- else -}}
{{- "none" | sha256sum -}}
{{- end -}}
{{- end -}}

{{/* A NetworkPolicy egress rule: to the CIDRs and peers (`to`, a
NetworkPolicyPeer list) of a networkPolicy block, on its TCP ports. Nothing
when both are empty: a rule without `to` would reach every address. */}}
{{- define "rg.egress" -}}
{{- if or .cidrs .to -}}
- to:
    {{- range .cidrs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
    {{- with .to }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    {{- range .ports }}
    - protocol: TCP
      port: {{ . }}
    {{- end }}
{{- end }}
{{- end }}
{{- define "rg.dnsEgress" -}}
- ports:
    - protocol: UDP
      port: 53
    - protocol: TCP
      port: 53
{{- end }}

{{/* The NetworkPolicy ingress rule of a component's metrics port: from
networkPolicy.metricsFrom and, with serviceMonitor.enabled, the Prometheus
that scrapes (networkPolicy.prometheus); none when there is no peer or no
metrics port (an empty `from` would admit everyone). */}}
{{- define "rg.metricsIngress" -}}
{{- $from := .root.Values.networkPolicy.metricsFrom | default list -}}
{{- with include "rg.prometheusPeer" .root -}}
{{- $from = append $from (fromYaml .) -}}
{{- end -}}
{{- if and $from (include "rg.metricsPort" .) -}}
- from:
    {{- toYaml $from | nindent 4 }}
  ports:
    - protocol: TCP
      port: metrics
{{- end -}}
{{- end }}

{{/* The NetworkPolicyPeer of the Prometheus that scrapes the ServiceMonitors:
networkPolicy.prometheus' selectors (both set: its pods in its namespaces),
"" without serviceMonitor.enabled or without a selector. */}}
{{- define "rg.prometheusPeer" -}}
{{- if .Values.serviceMonitor.enabled -}}
{{- $p := .Values.networkPolicy.prometheus | default dict -}}
{{- $peer := dict -}}
{{- with $p.namespaceSelector }}{{ $_ := set $peer "namespaceSelector" . }}{{ end -}}
{{- with $p.podSelector }}{{ $_ := set $peer "podSelector" . }}{{ end -}}
{{- with $peer }}{{ toYaml . }}{{ end -}}
{{- end -}}
{{- end }}

{{/* "true" when the token service's licence backends include licenses.http,
whose API the NetworkPolicy's licenseAPI egress is for. */}}
{{- define "rg.hasHTTP" -}}
{{- $l := .Values.tokenserver.config.licenses -}}
{{- if and (kindIs "map" $l) (kindIs "map" $l.http) -}}
{{- if $l.http -}}true{{- end -}}
{{- end -}}
{{- end -}}

{{/* With licenses.sql: "true" when the migration Job runs (refusing SQLite,
a file that each pod would have a copy of), "" otherwise. */}}
{{- define "rg.migrate" -}}
{{- if include "rg.hasSQL" . -}}
{{- $driver := .Values.tokenserver.config.licenses.sql.driver | default "" | toString -}}
{{- if ne $driver "postgres" -}}
{{- fail (printf "tokenserver.config.licenses.sql.driver %q: the chart runs replicas, each pod with a read-only file system: use postgres (SQLite is a file on one host)" $driver) -}}
{{- end -}}
{{- if .Values.tokenserver.migrationJob.enabled -}}true{{- end -}}
{{- end -}}
{{- end -}}
