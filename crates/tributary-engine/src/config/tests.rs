use std::path::Path;

use super::*;

fn parse(text: &str) -> Result<DaemonConfig, String> {
    DaemonConfig::from_toml_str(Path::new("t.toml"), text).map_err(|err| err.to_string())
}

#[test]
fn empty_file_gives_every_default() {
    assert_eq!(parse("").unwrap(), DaemonConfig::default());
}

#[test]
fn unknown_key_is_an_error_naming_it() {
    let err = parse("listen = \"127.0.0.1:9000\"\nstate_dri = \"x\"\n").unwrap_err();
    assert!(err.contains("state_dri"), "{err}");
    let err = parse("[limits]\nmax_runs = 3\n").unwrap_err();
    assert!(err.contains("max_runs"), "{err}");
}

#[test]
fn values_are_read_and_checked() {
    let config = parse("listen = \"0.0.0.0:9000\"\n[limits]\nmax_concurrent_runs = 8\n").unwrap();
    assert_eq!(config.listen.port(), 9000);
    assert_eq!(config.limits.max_concurrent_runs, 8);
    let err = parse("[limits]\nmax_concurrent_runs = 0\n").unwrap_err();
    assert!(err.contains("max_concurrent_runs"), "{err}");
}

#[test]
fn credentials_are_not_printed_by_debug() {
    let config = parse(
        "[[api.orgs]]\norg_id = \"ACME@AdobeOrg\"\napi_key = \"k-123\"\nbearer_token = \"t-456\"\n",
    )
    .unwrap();
    let shown = format!("{config:?}");
    assert!(shown.contains("ACME@AdobeOrg"));
    assert!(
        !shown.contains("k-123") && !shown.contains("t-456"),
        "{shown}"
    );
}

#[test]
fn max_wait_defaults_to_fifteen_minutes_and_is_checked() {
    assert_eq!(parse("").unwrap().limits.max_wait_secs, 900);
    let config = parse("[limits]\nmax_wait_secs = 60\n").unwrap();
    assert_eq!(config.limits.max_wait_secs, 60);
    for bad in ["0", "31536001"] {
        let err = parse(&format!("[limits]\nmax_wait_secs = {bad}\n")).unwrap_err();
        assert!(
            err.contains("limits.max_wait_secs") && err.contains(bad),
            "{err}"
        );
    }
}

#[test]
fn host_limits_are_read_with_a_default_burst_and_checked() {
    let config = parse(
        "[limits.hosts.\"api.test\"]\nrequests_per_second = 10\n[limits.hosts.\"127.0.0.1:8080\"]\nrequests_per_second = 0.5\nburst = 3\n",
    )
    .unwrap();
    let quotas = config.limits.host_quotas();
    assert_eq!(
        quotas["api.test"].interval(),
        std::time::Duration::from_millis(100)
    );
    assert_eq!(quotas["api.test"].burst.get(), 1, "burst defaults to 1");
    assert_eq!(
        quotas["127.0.0.1:8080"].interval(),
        std::time::Duration::from_secs(2)
    );
    assert_eq!(quotas["127.0.0.1:8080"].burst.get(), 3);
    for (text, expected) in [
        (
            "[limits.hosts.\"h\"]\nrequests_per_second = 0\n",
            "limits.hosts.\"h\".requests_per_second",
        ),
        (
            "[limits.hosts.\"h\"]\nrequests_per_second = -2\n",
            "found -2",
        ),
        (
            "[limits.hosts.\"h\"]\nrequests_per_second = 5\nburst = 0\n",
            "limits.hosts.\"h\".burst",
        ),
        ("[limits.hosts.\"h\"]\nburst = 2\n", "requests_per_second"),
        (
            "[limits.hosts.\"h\"]\nrequests_per_second = 5\nrate = 2\n",
            "rate",
        ),
        (
            "[limits.hosts.\"https://h/x\"]\nrequests_per_second = 5\n",
            "without scheme or path",
        ),
    ] {
        let err = parse(text).unwrap_err();
        assert!(err.contains(expected), "{expected:?} in {err}");
    }
}

#[test]
fn the_example_configs_parse() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    for file in [
        "tributary.toml",
        "deploy/systemd/tributary.toml",
        "deploy/kubernetes/tributary.toml",
    ] {
        let path = root.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        if let Err(err) = DaemonConfig::from_toml_str(&path, &text) {
            panic!("{}: {err}", path.display());
        }
    }
}

#[test]
fn state_backend_and_url_are_read_and_checked() {
    assert_eq!(parse("").unwrap().state.backend, StateBackend::Sled);
    let config =
        parse("[state]\nbackend = \"postgres\"\nurl = \"postgres://app:pw-9@db/state\"\n").unwrap();
    assert_eq!(config.state.backend, StateBackend::Postgres);
    assert_eq!(config.state.url, "postgres://app:pw-9@db/state");
    let shown = format!("{config:?}");
    assert!(
        !shown.contains("pw-9") && shown.contains("url_set: true"),
        "{shown}"
    );

    let err = parse("[state]\nbackend = \"mysql\"\n").unwrap_err();
    assert!(err.contains("backend") && err.contains("mysql"), "{err}");
    assert!(err.contains("sled") && err.contains("postgres"), "{err}");
    let err = parse("[state]\nbackend = \"postgres\"\n").unwrap_err();
    assert!(err.contains("state.url: required"), "{err}");
    let err = parse("[state]\nurl = \"postgres://db/x\"\n").unwrap_err();
    assert!(err.contains("state.url: only used"), "{err}");
}

#[test]
fn lease_keys_apply_to_a_shared_state_only_and_are_checked() {
    let shared = "[state]\nbackend = \"postgres\"\nurl = \"postgres://u@h/db\"\n";
    let config = parse(&format!(
        "{shared}[scheduler]\nlease_ttl_secs = 5\nnode_id = \"n1\"\n"
    ))
    .unwrap();
    assert_eq!(
        config.scheduler.lease_ttl(),
        std::time::Duration::from_secs(5)
    );
    assert_eq!(config.scheduler.node_id.as_deref(), Some("n1"));
    assert_eq!(
        parse(shared).unwrap().scheduler.lease_ttl(),
        std::time::Duration::from_secs(DEFAULT_LEASE_TTL_SECS)
    );
    for (bad, named) in [
        ("lease_ttl_secs = 1", "scheduler.lease_ttl_secs"),
        ("lease_ttl_secs = 3601", "scheduler.lease_ttl_secs"),
        ("node_id = \" \"", "scheduler.node_id"),
    ] {
        let err = parse(&format!("{shared}[scheduler]\n{bad}\n")).unwrap_err();
        assert!(err.contains(named), "{err}");
    }
    // A sled state has one daemon: the keys would be ignored, so they are refused.
    for key in ["lease_ttl_secs = 5", "node_id = \"n1\""] {
        let err = parse(&format!("[scheduler]\n{key}\n")).unwrap_err();
        assert!(err.contains("only used with state.backend"), "{err}");
    }
}
