//! Mail through a real SMTP server process: Python's aiosmtpd, storing what
//! it receives in a Maildir. The tests start, stop and restart it.
//!
//! They need `python3 -m aiosmtpd` (PyPI `aiosmtpd`); set `SMTP_SINK_PYTHON`
//! to a Python that has it (`.ci/run` makes one). Hence `#[ignore]`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use usergraph::config::{MailerConfig, Secret};

use crate::helpers::{TestApp, spawn_app_with, spawn_replica_with};
use crate::lifecycle::{PUBLIC_URL, link_token, unfold, wait_until};
use crate::process::free_port;

struct SmtpSink {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl SmtpSink {
    fn start() -> Self {
        let mut sink = Self {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        sink.resume();
        sink
    }

    fn maildir(&self) -> PathBuf {
        self.dir.path().join("maildir")
    }

    /// Starts (again) on the same port and Maildir.
    fn resume(&mut self) {
        let python = std::env::var("SMTP_SINK_PYTHON").unwrap_or_else(|_| "python3".into());
        let child = Command::new(python)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{}", self.port))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(self.maildir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m aiosmtpd (set SMTP_SINK_PYTHON)");
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "aiosmtpd did not start (is it installed? set SMTP_SINK_PYTHON)"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received, decoded enough to read links.
    fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.maildir().join(sub)) else {
                continue;
            };
            for entry in entries.filter_map(Result::ok) {
                if let Ok(text) = std::fs::read_to_string(entry.path()) {
                    out.push(unfold(&text));
                }
            }
        }
        out
    }

    fn to(&self, address: &str, subject: &str) -> Vec<String> {
        self.messages()
            .into_iter()
            .filter(|m| m.contains(&format!("To: {address}")) && m.contains(subject))
            .collect()
    }

    async fn wait_for(&self, address: &str, subject: &str, n: usize) -> Vec<String> {
        let started = Instant::now();
        loop {
            let found = self.to(address, subject);
            if found.len() >= n {
                return found;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "{n} × {subject:?} to {address} did not arrive"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}

fn smtp(sink: &SmtpSink) -> impl Fn(&mut usergraph::config::Config) + Clone {
    let url = sink.url();
    move |c: &mut usergraph::config::Config| {
        c.mailer = MailerConfig::Smtp(Secret::new(url.clone()));
        c.public_url = PUBLIC_URL.into();
        c.mail.retry_base = Duration::from_millis(200);
    }
}

async fn ask_verification(app: &TestApp, access: &str) {
    let body = app
        .gql(
            "mutation { requestEmailVerification }",
            json!({}),
            Some(access),
        )
        .await;
    assert_eq!(body["data"]["requestEmailVerification"], true, "{body}");
}

#[tokio::test]
#[ignore = "needs python3 -m aiosmtpd (SMTP_SINK_PYTHON); run with --include-ignored"]
async fn smtp_delivers_verification_and_reset_mail_with_working_links() {
    let sink = SmtpSink::start();
    let app = spawn_app_with(smtp(&sink)).await;
    let ada = app.signed_up("ada@example.com").await;
    ask_verification(&app, &ada.access).await;
    let mail = sink
        .wait_for("ada@example.com", "Verify your email", 1)
        .await;
    assert!(
        mail[0].contains("From: usergraph <no-reply@localhost>"),
        "{}",
        mail[0]
    );
    assert!(mail[0].contains("text/html"), "plain and HTML bodies");
    let token = link_token(&mail[0], "verify-email");
    let verified = app
        .gql(
            "mutation($t: String!) { verifyEmail(token: $t) { emailVerified } }",
            json!({ "t": token }),
            None,
        )
        .await;
    assert_eq!(
        verified["data"]["verifyEmail"]["emailVerified"], true,
        "{verified}"
    );

    app.gql(
        "mutation { requestPasswordReset(email: \"ada@example.com\") }",
        json!({}),
        None,
    )
    .await;
    let reset = sink
        .wait_for("ada@example.com", "Reset your password", 1)
        .await;
    let token = link_token(&reset[0], "reset-password");
    let done = app
        .gql(
            "mutation($i: ResetPasswordInput!) { resetPassword(input: $i) }",
            json!({ "i": { "token": token, "newPassword": "another fine passphrase" } }),
            None,
        )
        .await;
    assert_eq!(done["data"]["resetPassword"], true, "{done}");
    assert!(
        app.login("ada@example.com", "another fine passphrase")
            .await["data"]["login"]
            .is_object()
    );
}

#[tokio::test]
#[ignore = "needs python3 -m aiosmtpd (SMTP_SINK_PYTHON); run with --include-ignored"]
async fn mail_waits_for_a_stopped_smtp_server_also_across_a_restart() {
    let mut sink = SmtpSink::start();
    sink.stop();
    let app = spawn_app_with(smtp(&sink)).await;
    let bo = app.signed_up("bo@example.com").await;
    ask_verification(&app, &bo.access).await;
    let id = uuid::Uuid::parse_str(&bo.user_id).unwrap();
    wait_until(|| async {
        use sea_orm::EntityTrait as _;
        entity::mail_outbox::Entity::find()
            .one(&app.state.db.write)
            .await
            .unwrap()
            .is_some_and(|m| m.attempts >= 1 && m.sent_at.is_none())
    })
    .await;
    assert_eq!(
        usergraph::domain::mail::pending_for(&app.state, id)
            .await
            .unwrap(),
        1
    );
    // usergraph restarts while the mail server is still down.
    let next = spawn_replica_with(&app, smtp(&sink)).await;
    // The first instance stops (its database stays for the second).
    let _db = app.stop_keeping_database();
    tokio::time::sleep(Duration::from_millis(500)).await;
    sink.resume();
    let mail = sink
        .wait_for("bo@example.com", "Verify your email", 1)
        .await;
    wait_until(|| async {
        usergraph::domain::mail::pending_for(&next.state, id)
            .await
            .unwrap()
            == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        sink.to("bo@example.com", "Verify your email").len(),
        1,
        "delivered once"
    );
    let token = link_token(&mail[0], "verify-email");
    let verified = next
        .gql(
            "mutation($t: String!) { verifyEmail(token: $t) { emailVerified } }",
            json!({ "t": token }),
            None,
        )
        .await;
    assert_eq!(
        verified["data"]["verifyEmail"]["emailVerified"], true,
        "{verified}"
    );
}

#[tokio::test]
#[ignore = "needs python3 -m aiosmtpd (SMTP_SINK_PYTHON); run with --include-ignored"]
async fn two_instances_deliver_each_message_exactly_once() {
    let sink = SmtpSink::start();
    let a = spawn_app_with(smtp(&sink)).await;
    let b = spawn_replica_with(&a, smtp(&sink)).await;
    let mut users = Vec::new();
    for i in 0..24 {
        users.push((i, a.signed_up(&format!("u{i}@example.com")).await));
    }
    // Queued from both instances; both workers race for them.
    for (i, user) in &users {
        let on = if i % 2 == 0 { &a } else { &b };
        ask_verification(on, &user.access).await;
        let body = on
            .gql(
                "mutation($e: String!) { requestPasswordReset(email: $e) }",
                json!({ "e": format!("u{i}@example.com") }),
                None,
            )
            .await;
        assert_eq!(body["data"]["requestPasswordReset"], true);
    }
    for (i, _) in &users {
        sink.wait_for(&format!("u{i}@example.com"), "Verify your email", 1)
            .await;
        sink.wait_for(&format!("u{i}@example.com"), "Reset your password", 1)
            .await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let all = sink.messages();
    assert_eq!(all.len(), 48, "each message exactly once");
    let mut ids: Vec<String> = all
        .iter()
        .filter_map(|m| {
            m.lines()
                .find(|l| l.starts_with("Message-ID:"))
                .map(str::to_owned)
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 48);
}
