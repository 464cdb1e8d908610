//! The real binary: configuration errors at start, draining on SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_usergraph");

fn usergraph(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .current_dir(dir)
        .env(
            "DATABASE_URL",
            format!("sqlite://{}?mode=rwc", dir.join("p.db").display()),
        )
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    cmd
}

#[test]
fn bad_configuration_exits_non_zero_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value, extra) in [
        ("ACCESS_TOKEN_TTL", "banana", None),
        ("BIND_ADDR", "not-an-address", None),
        ("JWT_SECRET", "too-short", None),
        ("REDIS_URL", "memcached://x", None),
        ("LOCKOUT_THRESHOLD", "many", None),
        ("APP_ENV", "production", Some("JWT_SECRET")),
    ] {
        let out = usergraph(dir.path())
            .env(var, value)
            .arg("serve")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}={value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let named = extra.unwrap_or(var);
        assert!(
            stderr.contains(named),
            "{var}={value}: stderr names {named}: {stderr}"
        );
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_drains_in_flight_requests() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = usergraph(dir.path())
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("JWT_SECRET", "a-test-secret-of-at-least-32-bytes!!")
        .env("RATE_LIMIT_AUTH_PER_MINUTE", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if client
            .get(format!("{base}/health"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "server did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        std::process::Command::new(BIN)
            .env_clear()
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .arg("healthcheck")
            .status()
            .unwrap()
            .code(),
        Some(0),
        "healthcheck sees the running server"
    );

    // Each registration hashes with the production argon2 cost, and hashing
    // is limited to one per core: these stay in flight for a while.
    let requests: Vec<_> = (0..40)
        .map(|i| {
            let client = client.clone();
            let url = format!("{base}/graphql");
            tokio::spawn(async move {
                let body = json!({ "query": format!(
                    "mutation {{ register(input: {{email: \"drain{i}@example.com\", password: \"correct horse battery staple\"}}) {{ user {{ id }} }} }}"
                ) });
                let res = client.post(url).json(&body).send().await.expect("request answered");
                let status = res.status();
                let body: serde_json::Value = res.json().await.expect("json");
                (status, body, Instant::now())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let signalled = Instant::now();
    let kill = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(kill.success());

    let mut finished_after_signal = 0;
    for r in requests {
        let (status, body, at) = r.await.unwrap();
        assert_eq!(status, 200);
        assert!(
            body["data"]["register"]["user"]["id"].is_string(),
            "in-flight request completed: {body}"
        );
        if at > signalled {
            finished_after_signal += 1;
        }
    }
    assert!(
        finished_after_signal > 0,
        "some requests were still in flight at SIGTERM"
    );
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "clean exit after draining: {exit:?}");
    assert!(
        client.get(format!("{base}/health")).send().await.is_err(),
        "stopped listening"
    );
}

#[tokio::test]
async fn migrate_up_status_down_through_the_cli() {
    let (url, _db) = crate::helpers::fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = usergraph(dir.path())
            .env("DATABASE_URL", &url)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(run(&["migrate", "status"]).contains("Pending"));
    run(&["migrate", "up"]);
    let status = run(&["migrate", "status"]);
    assert!(
        status.contains("Applied") && status.contains("m20261126_000001_initial"),
        "{status}"
    );
    run(&["migrate", "down"]);
    assert!(run(&["migrate", "status"]).contains("Pending"));
    run(&["migrate", "up"]);
    assert!(run(&["migrate", "status"]).contains("Applied"));
}

#[test]
fn export_schema_and_help() {
    let dir = tempfile::tempdir().unwrap();
    let out = usergraph(dir.path()).arg("export-schema").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        usergraph::graphql::sdl()
    );
    for cmd in [
        &["--help"][..],
        &["serve", "--help"],
        &["migrate", "--help"],
        &["create-admin", "--help"],
        &["healthcheck", "--help"],
    ] {
        let out = usergraph(dir.path()).args(cmd).output().unwrap();
        assert!(out.status.success(), "{cmd:?}");
        assert!(!out.stdout.is_empty());
    }
}

#[test]
fn create_admin_reads_the_password_from_stdin() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let mut child = usergraph(dir.path())
        .args([
            "create-admin",
            "--email",
            "Root@Example.com",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a long admin passphrase\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("root@example.com"));
    // A weak password is refused, naming the rule.
    let mut child = usergraph(dir.path())
        .args([
            "create-admin",
            "--email",
            "other@example.com",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"password\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("too common"));
}
