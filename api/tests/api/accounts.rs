//! Registration, login, `me`, the password policy, no account enumeration.

use serde_json::json;

use crate::helpers::{PASSWORD, code, field, spawn_app};

#[tokio::test]
async fn register_login_and_me() {
    let app = spawn_app().await;
    let body = app
        .gql(
            "mutation { register(input: {email: \"ada@example.com\", password: \"correct horse battery staple\", displayName: \" Ada \"}) { accessToken refreshToken tokenType expiresIn user { id email emailVerified displayName status roles { name builtIn } permissions lockedUntil createdAt lastLoginAt } } }",
            json!({}),
            None,
        )
        .await;
    let reg = &body["data"]["register"];
    assert_eq!(reg["tokenType"], "Bearer", "{body}");
    assert_eq!(reg["expiresIn"], 900);
    assert_eq!(reg["user"]["email"], "ada@example.com");
    assert_eq!(reg["user"]["displayName"], "Ada");
    assert_eq!(reg["user"]["status"], "ACTIVE");
    assert_eq!(reg["user"]["emailVerified"], false);
    assert_eq!(
        reg["user"]["roles"],
        json!([{ "name": "user", "builtIn": true }])
    );
    assert_eq!(reg["user"]["permissions"], json!([]));
    assert_eq!(reg["user"]["lockedUntil"], json!(null));
    assert!(reg["refreshToken"].as_str().unwrap().len() >= 43);

    let login = app.login("ada@example.com", PASSWORD).await;
    let token = login["data"]["login"]["accessToken"]
        .as_str()
        .expect("login works");
    let me = app
        .gql("{ me { id email lastLoginAt } }", json!({}), Some(token))
        .await;
    assert_eq!(me["data"]["me"]["id"], reg["user"]["id"]);
    assert!(
        me["data"]["me"]["lastLoginAt"].is_string(),
        "login sets lastLoginAt: {me}"
    );

    // Anonymous `me` is null, not an error.
    let anon = app.gql("{ me { id } }", json!({}), None).await;
    assert_eq!(anon, json!({ "data": { "me": null } }));
}

#[tokio::test]
async fn email_is_case_and_space_insensitive() {
    let app = spawn_app().await;
    app.signed_up("  Alice@Example.COM ").await;
    let login = app.login("alice@example.com", PASSWORD).await;
    assert_eq!(login["data"]["login"]["user"]["email"], "alice@example.com");
    let again = app.register("ALICE@example.com", PASSWORD).await;
    assert_eq!(code(&again), "CONFLICT");
    assert_eq!(field(&again), "email");
}

#[tokio::test]
async fn duplicate_email_is_a_conflict() {
    let app = spawn_app().await;
    app.signed_up("bob@example.com").await;
    let body = app
        .register("bob@example.com", "another fine passphrase")
        .await;
    assert_eq!(code(&body), "CONFLICT");
    assert_eq!(body["data"], json!(null));
}

#[tokio::test]
async fn every_password_rule_is_enforced_before_hashing() {
    let app = spawn_app().await;
    app.state.hasher.warm_up().await.unwrap();
    let before = app.state.hasher.operations();
    let megabyte = "a".repeat(1_000_000);
    for (password, why) in [
        ("short", "fewer than 8 characters"),
        ("1234567", "7 characters"),
        (&"x".repeat(129) as &str, "more than 128 characters"),
        (&megabyte as &str, "a megabyte"),
        ("password", "common"),
        ("12345678", "common"),
        ("qwertyuiop", "common"),
        ("password1", "common"),
        ("Password1", "common, any case"),
        ("my carol123 secret", "contains the email's local part"),
        ("MY CAROL123 SECRET", "contains the local part, any case"),
    ] {
        let body = app.register("carol123@example.com", password).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{why}: {body}");
        assert_eq!(field(&body), "password", "{why}");
    }
    assert_eq!(
        app.state.hasher.operations(),
        before,
        "no refused password reached the hasher"
    );

    // Length counts code points after NFKC: 8 emoji are 8 characters.
    let ok = app.register("dave@example.com", "🔑🔑🔑🔑🔑🔑🔑🔑").await;
    assert!(ok["data"]["register"].is_object(), "{ok}");
    // NFC and NFD spellings are the same password.
    app.register("erin@example.com", "caf\u{e9} cr\u{e8}me br\u{fb}l\u{e9}e")
        .await;
    let nfd = app
        .login(
            "erin@example.com",
            "cafe\u{301} cre\u{300}me bru\u{302}le\u{301}e",
        )
        .await;
    assert!(nfd["data"]["login"].is_object(), "NFD logs in: {nfd}");
}

#[tokio::test]
async fn bad_emails_and_display_names_name_their_field() {
    let app = spawn_app().await;
    for email in [
        "",
        "not-an-email",
        "a@b",
        &format!("{}@example.com", "x".repeat(250)),
    ] {
        let body = app.register(email, PASSWORD).await;
        assert_eq!(
            (code(&body), field(&body)),
            ("BAD_USER_INPUT", "email"),
            "{email}"
        );
    }
    for name in ["   ", &"n".repeat(101), "tab\tname"] {
        let body = app
            .gql(
                "mutation($i: RegisterInput!) { register(input: $i) { accessToken } }",
                json!({ "i": { "email": "fay@example.com", "password": PASSWORD, "displayName": name } }),
                None,
            )
            .await;
        assert_eq!(
            (code(&body), field(&body)),
            ("BAD_USER_INPUT", "displayName"),
            "{name:?}"
        );
    }
}

#[tokio::test]
async fn unknown_email_and_wrong_password_look_the_same() {
    let app = spawn_app().await;
    app.signed_up("gus@example.com").await;
    app.state.hasher.warm_up().await.unwrap();
    let before = app.state.hasher.operations();
    let wrong = app.login("gus@example.com", "not the right password").await;
    let after_wrong = app.state.hasher.operations();
    let unknown = app
        .login("nobody@example.com", "not the right password")
        .await;
    let after_unknown = app.state.hasher.operations();
    assert_eq!(code(&wrong), "UNAUTHENTICATED");
    assert_eq!(
        wrong["errors"][0]["message"],
        unknown["errors"][0]["message"]
    );
    assert_eq!(
        wrong["errors"][0]["extensions"],
        unknown["errors"][0]["extensions"]
    );
    // Each path verified exactly one hash: the unknown email a dummy one.
    assert_eq!(after_wrong - before, 1);
    assert_eq!(after_unknown - after_wrong, 1);
}

async fn failed_count(app: &crate::helpers::TestApp, email: &str) -> i32 {
    use sea_orm::{ColumnTrait as _, EntityTrait as _, QueryFilter as _};
    entity::user::Entity::find()
        .filter(entity::user::Column::Email.eq(email))
        .one(&app.state.db.write)
        .await
        .unwrap()
        .unwrap()
        .failed_login_count
}

#[tokio::test]
async fn lockout_after_repeated_failures() {
    let app = spawn_app().await;
    app.signed_up("hal@example.com").await;
    for _ in 0..5 {
        assert_eq!(
            code(&app.login("hal@example.com", "wrong password!").await),
            "UNAUTHENTICATED"
        );
    }
    let locked = app.login("hal@example.com", PASSWORD).await;
    assert_eq!(
        code(&locked),
        "ACCOUNT_LOCKED",
        "even the right password: {locked}"
    );
    let retry = locked["errors"][0]["extensions"]["retryAfter"]
        .as_u64()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Attempts during the lockout are refused without counting.
    assert_eq!(
        code(&app.login("hal@example.com", "wrong password!").await),
        "ACCOUNT_LOCKED"
    );
    assert_eq!(failed_count(&app, "hal@example.com").await, 5);
    let me = app.gql("{ me { id } }", json!({}), None).await;
    assert_eq!(me["data"]["me"], json!(null));
}

#[tokio::test]
async fn a_success_resets_the_failure_count() {
    let app = spawn_app().await;
    app.signed_up("ida@example.com").await;
    for _ in 0..4 {
        app.login("ida@example.com", "wrong password!").await;
    }
    assert_eq!(failed_count(&app, "ida@example.com").await, 4);
    let ok = app.gql(
        "mutation { login(input: {email: \"ida@example.com\", password: \"correct horse battery staple\"}) { user { lockedUntil sessions { current } } } }",
        json!({}),
        None,
    ).await;
    assert_eq!(
        ok["data"]["login"]["user"]["lockedUntil"],
        json!(null),
        "{ok}"
    );
    // The new session is the caller's own, though the request was anonymous.
    assert_eq!(
        ok["data"]["login"]["user"]["sessions"][0]["current"], true,
        "{ok}"
    );
    assert_eq!(failed_count(&app, "ida@example.com").await, 0);
    assert_eq!(
        code(&app.login("ida@example.com", "wrong password!").await),
        "UNAUTHENTICATED"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_guesses_cannot_outrun_the_lockout() {
    let app = std::sync::Arc::new(spawn_app().await);
    app.signed_up("jay@example.com").await;
    let guesses: Vec<_> = (0..20)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { app.login("jay@example.com", "wrong password!").await })
        })
        .collect();
    let mut codes = Vec::new();
    for g in guesses {
        codes.push(code(&g.await.unwrap()).to_owned());
    }
    let counted = codes.iter().filter(|c| *c == "UNAUTHENTICATED").count();
    assert_eq!(counted, 5, "exactly the threshold counted: {codes:?}");
    // The rest are refused: locked, or shed by the hashing queue.
    assert_eq!(
        codes
            .iter()
            .filter(|c| *c == "ACCOUNT_LOCKED" || *c == "RATE_LIMITED")
            .count(),
        15,
        "{codes:?}"
    );
    assert_eq!(failed_count(&app, "jay@example.com").await, 5);
    assert_eq!(
        code(&app.login("jay@example.com", PASSWORD).await),
        "ACCOUNT_LOCKED"
    );
}

#[tokio::test]
async fn the_user_role_grants_no_admin_permission_and_admins_have_all() {
    let app = spawn_app().await;
    let user = app.signed_up("ivy@example.com").await;
    let roles = app
        .gql("{ roles { name } }", json!({}), Some(&user.access))
        .await;
    assert_eq!(code(&roles), "FORBIDDEN");

    usergraph::domain::accounts::create_admin(&app.state, "root@example.com", PASSWORD, "test")
        .await
        .unwrap();
    let admin = app.login("root@example.com", PASSWORD).await;
    let token = admin["data"]["login"]["accessToken"].as_str().unwrap();
    let me = app
        .gql(
            "{ me { roles { name } permissions } roles { name permissions builtIn } }",
            json!({}),
            Some(token),
        )
        .await;
    assert_eq!(
        me["data"]["me"]["roles"],
        json!([{ "name": "admin" }, { "name": "user" }])
    );
    assert_eq!(
        me["data"]["me"]["permissions"],
        json!([
            "audit:read",
            "roles:assign",
            "roles:read",
            "roles:write",
            "users:delete",
            "users:read",
            "users:write"
        ])
    );
    assert_eq!(me["data"]["roles"][0]["name"], "admin");
    // Another user's record needs users:read: the admin has it, the user does not.
    let other = app
        .gql(
            "query($id: ID!) { user(id: $id) { email } }",
            json!({ "id": user.user_id }),
            Some(token),
        )
        .await;
    assert_eq!(other["data"]["user"]["email"], "ivy@example.com");
}
