//! The deployment files parse and say what the worker needs: probes on the
//! real endpoints, secrets for the URLs, a configuration the worker accepts,
//! KEDA on the real queue names, and an AsyncAPI document whose references
//! all resolve.

use std::path::{Path, PathBuf};

use lifecycle_worker::amqp::Names;
use lifecycle_worker::config::Settings;
use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

fn yaml_docs(path: &str) -> Vec<Yaml> {
    let text = std::fs::read_to_string(deploy(path)).unwrap();
    YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn k8s() -> Vec<Yaml> {
    let mut docs = Vec::new();
    for entry in std::fs::read_dir(deploy("k8s")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        docs.extend(yaml_docs(&format!("k8s/{name}")));
    }
    docs
}

fn of_kind<'a>(docs: &'a [Yaml], kind: &str) -> Vec<&'a Yaml> {
    docs.iter()
        .filter(|d| d["kind"].as_str() == Some(kind))
        .collect()
}

#[test]
fn kubernetes_manifests_probe_the_endpoints_and_scale_on_the_queues() {
    let docs = k8s();
    let deployment = of_kind(&docs, "Deployment")[0];
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/healthz")
    );
    assert_eq!(
        container["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/readyz")
    );
    assert!(container["resources"]["requests"]["cpu"].as_str().is_some());
    assert!(container["resources"]["requests"]["memory"]
        .as_str()
        .is_some());
    let env = container["env"].as_vec().unwrap();
    for key in ["LIFECYCLE__DATABASE__URL", "LIFECYCLE__AMQP__URL"] {
        let var = env
            .iter()
            .find(|e| e["name"].as_str() == Some(key))
            .unwrap();
        assert!(
            !var["valueFrom"]["secretKeyRef"]["name"].is_badvalue(),
            "{key} comes from a Secret"
        );
    }
    assert!(
        deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"].as_bool()
            == Some(true)
    );
    assert_eq!(of_kind(&docs, "PodDisruptionBudget").len(), 1);

    let names = Names::new("lifecycle");
    let scaled = of_kind(&docs, "ScaledObject")[0];
    let queues: Vec<&str> = scaled["spec"]["triggers"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|t| t["metadata"]["queueName"].as_str().unwrap())
        .collect();
    assert_eq!(
        queues,
        [names.contact_queue.as_str(), names.user_queue.as_str()]
    );

    // The ConfigMap's TOML is a configuration the worker accepts.
    let config = of_kind(&docs, "ConfigMap")[0]["data"]["config.toml"]
        .as_str()
        .unwrap()
        .to_owned();
    let file = std::env::temp_dir().join(format!("lw-configmap-{}.toml", std::process::id()));
    std::fs::write(&file, config).unwrap();
    let settings = Settings::load(Some(&file)).expect("the ConfigMap's TOML loads");
    std::fs::remove_file(&file).unwrap();
    assert!(
        !settings
            .policies()
            .for_tenant("tempworks-demo")
            .allow_contact_delete
    );
}

#[test]
fn compose_dockerfile_and_systemd_unit_are_complete() {
    let compose = &yaml_docs("compose.yaml")[0];
    for service in ["postgres", "rabbitmq", "worker"] {
        assert!(!compose["services"][service].is_badvalue(), "{service}");
    }
    let dockerfile = std::fs::read_to_string(deploy("Dockerfile")).unwrap();
    assert!(
        dockerfile
            .lines()
            .filter(|l| l.starts_with("FROM "))
            .count()
            >= 2,
        "multi-stage"
    );
    assert!(dockerfile.contains("USER 10001"), "non-root");
    let unit = std::fs::read_to_string(deploy("lifecycle-worker.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/lifecycle-worker run"));
    assert!(unit.contains("KillSignal=SIGTERM"));
}

/// Every `$ref` of the AsyncAPI document: local pointers resolve in it,
/// file references name files beside it.
fn check_refs(doc: &Value, node: &Value, dir: &Path) {
    match node {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                if let Some(pointer) = r.strip_prefix('#') {
                    assert!(doc.pointer(pointer).is_some(), "unresolved {r}");
                } else {
                    assert!(dir.join(r).exists(), "missing file {r}");
                }
            }
            map.values().for_each(|v| check_refs(doc, v, dir));
        }
        Value::Array(items) => items.iter().for_each(|v| check_refs(doc, v, dir)),
        _ => {}
    }
}

#[test]
fn asyncapi_document_is_version_3_and_every_reference_resolves() {
    let yaml = &yaml_docs("schemas/asyncapi.yaml")[0];
    assert_eq!(yaml["asyncapi"].as_str(), Some("3.0.0"));
    let text = std::fs::read_to_string(deploy("schemas/asyncapi.yaml")).unwrap();
    let doc: Value = serde_json::from_str(text.split_once('\n').unwrap().1).unwrap();
    check_refs(&doc, &doc, &deploy("schemas"));
    let ops = doc["operations"].as_object().unwrap();
    assert_eq!(ops["receiveCommands"]["action"], "receive");
    assert_eq!(
        ops["receiveCommands"]["messages"].as_array().unwrap().len(),
        21
    );
    assert_eq!(
        ops["publishEvents"]["messages"].as_array().unwrap().len(),
        24
    );
}
