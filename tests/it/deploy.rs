//! The deployment files parse and say what the worker needs: probes on the
//! real endpoints, secrets for the URLs, a configuration the worker accepts,
//! KEDA on the real queue names counting unacked deliveries, pods Pod
//! Security "restricted" admits, a sandboxed systemd unit, a Dockerfile
//! hadolint accepts, a broker message size above the worker's body limit,
//! an AsyncAPI document whose references all resolve, and examples that
//! connect to other machines over verified TLS only, with the CA mounted.

use std::path::{Path, PathBuf};
use std::process::Command;

use lifecycle_worker::amqp::Names;
use lifecycle_worker::cli::check;
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

/// The settings the worker loads from the ConfigMap's TOML.
fn configmap_settings(docs: &[Yaml]) -> Settings {
    let config = of_kind(docs, "ConfigMap")[0]["data"]["config.toml"]
        .as_str()
        .unwrap();
    // One file per call: tests run in parallel in one process.
    let file = std::env::temp_dir().join(format!("lw-configmap-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(&file, config).unwrap();
    let settings = Settings::load(Some(&file));
    std::fs::remove_file(&file).unwrap();
    settings.expect("the ConfigMap's TOML loads")
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
    let settings = configmap_settings(&docs);
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
        27
    );
    assert_eq!(
        ops["publishEvents"]["messages"].as_array().unwrap().len(),
        32
    );
}

/// The pod specs of every workload in `docs`, named `Kind/name`.
fn pod_specs(docs: &[Yaml]) -> Vec<(String, &Yaml)> {
    docs.iter()
        .filter_map(|d| {
            let kind = d["kind"].as_str()?;
            let spec = match kind {
                "Pod" => &d["spec"],
                "CronJob" => &d["spec"]["jobTemplate"]["spec"]["template"]["spec"],
                "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
                    &d["spec"]["template"]["spec"]
                }
                _ => return None,
            };
            let name = d["metadata"]["name"].as_str().unwrap_or("?");
            Some((format!("{kind}/{name}"), spec))
        })
        .collect()
}

/// What Pod Security "restricted" (baseline included) would refuse in `pod`:
/// host namespaces, privileged containers, volume types, host ports,
/// privilege escalation, root, seccomp and capabilities; sysctls, AppArmor,
/// SELinux and Windows options are not looked at (the files set none). Plus
/// this project's own rules: a non-zero uid and a read-only root filesystem.
/// Empty when the pod is admitted.
fn restricted_violations(pod: &Yaml) -> Vec<String> {
    let mut found = Vec::new();
    let pod_sc = &pod["securityContext"];
    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        if pod[host].as_bool() == Some(true) {
            found.push(format!("{host} is set"));
        }
    }
    // Volume types the restricted profile allows.
    let allowed = [
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    ];
    for volume in pod["volumes"].as_vec().map(Vec::as_slice).unwrap_or(&[]) {
        for (key, _) in volume.as_hash().into_iter().flatten() {
            let key = key.as_str().unwrap_or("");
            if key != "name" && !allowed.contains(&key) {
                found.push(format!("volume type {key}"));
            }
        }
    }
    if pod_sc["runAsUser"].as_i64() == Some(0) {
        found.push("pod runAsUser is 0".into());
    }
    if pod_sc["seccompProfile"]["type"].as_str() == Some("Unconfined") {
        found.push("pod seccompProfile is Unconfined".into());
    }
    let all_containers = ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| pod[*k].as_vec().map(Vec::as_slice).unwrap_or(&[]));
    for c in all_containers {
        let name = c["name"].as_str().unwrap_or("?");
        let sc = &c["securityContext"];
        let mut fail = |what: &str| found.push(format!("container {name}: {what}"));
        if sc["privileged"].as_bool() == Some(true) {
            fail("privileged");
        }
        if sc["allowPrivilegeEscalation"].as_bool() != Some(false) {
            fail("allowPrivilegeEscalation is not false");
        }
        // runAsNonRoot, runAsUser and seccompProfile may come from the pod.
        if sc["runAsNonRoot"]
            .borrowed_or(&pod_sc["runAsNonRoot"])
            .as_bool()
            != Some(true)
        {
            fail("runAsNonRoot is not true");
        }
        match sc["runAsUser"].borrowed_or(&pod_sc["runAsUser"]).as_i64() {
            Some(uid) if uid > 0 => {}
            _ => fail("runAsUser is not a non-zero uid"),
        }
        let seccomp = sc["seccompProfile"]["type"].borrowed_or(&pod_sc["seccompProfile"]["type"]);
        if !matches!(seccomp.as_str(), Some("RuntimeDefault" | "Localhost")) {
            fail("seccompProfile is not RuntimeDefault or Localhost");
        }
        let caps = &sc["capabilities"];
        let dropped = caps["drop"].as_vec().map(Vec::as_slice).unwrap_or(&[]);
        if !dropped.iter().any(|c| c.as_str() == Some("ALL")) {
            fail("capabilities do not drop ALL");
        }
        let added = caps["add"].as_vec().map(Vec::as_slice).unwrap_or(&[]);
        if added.iter().any(|c| c.as_str() != Some("NET_BIND_SERVICE")) {
            fail("capabilities add more than NET_BIND_SERVICE");
        }
        for port in c["ports"].as_vec().map(Vec::as_slice).unwrap_or(&[]) {
            if !port["hostPort"].is_badvalue() {
                fail("hostPort");
            }
        }
        if sc["readOnlyRootFilesystem"].as_bool() != Some(true) {
            fail("readOnlyRootFilesystem is not true");
        }
    }
    found
}

#[test]
fn every_pod_template_meets_pod_security_restricted() {
    // The check itself catches a pod without any security context.
    let bare = &YamlLoader::load_from_str("containers: [{name: c, image: x}]").unwrap()[0];
    assert!(restricted_violations(bare).len() >= 5);

    let docs = k8s();
    let pods = pod_specs(&docs);
    let names: Vec<&str> = pods.iter().map(|(n, _)| n.as_str()).collect();
    for expected in [
        "Deployment/lifecycle-worker",
        "Job/lifecycle-worker-migrate",
    ] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    for (name, pod) in pods {
        assert_eq!(restricted_violations(pod), Vec::<String>::new(), "{name}");
    }
}

#[test]
fn deployment_leaves_its_replica_count_to_keda() {
    let docs = k8s();
    let deployment = of_kind(&docs, "Deployment")[0];
    assert!(
        deployment["spec"]["replicas"].is_badvalue(),
        "a fixed replicas would undo KEDA's scaling on every apply"
    );
    let scaled = of_kind(&docs, "ScaledObject")[0];
    assert_eq!(
        scaled["spec"]["scaleTargetRef"]["name"],
        deployment["metadata"]["name"]
    );
    // The PodDisruptionBudget keeps one pod; two make a drain possible.
    assert!(scaled["spec"]["minReplicaCount"].as_i64().unwrap() >= 2);
}

#[test]
fn keda_counts_unacked_deliveries_through_the_management_api() {
    let docs = k8s();
    let auths = of_kind(&docs, "TriggerAuthentication");
    let secret = of_kind(&docs, "Secret")[0];
    let prefetch = configmap_settings(&docs).amqp.prefetch;
    let scaled = of_kind(&docs, "ScaledObject")[0];
    let triggers = scaled["spec"]["triggers"].as_vec().unwrap();
    assert_eq!(triggers.len(), 2);
    for trigger in triggers {
        let meta = &trigger["metadata"];
        assert_eq!(trigger["type"].as_str(), Some("rabbitmq"));
        // Over AMQP KEDA counts ready messages only.
        assert_eq!(meta["protocol"].as_str(), Some("http"));
        assert_eq!(meta["mode"].as_str(), Some("QueueLength"));
        let exclude = &meta["excludeUnacknowledged"];
        assert!(exclude.is_badvalue() || exclude.as_str() == Some("false"));
        assert_eq!(
            meta["value"].as_str(),
            Some(prefetch.to_string().as_str()),
            "one prefetch window per replica"
        );
        // The management URL comes from the Secret, and is an HTTP URL.
        let auth_name = trigger["authenticationRef"]["name"].as_str().unwrap();
        let auth = auths
            .iter()
            .find(|a| a["metadata"]["name"].as_str() == Some(auth_name))
            .unwrap_or_else(|| panic!("TriggerAuthentication {auth_name}"));
        let host = auth["spec"]["secretTargetRef"]
            .as_vec()
            .unwrap()
            .iter()
            .find(|r| r["parameter"].as_str() == Some("host"))
            .expect("host from a Secret");
        assert_eq!(host["name"], secret["metadata"]["name"]);
        let url = secret["stringData"][host["key"].as_str().unwrap()]
            .as_str()
            .expect("the example Secret has the key");
        assert!(
            url.starts_with("http://") || url.starts_with("https://"),
            "{url}"
        );
    }
}

/// The `[Service]` directives of a unit file, in order, as (key, value).
fn service_directives(unit: &str) -> Vec<(String, String)> {
    let mut section = "";
    let mut found = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
        } else if section == "[Service]" && !line.is_empty() && !line.starts_with('#') {
            let (key, value) = line.split_once('=').unwrap_or((line, ""));
            found.push((key.trim().to_owned(), value.trim().to_owned()));
        }
    }
    found
}

/// The sandbox the unit keeps, checked even where systemd-analyze is missing:
/// no privilege, a read-only system, nothing of the kernel or host, and only
/// the system calls and socket families an ordinary network client needs.
const UNIT_SANDBOX: &[(&str, &str)] = &[
    ("CapabilityBoundingSet", ""),
    ("NoNewPrivileges", "yes"),
    ("PrivateUsers", "yes"),
    ("RestrictSUIDSGID", "yes"),
    ("ProtectSystem", "strict"),
    ("ProtectHome", "yes"),
    ("PrivateTmp", "yes"),
    ("PrivateDevices", "yes"),
    ("ProtectProc", "invisible"),
    ("ProtectKernelTunables", "yes"),
    ("ProtectKernelModules", "yes"),
    ("ProtectKernelLogs", "yes"),
    ("ProtectControlGroups", "yes"),
    ("ProtectClock", "yes"),
    ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
    ("RestrictNamespaces", "yes"),
    ("MemoryDenyWriteExecute", "yes"),
    ("SystemCallArchitectures", "native"),
    ("SystemCallFilter", "@system-service"),
    ("SystemCallFilter", "~@privileged @resources"),
];

#[test]
fn systemd_unit_is_sandboxed_and_rated_ok_by_systemd_analyze() {
    let path = deploy("lifecycle-worker.service");
    let unit = std::fs::read_to_string(&path).unwrap();
    let directives = service_directives(&unit);
    for (key, value) in UNIT_SANDBOX {
        assert!(
            directives.iter().any(|(k, v)| k == key && v == value),
            "{key}={value} in the unit"
        );
    }
    // The worker still runs as its own user and needs no writable path.
    assert!(directives.contains(&("User".into(), "lifecycle".into())));
    assert!(!directives.iter().any(|(k, _)| k == "ReadWritePaths"));

    // The exposure score, where systemd-analyze can rate a unit file offline
    // (systemd 250 or later; no running systemd needed).
    let run = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&path)
        .env("SYSTEMD_COLORS", "0")
        .output();
    let out = match run {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("systemd-analyze not installed: checked the directives only");
            return;
        }
        Err(e) => panic!("systemd-analyze: {e}"),
        Ok(out) => out,
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("unrecognized option") {
        eprintln!("systemd-analyze cannot rate offline: checked the directives only");
        return;
    }
    assert!(out.status.success(), "systemd-analyze: {stderr}");
    // A misspelt or invalid directive is ignored with a warning, not an error.
    assert!(!stderr.contains("ignoring"), "{stderr}");
    let score: f64 = stdout
        .lines()
        .find_map(|l| {
            l.split_once("Overall exposure level for ")?
                .1
                .split_once(": ")
        })
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in {stdout}"));
    assert!(score < 3.0, "exposure {score}, not OK:\n{stdout}");
}

#[test]
fn dockerfile_apt_installs_are_pinned_or_justified() {
    let dockerfile = std::fs::read_to_string(deploy("Dockerfile")).unwrap();
    // Instructions with their continuation lines joined, each with the
    // comment lines right above it.
    let mut instructions: Vec<(Vec<&str>, String)> = Vec::new();
    let mut comments = Vec::new();
    let mut open: Option<String> = None;
    for line in dockerfile.lines() {
        let trimmed = line.trim();
        if let Some(text) = open.as_mut() {
            let continued = trimmed.strip_suffix('\\');
            text.push(' ');
            text.push_str(continued.unwrap_or(trimmed));
            if continued.is_none() {
                instructions.push((std::mem::take(&mut comments), open.take().unwrap()));
            }
        } else if let Some(comment) = trimmed.strip_prefix('#') {
            comments.push(comment.trim());
        } else if trimmed.is_empty() {
            comments.clear();
        } else if let Some(start) = trimmed.strip_suffix('\\') {
            open = Some(start.to_owned());
        } else {
            instructions.push((std::mem::take(&mut comments), trimmed.to_owned()));
        }
    }
    let mut installs = 0;
    for (comments, text) in &instructions {
        for command in text.split("&&").filter(|c| c.contains("apt-get install")) {
            installs += 1;
            let packages = command
                .split_whitespace()
                .skip_while(|w| *w != "install")
                .skip(1)
                .filter(|w| !w.starts_with('-'));
            if packages.clone().all(|p| p.contains('=')) {
                continue;
            }
            // hadolint reads the pragma only on the line right above; the
            // lines above it say why.
            let pragma = comments.last().copied().unwrap_or("");
            assert!(
                pragma.starts_with("hadolint ignore=") && pragma.contains("DL3008"),
                "unpinned {:?} without `# hadolint ignore=DL3008` right above",
                packages.collect::<Vec<_>>()
            );
            let reason: usize = comments[..comments.len() - 1].iter().map(|c| c.len()).sum();
            assert!(reason >= 40, "the DL3008 ignore says why: {comments:?}");
        }
    }
    assert!(installs >= 1, "the runtime image installs CA certificates");
}

#[test]
fn rabbitmq_message_size_is_just_above_the_worker_body_limit() {
    let conf = std::fs::read_to_string(deploy("rabbitmq.conf")).unwrap();
    // rabbitmq.conf: `key = value` lines, `#` comment lines.
    let settings: Vec<(&str, &str)> = conf
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or_else(|| panic!("{l}"));
            (k.trim(), v.trim())
        })
        .collect();
    let max: usize = settings
        .iter()
        .find(|(k, _)| *k == "max_message_size")
        .expect("max_message_size is set")
        .1
        .parse()
        .unwrap();
    // Above the worker's limit, so an oversize command is dead-lettered by
    // the worker rather than refused unseen by the broker; still small.
    let body_limit = Settings::default().limits.max_body_bytes;
    assert!(max > body_limit, "{max} <= {body_limit}");
    assert!((262_144..=1024 * 1024).contains(&max), "{max}");

    // Local runs use it: compose mounts it into the broker's conf.d.
    let compose = &yaml_docs("compose.yaml")[0];
    let volumes = compose["services"]["rabbitmq"]["volumes"].as_vec().unwrap();
    assert!(volumes.iter().any(|v| {
        let v = v.as_str().unwrap_or("");
        v.starts_with("./rabbitmq.conf:/etc/rabbitmq/conf.d/")
    }));
}

/// Every database or broker URL written in `text` (a URL ends at white
/// space, a quote or a comma; a scheme named in prose has no host).
fn urls_in(text: &str) -> Vec<&str> {
    text.split(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | '`'))
        .filter_map(|word| {
            ["postgres://", "postgresql://", "amqp://", "amqps://"]
                .iter()
                .find_map(|scheme| word.find(scheme).map(|at| &word[at..]))
        })
        .map(|url| url.trim_end_matches([']', ')', '.', ';']))
        .filter(|url| {
            url::Url::parse(url).is_ok_and(|u| u.host_str().is_some_and(|h| !h.is_empty()))
        })
        .collect()
}

/// A database URL verifies the server the way the examples must show it:
/// `verify-full` with the CA named.
fn verified_database(url: &str) -> bool {
    check::unverified_database(url).is_none()
        && url.contains("sslmode=verify-full")
        && url.contains("sslrootcert=/")
}

#[test]
fn examples_outside_local_development_verify_tls() {
    // The decision the test leans on, both ways.
    assert_eq!(
        urls_in("x=\"amqp://a@b/%2f\", `amqps://` y"),
        ["amqp://a@b/%2f"]
    );
    assert!(!verified_database("postgres://u@db:5432/x"));
    assert!(verified_database(
        "postgres://u@db:5432/x?sslmode=verify-full&sslrootcert=/ca.pem"
    ));

    // Every URL of the shipped files: loopback is local development (the
    // defaults), anything else verifies TLS, and a file with amqps:// says
    // where the CA file is set (Kubernetes: in the Deployment, below).
    // compose.yaml is local development.
    let local = |url: &str| {
        url::Url::parse(url).is_ok_and(|u| matches!(u.host_str(), Some("127.0.0.1" | "localhost")))
    };
    let mut seen = 0;
    for file in [
        "k8s/secret.example.yaml",
        "k8s/deployment.yaml",
        "k8s/configmap.yaml",
        "lifecycle-worker.service",
        "lifecycle.example.toml",
    ] {
        let text = std::fs::read_to_string(deploy(file)).unwrap();
        let urls = urls_in(&text);
        for url in urls.iter().copied().filter(|u| !local(u)) {
            seen += 1;
            let verified = match url.starts_with("postgres") {
                true => verified_database(url),
                false => check::unverified_broker(url).is_none(),
            };
            assert!(verified, "{file}: {url}");
        }
        if urls.iter().any(|u| u.starts_with("amqps://")) && !file.starts_with("k8s/") {
            assert!(
                text.contains("ca_file") || text.contains("LIFECYCLE__AMQP__CA_FILE"),
                "{file} names the broker's CA file"
            );
        }
    }
    assert!(seen >= 5, "{seen} URLs to other machines found");

    // Kubernetes: the Secret's URLs verify TLS; the CA files they name come
    // from a volume that the pods mount, which the Secret example names.
    let docs = k8s();
    let secret = of_kind(&docs, "Secret")[0];
    let database = secret["stringData"]["database-url"].as_str().unwrap();
    let broker = secret["stringData"]["amqp-url"].as_str().unwrap();
    assert!(verified_database(database), "{database}");
    assert!(broker.starts_with("amqps://"), "{broker}");
    let root_cert = database
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("sslrootcert="))
        .unwrap();
    let secret_text = std::fs::read_to_string(deploy("k8s/secret.example.yaml")).unwrap();
    for (name, pod) in pod_specs(&docs) {
        let container = &pod["containers"][0];
        let env = container["env"].as_vec().unwrap();
        let var = |key: &str| {
            env.iter()
                .find(|e| e["name"].as_str() == Some(key))
                .and_then(|e| e["value"].as_str())
        };
        // The file must lie in a mount of a ConfigMap or Secret volume.
        let mounted = |path: &str| {
            let mounts = container["volumeMounts"].as_vec().unwrap();
            mounts.iter().find_map(|m| {
                let dir = m["mountPath"].as_str()?;
                path.strip_prefix(dir)?.strip_prefix('/')?;
                let volume = pod["volumes"]
                    .as_vec()?
                    .iter()
                    .find(|v| v["name"] == m["name"])?;
                volume["configMap"]["name"]
                    .as_str()
                    .or(volume["secret"]["secretName"].as_str())
            })
        };
        let source = mounted(root_cert).unwrap_or_else(|| panic!("{name}: {root_cert} mounted"));
        assert!(
            secret_text.contains(source),
            "the Secret example says where {source} comes from"
        );
        if name.starts_with("Deployment/") {
            let ca_file = var("LIFECYCLE__AMQP__CA_FILE")
                .unwrap_or_else(|| panic!("{name} sets LIFECYCLE__AMQP__CA_FILE"));
            assert!(mounted(ca_file).is_some(), "{name}: {ca_file} mounted");
        }
    }
}
