//! The Helm chart (helm/citychain) as Kubernetes would receive it: rendered by the real helm
//! binary with the chart's default values, deploy/values-small.yaml and
//! deploy/values-production.yaml (plus a FoundationDB and a gRPC-TLS variant), then checked
//! for what the deployment issue promises: non-root containers on read-only root filesystems,
//! probes and resources on every workload, no secrets in ConfigMaps, never an HPA and a replica
//! count on one workload, one workload per service, four validators with four distinct keys.
//!
//! The chart and the code must not drift apart: every rendered configuration file is loaded
//! with the service's own configuration type (which refuses unknown keys), and each service is
//! started from its rendered configuration on the port the chart probes, where it must answer
//! SERVING for the health service name the readiness probe asks for.
//!
//! helm comes from `scripts/helm-check` (installed into ~/.cache/citychain-tools) or HELM_BIN;
//! without it these tests fail, saying so.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use citychain_runtime::{ConfigLoader, ServiceConfig, Shutdown};
use citychain_scenarios::Network;
use citychain_testkit::genesis::network;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_yaml::Value;
use tonic_health::pb::health_check_response::ServingStatus;

/// The services, each of which must be its own workload.
const SERVICES: [&str; 4] = ["consensus", "ledger", "licence", "tokens"];

/// The value sets the chart is rendered with: a name and helm's arguments.
const VALUE_SETS: [(&str, &[&str]); 5] = [
    ("default", &[]),
    ("small", &["-f", "deploy/values-small.yaml"]),
    ("production", &["-f", "deploy/values-production.yaml"]),
    (
        "production-foundationdb",
        &[
            "-f",
            "deploy/values-production.yaml",
            "--set",
            "store.backend=foundationdb",
        ],
    ),
    (
        "grpc-tls",
        &[
            "--set",
            "grpc.tls.enabled=true",
            "--set",
            "grpc.tls.existingSecret=citychain-grpc-tls",
            "--set",
            "grpc.tls.clientAuth=true",
        ],
    ),
];

const PRODUCTION: &[&str] = &["-f", "deploy/values-production.yaml"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the repository")
        .to_path_buf()
}

/// The helm binary: HELM_BIN, else where scripts/helm-check installs it.
fn helm() -> PathBuf {
    let path = match std::env::var_os("HELM_BIN") {
        Some(path) => PathBuf::from(path),
        None => {
            let home = std::env::var_os("HOME").expect("HOME is set");
            Path::new(&home).join(".cache/citychain-tools/helm")
        }
    };
    assert!(
        path.is_file(),
        "no helm binary at {}: run scripts/helm-check, which installs it there (or point \
         HELM_BIN at one)",
        path.display()
    );
    path
}

/// One rendered Kubernetes resource.
#[derive(Debug, Clone)]
struct Resource {
    kind: String,
    name: String,
    body: Value,
}

impl Resource {
    fn is_workload(&self) -> bool {
        self.kind == "Deployment" || self.kind == "StatefulSet"
    }

    /// The pod spec of a workload or a Pod.
    fn pod_spec(&self) -> Option<&Value> {
        match self.kind.as_str() {
            "Deployment" | "StatefulSet" => Some(&self.body["spec"]["template"]["spec"]),
            "Pod" => Some(&self.body["spec"]),
            _ => None,
        }
    }

    fn component(&self) -> Option<&str> {
        self.body["metadata"]["labels"]["app.kubernetes.io/component"].as_str()
    }
}

/// `helm template` of the chart with `args`, as resources.
fn render(args: &[&str]) -> Vec<Resource> {
    let output = Command::new(helm())
        .arg("template")
        .arg("citychain")
        .arg("helm/citychain")
        .args(["--namespace", "citychain"])
        .args(args)
        .current_dir(repo())
        .output()
        .expect("helm runs");
    assert!(
        output.status.success(),
        "helm template {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("helm writes UTF-8");
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).expect("helm renders valid YAML"))
        .filter(|doc| !doc.is_null())
        .map(|body| Resource {
            kind: body["kind"]
                .as_str()
                .expect("every resource has a kind")
                .to_owned(),
            name: body["metadata"]["name"]
                .as_str()
                .expect("every resource has a name")
                .to_owned(),
            body,
        })
        .collect()
}

/// Every value set, rendered.
fn every_rendering() -> Vec<(&'static str, Vec<Resource>)> {
    VALUE_SETS
        .iter()
        .map(|(name, args)| (*name, render(args)))
        .collect()
}

fn items(value: &Value) -> &[Value] {
    value.as_sequence().map_or(&[], Vec::as_slice)
}

/// The containers and init containers of a pod spec.
fn containers(pod: &Value) -> Vec<&Value> {
    items(&pod["containers"])
        .iter()
        .chain(items(&pod["initContainers"]))
        .collect()
}

/// The workload of `service`.
fn workload<'a>(resources: &'a [Resource], service: &str) -> &'a Resource {
    let found: Vec<&Resource> = resources
        .iter()
        .filter(|r| r.is_workload() && r.component() == Some(service))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{service} must have exactly one workload, found {:?}",
        found.iter().map(|r| &r.name).collect::<Vec<_>>()
    );
    found[0]
}

/// The service's own container in its workload.
fn main_container<'a>(workload: &'a Resource, service: &str) -> &'a Value {
    items(&workload.pod_spec().expect("a workload")["containers"])
        .iter()
        .find(|c| c["name"].as_str() == Some(service))
        .unwrap_or_else(|| panic!("{} has no container named {service}", workload.name))
}

/// The TOML configuration rendered for `service`.
fn config_text(resources: &[Resource], service: &str) -> String {
    resources
        .iter()
        .filter(|r| r.kind == "ConfigMap")
        .find_map(|r| r.body["data"][format!("{service}.toml").as_str()].as_str())
        .unwrap_or_else(|| panic!("no ConfigMap holds {service}.toml"))
        .to_owned()
}

/// The `CITYCHAIN_*` overrides the chart sets on the container, for the pod `pod_name`.
fn env_overrides(container: &Value, pod_name: &str) -> Vec<(String, String)> {
    items(&container["env"])
        .iter()
        .filter_map(|var| {
            let name = var["name"].as_str()?;
            let value = var["value"].as_str()?;
            name.starts_with("CITYCHAIN_")
                .then(|| (name.to_owned(), value.replace("$(POD_NAME)", pod_name)))
        })
        .collect()
}

/// A gRPC probe's port and health service name (empty when the probe names none).
fn grpc_probe(container: &Value, probe: &str) -> (u16, String) {
    let grpc = &container[probe]["grpc"];
    let port = grpc["port"]
        .as_u64()
        .unwrap_or_else(|| panic!("no gRPC {probe} port"));
    let service = grpc["service"].as_str().unwrap_or_default();
    (u16::try_from(port).expect("a TCP port"), service.to_owned())
}

/// The readiness probe's gRPC port and service name.
fn readiness(container: &Value) -> (u16, String) {
    grpc_probe(container, "readinessProbe")
}

/// The health service name each service reports SERVING once it is ready.
fn health_name(service: &str) -> &'static str {
    match service {
        "consensus" => citychain_consensus::SERVICE_NAME,
        "ledger" => citychain_ledger::SERVICE_NAME,
        "licence" => citychain_licence::SERVICE_NAME,
        "tokens" => citychain_tokens::SERVICE_NAME,
        other => panic!("unknown service {other}"),
    }
}

#[test]
fn every_container_runs_as_non_root_on_a_read_only_root_filesystem() {
    for (set, resources) in every_rendering() {
        let pods: Vec<&Resource> = resources
            .iter()
            .filter(|r| r.pod_spec().is_some())
            .collect();
        assert!(pods.len() >= SERVICES.len(), "{set}: too few pods");
        for resource in pods {
            let pod = resource.pod_spec().expect("a pod");
            let at = format!("{set}: {} {}", resource.kind, resource.name);
            let pod_context = &pod["securityContext"];
            assert_eq!(pod_context["runAsNonRoot"].as_bool(), Some(true), "{at}");
            assert_eq!(
                pod_context["seccompProfile"]["type"].as_str(),
                Some("RuntimeDefault"),
                "{at}"
            );
            assert_eq!(
                pod["automountServiceAccountToken"].as_bool(),
                Some(false),
                "{at}"
            );
            for container in containers(pod) {
                let at = format!("{at} container {:?}", container["name"]);
                let context = &container["securityContext"];
                assert_eq!(context["runAsNonRoot"].as_bool(), Some(true), "{at}");
                let user = context["runAsUser"]
                    .as_u64()
                    .or(pod_context["runAsUser"].as_u64());
                assert!(user.is_some_and(|uid| uid != 0), "{at}: runs as root");
                assert_eq!(
                    context["readOnlyRootFilesystem"].as_bool(),
                    Some(true),
                    "{at}"
                );
                assert_eq!(
                    context["allowPrivilegeEscalation"].as_bool(),
                    Some(false),
                    "{at}"
                );
                assert!(
                    items(&context["capabilities"]["drop"])
                        .iter()
                        .any(|c| c.as_str() == Some("ALL")),
                    "{at}: capabilities are not all dropped"
                );
                assert_eq!(
                    context["seccompProfile"]["type"].as_str(),
                    Some("RuntimeDefault"),
                    "{at}"
                );
                assert!(
                    context["privileged"].as_bool() != Some(true),
                    "{at}: privileged"
                );
            }
        }
    }
}

#[test]
fn every_workload_has_probes_and_resources() {
    for (set, resources) in every_rendering() {
        for resource in resources.iter().filter(|r| r.is_workload()) {
            let pod = resource.pod_spec().expect("a workload");
            for container in items(&pod["containers"]) {
                let at = format!("{set}: {} container {:?}", resource.name, container["name"]);
                for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
                    assert!(container[probe].is_mapping(), "{at}: no {probe}");
                }
                let resources = &container["resources"];
                for (kind, name) in [
                    ("requests", "cpu"),
                    ("requests", "memory"),
                    ("limits", "memory"),
                ] {
                    assert!(
                        !resources[kind][name].is_null(),
                        "{at}: no resources.{kind}.{name}"
                    );
                }
            }
            for container in items(&pod["initContainers"]) {
                let at = format!(
                    "{set}: {} init container {:?}",
                    resource.name, container["name"]
                );
                assert!(
                    !container["resources"]["limits"]["memory"].is_null(),
                    "{at}: no memory limit"
                );
            }
        }
    }
}

/// What a secret looks like in text: key files, PEM keys, NATS credentials and seeds.
fn looks_secret(text: &str) -> Option<&'static str> {
    const MARKERS: [&str; 6] = [
        "citychain-key/v1",
        "\"secret\"",
        "PRIVATE KEY",
        "NATS USER JWT",
        "USER NKEY SEED",
        "-----BEGIN",
    ];
    if let Some(marker) = MARKERS.iter().find(|m| text.contains(*m)) {
        return Some(marker);
    }
    // An nkey seed: S, then U/A/O/N/C/P/X, then at least 56 base32 characters.
    let seed = text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|word| {
            word.len() >= 58
                && word.starts_with('S')
                && word
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c))
        });
    seed.then_some("an nkey seed")
}

#[test]
fn configmaps_hold_no_secrets_and_the_chart_creates_no_secrets() {
    for (set, resources) in every_rendering() {
        assert!(
            !resources.iter().any(|r| r.kind == "Secret"),
            "{set}: the chart must never create a Secret (keys never come from values)"
        );
        for map in resources.iter().filter(|r| r.kind == "ConfigMap") {
            let data = map.body["data"].as_mapping().expect("ConfigMap data");
            for (key, value) in data {
                let text = value.as_str().unwrap_or_default();
                if let Some(marker) = looks_secret(text) {
                    panic!("{set}: ConfigMap {} key {key:?} holds {marker}", map.name);
                }
            }
        }
        // The secrets the pods mount are the Secrets named in the values, by reference only.
        for resource in resources.iter().filter(|r| r.pod_spec().is_some()) {
            let pod = resource.pod_spec().expect("a pod");
            for container in containers(pod) {
                for var in items(&container["env"]) {
                    let value = var["value"].as_str().unwrap_or_default();
                    assert!(
                        looks_secret(value).is_none(),
                        "{set}: {} env {:?} holds a secret",
                        resource.name,
                        var["name"]
                    );
                }
            }
        }
    }
    // A key file given as genesis is refused outright.
    let key = citychain_kernel::KeyPair::from_seeds(None, &[1; 32], &[2; 32]).to_key_file();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("genesis.json"), key).unwrap();
    let genesis = format!(
        "genesis.content={}",
        dir.path().join("genesis.json").display()
    );
    let stderr = render_fails(&["--set-file", &genesis]);
    assert!(stderr.contains("genesis.content"), "{stderr}");
}

/// Renders the chart with `args`, expecting helm to refuse; returns what it said.
fn render_fails(args: &[&str]) -> String {
    let output = Command::new(helm())
        .args(["template", "citychain", "helm/citychain"])
        .args(args)
        .current_dir(repo())
        .output()
        .expect("helm runs");
    assert!(!output.status.success(), "helm rendered {args:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The `[nats]` seed file `service`'s rendered configuration names.
fn nkey_seed_file(resources: &[Resource], service: &str) -> Option<String> {
    let config: ServiceConfig<BTreeMap<String, serde_json::Value>> =
        load(&config_text(resources, service), &[]);
    config.extra["nats"]
        .get("nkey_seed_file")
        .map(|file| file.as_str().expect("a path").to_owned())
}

/// The Secret items (key, path) a pod volume takes, from a `secret` volume or from every
/// secret source of a projected one.
fn secret_items<'a>(volume: &'a Value, secret: &str) -> Vec<(&'a str, &'a str)> {
    let item_pairs = |items: &'a Value| {
        self::items(items)
            .iter()
            .map(|i| (i["key"].as_str().unwrap(), i["path"].as_str().unwrap()))
            .collect::<Vec<_>>()
    };
    if volume["secret"]["secretName"].as_str() == Some(secret) {
        return item_pairs(&volume["secret"]["items"]);
    }
    items(&volume["projected"]["sources"])
        .iter()
        .filter(|source| source["secret"]["name"].as_str() == Some(secret))
        .flat_map(|source| item_pairs(&source["secret"]["items"]))
        .collect()
}

#[test]
fn production_gives_each_validator_and_service_its_own_nats_user() {
    const USERS: &str = "citychain-nats-users";
    let resources = render(PRODUCTION);
    for service in SERVICES {
        let workload = workload(&resources, service);
        let pod = workload.pod_spec().expect("a pod");
        let volumes = items(&pod["volumes"]);
        let taken: Vec<(&str, &str)> = volumes
            .iter()
            .flat_map(|v| secret_items(v, USERS))
            .collect();
        let container = main_container(workload, service);
        let mounts: Vec<&str> = items(&container["volumeMounts"])
            .iter()
            .filter_map(|m| m["name"].as_str())
            .collect();
        if service == "consensus" {
            // One seed per ordinal, copied by the init container next to the validator key;
            // the validator's container never sees the other validators' seeds.
            let expected: Vec<(String, String)> = (0..4)
                .map(|i| (format!("validator-{i}.nk"), format!("validator-{i}.nk")))
                .collect();
            let taken: Vec<(String, String)> = taken
                .iter()
                .map(|(k, p)| (k.to_string(), p.to_string()))
                .collect();
            assert_eq!(taken, expected);
            assert!(!mounts.contains(&"validator-nkeys"), "{mounts:?}");
            let init = items(&pod["initContainers"])
                .iter()
                .find(|c| c["name"].as_str() == Some("validator-key"))
                .expect("the validator-key init container");
            let script = init["command"][2].as_str().expect("a script");
            assert!(
                script.contains("validator-${ordinal}.nk")
                    && script.contains("/run/citychain/validator/nats.nk"),
                "{script}"
            );
            assert_eq!(
                nkey_seed_file(&resources, service).as_deref(),
                Some("/run/citychain/validator/nats.nk")
            );
        } else {
            // Its own seed only, where its configuration looks.
            assert_eq!(
                taken,
                [(format!("{service}.nk").as_str(), "user.nk")],
                "{service}"
            );
            assert!(mounts.contains(&"nats"), "{service}: {mounts:?}");
            assert_eq!(
                nkey_seed_file(&resources, service).as_deref(),
                Some("/etc/citychain/nats/user.nk"),
                "{service}"
            );
        }
    }
    // With nkeys and no TLS, a service's NATS volume holds its seed alone, and a validator
    // mounts none (its seed comes from its init container).
    let plain = render(&[
        "-f",
        "deploy/values-production.yaml",
        "--set",
        "nats.tls.enabled=false",
        "--set",
        "nats.url=nats://nats.nats.svc.cluster.local:4222",
    ]);
    for service in SERVICES {
        let pod = workload(&plain, service).pod_spec().expect("a pod");
        let nats = items(&pod["volumes"])
            .iter()
            .find(|v| v["name"].as_str() == Some("nats"));
        if service == "consensus" {
            assert!(nats.is_none(), "{nats:?}");
        } else {
            let nats = nats.expect("a nats volume");
            let sources = items(&nats["projected"]["sources"]);
            assert_eq!(sources.len(), 1, "{service}: {sources:?}");
            assert_eq!(
                secret_items(nats, USERS),
                [(format!("{service}.nk").as_str(), "user.nk")]
            );
        }
        assert!(
            nkey_seed_file(&plain, service).is_some(),
            "{service}: a seed file"
        );
    }

    // Two ways to authenticate at once is refused, naming both.
    let stderr = render_fails(&[
        "-f",
        "deploy/values-production.yaml",
        "--set",
        "nats.credentials.existingSecret=citychain-nats",
    ]);
    assert!(
        stderr.contains("nats.credentials.existingSecret and nats.nkeys.existingSecret"),
        "{stderr}"
    );
}

#[test]
fn an_hpa_and_a_replica_count_are_never_set_for_one_workload() {
    for (set, resources) in every_rendering() {
        let scaled: BTreeSet<(String, String)> = resources
            .iter()
            .filter(|r| r.kind == "HorizontalPodAutoscaler")
            .map(|hpa| {
                assert_eq!(
                    hpa.body["apiVersion"].as_str(),
                    Some("autoscaling/v2"),
                    "{set}: {}",
                    hpa.name
                );
                let target = &hpa.body["spec"]["scaleTargetRef"];
                (
                    target["kind"].as_str().expect("a target kind").to_owned(),
                    target["name"].as_str().expect("a target name").to_owned(),
                )
            })
            .collect();
        for (kind, name) in &scaled {
            let workload = resources
                .iter()
                .find(|r| &r.kind == kind && &r.name == name)
                .unwrap_or_else(|| panic!("{set}: the HPA targets {kind} {name}, which is absent"));
            assert!(
                workload.body["spec"]["replicas"].is_null(),
                "{set}: {kind} {name} has both an HPA and spec.replicas"
            );
        }
        for workload in resources.iter().filter(|r| r.is_workload()) {
            let key = (workload.kind.clone(), workload.name.clone());
            if !scaled.contains(&key) {
                assert!(
                    workload.body["spec"]["replicas"].as_u64().is_some(),
                    "{set}: {} has neither an HPA nor replicas",
                    workload.name
                );
            }
        }
    }
}

#[test]
fn production_gives_every_service_its_own_workload_and_four_validators_distinct_keys() {
    let resources = render(PRODUCTION);
    let mut names = BTreeSet::new();
    for service in SERVICES {
        let workload = workload(&resources, service);
        assert!(
            names.insert(workload.name.clone()),
            "{service} shares a workload"
        );
        // Its pods are selected by its own component label only.
        assert_eq!(
            workload.body["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]
                .as_str(),
            Some(service),
            "{service}: selector"
        );
        let container = main_container(workload, service);
        let args: Vec<&str> = items(&container["args"])
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(args[..2], ["serve", service], "{service}: args {args:?}");
    }
    // ledger, licence and tokens scale alone: each has an HPA of its own.
    for service in ["ledger", "licence", "tokens"] {
        let target = workload(&resources, service);
        let hpas = resources
            .iter()
            .filter(|r| r.kind == "HorizontalPodAutoscaler")
            .filter(|r| {
                r.body["spec"]["scaleTargetRef"]["name"].as_str() == Some(target.name.as_str())
            })
            .count();
        assert_eq!(hpas, 1, "{service}: HPAs");
    }

    let consensus = workload(&resources, "consensus");
    assert_eq!(consensus.kind, "StatefulSet");
    assert_eq!(consensus.body["spec"]["replicas"].as_u64(), Some(4));
    let pod = consensus.pod_spec().expect("a pod");
    let volumes = items(&pod["volumes"]);
    let keys = volumes
        .iter()
        .find(|v| v["name"].as_str() == Some("validator-keys"))
        .expect("a validator-keys volume");
    assert!(
        keys["secret"]["secretName"].as_str().is_some(),
        "keys come from a Secret"
    );
    let sources: BTreeSet<&str> = items(&keys["secret"]["items"])
        .iter()
        .map(|item| item["key"].as_str().expect("an item key"))
        .collect();
    let expected: BTreeSet<String> = (0..4).map(|i| format!("validator-{i}.json")).collect();
    assert_eq!(
        sources,
        expected.iter().map(String::as_str).collect(),
        "one distinct key per ordinal"
    );
    // The init container picks its ordinal's key; the validator sees only that one.
    let init = items(&pod["initContainers"])
        .iter()
        .find(|c| c["name"].as_str() == Some("validator-key"))
        .expect("the validator-key init container");
    let script = items(&init["command"])
        .iter()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        script.contains("${POD_NAME##*-}") && script.contains("validator-${ordinal}.json"),
        "the init container selects the key by ordinal: {script}"
    );
    let validator = main_container(consensus, "consensus");
    let mounts: Vec<&str> = items(&validator["volumeMounts"])
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert!(
        !mounts.contains(&"validator-keys"),
        "the validator container must not see the other validators' keys"
    );
    assert!(mounts.contains(&"validator-key"), "{mounts:?}");
    let claims = items(&consensus.body["spec"]["volumeClaimTemplates"]);
    assert_eq!(claims.len(), 1, "a block store volume per validator");

    // A PodDisruptionBudget for every service with more than one pod.
    for service in SERVICES {
        let pdbs = resources
            .iter()
            .filter(|r| r.kind == "PodDisruptionBudget" && r.component() == Some(service))
            .count();
        assert_eq!(pdbs, 1, "{service}: PodDisruptionBudgets");
    }
}

/// Loads a rendered configuration with the service's own type, refusing unknown keys.
fn load<T: DeserializeOwned>(text: &str, env: &[(String, String)]) -> ServiceConfig<T> {
    ConfigLoader::new()
        .toml(text)
        .env(env.to_vec())
        .load()
        .unwrap_or_else(|err| panic!("the rendered configuration is refused: {err}\n{text}"))
}

#[test]
fn rendered_configurations_load_with_each_services_own_type() {
    for (set, resources) in every_rendering() {
        for service in SERVICES {
            let text = config_text(&resources, service);
            let workload = workload(&resources, service);
            let container = main_container(workload, service);
            let env = env_overrides(container, &format!("{}-0", workload.name));
            let grpc = match service {
                "consensus" => {
                    let config = load::<citychain_consensus::ConsensusConfig>(&text, &env);
                    assert_eq!(
                        config.extra.consensus.validator_key,
                        Path::new("/run/citychain/validator/validator.json")
                    );
                    config.grpc
                }
                "ledger" => load::<citychain_ledger::LedgerConfig>(&text, &env).grpc,
                "licence" => {
                    let config = load::<citychain_licence::LicenceConfig>(&text, &env);
                    assert_eq!(
                        config.extra.licence.payments_consumer,
                        format!("licence-payments-{}-0", workload.name),
                        "{set}: each licence replica reads payments with its own consumer"
                    );
                    config.grpc
                }
                "tokens" => load::<citychain_tokens::TokensConfig>(&text, &env).grpc,
                other => panic!("unknown service {other}"),
            };
            // Every replica of a list API reads one page token secret, from the Secret the
            // values name, mounted where the configuration looks.
            let secret = grpc.page_token_secret_file.as_deref();
            if set.starts_with("production") && service != "consensus" {
                assert_eq!(
                    secret,
                    Some(Path::new("/etc/citychain/page-tokens/secret")),
                    "{set}: {service}"
                );
                let mounted = items(&container["volumeMounts"])
                    .iter()
                    .any(|m| m["mountPath"].as_str() == Some("/etc/citychain/page-tokens"));
                let volume = items(&workload.body["spec"]["template"]["spec"]["volumes"])
                    .iter()
                    .find(|v| v["name"].as_str() == Some("page-tokens"))
                    .map(|v| v["secret"]["secretName"].as_str());
                assert!(mounted, "{set}: {service} mounts the page token secret");
                assert_eq!(
                    volume,
                    Some(Some("citychain-page-tokens")),
                    "{set}: {service}"
                );
            } else if set == "default" || service == "consensus" {
                assert_eq!(secret, None, "{set}: {service}");
            }
            // The probes and the Service ask the port the service listens on.
            let port = items(&container["ports"])
                .iter()
                .find(|p| p["name"].as_str() == Some("grpc"))
                .and_then(|p| p["containerPort"].as_u64())
                .expect("a grpc container port");
            assert_eq!(u64::from(grpc.listen.port()), port, "{set}: {service}");
            if grpc.tls.is_none() {
                let (probe_port, name) = readiness(container);
                assert_eq!(
                    u64::from(probe_port),
                    port,
                    "{set}: {service} readiness port"
                );
                assert_eq!(name, health_name(service), "{set}: {service} health name");
                let liveness = &container["livenessProbe"]["grpc"];
                assert_eq!(liveness["port"].as_u64(), Some(port), "{set}: {service}");
            } else {
                assert_eq!(
                    container["readinessProbe"]["httpGet"]["path"].as_str(),
                    Some("/healthz"),
                    "{set}: {service}: gRPC over TLS is probed on /healthz"
                );
            }
        }
    }
}

/// Waits until `name` at `addr` reports SERVING.
async fn wait_serving(addr: SocketAddr, name: &str) {
    for _ in 0..600 {
        if citychain_testkit::grpc::health(addr, name).await == Some(ServingStatus::Serving as i32)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{name} at {addr} did not answer SERVING within 60 s");
}

/// Waits until `addr` can be bound: the chart's port may be held for a moment by another test
/// that happened to get it as a free port. Fails, naming the port, if it stays taken.
async fn wait_free(addr: SocketAddr) {
    let mut last = None;
    for _ in 0..300 {
        match std::net::TcpListener::bind(addr) {
            Ok(_) => return,
            Err(err) => last = Some(err),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "port {} (the chart's gRPC port) stays taken on this machine ({}); free it to run \
         this test",
        addr.port(),
        last.map(|e| e.to_string()).unwrap_or_default()
    );
}

/// Runs one service from its rendered configuration, with the container paths and the NATS
/// URL pointed at this machine, and checks both names the probes ask for.
async fn serve_and_probe(net: &Network, resources: &[Resource], service: &str) {
    let workload = workload(resources, service);
    let container = main_container(workload, service);
    let (port, name) = readiness(container);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));

    let dir = net.dir.path();
    let data = dir.join(format!("chart-{service}"));
    let env = env_overrides(container, &format!("{}-0", workload.name));
    // The service listens on the port its rendered configuration says, on loopback here;
    // the probes below ask the port the chart's readiness probe names.
    let text = config_text(resources, service);
    let rendered: ServiceConfig<BTreeMap<String, serde_json::Value>> = ConfigLoader::new()
        .toml(text.as_str())
        .env(env.clone())
        .load()
        .expect("the rendered configuration loads");
    let listen = SocketAddr::from(([127, 0, 0, 1], rendered.grpc.listen.port()));
    wait_free(listen).await;
    let mut loader = ConfigLoader::new()
        .toml(text)
        .env(env)
        .set("grpc.listen", listen.to_string().as_str())
        .set("metrics.enabled", false)
        .set(
            "chain.genesis",
            dir.join("genesis.json").display().to_string(),
        )
        .set(&format!("{service}.data_dir"), data.display().to_string())
        .set("nats.urls", net.nats.url());
    let user = match service {
        "consensus" => {
            citychain_bus::access::validator_user(&net.net.genesis.validators[3].to_string())
        }
        other => other.to_owned(),
    };
    let nats = net.nats.user(&user);
    loader = loader
        .set(
            "nats.nkey_seed_file",
            nats.nkey_seed_file.expect("a seed").display().to_string(),
        )
        .set("nats.client_name", nats.client_name.as_str());
    // No inbox is set, as the chart sets none: the service picks its user's own inbox, the
    // only one the server lets it subscribe on.
    assert_eq!(
        rendered
            .extra
            .get("nats")
            .and_then(|n| n.get("inbox_prefix")),
        None
    );
    match service {
        "consensus" => {
            // The last validator of genesis; the harness runs the other three.
            let member = net.net.genesis.validators[3].to_string();
            let key = dir.join("keys").join(format!("{member}.json"));
            loader = loader.set("consensus.validator_key", key.display().to_string());
        }
        "licence" => {
            loader = loader.set(
                "licence.key_file",
                dir.join("licence.key").display().to_string(),
            );
        }
        "tokens" => {
            loader = loader.set(
                "tokens.key_file",
                dir.join("keys/service.tokens.json").display().to_string(),
            );
        }
        _ => {}
    }
    let shutdown = Shutdown::new();
    let stop = shutdown.clone();
    let task = match service {
        "consensus" => {
            let config = loader.load().expect("the consensus configuration loads");
            tokio::spawn(async move {
                citychain_consensus::serve(config, stop)
                    .await
                    .map_err(|e| e.to_string())
            })
        }
        "ledger" => {
            let config = loader.load().expect("the ledger configuration loads");
            tokio::spawn(async move {
                citychain_ledger::serve(config, stop)
                    .await
                    .map_err(|e| e.to_string())
            })
        }
        "licence" => {
            let config = loader.load().expect("the licence configuration loads");
            tokio::spawn(async move {
                citychain_licence::serve(config, stop)
                    .await
                    .map_err(|e| e.to_string())
            })
        }
        "tokens" => {
            let config = loader.load().expect("the tokens configuration loads");
            tokio::spawn(async move {
                citychain_tokens::serve(config, stop)
                    .await
                    .map_err(|e| e.to_string())
            })
        }
        other => panic!("unknown service {other}"),
    };
    // Readiness asks for the service's own name; liveness and start-up for the whole
    // process. Each must answer SERVING where and as the kubelet will ask.
    wait_serving(addr, &name).await;
    for probe in ["livenessProbe", "startupProbe"] {
        let (port, name) = grpc_probe(container, probe);
        wait_serving(SocketAddr::from(([127, 0, 0, 1], port)), &name).await;
    }
    shutdown.trigger();
    let outcome = tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .unwrap_or_else(|_| panic!("{service} did not stop within 30 s"))
        .expect("the service task did not panic");
    if let Err(err) = outcome {
        panic!("{service} failed: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_service_answers_health_where_and_as_the_chart_probes() {
    // The default values: what `helm install` without a values file runs.
    let resources = render(&[]);
    let mut net = Network::new(network(4, 90)).await;
    for i in 0..3 {
        net.start_validator(i).await;
    }
    // One after the other: every service listens on the same port in its own pod.
    for service in SERVICES {
        serve_and_probe(&net, &resources, service).await;
    }
    for i in 0..3 {
        net.stop_validator(i).await;
    }
}
