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

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (up to 30 s) until the server at `base` answers `/health`.
async fn wait_until_serving(client: &reqwest::Client, base: &str) {
    let started = Instant::now();
    while !client
        .get(format!("{base}/health"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "server did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
    wait_until_serving(&client, &base).await;
    assert_eq!(
        std::process::Command::new(BIN)
            .env_clear()
            .envs(std::env::var_os("LLVM_PROFILE_FILE").map(|v| ("LLVM_PROFILE_FILE", v)))
            .current_dir(std::env::temp_dir())
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .arg("healthcheck")
            .status()
            .unwrap()
            .code(),
        Some(0),
        "healthcheck sees the running server"
    );

    // Each registration hashes with the production argon2 cost, one per
    // core at a time, behind a queue of a few per core (the rest are shed):
    // when the first one is answered, the others it admitted are still in
    // flight, and that is when SIGTERM comes.
    let (first_done, mut first) = tokio::sync::mpsc::channel::<()>(40);
    let requests: Vec<_> = (0..40)
        .map(|i| {
            let client = client.clone();
            let url = format!("{base}/graphql");
            let first_done = first_done.clone();
            tokio::spawn(async move {
                let body = json!({ "query": format!(
                    "mutation {{ register(input: {{email: \"drain{i}@example.com\", password: \"correct horse battery staple\"}}) {{ user {{ id }} }} }}"
                ) });
                let res = client.post(url).json(&body).send().await.expect("request answered");
                let status = res.status();
                let body: serde_json::Value = res.json().await.expect("json");
                if body["data"]["register"].is_object() {
                    let _ = first_done.try_send(());
                }
                (status, body, Instant::now())
            })
        })
        .collect();
    drop(first_done);
    first.recv().await.expect("one registration succeeds");
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
        // The hashing queue sheds what it cannot hold; what it took completes.
        if body["errors"][0]["extensions"]["code"] == "RATE_LIMITED" {
            continue;
        }
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

/// Peak resident memory (VmHWM) of a process, in bytes.
fn peak_rss(pid: u32) -> u64 {
    proc_status_bytes(pid, "VmHWM:")
}

/// Resident memory (VmRSS) of a process now, in bytes.
fn rss_now(pid: u32) -> u64 {
    proc_status_bytes(pid, "VmRSS:")
}

fn proc_status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .expect("a /proc status field");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("a number of kB");
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_auth_storm_stays_small_and_sheds_the_surplus_at_once() {
    use futures_util::StreamExt as _;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // Two cores (one hashing thread each) whatever the machine has, so 100
    // registrations in flight overflow the queue (32 per thread) here as on
    // a small pod.
    let mut server = usergraph(dir.path());
    if Command::new("taskset").arg("-V").output().is_ok() {
        let program = server.get_program().to_owned();
        let mut pinned = Command::new("taskset");
        pinned.args(["-c", "0,1"]).arg(program);
        pinned
            .env_clear()
            .envs(server.get_envs().filter_map(|(k, v)| Some((k, v?))));
        pinned.current_dir(dir.path()).stdin(Stdio::null());
        server = pinned;
    }
    let mut child = server
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("JWT_SECRET", "a-test-secret-of-at-least-32-bytes!!")
        .env("RATE_LIMIT_AUTH_PER_MINUTE", "0")
        .env("LOCKOUT_THRESHOLD", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    wait_until_serving(&client, &base).await;
    let gql = |body: serde_json::Value| {
        let client = client.clone();
        let url = format!("{base}/graphql");
        async move {
            let res = client.post(url).json(&body).send().await.expect("answered");
            assert_eq!(res.status(), 200);
            res.json::<serde_json::Value>().await.expect("json")
        }
    };
    let register = |i: usize| {
        json!({ "query": format!(
            "mutation {{ register(input: {{email: \"storm{i}@example.com\", password: \"correct horse battery staple\"}}) {{ accessToken }} }}"
        ) })
    };
    let login = |i: usize| {
        json!({ "query": format!(
            "mutation {{ login(input: {{email: \"storm{}@example.com\", password: \"correct horse battery staple\"}}) {{ accessToken }} }}", i % 4
        ) })
    };
    // Resident memory once serving, before any storm.
    let baseline = rss_now(child.id());
    let first = gql(register(0)).await;
    let token = first["data"]["register"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    for i in 1..4 {
        assert!(gql(register(i)).await["data"]["register"].is_object());
    }

    let shed = std::sync::atomic::AtomicUsize::new(0);
    let classify = |body: &serde_json::Value, op: &str| {
        if body["data"][op]["accessToken"].is_string() {
            return;
        }
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "RATE_LIMITED",
            "{body}"
        );
        assert!(body["errors"][0]["extensions"]["retryAfter"].as_u64() >= Some(1));
        shed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    };
    let registrations = futures_util::future::join_all((4..104).map(|i| gql(register(i))));
    // Liveness and reads stay served while the storm runs.
    let probes = async {
        for _ in 0..10 {
            let health = client.get(format!("{base}/health")).send().await.unwrap();
            assert_eq!(health.status(), 200);
            let me = client
                .post(format!("{base}/graphql"))
                .bearer_auth(&token)
                .json(&json!({ "query": "{ me { email } }" }))
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap();
            assert_eq!(me["data"]["me"]["email"], "storm0@example.com");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let (bodies, ()) = tokio::join!(registrations, probes);
    for body in &bodies {
        classify(body, "register");
    }
    let logins: Vec<serde_json::Value> = futures_util::stream::iter(0..200)
        .map(|i| gql(login(i)))
        .buffer_unordered(32)
        .collect()
        .await;
    for body in &logins {
        classify(body, "login");
    }
    let peak = peak_rss(child.id());
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    assert!(
        shed.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "100 registrations in flight overflow a queue of 32 per core"
    );
    // What the storm may add: each hashing thread's argon2 memory (one per
    // core, 19 MiB at OWASP's cost) and a little slack, however many
    // requests come. The absolute peak of the release build (< 64 MiB) is
    // measured by bench/auth-storm.sh; this debug binary maps more code.
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    let bound = threads * 19 * 1024 * 1024 + 12 * 1024 * 1024;
    let mib = |b: u64| b / (1024 * 1024);
    eprintln!(
        "auth storm: baseline {} MiB, peak {} MiB",
        mib(baseline),
        mib(peak)
    );
    assert!(
        peak.saturating_sub(baseline) < bound,
        "the storm grew the process from {} MiB to {} MiB (bound: +{} MiB)",
        mib(baseline),
        mib(peak),
        mib(bound)
    );
}

/// Runs `usergraph serve` on defaults (but a free port) for a few seconds
/// and returns what it printed; under a pseudo-terminal (`script`) when
/// `terminal`.
fn first_start_output(terminal: bool, no_color: Option<&str>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let serve = format!("timeout -k 5 3 {BIN} serve");
    let mut cmd = if terminal {
        let mut cmd = Command::new("script");
        cmd.args(["-q", "-e", "-c", &serve, "/dev/null"]);
        cmd
    } else {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &format!("{serve} 2>&1")]);
        cmd
    };
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .current_dir(dir.path())
        .env(
            "DATABASE_URL",
            format!("sqlite://{}?mode=rwc", dir.path().join("p.db").display()),
        )
        .env("BIND_ADDR", format!("127.0.0.1:{}", free_port()))
        .stdin(Stdio::null());
    if let Some(value) = no_color {
        cmd.env("NO_COLOR", value);
    }
    let out = cmd.output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    let piped = first_start_output(false, None);
    assert!(piped.contains("usergraph listening"), "{piped}");
    assert!(piped.contains("127.0.0.1:"), "loopback by default: {piped}");
    assert!(
        piped.contains("JWT_SECRET"),
        "the random key is announced: {piped}"
    );
    assert!(
        !piped.contains('\u{1b}'),
        "no colour codes into a pipe: {piped:?}"
    );

    if Command::new("script").arg("-V").output().is_err() {
        eprintln!("no `script` (util-linux): the terminal half is not exercised");
        return;
    }
    let coloured = first_start_output(true, None);
    assert!(coloured.contains("usergraph listening"), "{coloured}");
    assert!(
        coloured.contains("\u{1b}["),
        "colour on a terminal: {coloured:?}"
    );
    let plain = first_start_output(true, Some("1"));
    assert!(plain.contains("usergraph listening"), "{plain}");
    assert!(!plain.contains('\u{1b}'), "NO_COLOR is honoured: {plain:?}");
}

#[test]
fn seed_adds_users_with_roles_and_continues_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let out = usergraph(dir.path())
            .args(["seed", "--users", "25", "--batch", "10"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("seeded 25 users"), "{stdout}");
    }
    let url = format!("sqlite://{}?mode=ro", dir.path().join("p.db").display());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use sea_orm::{ConnectionTrait as _, Statement};
        let db = sea_orm::Database::connect(url.as_str()).await.unwrap();
        let count = |sql: &'static str| {
            let db = &db;
            async move {
                let row = db
                    .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
                    .await
                    .unwrap()
                    .unwrap();
                row.try_get_by_index::<i64>(0).unwrap()
            }
        };
        assert_eq!(count("SELECT COUNT(*) FROM users WHERE email LIKE 'seed-%@example.com'").await, 50);
        assert_eq!(
            count("SELECT COUNT(*) FROM users WHERE email = 'seed-49@example.com' AND display_name = 'Seed User 49'").await,
            1
        );
        assert_eq!(
            count("SELECT COUNT(*) FROM user_roles ur JOIN roles r ON r.id = ur.role_id WHERE r.name = 'support'").await,
            5
        );
        assert_eq!(
            count("SELECT COUNT(*) FROM user_roles ur JOIN roles r ON r.id = ur.role_id WHERE r.name = 'user'").await,
            50
        );
    });
}
