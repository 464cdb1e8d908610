//! Access and refresh tokens: rotation, reuse detection, logout on every
//! replica, and tokens that must be refused.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use crate::helpers::{code, redis_url, spawn_app, spawn_app_with, spawn_replica};

const SECRET: &str = "test-secret-that-is-at-least-32-bytes-long";

#[tokio::test]
async fn refresh_rotates_the_token() {
    let app = spawn_app().await;
    let t = app.signed_up("jo@example.com").await;
    let first = app.refresh(&t.refresh).await;
    let next = &first["data"]["refreshToken"];
    let new_refresh = next["refreshToken"].as_str().expect("rotated");
    assert_ne!(new_refresh, t.refresh);
    let new_access = next["accessToken"].as_str().unwrap();
    assert_eq!(
        app.me(new_access).await["data"]["me"]["email"],
        "jo@example.com"
    );
    // The new refresh token works in turn.
    let second = app.refresh(new_refresh).await;
    assert!(second["data"]["refreshToken"].is_object(), "{second}");
}

#[tokio::test]
async fn reusing_a_rotated_token_revokes_the_whole_session() {
    // Strict: no grace for concurrent refreshes (lifecycle.rs tests the grace).
    let app = spawn_app_with(|c| c.jwt.reuse_interval = std::time::Duration::ZERO).await;
    let t = app.signed_up("kim@example.com").await;
    let rotated = app.refresh(&t.refresh).await;
    let newer_refresh = rotated["data"]["refreshToken"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let newer_access = rotated["data"]["refreshToken"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();

    let reuse = app.refresh(&t.refresh).await;
    assert_eq!(code(&reuse), "INVALID_TOKEN");
    // The thief's and the owner's newer tokens are dead too.
    assert_eq!(code(&app.refresh(&newer_refresh).await), "INVALID_TOKEN");
    assert_eq!(code(&app.me(&newer_access).await), "UNAUTHENTICATED");
    assert_eq!(code(&app.me(&t.access).await), "UNAUTHENTICATED");

    use sea_orm::{ColumnTrait as _, EntityTrait as _, QueryFilter as _};
    let events = entity::audit_event::Entity::find()
        .filter(entity::audit_event::Column::Action.eq("TOKEN_REUSE_DETECTED"))
        .all(&app.state.db.write)
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].actor_id.map(|id| id.to_string()), Some(t.user_id));
}

#[tokio::test]
async fn unknown_and_oversized_refresh_tokens_are_invalid() {
    let app = spawn_app().await;
    assert_eq!(code(&app.refresh("nope").await), "INVALID_TOKEN");
    assert_eq!(
        code(&app.refresh(&"x".repeat(10_000)).await),
        "INVALID_TOKEN"
    );
}

#[tokio::test]
async fn logout_kills_the_access_token_at_once() {
    let app = spawn_app().await;
    let t = app.signed_up("lee@example.com").await;
    assert!(app.me(&t.access).await["data"]["me"].is_object());
    let out = app
        .gql("mutation { logout }", json!({}), Some(&t.access))
        .await;
    assert_eq!(out["data"]["logout"], true, "{out}");
    assert_eq!(code(&app.me(&t.access).await), "UNAUTHENTICATED");
    assert_eq!(code(&app.refresh(&t.refresh).await), "INVALID_TOKEN");
    // Logging out needs a working token.
    assert_eq!(
        code(&app.gql("mutation { logout }", json!({}), None).await),
        "UNAUTHENTICATED"
    );
}

#[tokio::test]
#[ignore = "needs TEST_REDIS_URL (shared by two replicas); run with --include-ignored"]
async fn logout_is_honoured_by_another_replica() {
    // Replicas share revocations through Redis; the in-process cache is for
    // a single instance. This runs in the PostgreSQL + Redis pass.
    assert!(redis_url().is_some(), "needs TEST_REDIS_URL");
    let a = spawn_app().await;
    let b = spawn_replica(&a).await;
    let t = a.signed_up("max@example.com").await;
    // Replica B has seen (and cached) the live session.
    assert_eq!(
        b.me(&t.access).await["data"]["me"]["email"],
        "max@example.com"
    );
    let out = a
        .gql("mutation { logout }", json!({}), Some(&t.access))
        .await;
    assert_eq!(out["data"]["logout"], true);
    assert_eq!(code(&b.me(&t.access).await), "UNAUTHENTICATED");
    assert_eq!(code(&a.me(&t.access).await), "UNAUTHENTICATED");
}

fn forge(claims: serde_json::Value, secret: &str) -> String {
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &key,
    )
    .unwrap()
}

#[tokio::test]
async fn forged_tampered_and_expired_tokens_are_refused() {
    let app = spawn_app().await;
    let t = app.signed_up("ned@example.com").await;
    let payload = t.access.split('.').nth(1).unwrap();
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    let now = chrono::Utc::now().timestamp();
    let with = |key: &str, value: serde_json::Value| {
        let mut c = claims.clone();
        c[key] = value;
        c
    };

    // Sanity: a token forged with the real secret and real claims works.
    assert!(app.me(&forge(claims.clone(), SECRET)).await["data"]["me"].is_object());

    let mut tampered = t.access.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let alg_none = format!("{none_header}.{payload}.");
    let other_user = {
        let mut parts: Vec<String> = t.access.split('.').map(str::to_owned).collect();
        parts[1] = URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&with("sub", json!(uuid::Uuid::now_v7()))).unwrap());
        parts.join(".")
    };
    for (token, why) in [
        (tampered, "tampered signature"),
        (alg_none, "alg none"),
        (other_user, "payload swapped under the old signature"),
        (forge(with("exp", json!(now - 3600)), SECRET), "expired"),
        (
            forge(with("aud", json!("someone-else")), SECRET),
            "wrong audience",
        ),
        (
            forge(with("iss", json!("someone-else")), SECRET),
            "wrong issuer",
        ),
        (
            forge(claims.clone(), "another-secret-that-is-at-least-32-bytes"),
            "another key",
        ),
        (
            forge(with("sid", json!(uuid::Uuid::now_v7())), SECRET),
            "unknown session",
        ),
        ("garbage".to_owned(), "not a JWT"),
    ] {
        let body = app.me(&token).await;
        assert_eq!(code(&body), "UNAUTHENTICATED", "{why}: {body}");
    }
    // A token with another scheme is refused too.
    let res = app
        .client
        .post(app.url("/graphql"))
        .header("authorization", format!("Basic {}", t.access))
        .json(&json!({ "query": "{ me { id } }" }))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(code(&body), "UNAUTHENTICATED");
}

#[tokio::test]
async fn sessions_list_marks_the_current_one() {
    let app = spawn_app().await;
    let t = app.signed_up("oli@example.com").await;
    let second = app.login("oli@example.com", crate::helpers::PASSWORD).await;
    assert!(second["data"]["login"].is_object());
    let body = app
        .gql(
            "{ me { sessions { id current ipAddress } } }",
            json!({}),
            Some(&t.access),
        )
        .await;
    let sessions = body["data"]["me"]["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 2, "{body}");
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    assert_eq!(sessions[0]["ipAddress"], "127.0.0.1");
}

#[tokio::test]
async fn long_ended_sessions_are_purged_with_their_rotated_tokens() {
    use sea_orm::{ActiveModelTrait as _, EntityTrait as _, PaginatorTrait as _, Set};
    let app = spawn_app().await;
    let t = app.signed_up("pat@example.com").await;
    app.refresh(&t.refresh).await;
    let live = app.signed_up("quin@example.com").await;
    assert_eq!(
        entity::rotated_refresh_token::Entity::find()
            .count(&app.state.db.write)
            .await
            .unwrap(),
        1
    );
    // Age the first session past the retention: revoked eight days ago.
    let sessions = entity::session::Entity::find()
        .all(&app.state.db.write)
        .await
        .unwrap();
    let old = sessions
        .iter()
        .find(|s| s.user_id.to_string() == t.user_id)
        .unwrap();
    let mut aged: entity::session::ActiveModel = old.clone().into();
    aged.revoked_at = Set(Some(chrono::Utc::now() - chrono::Duration::days(8)));
    aged.update(&app.state.db.write).await.unwrap();

    let purged = usergraph::domain::sessions::purge_ended(&app.state, 100)
        .await
        .unwrap();
    assert_eq!(purged, (1, 1));
    assert_eq!(
        entity::rotated_refresh_token::Entity::find()
            .count(&app.state.db.write)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        app.me(&live.access).await["data"]["me"]["email"],
        "quin@example.com",
        "live sessions stay"
    );
}

#[tokio::test]
async fn eddsa_tokens_verify_against_the_published_key() {
    use ed25519_dalek::pkcs8::EncodePrivateKey as _;
    let dir = tempfile::tempdir().unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&[42u8; 32]);
    let pem_path = dir.path().join("jwt.pem");
    std::fs::write(
        &pem_path,
        key.to_pkcs8_pem(Default::default()).unwrap().as_bytes(),
    )
    .unwrap();
    // Through the real configuration path, as JWT_PRIVATE_KEY_FILE.
    let from_env = usergraph::config::Config::from_lookup(|k| {
        (k == "JWT_PRIVATE_KEY_FILE").then(|| pem_path.display().to_string())
    })
    .unwrap();
    let app = crate::helpers::spawn_app_with(|c| c.jwt.key = from_env.jwt.key.clone()).await;

    let t = app.signed_up("eve@example.com").await;
    let header: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(t.access.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(
        app.me(&t.access).await["data"]["me"]["email"],
        "eve@example.com"
    );

    let jwks = app.get_json("/.well-known/jwks.json", &[]).await;
    let jwk = &jwks["keys"][0];
    assert_eq!(
        (jwk["kty"].as_str(), jwk["crv"].as_str()),
        (Some("OKP"), Some("Ed25519"))
    );
    assert_eq!(jwk["kid"], header["kid"]);
    assert!(jwk.get("d").is_none(), "no private part");
    // The published key verifies the token on its own.
    let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
    assert_eq!(x, key.verifying_key().as_bytes());
    // An HS256 token signed with some secret is refused: the algorithm is pinned.
    let hs = forge(
        json!({"sub": t.user_id, "sid": t.user_id, "iss": "usergraph", "aud": "usergraph", "exp": chrono::Utc::now().timestamp() + 600}),
        SECRET,
    );
    assert_eq!(code(&app.me(&hs).await), "UNAUTHENTICATED");
}

#[tokio::test]
async fn the_purge_deletes_in_bounded_batches() {
    use sea_orm::{EntityTrait as _, PaginatorTrait as _, Set};
    let app = spawn_app().await;
    let t = app.signed_up("many@example.com").await;
    let user_id: uuid::Uuid = t.user_id.parse().unwrap();
    let long_ago = chrono::Utc::now() - chrono::Duration::days(30);
    for chunk in 0..5 {
        let rows = (0..500).map(|i| entity::session::ActiveModel {
            id: Set(uuid::Uuid::now_v7()),
            user_id: Set(user_id),
            refresh_token_hash: Set(format!("old-{chunk}-{i}")),
            generation: Set(0),
            created_at: Set(long_ago),
            last_used_at: Set(long_ago),
            expires_at: Set(long_ago + chrono::Duration::days(10)),
            ip_address: Set(None),
            user_agent: Set(None),
            revoked_at: Set(None),
            revoked_reason: Set(None),
        });
        entity::session::Entity::insert_many(rows)
            .exec(&app.state.db.write)
            .await
            .unwrap();
    }
    let (deleted, batches) = usergraph::domain::sessions::purge_ended(&app.state, 1000)
        .await
        .unwrap();
    assert_eq!((deleted, batches), (2500, 3), "1000 + 1000 + 500");
    assert_eq!(
        entity::session::Entity::find()
            .count(&app.state.db.write)
            .await
            .unwrap(),
        1,
        "only the live session is left"
    );
    assert_eq!(
        app.me(&t.access).await["data"]["me"]["email"],
        "many@example.com"
    );
}
