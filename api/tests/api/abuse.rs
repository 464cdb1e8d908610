//! Per-IP rate limits of the auth mutations.

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, code, redis_url, spawn_app_with, spawn_replica_with};

async fn login_from(app: &TestApp, forwarded_for: &str) -> Value {
    let body = json!({
        "query": "mutation($i: LoginInput!) { login(input: $i) { accessToken } }",
        "variables": { "i": { "email": "rl@example.com", "password": PASSWORD } },
    });
    let res = app
        .client
        .post(app.url("/graphql"))
        .header("x-forwarded-for", forwarded_for)
        .json(&body)
        .send()
        .await
        .unwrap();
    res.json().await.unwrap()
}

#[tokio::test]
async fn auth_mutations_are_limited_per_client_ip_and_mutation() {
    let app = spawn_app_with(|c| {
        c.rate_limit_auth_per_minute = 3;
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    app.signed_up("rl@example.com").await;
    for _ in 0..3 {
        assert!(login_from(&app, "198.51.100.7").await["data"]["login"].is_object());
    }
    let limited = login_from(&app, "198.51.100.7").await;
    assert_eq!(code(&limited), "RATE_LIMITED");
    let retry = limited["errors"][0]["extensions"]["retryAfter"]
        .as_u64()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Another client is not affected, nor another mutation of the same client.
    assert!(login_from(&app, "198.51.100.8").await["data"]["login"].is_object());
    let body = json!({
        "query": "mutation { refreshToken(token: \"no-such-token\") { accessToken } }",
    });
    let res = app
        .client
        .post(app.url("/graphql"))
        .header("x-forwarded-for", "198.51.100.7")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        code(&res.json::<Value>().await.unwrap()),
        "INVALID_TOKEN",
        "refreshToken has its own budget"
    );
}

/// Behind a trusted proxy, `ip:port` and `[v6]:port` entries name their
/// client, and entries that are not addresses never merge every client into
/// the proxy's bucket.
#[tokio::test]
async fn forwarded_clients_with_ports_or_names_keep_their_own_buckets() {
    let app = spawn_app_with(|c| {
        c.rate_limit_auth_per_minute = 2;
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    app.signed_up("rl@example.com").await;
    for _ in 0..2 {
        assert!(login_from(&app, "198.51.100.7:5678").await["data"]["login"].is_object());
    }
    // The same client on another port is the same client.
    assert_eq!(
        code(&login_from(&app, "198.51.100.7:6000").await),
        "RATE_LIMITED"
    );
    for client in ["[2001:db8::1]:443", "unknown", "_hidden-a", "_hidden-b"] {
        for _ in 0..2 {
            let body = login_from(&app, client).await;
            assert!(body["data"]["login"].is_object(), "{client}: {body}");
        }
    }
    assert_eq!(code(&login_from(&app, "_hidden-a").await), "RATE_LIMITED");
}

#[tokio::test]
async fn each_operation_of_a_batch_counts() {
    let app = spawn_app_with(|c| c.rate_limit_auth_per_minute = 2).await;
    let op = json!({ "query": "mutation { login(input: {email: \"x@example.com\", password: \"whatever it is\"}) { accessToken } }" });
    let res = app
        .client
        .post(app.url("/graphql"))
        .json(&json!([op, op, op]))
        .send()
        .await
        .unwrap();
    let answers: Vec<Value> = res.json().await.unwrap();
    let codes: Vec<&str> = answers.iter().map(code).collect();
    assert_eq!(
        codes,
        ["UNAUTHENTICATED", "UNAUTHENTICATED", "RATE_LIMITED"]
    );
}

#[tokio::test]
#[ignore = "needs TEST_REDIS_URL (shared by two replicas); run with --include-ignored"]
async fn the_limit_holds_across_replicas() {
    assert!(redis_url().is_some(), "needs TEST_REDIS_URL");
    let a = spawn_app_with(|c| c.rate_limit_auth_per_minute = 2).await;
    let b = spawn_replica_with(&a, |c| c.rate_limit_auth_per_minute = 2).await;
    assert_eq!(
        code(&a.login("x@example.com", "whatever it is").await),
        "UNAUTHENTICATED"
    );
    assert_eq!(
        code(&b.login("x@example.com", "whatever it is").await),
        "UNAUTHENTICATED"
    );
    assert_eq!(
        code(&a.login("x@example.com", "whatever it is").await),
        "RATE_LIMITED"
    );
    assert_eq!(
        code(&b.login("x@example.com", "whatever it is").await),
        "RATE_LIMITED"
    );
}
