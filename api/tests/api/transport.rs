//! HTTP behaviour: probes, metrics, request ids, content types, limits,
//! GraphiQL, JWKS, GET, the exported schema.

use serde_json::{Value, json};
use usergraph::app::BuildOptions;

use crate::helpers::{PASSWORD, TestApp, code, spawn_app, spawn_app_with, start, test_config};

#[tokio::test]
async fn health_and_ready() {
    let app = spawn_app().await;
    let health = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(
        health.json::<Value>().await.unwrap(),
        json!({ "status": "ok" })
    );
    let ready = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"], json!({ "database": "ok", "cache": "ok" }));
}

#[tokio::test]
async fn ready_is_503_when_the_database_is_unreachable() {
    let mut config = test_config(
        "postgres://postgres@127.0.0.1:1/nowhere",
        "test:unreachable:",
    );
    config.redis_url = None;
    let app = start(
        config,
        None,
        BuildOptions {
            lazy_database: true,
        },
    )
    .await;
    let ready = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["checks"]["database"], "error");
    assert_eq!(body["checks"]["cache"], "ok");
    // Liveness never depends on the database.
    assert_eq!(
        app.client
            .get(app.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // A request that needs the database fails cleanly, without leaking internals.
    let body = app.login("x@example.com", PASSWORD).await;
    assert_eq!(code(&body), "INTERNAL_SERVER_ERROR");
    assert_eq!(body["errors"][0]["message"], "Internal server error");
    assert!(
        body["errors"][0]["extensions"]["requestId"].is_string(),
        "{body}"
    );
    // A valid token whose session cannot be checked is an outage, not a bad
    // token: the client must not throw its tokens away.
    let token = app
        .state
        .jwt
        .issue(uuid::Uuid::now_v7(), uuid::Uuid::now_v7())
        .unwrap();
    assert_eq!(code(&app.me(&token).await), "INTERNAL_SERVER_ERROR");
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let app = spawn_app().await;
    let t = app.signed_up("quinn@example.com").await;
    app.me(&t.access).await; // reads the cache
    app.client.get(app.url("/health")).send().await.unwrap();
    let res = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = res.text().await.unwrap();
    for name in [
        "usergraph_http_requests_total{",
        "usergraph_http_request_duration_seconds_bucket{",
        "usergraph_graphql_operations_total{",
        "usergraph_cache_hits_total",
        "usergraph_db_pool_connections{",
        "usergraph_build_info{",
        "process_resident_memory_bytes",
        "# TYPE usergraph_http_requests_total counter",
    ] {
        assert!(text.contains(name), "missing {name} in:\n{text}");
    }
    assert!(
        text.contains("route=\"/graphql\""),
        "labelled by matched route"
    );
    // Latency is split by class: a registration hashes (auth), `me` reads.
    let series = |class: &str| {
        text.lines().any(|l| {
            l.starts_with("usergraph_graphql_operation_duration_seconds_bucket{")
                && l.contains(&format!("class=\"{class}\""))
        })
    };
    assert!(series("auth") && series("read"), "{text}");
}

/// The `/metrics` text of `app`.
async fn scrape(app: &TestApp) -> String {
    let res = app.client.get(app.url("/metrics")).send().await.unwrap();
    res.text().await.unwrap()
}

/// The value of the series whose line starts with `series` (labels and
/// all) in a `/metrics` text, 0 when it is not there yet.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn request_series_count_each_request_and_stay_bounded() {
    let app = spawn_app().await;
    let ok = r#"usergraph_http_requests_total{method="GET",route="/health",status="200"}"#;
    let before = sample(&scrape(&app).await, ok);
    for _ in 0..3 {
        app.client.get(app.url("/health")).send().await.unwrap();
    }
    // Other tests share the recorder: at least these three.
    assert!(sample(&scrape(&app).await, ok) >= before + 3.0);
    // A method of the client's own naming is one series, not one each.
    for method in ["BREW", "WHEN", "X-ANYTHING"] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let res = app
            .client
            .request(method, app.url("/health"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 405);
    }
    let text = scrape(&app).await;
    let other = r#"usergraph_http_requests_total{method="other",route="/health",status="405"}"#;
    assert!(sample(&text, other) >= 3.0, "{text}");
    for method in ["BREW", "WHEN", "X-ANYTHING"] {
        assert!(!text.contains(&format!("method=\"{method}\"")), "{text}");
    }
}

#[tokio::test]
async fn request_ids_are_echoed_or_assigned() {
    let app = spawn_app().await;
    let echoed = app
        .client
        .get(app.url("/health"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "abc-123");
    let fresh = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(fresh.headers()["x-request-id"].len(), 36);
    let bad = app
        .client
        .get(app.url("/health"))
        .header("x-request-id", "x".repeat(500))
        .send()
        .await
        .unwrap();
    assert_eq!(
        bad.headers()["x-request-id"].len(),
        36,
        "an oversized id is replaced"
    );
    let gql = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({ "query": "{ me { id } }" }))
        .send()
        .await
        .unwrap();
    assert!(gql.headers().contains_key("x-request-id"));
}

#[tokio::test]
async fn content_types_and_body_limits() {
    let app = spawn_app().await;
    let post = |body: &'static str, ct: &'static str| {
        app.client
            .post(app.url("/graphql"))
            .header("content-type", ct)
            .body(body)
            .send()
    };
    assert_eq!(
        post("query={me{id}}", "application/x-www-form-urlencoded")
            .await
            .unwrap()
            .status(),
        415
    );
    assert_eq!(
        post("{ me { id } }", "text/plain").await.unwrap().status(),
        415
    );
    let bad = post("{not json", "application/json").await.unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(code(&bad.json::<Value>().await.unwrap()), "BAD_USER_INPUT");
    assert_eq!(
        post("{\"nope\": 1}", "application/json")
            .await
            .unwrap()
            .status(),
        400
    );
    let huge = format!(
        "{{\"query\": \"{{ me {{ id }} }}\", \"variables\": {{\"x\": \"{}\"}}}}",
        "a".repeat(1 << 20)
    );
    let res = app
        .client
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body = res.json::<Value>().await.unwrap();
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("1048576 bytes"),
        "{body}"
    );
}

#[tokio::test]
async fn get_runs_queries_but_never_mutations() {
    let app = spawn_app().await;
    assert_eq!(
        app.get_json("/graphql", &[("query", "{ me { id } }")])
            .await,
        json!({ "data": { "me": null } })
    );
    let body = app
        .get_json("/graphql", &[("query", "mutation { logout }")])
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    assert!(
        body.get("data").is_none_or(Value::is_null),
        "nothing executed: {body}"
    );
}

#[tokio::test]
async fn query_limits() {
    let app = spawn_app().await;
    let deep = "{ me { roles { id } sessions { id } } a: me { id } }";
    assert!(app.gql(deep, json!({}), None).await.get("errors").is_none());
    let aliases: String = (0..31).map(|i| format!("a{i}: me {{ id }} ")).collect();
    let body = app.gql(&format!("{{ {aliases} }}"), json!({}), None).await;
    assert_eq!(code(&body), "QUERY_TOO_COMPLEX");
    let mut nested = String::from("__typename");
    for _ in 0..12 {
        nested =
            format!("__type(name: \"User\") {{ fields {{ type {{ ofType {{ {nested} }} }} }} }}");
    }
    let body = app.gql(&format!("{{ {nested} }}"), json!({}), None).await;
    assert_eq!(code(&body), "QUERY_TOO_COMPLEX", "{body}");
    // Eleven registrations: an answer per operation, and none of them ran.
    let batch: Vec<Value> = (0..11)
        .map(|i| json!({
            "query": "mutation($i: RegisterInput!) { register(input: $i) { accessToken } }",
            "variables": { "i": { "email": format!("batch{i}@example.com"), "password": PASSWORD } },
        }))
        .collect();
    let res = app
        .client
        .post(app.url("/graphql"))
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let answers: Vec<Value> = res.json().await.unwrap();
    assert_eq!(answers.len(), 11);
    for answer in &answers {
        assert_eq!(code(answer), "QUERY_TOO_COMPLEX", "{answer}");
        assert!(answer["data"].is_null(), "{answer}");
    }
    let login = app.login("batch0@example.com", PASSWORD).await;
    assert_eq!(
        code(&login),
        "UNAUTHENTICATED",
        "no account was created: {login}"
    );
    let ok: Vec<Value> = (0..2)
        .map(|_| json!({ "query": "{ me { id } }" }))
        .collect();
    let res = app
        .client
        .post(app.url("/graphql"))
        .json(&ok)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.json::<Value>().await.unwrap().as_array().map(Vec::len),
        Some(2)
    );
    let unknown = app.gql("{ nope }", json!({}), None).await;
    assert_eq!(code(&unknown), "BAD_USER_INPUT");
}

#[tokio::test]
async fn graphiql_is_served_from_the_binary() {
    let app = spawn_app().await;
    let page = app
        .client
        .get(app.url("/graphql"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'self'")
    );
    let html = page.text().await.unwrap();
    assert!(!html.contains("https://"), "no CDN");
    for asset in [
        "graphiql.min.js",
        "graphiql.min.css",
        "react.production.min.js",
        "react-dom.production.min.js",
        "init.js",
    ] {
        assert!(
            html.contains(&format!("/assets/graphiql/{asset}")),
            "{asset} is linked"
        );
        let res = app
            .client
            .get(app.url(&format!("/assets/graphiql/{asset}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{asset}");
        assert!(res.bytes().await.unwrap().len() > 100);
    }
    assert_eq!(
        app.client
            .get(app.url("/assets/graphiql/../Cargo.toml"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn graphiql_and_introspection_are_off_in_production() {
    let app = spawn_app_with(|c| {
        c.graphql.graphiql = false;
        c.graphql.introspection = false;
    })
    .await;
    let page = app
        .client
        .get(app.url("/graphql"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 400);
    for probe in [
        "{ __schema { types { name } } }",
        "{ __type(name: \"User\") { fields { name } } }",
        "query Q { me { id } ...F } fragment F on Query { __schema { queryType { name } } }",
    ] {
        let body = app.gql(probe, json!({}), None).await;
        assert!(
            body.get("data").is_none() || body["data"].is_null(),
            "no data: {body}"
        );
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{body}"
        );
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("Introspection is disabled"),
            "{body}"
        );
    }
    // __typename is not introspection: clients add it everywhere.
    let typename = app.gql("{ __typename }", json!({}), None).await;
    assert_eq!(typename["data"]["__typename"], "Query", "{typename}");
    // A typo close to a real field ("users") gets no hint here, although
    // a development server gives one.
    let typo = app.gql("{ usrs { totalCount } }", json!({}), None).await;
    assert!(typo["errors"][0]["message"].is_string(), "{typo}");
    assert!(!typo.to_string().contains("Did you mean"), "{typo}");
    let dev = spawn_app().await;
    let hinted = dev.gql("{ usrs { totalCount } }", json!({}), None).await;
    assert!(
        hinted.to_string().contains("Did you mean"),
        "the probe is a real one: {hinted}"
    );
}

#[tokio::test]
async fn jwks_and_schema_routes() {
    let app = spawn_app().await;
    let jwks = app.get_json("/.well-known/jwks.json", &[]).await;
    assert_eq!(jwks, json!({ "keys": [] }), "HS256 publishes no key");
    let sdl = app
        .client
        .get(app.url("/schema.graphql"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(sdl.contains("type User"));
    assert_eq!(sdl, usergraph::graphql::sdl());
}

#[test]
fn schema_graphql_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../schema.graphql");
    let committed = std::fs::read_to_string(path).expect("schema.graphql at the repository root");
    assert!(
        committed == usergraph::graphql::sdl(),
        "schema.graphql is stale: run `cargo run -p usergraph -- export-schema --out schema.graphql`"
    );
}

/// A request the server's own timeout cuts off is counted as a `408` of its
/// route, and its operation as `cancelled` with the time it ran (so the
/// slowest operations count against the latency objectives too).
#[tokio::test]
async fn a_request_cut_off_by_the_timeout_is_counted() {
    let app = spawn_app_with(|c| {
        c.after_commit_delay = Some(std::time::Duration::from_secs(4));
        // Room for the sign-up and the scrapes on a loaded machine.
        c.request_timeout = std::time::Duration::from_millis(1500);
    })
    .await;
    let timed_out = r#"usergraph_http_requests_total{method="POST",route="/graphql",status="408"}"#;
    let cancelled = r#"usergraph_graphql_operations_total{operation="CutOff",type="mutation",class="write",outcome="cancelled"}"#;
    let before = scrape(&app).await;
    let t = app.signed_up("timeout@example.com").await;
    let res = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&t.access)
        .json(&json!({ "query": "mutation CutOff { logout }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 408);
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    let after = scrape(&app).await;
    assert!(
        sample(&after, timed_out) >= sample(&before, timed_out) + 1.0,
        "{after}"
    );
    assert!(sample(&after, cancelled) >= 1.0, "{after}");
    // Its time is recorded: past the objective's bound of a write.
    let all = r#"usergraph_graphql_operation_duration_seconds_bucket{type="mutation",class="write",le="+Inf"}"#;
    let fast = r#"usergraph_graphql_operation_duration_seconds_bucket{type="mutation",class="write",le="0.25"}"#;
    let slow = |text: &str| sample(text, all) - sample(text, fast);
    assert!(slow(&after) >= slow(&before) + 1.0, "{after}");
}

/// A request whose client goes away before the answer is counted as `499`,
/// and its operation as `cancelled`.
#[tokio::test]
async fn a_request_whose_client_went_away_is_counted() {
    let app = spawn_app_with(|c| {
        c.after_commit_delay = Some(std::time::Duration::from_secs(2));
    })
    .await;
    let gone = r#"usergraph_http_requests_total{method="POST",route="/graphql",status="499"}"#;
    let cancelled = r#"usergraph_graphql_operations_total{operation="WentAway",type="mutation",class="write",outcome="cancelled"}"#;
    let before = sample(&scrape(&app).await, gone);
    let t = app.signed_up("gone@example.com").await;
    let impatient = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(300))
        .build()
        .unwrap();
    let res = impatient
        .post(app.url("/graphql"))
        .bearer_auth(&t.access)
        .json(&json!({ "query": "mutation WentAway { logout }" }))
        .send()
        .await;
    assert!(res.is_err(), "the client gave up first");
    // The server notices the closed connection on its own time.
    let mut text = String::new();
    for _ in 0..50 {
        text = scrape(&app).await;
        if sample(&text, gone) >= before + 1.0 && sample(&text, cancelled) >= 1.0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("not counted as 499 and cancelled:\n{text}");
}
