{{/*
Helpers shared by every template. Most take a context made with
  (dict "root" $ "name" "ledger")
where "name" is one of the services: consensus, ledger, licence, tokens.
*/}}

{{/* The services, in the order they depend on each other. */}}
{{- define "citychain.services" -}}
consensus ledger licence tokens
{{- end }}

{{- define "citychain.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every resource name. Kept to 40 characters so that
"<prefix>-consensus-headless" and the StatefulSets' pod and revision names stay within
Kubernetes' 63-character limits.
*/}}
{{- define "citychain.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* One service's resource name: <fullname>-<service>. */}}
{{- define "citychain.component" -}}
{{- printf "%s-%s" (include "citychain.fullname" .root) .name }}
{{- end }}

{{- define "citychain.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every resource of the release; "name" may be empty for shared resources. */}}
{{- define "citychain.labels" -}}
helm.sh/chart: {{ include "citychain.chart" .root }}
app.kubernetes.io/name: {{ include "citychain.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: citychain
{{- with .name }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The labels that select one service's pods. */}}
{{- define "citychain.selectorLabels" -}}
app.kubernetes.io/name: {{ include "citychain.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{/* The gRPC health service name each service reports SERVING once it is ready. */}}
{{- define "citychain.healthName" -}}
{{- $names := dict
  "consensus" "citychain.consensus.v1.ConsensusService"
  "ledger" "citychain.ledger.v1.LedgerService"
  "licence" "citychain.licence.v1.LicenceService"
  "tokens" "citychain.tokens.v1.TokenService" }}
{{- get $names . }}
{{- end }}

{{/*
StatefulSet or Deployment: the validators always keep a block store of their own; the other
services are StatefulSets with their embedded store, Deployments with FoundationDB.
*/}}
{{- define "citychain.kind" -}}
{{- if or (eq .name "consensus") (eq .root.Values.store.backend "embedded") -}}
StatefulSet
{{- else -}}
Deployment
{{- end }}
{{- end }}

{{/* Whether the service's replica count is left to a HorizontalPodAutoscaler. */}}
{{- define "citychain.autoscaled" -}}
{{- $svc := index .root.Values .name }}
{{- if and (ne .name "consensus") $svc.autoscaling.enabled -}}
true
{{- end }}
{{- end }}

{{/* The fewest replicas the service runs with: minReplicas under an HPA, else replicas. */}}
{{- define "citychain.minReplicas" -}}
{{- $svc := index .root.Values .name }}
{{- if include "citychain.autoscaled" . }}
{{- $svc.autoscaling.minReplicas }}
{{- else }}
{{- $svc.replicas }}
{{- end }}
{{- end }}

{{- define "citychain.image" -}}
{{- $image := .Values.image }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository (default .Chart.AppVersion $image.tag) }}
{{- end }}
{{- end }}

{{- define "citychain.serviceAccountName" -}}
{{- if .root.Values.serviceAccount.create }}
{{- include "citychain.component" . }}
{{- else }}
{{- default "default" .root.Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* host:port for a listener, with brackets around an IPv6 address. */}}
{{- define "citychain.listen" -}}
{{- if contains ":" .host }}
{{- printf "[%s]:%d" .host (int .port) }}
{{- else }}
{{- printf "%s:%d" .host (int .port) }}
{{- end }}
{{- end }}

{{/* The ConfigMap holding the genesis file. */}}
{{- define "citychain.genesisConfigMap" -}}
{{- if .Values.genesis.content }}
{{- printf "%s-genesis" (include "citychain.fullname" .) }}
{{- else }}
{{- required "genesis.existingConfigMap or genesis.content is required" .Values.genesis.existingConfigMap }}
{{- end }}
{{- end }}

{{- define "citychain.genesisKey" -}}
{{- if .Values.genesis.content -}}
genesis.json
{{- else -}}
{{ .Values.genesis.key }}
{{- end }}
{{- end }}

{{/*
Whether the service's pods mount anything under /etc/citychain/nats (credentials, an nkey
seed, CA, client certificate). Validators get their nkey seed from their init container.
*/}}
{{- define "citychain.natsFiles" -}}
{{- $v := .root.Values -}}
{{- if or $v.nats.credentials.existingSecret $v.nats.tls.enabled (and $v.nats.nkeys.existingSecret (ne .name "consensus")) -}}
true
{{- end }}
{{- end }}

{{/*
The service's TOML configuration, in exactly the shape `citychain serve` reads: the shared
sections ([service], [grpc], [metrics], [log]) and the service's own ([chain], [<service>],
[nats]). The code refuses unknown keys, so every key here is one of its config structs'.
Files are mounted at fixed paths under /etc/citychain, state lives under /var/lib/citychain.
*/}}
{{- define "citychain.config" -}}
{{- $root := .root }}
{{- $name := .name }}
{{- $v := $root.Values }}
{{- $svc := index $v $name -}}
# {{ $name }}.toml, rendered by the citychain chart. The pod's CITYCHAIN_<SECTION>__<KEY>
# environment variables override keys per pod.
[service]
name = {{ $name | toJson }}

[grpc]
listen = {{ include "citychain.listen" (dict "host" $v.grpc.listenAddress "port" $svc.ports.grpc) | toJson }}
max_request_bytes = {{ int64 $v.grpc.maxRequestBytes }}
{{- if and $v.grpc.pageTokens.existingSecret (ne $name "consensus") }}
page_token_secret_file = "/etc/citychain/page-tokens/secret"
{{- end }}
{{- if $v.grpc.tls.enabled }}

[grpc.tls]
cert = "/etc/citychain/tls/tls.crt"
key = "/etc/citychain/tls/tls.key"
{{- if $v.grpc.tls.clientAuth }}
client_ca = "/etc/citychain/tls/ca.crt"
{{- end }}
{{- end }}

[metrics]
enabled = {{ $v.metrics.enabled }}
listen = {{ include "citychain.listen" (dict "host" $v.grpc.listenAddress "port" $svc.ports.metrics) | toJson }}

[log]
format = {{ $v.log.format | toJson }}
{{- with $v.log.filter }}
filter = {{ . | toJson }}
{{- end }}

[chain]
genesis = "/etc/citychain/genesis/genesis.json"
{{- if eq $name "consensus" }}

[consensus]
validator_key = "/run/citychain/validator/validator.json"
data_dir = "/var/lib/citychain/consensus"
max_block_txs = {{ int64 $svc.config.maxBlockTxs }}
max_block_bytes = {{ int64 $svc.config.maxBlockBytes }}
heartbeat_ms = {{ int64 $svc.config.heartbeatMs }}
max_clock_drift_ms = {{ int64 $svc.config.maxClockDriftMs }}
max_ttl = {{ int64 $v.chain.maxTtl }}
mempool_max_txs = {{ int64 $svc.config.mempoolMaxTxs }}
mempool_max_bytes = {{ int64 $svc.config.mempoolMaxBytes }}
stream_replicas = {{ int64 $v.nats.streamReplicas }}
{{- else if eq $name "ledger" }}

[ledger]
data_dir = "/var/lib/citychain/ledger"
max_ttl = {{ int64 $v.chain.maxTtl }}
repair_timeout_ms = {{ int64 $svc.config.repairTimeoutMs }}
stream_replicas = {{ int64 $v.nats.streamReplicas }}
{{- else if eq $name "licence" }}

[licence]
data_dir = "/var/lib/citychain/licence"
key_file = "/etc/citychain/licence/licence.key"
max_ttl = {{ int64 $v.chain.maxTtl }}
repair_timeout_ms = {{ int64 $svc.config.repairTimeoutMs }}
stream_replicas = {{ int64 $v.nats.streamReplicas }}
payments_consumer = {{ $svc.config.paymentsConsumerPrefix | toJson }}
{{- else if eq $name "tokens" }}

[tokens]
data_dir = "/var/lib/citychain/tokens"
key_file = "/etc/citychain/tokens/service.tokens.json"
repair_timeout_ms = {{ int64 $svc.config.repairTimeoutMs }}
stream_replicas = {{ int64 $v.nats.streamReplicas }}
{{- end }}

[nats]
urls = {{ $v.nats.url | toJson }}
connect_timeout = {{ $v.nats.connectTimeout | toJson }}
request_timeout = {{ $v.nats.requestTimeout | toJson }}
{{- if $v.nats.credentials.existingSecret }}
creds_file = "/etc/citychain/nats/nats.creds"
{{- else if $v.nats.nkeys.existingSecret }}
{{- if eq $name "consensus" }}
nkey_seed_file = "/run/citychain/validator/nats.nk"
{{- else }}
nkey_seed_file = "/etc/citychain/nats/user.nk"
{{- end }}
{{- end }}
{{- if $v.nats.tls.enabled }}
tls_ca_file = "/etc/citychain/nats/ca.crt"
{{- if $v.nats.tls.clientCertificate }}
tls_client_cert_file = "/etc/citychain/nats/tls.crt"
tls_client_key_file = "/etc/citychain/nats/tls.key"
{{- end }}
require_tls = {{ $v.nats.tls.require }}
{{- end }}
{{- end }}

{{/* The hardened container security context every container gets. */}}
{{- define "citychain.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ int64 .Values.securityContext.runAsUser }}
runAsGroup: {{ int64 .Values.securityContext.runAsGroup }}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The pod security context every pod gets. */}}
{{- define "citychain.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ int64 .Values.securityContext.runAsUser }}
runAsGroup: {{ int64 .Values.securityContext.runAsGroup }}
fsGroup: {{ int64 .Values.securityContext.fsGroup }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Checks of combinations the schema cannot express; fails the render with the reason. */}}
{{- define "citychain.validate" -}}
{{- $v := .Values }}
{{- if and $v.grpc.tls.enabled (not $v.grpc.tls.existingSecret) }}
{{- fail "grpc.tls.enabled needs grpc.tls.existingSecret (a Secret with tls.crt, tls.key and, for clientAuth, ca.crt)" }}
{{- end }}
{{- if and $v.grpc.tls.enabled (not $v.metrics.enabled) }}
{{- fail "grpc.tls.enabled needs metrics.enabled: the kubelet's gRPC probes cannot speak TLS, so the probes use the metrics port's /healthz" }}
{{- end }}
{{- if and $v.nats.credentials.existingSecret $v.nats.nkeys.existingSecret }}
{{- fail "nats.credentials.existingSecret and nats.nkeys.existingSecret are two ways to authenticate to NATS: set one" }}
{{- end }}
{{- if and $v.nats.tls.enabled (not $v.nats.tls.existingSecret) }}
{{- fail "nats.tls.enabled needs nats.tls.existingSecret (a Secret with the CA and, for clientCertificate, tls.crt and tls.key)" }}
{{- end }}
{{- if and $v.consensus.enabled (not $v.consensus.validatorKeys.existingSecret) }}
{{- fail "consensus.validatorKeys.existingSecret is required: validator keys come only from a Secret" }}
{{- end }}
{{- if and $v.licence.enabled (not $v.licence.keySecret.existingSecret) }}
{{- fail "licence.keySecret.existingSecret is required: the licence service's key comes only from a Secret" }}
{{- end }}
{{- if and $v.tokens.enabled (not $v.tokens.keySecret.existingSecret) }}
{{- fail "tokens.keySecret.existingSecret is required: the token service's identity key comes only from a Secret" }}
{{- end }}
{{- if or (contains "citychain-key/v1" $v.genesis.content) (contains "\"secret\"" $v.genesis.content) }}
{{- fail "genesis.content holds a key file's secret; genesis must hold public keys only" }}
{{- end }}
{{- range $name := splitList " " (include "citychain.services" .) }}
{{- $svc := index $v $name }}
{{- if and $svc.enabled (eq (int $svc.ports.grpc) (int $svc.ports.metrics)) }}
{{- fail (printf "%s.ports.grpc and %s.ports.metrics must differ" $name $name) }}
{{- end }}
{{- if and (ne $name "consensus") $svc.enabled $svc.autoscaling.enabled }}
{{- if gt (int $svc.autoscaling.minReplicas) (int $svc.autoscaling.maxReplicas) }}
{{- fail (printf "%s.autoscaling.minReplicas is above %s.autoscaling.maxReplicas" $name $name) }}
{{- end }}
{{- if and (eq (int $svc.autoscaling.targetCPUUtilizationPercentage) 0) (eq (int $svc.autoscaling.targetMemoryUtilizationPercentage) 0) }}
{{- fail (printf "%s.autoscaling needs targetCPUUtilizationPercentage or targetMemoryUtilizationPercentage" $name) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
