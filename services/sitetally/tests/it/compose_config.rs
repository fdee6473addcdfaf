//! docker-compose.yml cannot run here (no Docker engine); what can be checked offline is
//! that the binary accepts the settings and subcommands the compose file gives it.

use std::process::Command;

const COMPOSE: &str = include_str!("../../../../docker-compose.yml");

fn sitetally() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sitetally"))
}

#[test]
fn ingest_accepts_the_compose_environment() {
    let env: Vec<(String, String)> = COMPOSE
        .lines()
        .filter_map(|l| l.trim().split_once(": "))
        .filter(|(k, _)| k.starts_with("SITETALLY_INGEST__"))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect();
    assert!(
        env.len() >= 5,
        "compose sets the ingest connection settings: {env:?}"
    );
    let out = sitetally()
        .args(["ingest", "--print-config"])
        .envs(env)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(config["kafka"]["brokers"], "kafka:9092");
    assert_eq!(config["kafka"]["group_id"], "sitetally-ingest");
    assert_eq!(config["clickhouse"]["url"], "http://clickhouse:8123");
    assert!(
        config["clickhouse"].get("password").is_none(),
        "secrets are not printed"
    );
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
