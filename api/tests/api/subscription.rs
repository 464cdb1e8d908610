//! `Subscription.auditEvents` over graphql-transport-ws at `/graphql/ws`:
//! who may listen, what they receive (committed events only, filtered),
//! from which replica, and when the stream ends.

use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use crate::directory::admin;
use crate::helpers::{TestApp, spawn_app, spawn_app_with, spawn_replica_with};
use crate::redis_server::RedisServer;

const SUBSCRIBE: &str = "subscription($f: AuditEventFilter) { auditEvents(filter: $f) { id action actorId targetUserId metadata createdAt } }";
/// Long enough for a loaded CI machine; what is measured is printed.
const PATIENCE: Duration = Duration::from_secs(10);

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A graphql-transport-ws client.
pub struct Ws(Socket);

impl Ws {
    /// Connects and completes `connection_init` with `token` (if any).
    pub async fn connect(app: &TestApp, token: Option<&str>) -> Self {
        let init = match token {
            Some(t) => {
                json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {t}") } })
            }
            None => json!({ "type": "connection_init" }),
        };
        Self::connect_with(app, init).await
    }

    async fn connect_with(app: &TestApp, init: Value) -> Self {
        let url = format!("{}/graphql/ws", app.address.replacen("http", "ws", 1));
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
        let (socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
        assert_eq!(
            response.headers()["sec-websocket-protocol"],
            "graphql-transport-ws"
        );
        let mut ws = Self(socket);
        ws.send(init).await;
        assert_eq!(ws.next_message().await["type"], "connection_ack");
        ws
    }

    async fn send(&mut self, message: Value) {
        self.0
            .send(Message::text(message.to_string()))
            .await
            .unwrap();
    }

    pub async fn subscribe(&mut self, id: &str, filter: Value) {
        self.send(json!({ "id": id, "type": "subscribe", "payload": { "query": SUBSCRIBE, "variables": { "f": filter } } }))
            .await;
    }

    /// The next protocol message (pings answered on the way).
    async fn next_message(&mut self) -> Value {
        loop {
            let frame = tokio::time::timeout(PATIENCE, self.0.next())
                .await
                .expect("a message in time")
                .expect("the connection is open")
                .unwrap();
            match frame {
                Message::Text(text) => {
                    let message: Value = serde_json::from_str(&text).unwrap();
                    if message["type"] == "ping" {
                        self.send(json!({ "type": "pong" })).await;
                        continue;
                    }
                    return message;
                }
                Message::Close(frame) => panic!("closed: {frame:?}"),
                _ => {}
            }
        }
    }

    /// The payload of the next `next` message of subscription `id`.
    pub async fn next_payload(&mut self, id: &str) -> Value {
        let message = self.next_message().await;
        assert_eq!(message["id"], id, "{message}");
        assert_eq!(message["type"], "next", "{message}");
        message["payload"].clone()
    }

    /// Whether nothing arrives for `quiet`.
    async fn silent_for(&mut self, quiet: Duration) -> Result<(), Message> {
        match tokio::time::timeout(quiet, self.0.next()).await {
            Err(_) => Ok(()),
            Ok(frame) => Err(frame.unwrap().unwrap()),
        }
    }
}

fn action(payload: &Value) -> &str {
    payload["data"]["auditEvents"]["action"]
        .as_str()
        .unwrap_or_else(|| panic!("not an event: {payload}"))
}

fn code(payload: &Value) -> &str {
    payload["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error: {payload}"))
}

#[tokio::test]
async fn an_admin_receives_the_events_that_match_the_filter() {
    let app = spawn_app().await;
    let root = admin(&app).await;
    let mut ws = Ws::connect(&app, Some(&root)).await;
    ws.subscribe("all", json!(null)).await;
    ws.subscribe("logins", json!({ "action": "LOGIN_SUCCEEDED" }))
        .await;
    // Give the subscriptions a moment to be in place before the events.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let kim = app.signed_up("kim@example.com").await;
    app.login("kim@example.com", crate::helpers::PASSWORD).await;
    let mut all = Vec::new();
    let mut logins = Vec::new();
    for _ in 0..3 {
        let message = ws.next_message().await;
        assert_eq!(message["type"], "next", "{message}");
        let payload = &message["payload"];
        assert!(payload.get("errors").is_none(), "{payload}");
        let event = &payload["data"]["auditEvents"];
        assert_eq!(event["targetUserId"], kim.user_id.as_str());
        let seen = action(payload).to_owned();
        match message["id"].as_str() {
            Some("all") => all.push(seen),
            Some("logins") => logins.push(seen),
            other => panic!("unknown subscription {other:?}"),
        }
    }
    assert_eq!(all, ["USER_REGISTERED", "LOGIN_SUCCEEDED"]);
    assert_eq!(logins, ["LOGIN_SUCCEEDED"]);
    assert!(ws.silent_for(Duration::from_millis(300)).await.is_ok());
}

#[tokio::test]
async fn listening_needs_a_working_token_and_audit_read() {
    let app = spawn_app().await;
    let plain = app.signed_up("plain@example.com").await;
    for (token, expected) in [
        (None, "UNAUTHENTICATED"),
        (Some("not-a-token"), "UNAUTHENTICATED"),
        (Some(plain.access.as_str()), "FORBIDDEN"),
    ] {
        let mut ws = Ws::connect(&app, token).await;
        ws.subscribe("1", json!(null)).await;
        assert_eq!(code(&ws.next_payload("1").await), expected);
        assert_eq!(ws.next_message().await["type"], "complete");
    }
    // A non-string Authorization is refused the same way, not a crash.
    let mut ws = Ws::connect_with(
        &app,
        json!({ "type": "connection_init", "payload": { "Authorization": 42 } }),
    )
    .await;
    ws.subscribe("1", json!(null)).await;
    assert_eq!(code(&ws.next_payload("1").await), "UNAUTHENTICATED");
    // A bad filter is named.
    let root = admin(&app).await;
    let mut ws = Ws::connect(&app, Some(&root)).await;
    ws.subscribe("1", json!({ "actorId": "nope" })).await;
    let payload = ws.next_payload("1").await;
    assert_eq!(code(&payload), "BAD_USER_INPUT");
    assert_eq!(payload["errors"][0]["extensions"]["field"], "actorId");
}

#[tokio::test]
async fn the_route_refuses_what_is_not_a_graphql_transport_ws_socket() {
    let app = spawn_app().await;
    let res = app.client.get(app.url("/graphql/ws")).send().await.unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    let res = app
        .client
        .get(app.url("/graphql/ws"))
        .header("Sec-WebSocket-Protocol", "graphql-transport-ws")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 426, "a plain GET is not an upgrade");
}

#[tokio::test]
async fn logging_out_ends_the_subscription() {
    let app = spawn_app().await;
    let root = admin(&app).await;
    let mut ws = Ws::connect(&app, Some(&root)).await;
    ws.subscribe("1", json!({ "action": "USER_REGISTERED" }))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let out = app.gql("mutation { logout }", json!({}), Some(&root)).await;
    assert_eq!(out["data"]["logout"], true, "{out}");
    assert_eq!(code(&ws.next_payload("1").await), "UNAUTHENTICATED");
    assert_eq!(ws.next_message().await["type"], "complete");
    println!("ended {:?} after the logout", started.elapsed());
}

#[tokio::test]
async fn a_session_revoked_elsewhere_or_a_withdrawn_permission_ends_it() {
    let app = spawn_app().await;
    let root = admin(&app).await;
    let root_id =
        app.gql("{ me { id email } }", json!({}), Some(&root)).await["data"]["me"].clone();
    let email = root_id["email"].as_str().unwrap();
    // The same admin signed in elsewhere revokes every other session.
    let other = app.login(email, crate::helpers::PASSWORD).await["data"]["login"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut ws = Ws::connect(&app, Some(&root)).await;
    ws.subscribe("1", json!({ "action": "USER_REGISTERED" }))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let out = app
        .gql("mutation { logoutAll }", json!({}), Some(&other))
        .await;
    assert!(out.get("errors").is_none(), "{out}");
    assert_eq!(code(&ws.next_payload("1").await), "UNAUTHENTICATED");
    assert_eq!(ws.next_message().await["type"], "complete");

    // An auditor whose role loses audit:read stops receiving.
    let auditor = app.signed_up("auditor@example.com").await;
    let role = json!({ "name": "auditor", "permissions": ["audit:read"] });
    let fresh = admin(&app).await;
    let made = app
        .gql(
            "mutation($i: CreateRoleInput!) { createRole(input: $i) { id } }",
            json!({ "i": role }),
            Some(&fresh),
        )
        .await;
    assert!(made.get("errors").is_none(), "{made}");
    let given = app
        .gql(
            "mutation($u: ID!) { assignRole(userId: $u, role: \"auditor\") { id } }",
            json!({ "u": auditor.user_id }),
            Some(&fresh),
        )
        .await;
    assert!(given.get("errors").is_none(), "{given}");
    let mut ws = Ws::connect(&app, Some(&auditor.access)).await;
    ws.subscribe("1", json!({ "action": "USER_REGISTERED" }))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let taken = app
        .gql(
            "mutation { updateRole(name: \"auditor\", input: {permissions: [\"users:read\"]}) { name } }",
            json!({}),
            Some(&fresh),
        )
        .await;
    assert!(taken.get("errors").is_none(), "{taken}");
    assert_eq!(code(&ws.next_payload("1").await), "FORBIDDEN");
    assert_eq!(ws.next_message().await["type"], "complete");
}

/// What a transaction recorded is published only when it commits.
#[tokio::test]
async fn events_of_a_change_that_did_not_commit_are_never_published() {
    let app = spawn_app_with(|c| c.fail_before_commit = true).await;
    let root = admin(&app).await;
    let lee = app.signed_up("lee@example.com").await;
    let mut ws = Ws::connect(&app, Some(&root)).await;
    ws.subscribe("1", json!({ "targetUserId": lee.user_id }))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let failed = app
        .gql(
            "mutation { requestEmailVerification }",
            json!({}),
            Some(&lee.access),
        )
        .await;
    assert_eq!(
        failed["errors"][0]["extensions"]["code"],
        "INTERNAL_SERVER_ERROR"
    );
    let renamed = app
        .gql(
            "mutation { updateProfile(input: {displayName: \"Lee\"}) { id } }",
            json!({}),
            Some(&lee.access),
        )
        .await;
    assert!(renamed.get("errors").is_none(), "{renamed}");
    // The first event is the rename: the failed request left nothing.
    assert_eq!(action(&ws.next_payload("1").await), "PROFILE_UPDATED");
}

#[tokio::test]
async fn a_connection_holds_a_bounded_number_of_subscriptions() {
    let app = spawn_app().await;
    let root = admin(&app).await;
    let mut ws = Ws::connect(&app, Some(&root)).await;
    let most = usergraph::graphql::subscription::MAX_SUBSCRIPTIONS_PER_CONNECTION;
    // One more than the bound; which one is refused depends on the order
    // the server starts them in.
    for i in 0..=most {
        ws.subscribe(&i.to_string(), json!({ "action": "NONE" }))
            .await;
    }
    let refused = ws.next_message().await;
    assert_eq!(refused["type"], "next", "{refused}");
    assert_eq!(code(&refused["payload"]), "QUERY_TOO_COMPLEX");
    let id = refused["id"].as_str().unwrap().to_owned();
    let done = ws.next_message().await;
    assert_eq!(
        (&done["type"], &done["id"]),
        (&json!("complete"), &json!(id))
    );
    assert!(ws.silent_for(Duration::from_millis(200)).await.is_ok());
    // Ending one frees its place.
    let live = if id == "0" { "1" } else { "0" };
    ws.send(json!({ "id": live, "type": "complete" })).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    ws.subscribe("again", json!({ "action": "USER_REGISTERED" }))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.signed_up("again@example.com").await;
    // (async-graphql answers the client's `complete` with one of its own.)
    let mut message = ws.next_message().await;
    if message == json!({ "id": live, "type": "complete" }) {
        message = ws.next_message().await;
    }
    assert_eq!(message["id"], "again", "{message}");
    assert_eq!(action(&message["payload"]), "USER_REGISTERED");
}

/// Two replicas on a Redis of the test's own: a subscriber on one receives
/// what the other commits, also after Redis stalled and after it restarted.
#[tokio::test]
async fn a_subscriber_on_one_replica_receives_events_from_another() {
    let mut redis = RedisServer::start().await;
    let url = redis.url();
    let on = |c: &mut usergraph::config::Config| {
        c.redis_url = Some(usergraph::config::Secret::new(url.clone()));
    };
    let a = spawn_app_with(on).await;
    let b = spawn_replica_with(&a, on).await;
    let root = admin(&a).await;
    let mut ws = Ws::connect(&b, Some(&root)).await;
    ws.subscribe("1", json!({ "action": "USER_REGISTERED" }))
        .await;
    // Subscribed on Redis when B's first event from A arrives: retry until then.
    let mut n = 0;
    let first = loop {
        n += 1;
        let started = Instant::now();
        a.signed_up(&format!("warm{n}@example.com")).await;
        match tokio::time::timeout(Duration::from_secs(1), ws.0.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                let message: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(action(&message["payload"]), "USER_REGISTERED");
                break started.elapsed();
            }
            Ok(other) => panic!("{other:?}"),
            Err(_) => assert!(n < 10, "B never received A's events"),
        }
    };
    let mut latencies = vec![first];
    for i in 0..20 {
        let started = Instant::now();
        let made = a.signed_up(&format!("u{i}@example.com")).await;
        let payload = ws.next_payload("1").await;
        latencies.push(started.elapsed());
        assert_eq!(
            payload["data"]["auditEvents"]["targetUserId"],
            made.user_id.as_str()
        );
    }
    latencies.sort();
    println!(
        "A's register → B's subscriber: median {:?}, max {:?}",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );

    // A stall: what A commits meanwhile reaches B once Redis answers again,
    // once each.
    redis.pause();
    let stalled = a.signed_up("during-stall@example.com").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    redis.resume();
    let payload = ws.next_payload("1").await;
    assert_eq!(
        payload["data"]["auditEvents"]["targetUserId"],
        stalled.user_id.as_str()
    );
    let after = a.signed_up("after-stall@example.com").await;
    let payload = ws.next_payload("1").await;
    assert_eq!(
        payload["data"]["auditEvents"]["targetUserId"],
        after.user_id.as_str(),
        "no second delivery of the stalled event"
    );

    // B's subscription cut: what A commits before B has subscribed again
    // is read back from the database, once.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let killed: i64 = redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "pubsub"])
        .query_async(&mut conn)
        .await
        .unwrap();
    // (A replica still resubscribing after the stall has nothing to cut:
    // the event must arrive either way.)
    println!("cut {killed} pub/sub connection(s)");
    let cut = a.signed_up("during-cut@example.com").await;
    let payload = ws.next_payload("1").await;
    assert_eq!(
        payload["data"]["auditEvents"]["targetUserId"],
        cut.user_id.as_str()
    );

    // A restart: what A commits meanwhile arrives, once.
    redis.kill_without_saving();
    let restarted = a.signed_up("during-restart@example.com").await;
    redis.restart().await;
    let payload = ws.next_payload("1").await;
    assert_eq!(
        payload["data"]["auditEvents"]["targetUserId"],
        restarted.user_id.as_str()
    );
    let last = a.signed_up("last@example.com").await;
    let payload = ws.next_payload("1").await;
    assert_eq!(
        payload["data"]["auditEvents"]["targetUserId"],
        last.user_id.as_str()
    );
    assert!(ws.silent_for(Duration::from_millis(500)).await.is_ok());
}

/// Over the WebSocket only subscriptions run (a query there would use the
/// identity checked when the connection began); over HTTP none do.
#[tokio::test]
async fn each_transport_takes_only_its_own_operations() {
    let app = spawn_app().await;
    let root = admin(&app).await;
    let mut ws = Ws::connect(&app, Some(&root)).await;
    for (id, query) in [("q", "{ me { id } }"), ("m", "mutation { logout }")] {
        ws.send(json!({ "id": id, "type": "subscribe", "payload": { "query": query } }))
            .await;
        let payload = ws.next_payload(id).await;
        assert_eq!(code(&payload), "BAD_USER_INPUT", "{payload}");
        assert!(
            payload["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("POST /graphql")
        );
        assert_eq!(ws.next_message().await["type"], "complete");
    }
    // The logout above did not run: the token still works.
    assert!(app.me(&root).await["data"]["me"]["id"].is_string());
    let over_http = app
        .gql(
            "subscription { auditEvents { id } }",
            json!({}),
            Some(&root),
        )
        .await;
    assert_eq!(
        over_http["errors"][0]["extensions"]["code"],
        "BAD_USER_INPUT"
    );
    // An engine error (unknown field) carries a code over the WebSocket too.
    ws.send(json!({ "id": "bad", "type": "subscribe", "payload": { "query": "subscription { auditEvents { nope } }" } }))
        .await;
    assert_eq!(code(&ws.next_payload("bad").await), "BAD_USER_INPUT");
}

/// A connection outlives its session: a subscription started after the
/// session ended is refused at once, not at the first re-check.
#[tokio::test]
async fn subscribing_again_after_the_session_ended_is_refused_at_once() {
    let app = spawn_app().await;
    let root = admin(&app).await;
    let mut ws = Ws::connect(&app, Some(&root)).await;
    let out = app.gql("mutation { logout }", json!({}), Some(&root)).await;
    assert_eq!(out["data"]["logout"], true, "{out}");
    ws.subscribe("late", json!(null)).await;
    // An event right away: the first message must be the refusal, not it.
    app.signed_up("meanwhile@example.com").await;
    assert_eq!(code(&ws.next_payload("late").await), "UNAUTHENTICATED");
    assert_eq!(ws.next_message().await["type"], "complete");
}

/// Shutting down ends every subscription at once, so clients move to
/// another replica, and takes no new one.
#[tokio::test]
async fn a_replica_shutting_down_ends_its_subscriptions() {
    let app = spawn_app().await;
    let root = admin(&app).await;
    let mut ws = Ws::connect(&app, Some(&root)).await;
    ws.subscribe("1", json!(null)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.state.start_draining();
    let payload = ws.next_payload("1").await;
    assert_eq!(code(&payload), "INTERNAL_SERVER_ERROR");
    assert!(
        payload["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("shutting down"),
        "{payload}"
    );
    // The id to find the logged cause by, as over HTTP.
    assert!(
        payload["errors"][0]["extensions"]["requestId"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{payload}"
    );
    assert_eq!(ws.next_message().await["type"], "complete");
    ws.subscribe("2", json!(null)).await;
    assert_eq!(code(&ws.next_payload("2").await), "INTERNAL_SERVER_ERROR");
}

/// A subscriber that falls too far behind is told so, with the way to
/// read the gap, instead of silently missing events.
#[tokio::test]
async fn a_subscriber_that_falls_behind_is_told_and_ended() {
    let app = spawn_app().await;
    let root = admin(&app).await;
    let mut ws = Ws::connect(&app, Some(&root)).await;
    ws.subscribe("1", json!(null)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // More at once than a subscriber may fall behind by.
    let burst: Vec<_> = (0..5000)
        .map(|i| entity::audit_event::Model {
            id: uuid::Uuid::now_v7(),
            action: "LOGIN_FAILED".into(),
            actor_id: None,
            target_user_id: None,
            ip_address: None,
            user_agent: None,
            metadata: json!({ "n": i }),
            created_at: chrono::Utc::now(),
        })
        .collect();
    app.state.events.publish(burst);
    loop {
        let message = ws.next_message().await;
        assert_eq!(message["id"], "1", "{message}");
        let payload = &message["payload"];
        if payload.get("errors").is_some() {
            assert_eq!(code(payload), "INTERNAL_SERVER_ERROR");
            let text = payload["errors"][0]["message"].as_str().unwrap();
            assert!(
                text.contains("events behind") && text.contains("auditEvents"),
                "{text}"
            );
            break;
        }
    }
    assert_eq!(ws.next_message().await["type"], "complete");
}
