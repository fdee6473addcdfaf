//! docker-compose.yml cannot run here (no Docker engine). What can be checked offline:
//! the binary accepts the settings and subcommands the compose file gives it, and
//! Debian's docker-compose 1.29 (installed by scripts/test.sh) validates and resolves the
//! file on every profile, whose resolved form must have the properties a deployment needs.

use std::path::Path;
use std::process::Command;

const COMPOSE: &str = include_str!("../../../../docker-compose.yml");
const DOCKERFILE: &str = include_str!("../../../../Dockerfile");
const DOCKERIGNORE: &str = include_str!("../../../../.dockerignore");

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn sitetally() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sitetally"))
}

/// The lines of a top-level block of docker-compose.yml (`x-sitetally:`) or of a service
/// (`ingest:`), up to the next block at the same indentation.
fn block(name: &str) -> Vec<&'static str> {
    let head = |l: &&str| {
        let t = l.trim();
        t == format!("{name}:") || t.starts_with(&format!("{name}: "))
    };
    let Some(start) = COMPOSE.lines().position(|l| head(&l)) else {
        panic!("no block {name} in docker-compose.yml");
    };
    let line = COMPOSE.lines().nth(start).unwrap();
    let indent = line.len() - line.trim_start().len();
    COMPOSE
        .lines()
        .skip(start + 1)
        .take_while(|l| {
            l.trim().is_empty()
                || l.trim_start().starts_with('#')
                || l.len() - l.trim_start().len() > indent
        })
        .collect()
}

/// `sitetally ingest --print-config` with the environment compose gives `blocks` (later
/// blocks override earlier ones; the password interpolated from .env stands in as a
/// literal).
fn ingest_config_of(blocks: &[&str]) -> serde_json::Value {
    let mut env: Vec<(String, String)> = blocks
        .iter()
        .flat_map(|b| block(b))
        .filter_map(|l| l.trim().split_once(": "))
        .filter(|(k, v)| {
            (k.starts_with("SITETALLY_INGEST__") || k.starts_with("SITETALLY_CLICKHOUSE_"))
                && !v.contains("${")
        })
        .map(|(k, v)| (k.to_string(), v.trim().trim_matches('"').to_string()))
        .collect();
    assert!(
        env.len() >= 6,
        "compose sets the ingest connection settings: {env:?}"
    );
    env.push((
        "SITETALLY_CLICKHOUSE_PASSWORD".into(),
        "compose-secret".into(),
    ));
    let out = sitetally()
        .args(["ingest", "--print-config"])
        .env_remove("SITETALLY_CLICKHOUSE_CLUSTER")
        .envs(env)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("compose-secret"),
        "secrets are not printed"
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn ingest_accepts_the_compose_environment() {
    let config = ingest_config_of(&["x-sitetally", "ingest"]);
    assert_eq!(config["kafka"]["brokers"], "kafka:9092");
    assert_eq!(config["kafka"]["group_id"], "sitetally-ingest");
    assert_eq!(config["clickhouse"]["url"], "http://clickhouse:8123");
    assert_eq!(config["clickhouse"]["user"], "sitetally");
    assert_eq!(config["kafka"]["static_membership"], true);
    assert!(config["clickhouse"].get("password").is_none());
    assert!(config["clickhouse"]["cluster"].is_null(), "one server");
    // The cluster profile's ingest: three brokers, the cluster named.
    let config = ingest_config_of(&["x-sitetally", "x-cluster-env", "cluster-ingest"]);
    assert_eq!(
        config["kafka"]["brokers"],
        "kafka-1:9092,kafka-2:9092,kafka-3:9092"
    );
    assert_eq!(config["clickhouse"]["cluster"], "sitetally");
    assert_eq!(config["clickhouse"]["url"], "http://clickhouse-s1r1:8123");
}

#[test]
fn a_misspelt_setting_is_refused_with_its_name() {
    let out = sitetally()
        .args(["ingest", "--print-config"])
        .env("SITETALLY_INGEST__KAFKA__BROKERZ", "x")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("brokerz"));
}

#[test]
fn every_compose_command_is_a_subcommand_with_valid_flags() {
    // command: ["sub", "--flag", "value", ...] lines (possibly continued on the next line).
    let mut commands = Vec::new();
    let mut current = String::new();
    for line in COMPOSE.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("command: [") {
            current = rest.to_string();
        } else if !current.is_empty() {
            current.push(' ');
            current.push_str(t);
        }
        if !current.is_empty() && current.ends_with(']') {
            commands.push(current.trim_end_matches(']').to_string());
            current.clear();
        }
    }
    assert!(commands.len() >= 5, "{commands:?}");
    for c in commands {
        let args: Vec<String> = c
            .split(',')
            .map(|a| a.trim().trim_matches('"').to_string())
            .filter(|a| !a.is_empty())
            .collect();
        // clap validates flags before running: add --help-free dry check by asking for help
        // of the subcommand and checking each flag is documented there.
        let help = sitetally().args([&args[0], "--help"]).output().unwrap();
        assert!(help.status.success(), "unknown subcommand {}", args[0]);
        let text = String::from_utf8_lossy(&help.stdout);
        for flag in args.iter().filter(|a| a.starts_with("--")) {
            assert!(
                text.contains(flag.as_str()),
                "`sitetally {}` has no {flag}",
                args[0]
            );
        }
    }
}

/// `docker-compose config` with the secrets `.env` would give, on `profiles`.
fn resolved(profiles: &[&str], with_secrets: bool) -> std::process::Output {
    let mut cmd = Command::new("docker-compose");
    cmd.current_dir(repo())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap());
    for p in profiles {
        cmd.args(["--profile", p]);
    }
    if with_secrets {
        cmd.env("CLICKHOUSE_PASSWORD", "compose-test-password")
            .env("SITETALLY_API_ADMIN_TOKEN", "compose-test-admin-token")
            .env("GRAFANA_ADMIN_PASSWORD", "compose-test-grafana");
    }
    cmd.arg("config")
        .output()
        .expect("docker-compose (scripts/test.sh installs Debian's docker-compose)")
}

#[test]
#[ignore = "needs Debian's docker-compose (scripts/test.sh installs it)"]
fn compose_validates_on_every_profile_and_has_what_a_deployment_needs() {
    let profiles = {
        let out = Command::new("docker-compose")
            .current_dir(repo())
            .args(["config", "--profiles"])
            .env("CLICKHOUSE_PASSWORD", "x")
            .env("SITETALLY_API_ADMIN_TOKEN", "y")
            .env("GRAFANA_ADMIN_PASSWORD", "z")
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let mut runs: Vec<Vec<&str>> = vec![vec![]];
    runs.extend(profiles.lines().filter(|p| !p.is_empty()).map(|p| vec![p]));
    assert!(runs.len() >= 2, "the tools profile at least: {profiles}");
    for profiles in &runs {
        let out = resolved(profiles, true);
        assert!(
            out.status.success(),
            "profiles {profiles:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: serde_yaml::Value = serde_yaml::from_slice(&out.stdout).unwrap();
        check_services(&doc, profiles);
    }
    // Without the secrets compose refuses, naming what to set.
    let out = resolved(&[], false);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("CLICKHOUSE_PASSWORD") && err.contains(".env"),
        "{err}"
    );
}

fn check_services(doc: &serde_yaml::Value, profiles: &[&str]) {
    let services = doc["services"].as_mapping().unwrap();
    let name = |k: &serde_yaml::Value| k.as_str().unwrap().to_string();
    let ours: Vec<String> = services
        .iter()
        .filter(|(_, s)| {
            s["image"]
                .as_str()
                .is_some_and(|i| i.starts_with("sitetally:"))
        })
        .map(|(k, _)| name(k))
        .collect();
    assert!(ours.len() >= 4, "{ours:?}");
    // The single-node layout and the cluster profile (cluster-*) each start on their own.
    for cluster_layout in [false, true] {
        let built: Vec<&String> = ours
            .iter()
            .filter(|n| n.starts_with("cluster-") == cluster_layout)
            .filter(|n| !doc["services"][n.as_str()]["build"].is_null())
            .collect();
        // (docker-compose 1.29's `config` lists every profile's services.)
        let expected = usize::from(
            ours.iter()
                .any(|n| n.starts_with("cluster-") == cluster_layout),
        );
        assert_eq!(
            built.len(),
            expected,
            "one service of a layout builds the image the others reuse: {built:?}"
        );
    }
    for (k, s) in services {
        let n = name(k);
        let restart = s["restart"].as_str().unwrap_or_default();
        let one_shot = n.contains("init-") || n == "simulate";
        if one_shot {
            assert_eq!(restart, "no", "{n} runs once");
        } else {
            assert_eq!(restart, "unless-stopped", "{n} has a restart policy");
            assert!(!s["healthcheck"]["test"].is_null(), "{n} has a healthcheck");
        }
        if ours.contains(&n) {
            let env = &s["environment"];
            assert!(
                env["SITETALLY_CLICKHOUSE_PASSWORD"]
                    .as_str()
                    .is_some_and(|p| !p.is_empty()),
                "{n} reaches ClickHouse with a password"
            );
            if let Some(test) = s["healthcheck"]["test"].as_sequence() {
                // Our healthchecks call a subcommand the binary has.
                assert_eq!(test[1].as_str(), Some("sitetally"), "{n}");
                let help = sitetally()
                    .args([test[2].as_str().unwrap(), "--help"])
                    .output()
                    .unwrap();
                assert!(help.status.success(), "{n}: no subcommand {:?}", test[2]);
            }
        }
    }
    assert!(!doc["services"]["clickhouse"]["environment"]["CLICKHOUSE_PASSWORD"].is_null());
    assert!(!doc["services"]["api"]["environment"]["SITETALLY_API_ADMIN_TOKEN"].is_null());
    let ready = |svc: &str, dep: &str| {
        doc["services"][svc]["depends_on"][dep]["condition"].as_str()
            == Some("service_completed_successfully")
    };
    for svc in ["ingest", "reconciler"] {
        assert!(
            ready(svc, "init-topics") && ready(svc, "init-migrate"),
            "{svc} waits for init"
        );
    }
    assert!(ready("api", "init-migrate"));
    // Prometheus scrapes every service that serves metrics, Grafana shows the dashboard.
    let scrape = std::fs::read_to_string(repo().join("deploy/prometheus.yml")).unwrap();
    for (svc, port) in [("ingest", "9464"), ("reconciler", "9465"), ("api", "8080")] {
        let command = serde_yaml::to_string(&doc["services"][svc]["command"]).unwrap();
        assert!(
            svc == "api" || command.contains(&format!("0.0.0.0:{port}")),
            "{svc} serves metrics on {port}: {command}"
        );
        assert!(scrape.contains(port), "prometheus.yml scrapes {svc}:{port}");
    }
    let grafana = serde_yaml::to_string(&doc["services"]["grafana"]["volumes"]).unwrap();
    assert!(grafana.contains("deploy/grafana/dashboards"), "{grafana}");
    if profiles.contains(&"tools") {
        assert!(services.contains_key("simulate"));
    }
    if profiles.contains(&"cluster") {
        check_cluster_profile(doc);
    }
}

/// The `cluster` profile: Keeper, 2 shards x 2 replicas of ClickHouse configured by
/// deploy/cluster/clickhouse.xml, three KRaft brokers, and sitetally naming the cluster.
fn check_cluster_profile(doc: &serde_yaml::Value) {
    let services = &doc["services"];
    let text = |v: &serde_yaml::Value| serde_yaml::to_string(v).unwrap();
    let cluster_xml =
        std::fs::read_to_string(repo().join("deploy/cluster/clickhouse.xml")).unwrap();
    let keeper = std::fs::read_to_string(repo().join("deploy/cluster/keeper.xml")).unwrap();
    assert!(!services["keeper"]["healthcheck"].is_null());
    assert!(
        keeper.contains("<tcp_port>9181</tcp_port>") && cluster_xml.contains("<port>9181</port>")
    );
    let mut replicas = std::collections::BTreeSet::new();
    for (shard, node) in [("1", "s1r1"), ("1", "s1r2"), ("2", "s2r1"), ("2", "s2r2")] {
        let name = format!("clickhouse-{node}");
        let s = &services[name.as_str()];
        assert_eq!(
            s["environment"]["CLICKHOUSE_SHARD"].as_str(),
            Some(shard),
            "{name}"
        );
        assert_eq!(
            s["hostname"].as_str(),
            Some(name.as_str()),
            "{name}: replication fetches by host name"
        );
        replicas.insert(
            s["environment"]["CLICKHOUSE_REPLICA"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        assert!(
            text(&s["volumes"])
                .contains("deploy/cluster/clickhouse.xml:/etc/clickhouse-server/config.d/"),
            "{name}"
        );
        assert!(
            cluster_xml.contains(&format!("<host>{name}</host>")),
            "{name} in remote_servers"
        );
        assert!(
            !s["environment"]["CLICKHOUSE_CLUSTER_SECRET"].is_null(),
            "{name}"
        );
    }
    assert_eq!(
        replicas.len(),
        4,
        "replica names unique in the cluster: {replicas:?}"
    );
    let mut ids = std::collections::BTreeSet::new();
    for b in ["kafka-1", "kafka-2", "kafka-3"] {
        let env = &services[b]["environment"];
        ids.insert(text(&env["KAFKA_NODE_ID"]));
        assert_eq!(
            env["KAFKA_CONTROLLER_QUORUM_VOTERS"].as_str(),
            Some("1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"),
            "{b}"
        );
        assert!(
            text(&env["KAFKA_PROCESS_ROLES"]).contains("controller"),
            "{b}: KRaft"
        );
    }
    assert_eq!(ids.len(), 3);
    assert!(text(&services["cluster-init-topics"]["command"]).contains("--replication-factor 3"));
    for svc in [
        "cluster-init-migrate",
        "cluster-ingest",
        "cluster-reconciler",
        "cluster-api",
    ] {
        assert_eq!(
            services[svc]["environment"]["SITETALLY_CLICKHOUSE_CLUSTER"].as_str(),
            Some("sitetally"),
            "{svc} names the cluster"
        );
    }
    for svc in ["cluster-ingest", "cluster-reconciler"] {
        for dep in ["cluster-init-topics", "cluster-init-migrate"] {
            assert_eq!(
                services[svc]["depends_on"][dep]["condition"].as_str(),
                Some("service_completed_successfully"),
                "{svc} waits for {dep}"
            );
        }
    }
    let scrape = std::fs::read_to_string(repo().join("deploy/prometheus.yml")).unwrap();
    for svc in ["cluster-ingest", "cluster-reconciler", "cluster-api"] {
        assert!(
            scrape.contains(&format!("\"{svc}\"")),
            "prometheus.yml finds {svc}"
        );
    }
}

#[test]
fn the_image_is_cached_stripped_unprivileged_and_built_from_sources_only() {
    assert!(DOCKERFILE.contains("cargo chef cook"), "dependency layer");
    assert!(
        DOCKERFILE.contains("CARGO_PROFILE_RELEASE_STRIP=symbols"),
        "stripped"
    );
    let user = DOCKERFILE
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER line");
    assert!(user != "root" && user != "0", "runs as {user}");
    assert!(
        DOCKERFILE.contains(&format!("chown {user}:{user} /var/lib/sitetally")),
        "the state directory belongs to the image's user"
    );
    for ignored in ["target/", ".git/", ".env"] {
        assert!(
            DOCKERIGNORE.lines().any(|l| l.trim() == ignored),
            "{ignored}"
        );
    }
    let example = std::fs::read_to_string(repo().join("deploy/env.example")).unwrap();
    for var in [
        "CLICKHOUSE_PASSWORD",
        "SITETALLY_API_ADMIN_TOKEN",
        "SITETALLY_PARTITIONS",
    ] {
        assert!(
            example.contains(&format!("{var}=")),
            "{var} in deploy/env.example"
        );
    }
}

/// `sitetally probe`, the healthcheck of the compose services: 0 on 2xx, 1 otherwise.
#[test]
fn probe_exits_0_on_success_and_1_with_the_reason_otherwise() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for (i, sock) in listener.incoming().enumerate().take(2) {
            let mut sock = sock.unwrap();
            let mut buf = [0u8; 1024];
            let _ = sock.read(&mut buf);
            let status = if i == 0 {
                "200 OK"
            } else {
                "503 Service Unavailable"
            };
            let _ = sock.write_all(
                format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .as_bytes(),
            );
        }
    });
    let probe = |url: String| sitetally().args(["probe", &url]).output().unwrap();
    assert_eq!(
        probe(format!("http://{addr}/healthz")).status.code(),
        Some(0)
    );
    let down = probe(format!("http://{addr}/readyz"));
    assert_eq!(down.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&down.stderr).contains("503"));
}
