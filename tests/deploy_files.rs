//! The files in `deploy/` stay consistent with hsync: the systemd units' key settings (and
//! that their commands parse with hsync's own command line), the Dockerfile's stages and user,
//! the Kubernetes manifest's probes, port, replicas and non-root settings and a ConfigMap
//! whose configuration hsync loads, and alert rules that use only the metrics the daemon
//! exports. No YAML parser is a dependency, so the YAML checks read lines.

use std::collections::BTreeSet;
use std::path::Path;

use clap::Parser;
use hsync::cli::Cli;
use hsync::config::Config;
use hsync::error::ErrorClass;

fn read(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// `(section, key, value)` for every setting of a systemd unit, comments left out.
fn unit(path: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in read(path).lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let (key, value) = line.split_once('=').unwrap_or_else(|| panic!("{path}: not key=value: {line}"));
        out.push((section.clone(), key.trim().to_owned(), value.trim().to_owned()));
    }
    out
}

fn values<'a>(settings: &'a [(String, String, String)], section: &str, key: &str) -> Vec<&'a str> {
    settings.iter().filter(|(s, k, _)| s == section && k == key).map(|(_, _, v)| v.as_str()).collect()
}

fn one<'a>(settings: &'a [(String, String, String)], section: &str, key: &str) -> &'a str {
    match values(settings, section, key)[..] {
        [value] => value,
        ref other => panic!("[{section}] {key}: expected one value, found {other:?}"),
    }
}

/// The hardening both services share.
fn assert_hardened(settings: &[(String, String, String)]) {
    for (key, value) in [
        ("DynamicUser", "yes"),
        ("StateDirectory", "hsync"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("CapabilityBoundingSet", ""),
    ] {
        assert_eq!(one(settings, "Service", key), value, "{key}");
    }
    assert_eq!(one(settings, "Service", "LoadCredential"), "hubspot-token:/etc/hsync/hubspot-token");
    assert!(
        values(settings, "Service", "Environment").contains(&"HSYNC_HUBSPOT__TOKEN_FILE=%d/hubspot-token"),
        "the token comes from the credential file"
    );
}

/// An `ExecStart` line as hsync's command line parses it.
fn parses(exec: &str) -> Cli {
    let words: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(words[0], "/usr/local/bin/hsync", "{exec}");
    Cli::try_parse_from(words).unwrap_or_else(|e| panic!("{exec}: {e}"))
}

#[test]
fn systemd_daemon_unit_is_a_hardened_notify_service_with_a_watchdog() {
    let s = unit("deploy/hsync.service");
    assert_eq!(one(&s, "Service", "Type"), "notify");
    assert_eq!(one(&s, "Service", "WatchdogSec"), "60");
    assert_eq!(one(&s, "Service", "ExecStart"), "/usr/local/bin/hsync run --config /etc/hsync/hsync.toml");
    // The line is a command hsync's own parser accepts, not just the expected text.
    parses(one(&s, "Service", "ExecStart"));
    assert_eq!(one(&s, "Service", "Restart"), "on-failure");
    let no_restart: BTreeSet<u8> =
        one(&s, "Service", "RestartPreventExitStatus").split_whitespace().map(|c| c.parse().unwrap()).collect();
    assert_eq!(
        no_restart,
        BTreeSet::from([ErrorClass::Auth.exit_code(), ErrorClass::Config.exit_code()]),
        "auth and config failures are not restarted"
    );
    assert_hardened(&s);
    assert_eq!(one(&s, "Install", "WantedBy"), "multi-user.target");
}

#[test]
fn systemd_cdc_timer_runs_a_oneshot_cdc_pass_every_five_minutes() {
    let s = unit("deploy/hsync-cdc.service");
    assert_eq!(one(&s, "Service", "Type"), "oneshot");
    let commands: Vec<Cli> = values(&s, "Service", "ExecStart").into_iter().map(parses).collect();
    let last = commands.last().expect("an ExecStart");
    assert!(
        matches!(&last.command, hsync::cli::Command::Cdc(args) if args.once),
        "the pass ends with `cdc --once`: {:?}",
        last.command
    );
    for cli in &commands {
        assert_eq!(cli.config.as_deref(), Some(Path::new("/etc/hsync/hsync.toml")));
    }
    assert_hardened(&s);
    let t = unit("deploy/hsync-cdc.timer");
    assert_eq!(one(&t, "Timer", "OnCalendar"), "*:0/5");
    assert_eq!(one(&t, "Timer", "Unit"), "hsync-cdc.service");
    assert_eq!(one(&t, "Install", "WantedBy"), "timers.target");
}

#[test]
fn dockerfile_builds_in_one_stage_and_runs_as_non_root_in_another() {
    // One instruction per line: continuation lines joined.
    let text = read("deploy/Dockerfile").replace("\\\n", " ");
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.starts_with('#')).collect();
    let stages = lines.iter().filter(|l| l.starts_with("FROM ")).count();
    assert!(stages >= 2, "multi-stage: {stages} FROM lines");
    assert!(lines.iter().any(|l| l.starts_with("RUN") && l.contains("cargo build --release --locked")));
    // Cargo reads every workspace member's manifest, so the build stage needs all of them.
    let manifest: toml::Table = read("Cargo.toml").parse().expect("Cargo.toml is TOML");
    let members = manifest["workspace"]["members"].as_array().expect("workspace members");
    let copied: Vec<&str> =
        lines.iter().filter_map(|l| l.strip_prefix("COPY ")).filter_map(|l| l.split(' ').next()).collect();
    for member in members.iter().filter_map(|m| m.as_str()).filter(|m| *m != ".") {
        assert!(
            copied.iter().any(|c| member.starts_with(c.trim_end_matches('/'))),
            "the build stage copies workspace member {member}: {copied:?}"
        );
    }
    let user = lines.iter().rev().find_map(|l| l.strip_prefix("USER ")).expect("a USER line");
    let uid = user.split(':').next().unwrap();
    assert!(uid != "root" && uid != "0", "runs as non-root: USER {user}");
    assert!(lines.contains(&"EXPOSE 9464"));
    assert!(lines.iter().any(|l| l.starts_with("CMD") && l.contains("\"run\"")));
}

/// The block scalar under `key: |`, de-indented.
fn block(text: &str, key: &str) -> String {
    let mut lines = text.lines().skip_while(|l| l.trim() != format!("{key}: |"));
    lines.next().unwrap_or_else(|| panic!("no `{key}: |` block"));
    let body: Vec<&str> = lines.take_while(|l| l.is_empty() || l.starts_with("    ")).collect();
    body.iter().map(|l| l.get(4..).unwrap_or_default()).collect::<Vec<_>>().join("\n")
}

#[test]
fn kubernetes_manifest_probes_the_daemon_and_its_config_loads() {
    let text = read("deploy/kubernetes/hsync.yaml");
    let config = Config::from_toml(&block(&text, "hsync.toml")).expect("the ConfigMap's hsync.toml loads");
    assert_eq!(config.destination.url.redacted(), config.destination.url.expose(), "no password in the ConfigMap");
    let token = config.hubspot.token_file.expect("the token comes from a mounted file");
    let mount = token.parent().unwrap().to_string_lossy().into_owned();
    let trimmed: Vec<&str> = text.lines().map(str::trim).collect();
    assert!(trimmed.contains(&format!("mountPath: {mount}").as_str()), "the Secret is mounted at {mount}");
    assert!(trimmed.contains(&format!("path: {}", token.file_name().unwrap().to_string_lossy()).as_str()));
    for expected in [
        "kind: ConfigMap",
        "kind: Secret",
        "kind: Deployment",
        "replicas: 2",
        "path: /healthz",
        "path: /readyz",
        "containerPort: 9464",
        "runAsNonRoot: true",
        "allowPrivilegeEscalation: false",
        "readOnlyRootFilesystem: true",
        "- name: HSYNC_DAEMON__LISTEN",
        "value: \"0.0.0.0:9464\"",
        // Beyond loopback the daemon needs a bearer token.
        "- name: HSYNC_DAEMON__BEARER_TOKEN_ENV",
        "value: HSYNC_HTTP_TOKEN",
        "- name: HSYNC_HTTP_TOKEN",
        "key: http-token",
        "- name: HSYNC_DESTINATION__URL",
    ] {
        assert!(trimmed.contains(&expected), "deploy/kubernetes/hsync.yaml has `{expected}`");
    }
    let probes = trimmed.iter().filter(|l| l.starts_with("livenessProbe:") || l.starts_with("readinessProbe:")).count();
    assert_eq!(probes, 2);
}

/// The metrics the daemon exports (see the README's operations section).
const METRICS: [&str; 11] = [
    "hsync_hubspot_requests_total",
    "hsync_hubspot_rate_limited_total",
    "hsync_hubspot_retries_total",
    "hsync_hubspot_budget_remaining",
    "hsync_budget_paused",
    "hsync_rows_merged_total",
    "hsync_stream_lag_seconds",
    "hsync_errors_total",
    "hsync_backfill_progress_ratio",
    "hsync_stream_last_success_timestamp_seconds",
    "hsync_leader",
];

#[test]
fn alert_rules_cover_lag_errors_budget_and_stalls_with_known_metrics() {
    let text = read("deploy/prometheus/hsync-alerts.yaml");
    let rules: Vec<&str> = text.split("- alert: ").skip(1).collect();
    let names: BTreeSet<&str> = rules.iter().map(|r| r.lines().next().unwrap().trim()).collect();
    for wanted in [
        "HsyncDown",
        "HsyncStreamLagHigh",
        "HsyncErrorRateHigh",
        "HsyncBudgetPaused",
        "HsyncBudgetNearlySpent",
        "HsyncCdcStalled",
    ] {
        assert!(names.contains(wanted), "an alert {wanted} in {names:?}");
    }
    for rule in &rules {
        for field in ["expr:", "severity:", "summary:", "description:"] {
            assert!(rule.contains(field), "every rule has {field}: {rule}");
        }
    }
    let mut used = BTreeSet::new();
    for (i, _) in text.match_indices("hsync_") {
        let name: String =
            text[i..].chars().take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_').collect();
        if !text[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '.') {
            used.insert(name);
        }
    }
    let known: BTreeSet<String> = METRICS.iter().map(|m| (*m).to_owned()).collect();
    let unknown: Vec<&String> = used.difference(&known).collect();
    assert!(unknown.is_empty(), "alert rules use metrics the daemon does not export: {unknown:?}");
    assert!(used.len() >= 8, "most metrics are watched: {used:?}");
}
