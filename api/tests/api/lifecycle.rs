//! The account lifecycle through real HTTP: email verification, password
//! reset and change, profile, sessions, deletion, the refresh grace, and the
//! mail outbox (delivered here by the `file:` mailer; `smtp.rs` does the same
//! through a real SMTP server).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use sea_orm::{ColumnTrait as _, EntityTrait as _, PaginatorTrait as _, QueryFilter as _};
use serde_json::{Value, json};
use usergraph::config::MailerConfig;

use crate::helpers::{PASSWORD, TestApp, code, field, spawn_app_with};

pub const PUBLIC_URL: &str = "https://app.example.test";
const NEW_PASSWORD: &str = "a brand new passphrase 2026";

/// The `.eml` files a `file:` mailer wrote.
pub struct Inbox(pub PathBuf);

/// Quoted-printable soft breaks and `=3D` undone: enough to find a link.
pub fn unfold(eml: &str) -> String {
    eml.replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=")
}

/// The token of the first `{PUBLIC_URL}/{path}?token=…` link in a message.
pub fn link_token(eml: &str, path: &str) -> String {
    let text = unfold(eml);
    let prefix = format!("{PUBLIC_URL}/{path}?token=");
    let at = text
        .find(&prefix)
        .unwrap_or_else(|| panic!("no {prefix} link in {text}"));
    text[at + prefix.len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

impl Inbox {
    pub fn messages(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.0) else {
            return Vec::new();
        };
        let mut found: Vec<(PathBuf, String)> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .map(|p| {
                let text = std::fs::read_to_string(&p).unwrap();
                (p, text)
            })
            .collect();
        found.sort();
        found.into_iter().map(|(_, text)| text).collect()
    }

    pub fn to(&self, address: &str, subject: &str) -> Vec<String> {
        self.messages()
            .into_iter()
            .filter(|m| m.contains(&format!("To: {address}")) && m.contains(subject))
            .collect()
    }

    /// Waits (up to 10 s) until `n` messages to `address` with `subject`.
    pub async fn wait_for(&self, address: &str, subject: &str, n: usize) -> Vec<String> {
        let started = Instant::now();
        loop {
            let found = self.to(address, subject);
            if found.len() >= n {
                return found;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{n} × {subject:?} to {address} did not arrive; have {found:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// An app whose mail lands in a temporary directory, with links under
/// [`PUBLIC_URL`] and quick retries.
pub async fn mail_app(
    tweak: impl FnOnce(&mut usergraph::config::Config),
) -> (TestApp, Inbox, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mail");
    let out2 = out.clone();
    let app = spawn_app_with(move |c| {
        c.mailer = MailerConfig::File(out2);
        c.public_url = PUBLIC_URL.into();
        c.mail.retry_base = Duration::from_millis(100);
        tweak(c);
    })
    .await;
    (app, Inbox(out), dir)
}

pub async fn gql(app: &TestApp, query: &str, variables: Value, token: Option<&str>) -> Value {
    app.gql(query, variables, token).await
}

async fn request_reset(app: &TestApp, email: &str) -> Value {
    gql(
        app,
        "mutation($e: String!) { requestPasswordReset(email: $e) }",
        json!({ "e": email }),
        None,
    )
    .await
}

async fn reset(app: &TestApp, token: &str, password: &str) -> Value {
    gql(
        app,
        "mutation($i: ResetPasswordInput!) { resetPassword(input: $i) }",
        json!({ "i": { "token": token, "newPassword": password } }),
        None,
    )
    .await
}

async fn verify(app: &TestApp, token: &str) -> Value {
    gql(
        app,
        "mutation($t: String!) { verifyEmail(token: $t) { email emailVerified } }",
        json!({ "t": token }),
        None,
    )
    .await
}

/// Every audit action recorded for (actor or target) `user_id`, oldest first,
/// and a check that no audit row anywhere holds one of `secrets`.
pub async fn audit_actions(app: &TestApp, user_id: &str, secrets: &[&str]) -> Vec<String> {
    use entity::audit_event::{Column, Entity};
    let rows = Entity::find().all(&app.state.db.write).await.unwrap();
    for row in &rows {
        let text = format!(
            "{} {} {:?} {:?}",
            row.action, row.metadata, row.user_agent, row.ip_address
        );
        for secret in secrets {
            assert!(!text.contains(secret), "audit row holds a secret: {text}");
        }
    }
    let id = uuid::Uuid::parse_str(user_id).unwrap();
    let mut mine: Vec<_> = Entity::find()
        .filter(
            sea_orm::Condition::any()
                .add(Column::ActorId.eq(id))
                .add(Column::TargetUserId.eq(id)),
        )
        .all(&app.state.db.write)
        .await
        .unwrap();
    mine.sort_by_key(|e| (e.created_at, e.id));
    mine.into_iter().map(|e| e.action).collect()
}

async fn me_code(app: &TestApp, access: &str) -> String {
    let body = app.me(access).await;
    if body.get("errors").is_some() {
        code(&body).to_owned()
    } else {
        "OK".into()
    }
}

#[tokio::test]
async fn verification_links_verify_once_and_point_at_public_url() {
    let (app, inbox, _dir) = mail_app(|_| {}).await;
    let ada = app.signed_up("ada@example.com").await;
    let ask = || async {
        // Another Host header must not leak into the link.
        let res = app
            .client
            .post(app.url("/graphql"))
            .header("host", "evil.example")
            .bearer_auth(&ada.access)
            .json(&json!({ "query": "mutation { requestEmailVerification }" }))
            .send()
            .await
            .unwrap();
        res.json::<Value>().await.unwrap()
    };
    assert_eq!(ask().await["data"]["requestEmailVerification"], true);
    let first = link_token(
        &inbox
            .wait_for("ada@example.com", "Verify your email", 1)
            .await[0],
        "verify-email",
    );
    assert!(first.len() >= 43, "256-bit token: {first}");
    assert!(!inbox.messages()[0].contains("evil.example"));
    // A new request supersedes the first link.
    assert_eq!(ask().await["data"]["requestEmailVerification"], true);
    let mails = inbox
        .wait_for("ada@example.com", "Verify your email", 2)
        .await;
    let second = mails
        .iter()
        .map(|m| link_token(m, "verify-email"))
        .find(|t| *t != first)
        .unwrap();
    assert_eq!(code(&verify(&app, &first).await), "INVALID_TOKEN");
    let ok = verify(&app, &second).await;
    assert_eq!(
        ok["data"]["verifyEmail"],
        json!({ "email": "ada@example.com", "emailVerified": true })
    );
    assert_eq!(
        code(&verify(&app, &second).await),
        "INVALID_TOKEN",
        "single use"
    );
    assert_eq!(code(&verify(&app, "not-a-token").await), "INVALID_TOKEN");
    let me = gql(
        &app,
        "{ me { emailVerified } }",
        json!({}),
        Some(&ada.access),
    )
    .await;
    assert_eq!(
        me["data"]["me"]["emailVerified"], true,
        "no stale cached user"
    );
    // Verified already: no further mail.
    assert_eq!(ask().await["data"]["requestEmailVerification"], true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(inbox.to("ada@example.com", "Verify your email").len(), 2);
    let actions = audit_actions(&app, &ada.user_id, &[&first, &second, PASSWORD]).await;
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "EMAIL_VERIFICATION_REQUESTED")
            .count(),
        2
    );
    assert_eq!(actions.last().unwrap(), "EMAIL_VERIFIED");
}

#[tokio::test]
async fn email_tokens_expire() {
    let (app, inbox, _dir) = mail_app(|c| {
        c.mail.verification_ttl = Duration::from_millis(700);
        c.mail.reset_ttl = Duration::from_millis(700);
    })
    .await;
    let bo = app.signed_up("bo@example.com").await;
    gql(
        &app,
        "mutation { requestEmailVerification }",
        json!({}),
        Some(&bo.access),
    )
    .await;
    assert_eq!(
        request_reset(&app, "bo@example.com").await["data"]["requestPasswordReset"],
        true
    );
    let verification = link_token(
        &inbox
            .wait_for("bo@example.com", "Verify your email", 1)
            .await[0],
        "verify-email",
    );
    let reset_token = link_token(
        &inbox
            .wait_for("bo@example.com", "Reset your password", 1)
            .await[0],
        "reset-password",
    );
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(code(&verify(&app, &verification).await), "INVALID_TOKEN");
    assert_eq!(
        code(&reset(&app, &reset_token, NEW_PASSWORD).await),
        "INVALID_TOKEN"
    );
}

#[tokio::test]
async fn a_password_reset_ends_every_session_and_lifts_the_lockout() {
    let (app, inbox, _dir) = mail_app(|c| {
        c.lockout_threshold = 3;
        c.mail.reset_cooldown = Duration::ZERO;
    })
    .await;
    let cy = app.signed_up("cy@example.com").await;
    let second = app.login("cy@example.com", PASSWORD).await;
    let second_access = second["data"]["login"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..3 {
        app.login("cy@example.com", "wrong password here").await;
    }
    assert_eq!(
        code(&app.login("cy@example.com", PASSWORD).await),
        "ACCOUNT_LOCKED"
    );

    // Known and unknown addresses answer alike; only the known one gets mail.
    // With another Host header: the link still uses PUBLIC_URL.
    let via_other_host = app
        .client
        .post(app.url("/graphql"))
        .header("host", "evil.example")
        .json(&json!({ "query": "mutation { requestPasswordReset(email: \"cy@example.com\") }" }))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(
        via_other_host,
        json!({ "data": { "requestPasswordReset": true } })
    );
    assert_eq!(
        request_reset(&app, "nobody@example.com").await,
        json!({ "data": { "requestPasswordReset": true } })
    );
    assert_eq!(
        code(&request_reset(&app, "not an email").await),
        "BAD_USER_INPUT"
    );
    let first_mail = inbox
        .wait_for("cy@example.com", "Reset your password", 1)
        .await;
    assert!(!first_mail[0].contains("evil.example"), "{}", first_mail[0]);
    let first = link_token(&first_mail[0], "reset-password");
    assert_eq!(
        request_reset(&app, "CY@example.com ").await["data"]["requestPasswordReset"],
        true
    );
    let mails = inbox
        .wait_for("cy@example.com", "Reset your password", 2)
        .await;
    let token = mails
        .iter()
        .map(|m| link_token(m, "reset-password"))
        .find(|t| *t != first)
        .unwrap();
    assert_eq!(
        code(&reset(&app, &first, NEW_PASSWORD).await),
        "INVALID_TOKEN",
        "superseded"
    );
    let weak = reset(&app, &token, "password").await;
    assert_eq!(
        (code(&weak), field(&weak)),
        ("BAD_USER_INPUT", "newPassword")
    );
    assert_eq!(
        reset(&app, &token, NEW_PASSWORD).await,
        json!({ "data": { "resetPassword": true } })
    );
    assert_eq!(
        code(&reset(&app, &token, NEW_PASSWORD).await),
        "INVALID_TOKEN",
        "single use"
    );

    assert_eq!(me_code(&app, &cy.access).await, "UNAUTHENTICATED");
    assert_eq!(me_code(&app, &second_access).await, "UNAUTHENTICATED");
    assert_eq!(code(&app.refresh(&cy.refresh).await), "INVALID_TOKEN");
    assert_eq!(
        code(&app.login("cy@example.com", PASSWORD).await),
        "UNAUTHENTICATED"
    );
    let fresh = app.login("cy@example.com", NEW_PASSWORD).await;
    assert!(
        fresh["data"]["login"]["accessToken"].is_string(),
        "lockout lifted: {fresh}"
    );

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(inbox.to("nobody@example.com", "Reset").is_empty());
    let actions = audit_actions(
        &app,
        &cy.user_id,
        &[&first, &token, PASSWORD, NEW_PASSWORD, &cy.refresh],
    )
    .await;
    for expected in [
        "ACCOUNT_LOCKED",
        "PASSWORD_RESET_REQUESTED",
        "PASSWORD_RESET",
        "LOGIN_SUCCEEDED",
    ] {
        assert!(
            actions.iter().any(|a| a == expected),
            "{expected} in {actions:?}"
        );
    }
    use entity::audit_event::{Column, Entity};
    let anonymous = Entity::find()
        .filter(Column::Action.eq("PASSWORD_RESET_REQUESTED"))
        .filter(Column::TargetUserId.is_null())
        .all(&app.state.db.write)
        .await
        .unwrap();
    assert_eq!(anonymous.len(), 1);
    assert_eq!(anonymous[0].metadata["email"], "nobody@example.com");
    assert!(
        anonymous[0].ip_address.is_some(),
        "the request's IP rides along"
    );
}

#[tokio::test]
async fn a_reset_request_within_the_cooldown_sends_no_second_mail() {
    let (app, inbox, _dir) = mail_app(|_| {}).await;
    let pat = app.signed_up("pat@example.com").await;
    for _ in 0..3 {
        assert_eq!(
            request_reset(&app, "pat@example.com").await["data"]["requestPasswordReset"],
            true
        );
    }
    let mails = inbox
        .wait_for("pat@example.com", "Reset your password", 1)
        .await;
    wait_until(|| async {
        use entity::mail_outbox::Entity;
        Entity::find()
            .all(&app.state.db.write)
            .await
            .unwrap()
            .iter()
            .all(|m| m.sent_at.is_some())
    })
    .await;
    assert_eq!(inbox.to("pat@example.com", "Reset your password").len(), 1);
    // The one link sent still works: the throttled requests voided nothing.
    let token = link_token(&mails[0], "reset-password");
    assert_eq!(
        reset(&app, &token, NEW_PASSWORD).await["data"]["resetPassword"],
        true
    );
    let actions = audit_actions(&app, &pat.user_id, &[&token, PASSWORD, NEW_PASSWORD]).await;
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "PASSWORD_RESET_REQUESTED")
            .count(),
        3
    );
}

#[tokio::test]
async fn changing_the_password_keeps_this_session_and_ends_the_others() {
    let (app, _inbox, _dir) = mail_app(|_| {}).await;
    let di = app.signed_up("di@example.com").await;
    let other = app.login("di@example.com", PASSWORD).await;
    let other_access = other["data"]["login"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let change = |current: &str, new: &str| {
        let (current, new) = (current.to_owned(), new.to_owned());
        let access = di.access.clone();
        let app = &app;
        async move {
            gql(
                app,
                "mutation($i: ChangePasswordInput!) { changePassword(input: $i) }",
                json!({ "i": { "currentPassword": current, "newPassword": new } }),
                Some(&access),
            )
            .await
        }
    };
    let wrong = change("not my password", NEW_PASSWORD).await;
    assert_eq!(
        (code(&wrong), field(&wrong)),
        ("BAD_USER_INPUT", "currentPassword")
    );
    let weak = change(PASSWORD, "12345678").await;
    assert_eq!(
        (code(&weak), field(&weak)),
        ("BAD_USER_INPUT", "newPassword")
    );
    assert_eq!(
        me_code(&app, &other_access).await,
        "OK",
        "nothing changed yet"
    );
    assert_eq!(
        change(PASSWORD, NEW_PASSWORD).await,
        json!({ "data": { "changePassword": true } })
    );
    assert_eq!(me_code(&app, &di.access).await, "OK", "this session stays");
    assert_eq!(me_code(&app, &other_access).await, "UNAUTHENTICATED");
    assert_eq!(
        code(&app.login("di@example.com", PASSWORD).await),
        "UNAUTHENTICATED"
    );
    assert!(app.login("di@example.com", NEW_PASSWORD).await["data"]["login"].is_object());
    let anonymous = gql(
        &app,
        "mutation { changePassword(input: {currentPassword: \"x\", newPassword: \"y\"}) }",
        json!({}),
        None,
    )
    .await;
    assert_eq!(code(&anonymous), "UNAUTHENTICATED");
    let actions = audit_actions(&app, &di.user_id, &[PASSWORD, NEW_PASSWORD]).await;
    assert!(
        actions.iter().any(|a| a == "PASSWORD_CHANGED"),
        "{actions:?}"
    );
}

#[tokio::test]
async fn wrong_current_passwords_count_toward_the_lockout() {
    let (app, _inbox, _dir) = mail_app(|c| c.lockout_threshold = 2).await;
    let rae = app.signed_up("rae@example.com").await;
    let change = |current: &str| {
        let current = current.to_owned();
        let access = rae.access.clone();
        let app = &app;
        async move {
            gql(
                app,
                "mutation($i: ChangePasswordInput!) { changePassword(input: $i) }",
                json!({ "i": { "currentPassword": current, "newPassword": NEW_PASSWORD } }),
                Some(&access),
            )
            .await
        }
    };
    let first = change("guess number one").await;
    assert_eq!(
        (code(&first), field(&first)),
        ("BAD_USER_INPUT", "currentPassword")
    );
    // The second wrong guess reaches the threshold: answered like the first,
    // and the account is locked from now on (as with login).
    assert_eq!(code(&change("guess number two").await), "BAD_USER_INPUT");
    // Locked: even the right password is refused, here and at login.
    assert_eq!(code(&change(PASSWORD).await), "ACCOUNT_LOCKED");
    let delete = gql(
        &app,
        "mutation($p: String!) { deleteAccount(password: $p) }",
        json!({ "p": PASSWORD }),
        Some(&rae.access),
    )
    .await;
    assert_eq!(code(&delete), "ACCOUNT_LOCKED");
    assert_eq!(
        code(&app.login("rae@example.com", PASSWORD).await),
        "ACCOUNT_LOCKED"
    );
    let actions = audit_actions(
        &app,
        &rae.user_id,
        &[PASSWORD, "guess number one", "guess number two"],
    )
    .await;
    assert_eq!(
        actions.iter().filter(|a| *a == "LOGIN_FAILED").count(),
        2,
        "{actions:?}"
    );
    assert!(actions.iter().any(|a| a == "ACCOUNT_LOCKED"));
}

#[tokio::test]
async fn the_profile_is_updated_and_validated() {
    let (app, _inbox, _dir) = mail_app(|_| {}).await;
    let ed = app.signed_up("ed@example.com").await;
    let update = |input: Value| {
        let access = ed.access.clone();
        let app = &app;
        async move {
            gql(
                app,
                "mutation($i: UpdateProfileInput!) { updateProfile(input: $i) { displayName } }",
                json!({ "i": input }),
                Some(&access),
            )
            .await
        }
    };
    assert_eq!(
        update(json!({ "displayName": "  Ed Example " })).await["data"]["updateProfile"]["displayName"],
        "Ed Example"
    );
    let me = gql(&app, "{ me { displayName } }", json!({}), Some(&ed.access)).await;
    assert_eq!(me["data"]["me"]["displayName"], "Ed Example");
    assert_eq!(
        update(json!({})).await["data"]["updateProfile"]["displayName"],
        "Ed Example",
        "left out: kept"
    );
    let bad = update(json!({ "displayName": "bell\u{7}" })).await;
    assert_eq!((code(&bad), field(&bad)), ("BAD_USER_INPUT", "displayName"));
    let long = update(json!({ "displayName": "x".repeat(101) })).await;
    assert_eq!(field(&long), "displayName");
    assert_eq!(
        update(json!({ "displayName": null })).await["data"]["updateProfile"]["displayName"],
        Value::Null
    );
    let actions = audit_actions(&app, &ed.user_id, &[PASSWORD]).await;
    assert_eq!(
        actions.iter().filter(|a| *a == "PROFILE_UPDATED").count(),
        2
    );
}

async fn session_ids(app: &TestApp, access: &str) -> Vec<String> {
    let body = gql(
        app,
        "{ me { sessions { id current } } }",
        json!({}),
        Some(access),
    )
    .await;
    body["data"]["me"]["sessions"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn sessions_are_revoked_one_at_a_time_or_all_at_once() {
    let (app, _inbox, _dir) = mail_app(|_| {}).await;
    let fay = app.signed_up("fay@example.com").await;
    let gus = app.signed_up("gus@example.com").await;
    let second = app.login("fay@example.com", PASSWORD).await;
    let second_access = second["data"]["login"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoke = |id: String, access: String| {
        let app = &app;
        async move {
            gql(
                app,
                "mutation($id: ID!) { revokeSession(id: $id) }",
                json!({ "id": id }),
                Some(&access),
            )
            .await
        }
    };
    let gus_session = session_ids(&app, &gus.access).await.remove(0);
    assert_eq!(
        code(&revoke(gus_session.clone(), fay.access.clone()).await),
        "NOT_FOUND",
        "someone else's"
    );
    assert_eq!(me_code(&app, &gus.access).await, "OK");
    assert_eq!(
        code(&revoke(uuid::Uuid::new_v4().to_string(), fay.access.clone()).await),
        "NOT_FOUND"
    );
    let fays = session_ids(&app, &fay.access).await;
    assert_eq!(fays.len(), 2);
    let current = gql(
        &app,
        "{ me { sessions { id current } } }",
        json!({}),
        Some(&second_access),
    )
    .await;
    let second_id = current["data"]["me"]["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        revoke(second_id.clone(), fay.access.clone()).await,
        json!({ "data": { "revokeSession": true } })
    );
    assert_eq!(me_code(&app, &second_access).await, "UNAUTHENTICATED");
    assert_eq!(
        revoke(second_id, fay.access.clone()).await,
        json!({ "data": { "revokeSession": false } }),
        "already ended"
    );

    // An expired session is ended already: false, nothing audited.
    let third = app.login("fay@example.com", PASSWORD).await;
    let third_access = third["data"]["login"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let third_id = gql(
        &app,
        "{ me { sessions { id current } } }",
        json!({}),
        Some(&third_access),
    )
    .await["data"]["me"]["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    {
        use sea_orm::{ActiveModelTrait as _, Set};
        let id = uuid::Uuid::parse_str(&third_id).unwrap();
        let row = entity::session::Entity::find_by_id(id)
            .one(&app.state.db.write)
            .await
            .unwrap()
            .unwrap();
        let mut expired: entity::session::ActiveModel = row.into();
        expired.expires_at = Set(chrono::Utc::now() - chrono::Duration::minutes(1));
        expired.update(&app.state.db.write).await.unwrap();
    }
    assert_eq!(
        revoke(third_id, fay.access.clone()).await,
        json!({ "data": { "revokeSession": false } }),
        "expired"
    );

    app.login("fay@example.com", PASSWORD).await;
    app.login("fay@example.com", PASSWORD).await;
    let all = gql(&app, "mutation { logoutAll }", json!({}), Some(&fay.access)).await;
    assert_eq!(
        all,
        json!({ "data": { "logoutAll": 3 } }),
        "two new ones and this one"
    );
    assert_eq!(me_code(&app, &fay.access).await, "UNAUTHENTICATED");
    assert_eq!(me_code(&app, &gus.access).await, "OK");
    let actions = audit_actions(&app, &fay.user_id, &[PASSWORD]).await;
    assert_eq!(
        actions.iter().filter(|a| *a == "SESSION_REVOKED").count(),
        2,
        "{actions:?}"
    );
}

#[tokio::test]
async fn deleting_the_account_frees_the_email_and_kills_its_tokens() {
    let (app, _inbox, _dir) = mail_app(|_| {}).await;
    let hal = app.signed_up("hal@example.com").await;
    let delete = |password: &str| {
        let password = password.to_owned();
        let access = hal.access.clone();
        let app = &app;
        async move {
            gql(
                app,
                "mutation($p: String!) { deleteAccount(password: $p) }",
                json!({ "p": password }),
                Some(&access),
            )
            .await
        }
    };
    let wrong = delete("not the password").await;
    assert_eq!(
        (code(&wrong), field(&wrong)),
        ("BAD_USER_INPUT", "password")
    );
    assert_eq!(me_code(&app, &hal.access).await, "OK");
    assert_eq!(
        delete(PASSWORD).await,
        json!({ "data": { "deleteAccount": true } })
    );
    assert_eq!(me_code(&app, &hal.access).await, "UNAUTHENTICATED");
    assert_eq!(code(&app.refresh(&hal.refresh).await), "INVALID_TOKEN");
    assert_eq!(
        code(&app.login("hal@example.com", PASSWORD).await),
        "UNAUTHENTICATED"
    );
    let again = app.signed_up("hal@example.com").await;
    assert_ne!(again.user_id, hal.user_id, "the email is free again");
    let id = uuid::Uuid::parse_str(&hal.user_id).unwrap();
    assert_eq!(
        entity::session::Entity::find()
            .filter(entity::session::Column::UserId.eq(id))
            .count(&app.state.db.write)
            .await
            .unwrap(),
        0
    );
    let actions = audit_actions(&app, &hal.user_id, &[PASSWORD]).await;
    assert_eq!(
        actions.last().unwrap(),
        "USER_DELETED",
        "events keep the id: {actions:?}"
    );
}

async fn refresh_pair(app: &TestApp, token: &str) -> Result<(String, String), String> {
    let body = app.refresh(token).await;
    let data = &body["data"]["refreshToken"];
    if data.is_object() {
        Ok((
            data["accessToken"].as_str().unwrap().to_owned(),
            data["refreshToken"].as_str().unwrap().to_owned(),
        ))
    } else {
        Err(code(&body).to_owned())
    }
}

#[tokio::test]
async fn two_tabs_refreshing_at_once_keep_one_session() {
    let (app, _inbox, _dir) =
        mail_app(|c| c.jwt.reuse_interval = Duration::from_millis(1500)).await;
    let ida = app.signed_up("ida@example.com").await;
    let (a, b) = tokio::join!(
        refresh_pair(&app, &ida.refresh),
        refresh_pair(&app, &ida.refresh)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a, b, "the same successor pair");
    assert_eq!(me_code(&app, &a.0).await, "OK", "the session lives");
    // A token two rotations old, even within the window, is reuse.
    let (_, third) = refresh_pair(&app, &a.1).await.unwrap();
    assert_eq!(
        refresh_pair(&app, &ida.refresh).await,
        Err("INVALID_TOKEN".into())
    );
    assert_eq!(me_code(&app, &a.0).await, "UNAUTHENTICATED", "revoked");
    assert_eq!(
        refresh_pair(&app, &third).await,
        Err("INVALID_TOKEN".into())
    );

    // The immediate predecessor after the window: reuse.
    let jo = app.signed_up("jo@example.com").await;
    let (access, _) = refresh_pair(&app, &jo.refresh).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1700)).await;
    assert_eq!(
        refresh_pair(&app, &jo.refresh).await,
        Err("INVALID_TOKEN".into())
    );
    assert_eq!(me_code(&app, &access).await, "UNAUTHENTICATED");
    let actions = audit_actions(&app, &jo.user_id, &[&jo.refresh]).await;
    assert!(actions.iter().any(|a| a == "TOKEN_REUSE_DETECTED"));
}

#[tokio::test]
async fn with_a_zero_interval_a_second_refresh_is_reuse() {
    let (app, _inbox, _dir) = mail_app(|c| c.jwt.reuse_interval = Duration::ZERO).await;
    let kit = app.signed_up("kit@example.com").await;
    let (a, b) = tokio::join!(
        refresh_pair(&app, &kit.refresh),
        refresh_pair(&app, &kit.refresh)
    );
    let outcomes = [a.is_ok(), b.is_ok()];
    assert_eq!(outcomes.iter().filter(|ok| **ok).count(), 1, "{a:?} {b:?}");
    let winner = a.or(b).unwrap();
    assert_eq!(
        me_code(&app, &winner.0).await,
        "UNAUTHENTICATED",
        "the session was revoked"
    );
    use entity::rotated_refresh_token::Entity;
    for row in Entity::find().all(&app.state.db.write).await.unwrap() {
        assert!(row.successor.is_none(), "nothing kept with a zero interval");
    }
}

/// The answer must not tell whether an address has an account. Timing is
/// not asserted here (a loaded machine makes any bound flaky); instead the
/// request path must do the very same work for both: the same statements
/// (background work such as the mail worker's lookup is not counted).
#[tokio::test]
async fn requesting_a_reset_does_the_same_work_for_known_and_unknown_addresses() {
    let (app, inbox, _dir) = mail_app(|_| {}).await;
    app.signed_up("known@example.com").await;
    let mut costs = Vec::new();
    for email in ["known@example.com", "unknown@example.com"] {
        let before = app.state.db.statements();
        let body = request_reset(&app, email).await;
        assert_eq!(body, json!({ "data": { "requestPasswordReset": true } }));
        costs.push(app.state.db.statements() - before);
    }
    assert_eq!(costs[0], costs[1], "known vs unknown statements");
    assert!(costs[0] >= 1, "the request is queued in the database");
    // The worker tells them apart afterwards: one mail, to the known address.
    inbox
        .wait_for("known@example.com", "Reset your password", 1)
        .await;
    wait_until(|| async {
        use entity::mail_outbox::{Column, Entity};
        Entity::find()
            .filter(Column::Kind.eq("reset_request"))
            .count(&app.state.db.write)
            .await
            .unwrap()
            == 0
    })
    .await;
    assert!(inbox.to("unknown@example.com", "").is_empty());
}

#[tokio::test]
async fn a_write_that_fails_before_its_commit_leaves_nothing_behind() {
    let (app, inbox, _dir) = mail_app(|c| c.fail_before_commit = true).await;
    let lu = app.signed_up("lu@example.com").await;
    let body = gql(
        &app,
        "mutation { requestEmailVerification }",
        json!({}),
        Some(&lu.access),
    )
    .await;
    assert_eq!(code(&body), "INTERNAL_SERVER_ERROR");
    let db = &app.state.db.write;
    assert_eq!(
        entity::email_token::Entity::find().count(db).await.unwrap(),
        0
    );
    assert_eq!(
        entity::mail_outbox::Entity::find().count(db).await.unwrap(),
        0
    );
    let actions = audit_actions(&app, &lu.user_id, &[]).await;
    assert!(
        !actions.iter().any(|a| a == "EMAIL_VERIFICATION_REQUESTED"),
        "{actions:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(inbox.messages().is_empty());
}

/// Mail that cannot be delivered stays queued, and goes out once delivery
/// works again — also from another instance after a restart.
#[tokio::test]
async fn undeliverable_mail_waits_and_survives_a_restart() {
    let (app, inbox, _dir) = mail_app(|_| {}).await;
    let out = inbox.0.clone();
    // A file where the mail directory was: every delivery attempt fails.
    std::fs::remove_dir(&out).unwrap();
    std::fs::write(&out, "not a directory").unwrap();
    let mo = app.signed_up("mo@example.com").await;
    let body = gql(
        &app,
        "mutation { requestEmailVerification }",
        json!({}),
        Some(&mo.access),
    )
    .await;
    assert_eq!(body["data"]["requestEmailVerification"], true, "{body}");
    let id = uuid::Uuid::parse_str(&mo.user_id).unwrap();
    wait_until(|| async {
        let row = entity::mail_outbox::Entity::find()
            .one(&app.state.db.write)
            .await
            .unwrap()
            .unwrap();
        row.attempts >= 2 && row.sent_at.is_none() && row.dead_at.is_none()
    })
    .await;
    assert_eq!(
        usergraph::domain::mail::pending_for(&app.state, id)
            .await
            .unwrap(),
        1
    );
    // Restart: this instance goes, another takes over the same database.
    let url = app.database_url.clone();
    let prefix = app.redis_prefix.clone();
    let db = app.stop_keeping_database();
    std::fs::remove_file(&out).unwrap();
    let again = crate::helpers::start(
        {
            let mut c = crate::helpers::test_config(&url, &prefix);
            c.mailer = MailerConfig::File(out.clone());
            c.public_url = PUBLIC_URL.into();
            c.mail.retry_base = Duration::from_millis(100);
            c
        },
        db,
        usergraph::app::BuildOptions::default(),
    )
    .await;
    let mails = inbox
        .wait_for("mo@example.com", "Verify your email", 1)
        .await;
    assert_eq!(mails.len(), 1);
    let token = link_token(&mails[0], "verify-email");
    assert_eq!(
        verify(&again, &token).await["data"]["verifyEmail"]["emailVerified"],
        true
    );
    wait_until(|| async {
        usergraph::domain::mail::pending_for(&again.state, id)
            .await
            .unwrap()
            == 0
    })
    .await;
}

/// Polls `check` for up to 10 s.
pub async fn wait_until<F, Fut>(check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "condition not reached in 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn my_audit_events_page_newest_first() {
    let (app, _inbox, _dir) = mail_app(|_| {}).await;
    let nia = app.signed_up("nia@example.com").await;
    for _ in 0..4 {
        app.login("nia@example.com", PASSWORD).await;
    }
    let page = |after: Option<String>, first: i64| {
        let access = nia.access.clone();
        let app = &app;
        async move {
            gql(
                app,
                "query($a: String, $f: Int) { myAuditEvents(first: $f, after: $a) { totalCount nodes { id action actorId } pageInfo { hasNextPage hasPreviousPage endCursor } } }",
                json!({ "a": after, "f": first }),
                Some(&access),
            )
            .await
        }
    };
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let body = page(after.clone(), 2).await;
        let conn = &body["data"]["myAuditEvents"];
        assert_eq!(conn["totalCount"], 5, "{body}");
        assert_eq!(conn["pageInfo"]["hasPreviousPage"], after.is_some());
        for node in conn["nodes"].as_array().unwrap() {
            assert_eq!(node["actorId"], nia.user_id.as_str());
            seen.push((
                node["id"].as_str().unwrap().to_owned(),
                node["action"].as_str().unwrap().to_owned(),
            ));
        }
        if conn["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = conn["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen.len(), 5);
    assert_eq!(seen.last().unwrap().1, "USER_REGISTERED", "newest first");
    let mut ids: Vec<_> = seen.iter().map(|s| s.0.clone()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 5);
    let too_many = page(None, 101).await;
    assert_eq!(
        (code(&too_many), field(&too_many)),
        ("BAD_USER_INPUT", "first")
    );
    let bad = page(Some("garbage".into()), 2).await;
    assert_eq!((code(&bad), field(&bad)), ("BAD_USER_INPUT", "after"));
    let anonymous = gql(&app, "{ myAuditEvents { totalCount } }", json!({}), None).await;
    assert_eq!(code(&anonymous), "UNAUTHENTICATED");
}

/// Password changes, resets and deletions end sessions on every replica at
/// once, through the shared cache.
#[tokio::test]
#[ignore = "needs TEST_REDIS_URL (shared by two replicas); run with --include-ignored"]
async fn session_effects_hold_on_every_replica() {
    assert!(
        crate::helpers::redis_url().is_some(),
        "needs TEST_REDIS_URL"
    );
    let (a, inbox, _dir) = mail_app(|c| c.mail.reset_cooldown = Duration::ZERO).await;
    let b = crate::helpers::spawn_replica_with(&a, |c| {
        c.mailer = MailerConfig::File(inbox.0.clone());
        c.public_url = PUBLIC_URL.into();
    })
    .await;
    let quinn = a.signed_up("quinn@example.com").await;
    let other = a.login("quinn@example.com", PASSWORD).await;
    let other_access = other["data"]["login"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    // Both replicas have seen (and cached) both sessions as live.
    for app in [&a, &b] {
        assert_eq!(me_code(app, &quinn.access).await, "OK");
        assert_eq!(me_code(app, &other_access).await, "OK");
    }
    let changed = gql(
        &a,
        "mutation($i: ChangePasswordInput!) { changePassword(input: $i) }",
        json!({ "i": { "currentPassword": PASSWORD, "newPassword": NEW_PASSWORD } }),
        Some(&quinn.access),
    )
    .await;
    assert_eq!(changed["data"]["changePassword"], true, "{changed}");
    assert_eq!(
        me_code(&b, &other_access).await,
        "UNAUTHENTICATED",
        "ended on the other replica"
    );
    assert_eq!(
        me_code(&b, &quinn.access).await,
        "OK",
        "the changing session stays"
    );

    // A reset on b ends the remaining session on a.
    assert_eq!(
        request_reset(&b, "quinn@example.com").await["data"]["requestPasswordReset"],
        true
    );
    let mail = inbox
        .wait_for("quinn@example.com", "Reset your password", 1)
        .await;
    let token = link_token(&mail[0], "reset-password");
    assert_eq!(
        reset(&b, &token, "yet another passphrase 99").await["data"]["resetPassword"],
        true
    );
    assert_eq!(me_code(&a, &quinn.access).await, "UNAUTHENTICATED");

    // Deleting on a: b refuses its new token at once.
    let fresh = b
        .login("quinn@example.com", "yet another passphrase 99")
        .await;
    let fresh_access = fresh["data"]["login"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(me_code(&a, &fresh_access).await, "OK");
    assert_eq!(me_code(&b, &fresh_access).await, "OK");
    let deleted = gql(
        &a,
        "mutation($p: String!) { deleteAccount(password: $p) }",
        json!({ "p": "yet another passphrase 99" }),
        Some(&fresh_access),
    )
    .await;
    assert_eq!(deleted["data"]["deleteAccount"], true, "{deleted}");
    assert_eq!(me_code(&b, &fresh_access).await, "UNAUTHENTICATED");
}
