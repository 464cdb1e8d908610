//! The users directory and the admin audit query: keyset paging in every
//! order both ways, filters, the authorization matrix, and the number of
//! SQL statements a page costs.

use chrono::{Duration as ChronoDuration, Utc};
use sea_orm::{ActiveModelTrait as _, Set};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{PASSWORD, TestApp, code, field, spawn_app};

/// Signs in a fresh admin; returns its access token.
pub async fn admin(app: &TestApp) -> String {
    let email = format!("admin-{}@example.com", Uuid::new_v4().simple());
    usergraph::domain::accounts::create_admin(&app.state, &email, PASSWORD, "test")
        .await
        .unwrap();
    let body = app.login(&email, PASSWORD).await;
    body["data"]["login"]["accessToken"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned()
}

#[derive(Clone, Debug)]
struct Row {
    id: Uuid,
    email: String,
    display_name: Option<String>,
    created_at: chrono::DateTime<Utc>,
    last_login_at: Option<chrono::DateTime<Utc>>,
}

/// Inserts `n` users straight into the database, with collation-neutral
/// names (same shape, digits varying), repeated values (ties broken by id)
/// and nulls in the nullable columns.
async fn seed(app: &TestApp, n: usize, group: &str) -> Vec<Row> {
    let base = Utc::now() - ChronoDuration::days(1);
    let mut rows = Vec::new();
    for i in 0..n {
        let row = Row {
            id: Uuid::now_v7(),
            email: format!("{group}{:03}@example.com", (i * 37) % n),
            display_name: (i % 4 != 0).then(|| format!("name{:02}", i % 9)),
            created_at: base + ChronoDuration::seconds(i64::try_from(i % 13).unwrap()),
            last_login_at: (i % 3 == 0)
                .then(|| base + ChronoDuration::minutes(i64::try_from(i % 5).unwrap())),
        };
        entity::user::ActiveModel {
            id: Set(row.id),
            email: Set(row.email.clone()),
            password_hash: Set("$argon2id$v=19$m=256,t=1,p=1$c29tZXNhbHQ$aGFzaA".into()),
            display_name: Set(row.display_name.clone()),
            status: Set(if i % 7 == 0 {
                entity::user::UserStatus::Disabled
            } else {
                entity::user::UserStatus::Active
            }),
            email_verified: Set(i % 2 == 0),
            failed_login_count: Set(0),
            locked_until: Set(None),
            last_login_at: Set(row.last_login_at),
            created_at: Set(row.created_at),
            updated_at: Set(row.created_at),
            version: Set(0),
        }
        .insert(&app.state.db.write)
        .await
        .unwrap();
        rows.push(row);
    }
    rows
}

const FIELDS: [&str; 4] = ["CREATED_AT", "EMAIL", "DISPLAY_NAME", "LAST_LOGIN_AT"];

/// The order the contract defines: the field, nulls last ascending and first
/// descending, then the id the same way.
fn expected(rows: &[Row], field: &str, asc: bool) -> Vec<Uuid> {
    let mut sorted = rows.to_vec();
    sorted.sort_by(|a, b| {
        let key = |r: &Row| -> Option<String> {
            match field {
                "CREATED_AT" => Some(r.created_at.to_rfc3339()),
                "EMAIL" => Some(r.email.clone()),
                "DISPLAY_NAME" => r.display_name.clone(),
                _ => r.last_login_at.map(|t| t.to_rfc3339()),
            }
        };
        let (ka, kb) = (key(a), key(b));
        let by_value = match (&ka, &kb) {
            (None, None) => std::cmp::Ordering::Equal,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(_), None) => std::cmp::Ordering::Less,
            (Some(x), Some(y)) => x.cmp(y),
        };
        by_value.then(a.id.cmp(&b.id))
    });
    if !asc {
        sorted.reverse();
    }
    sorted.into_iter().map(|r| r.id).collect()
}

const PAGE: &str =
    "query($f: Int, $a: String, $l: Int, $b: String, $filter: UserFilter, $o: UserOrder) {
  users(first: $f, after: $a, last: $l, before: $b, filter: $filter, orderBy: $o) {
    totalCount edges { cursor node { id } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}";

fn ids(conn: &Value) -> Vec<Uuid> {
    conn["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{conn}"))
        .iter()
        .map(|e| Uuid::parse_str(e["node"]["id"].as_str().unwrap()).unwrap())
        .collect()
}

#[tokio::test]
async fn paging_forward_and_backward_in_every_order_yields_each_user_once() {
    let app = spawn_app().await;
    let token = admin(&app).await;
    let rows = seed(&app, 45, "pg").await;
    for field in FIELDS {
        for asc in [true, false] {
            let order = json!({ "field": field, "direction": if asc { "ASC" } else { "DESC" } });
            let filter = json!({ "search": "pg" });
            let want = expected(&rows, field, asc);
            // Forward, 7 at a time.
            let mut got = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let body = app
                    .gql(
                        PAGE,
                        json!({ "f": 7, "a": after, "filter": filter, "o": order }),
                        Some(&token),
                    )
                    .await;
                let conn = &body["data"]["users"];
                assert_eq!(conn["totalCount"], 45, "{body}");
                assert_eq!(conn["pageInfo"]["hasPreviousPage"], after.is_some());
                got.extend(ids(conn));
                if conn["pageInfo"]["hasNextPage"] == false {
                    break;
                }
                after = conn["pageInfo"]["endCursor"].as_str().map(str::to_owned);
            }
            assert_eq!(got, want, "forward {field} {asc}");
            // Backward from the end, 6 at a time, pages in forward order.
            let mut back: Vec<Vec<Uuid>> = Vec::new();
            let mut before: Option<String> = None;
            loop {
                let body = app
                    .gql(
                        PAGE,
                        json!({ "l": 6, "b": before, "filter": filter, "o": order }),
                        Some(&token),
                    )
                    .await;
                let conn = &body["data"]["users"];
                assert_eq!(conn["pageInfo"]["hasNextPage"], before.is_some(), "{body}");
                back.push(ids(conn));
                if conn["pageInfo"]["hasPreviousPage"] == false {
                    break;
                }
                before = conn["pageInfo"]["startCursor"].as_str().map(str::to_owned);
            }
            back.reverse();
            assert_eq!(back.concat(), want, "backward {field} {asc}");
        }
    }
}

#[tokio::test]
async fn filters_narrow_the_list_and_search_takes_wildcards_literally() {
    let app = spawn_app().await;
    let token = admin(&app).await;
    let rows = seed(&app, 30, "fl").await;
    let count = |filter: Value| {
        let token = token.clone();
        let app = &app;
        async move {
            let body = app
                .gql("query($f: UserFilter) { users(first: 100, filter: $f) { totalCount nodes { id email displayName } } }", json!({ "f": filter.clone() }), Some(&token))
                .await;
            let n = body["data"]["users"]["totalCount"]
                .as_i64()
                .unwrap_or_else(|| panic!("{body}"));
            assert_eq!(
                n as usize,
                body["data"]["users"]["nodes"].as_array().unwrap().len()
            );
            n
        }
    };
    assert_eq!(
        count(json!({ "search": "FL0" })).await,
        30,
        "case-insensitive"
    );
    assert_eq!(
        count(json!({ "search": "name03" })).await,
        rows.iter()
            .filter(|r| r.display_name.as_deref() == Some("name03"))
            .count() as i64
    );
    assert_eq!(
        count(json!({ "search": "fl", "status": "DISABLED" })).await,
        5
    );
    assert_eq!(
        count(json!({ "search": "fl", "emailVerified": true })).await,
        15
    );
    let mid = rows[6].created_at.to_rfc3339();
    assert_eq!(
        count(json!({ "search": "fl", "createdAfter": mid })).await,
        rows.iter()
            .filter(|r| r.created_at > rows[6].created_at)
            .count() as i64
    );
    // % and _ are literal.
    let literal = Row {
        id: Uuid::now_v7(),
        email: "percent@example.com".into(),
        display_name: Some("100% sure_thing".into()),
        created_at: Utc::now(),
        last_login_at: None,
    };
    entity::user::ActiveModel {
        id: Set(literal.id),
        email: Set(literal.email.clone()),
        password_hash: Set("x".into()),
        display_name: Set(literal.display_name.clone()),
        status: Set(entity::user::UserStatus::Active),
        email_verified: Set(false),
        failed_login_count: Set(0),
        locked_until: Set(None),
        last_login_at: Set(None),
        created_at: Set(literal.created_at),
        updated_at: Set(literal.created_at),
        version: Set(0),
    }
    .insert(&app.state.db.write)
    .await
    .unwrap();
    assert_eq!(count(json!({ "search": "%" })).await, 1);
    assert_eq!(
        count(json!({ "search": "rc_nt" })).await,
        0,
        "_ is not any character"
    );
    assert_eq!(count(json!({ "search": "sure_" })).await, 1);
    // The admin is the one holder of `admin`.
    assert_eq!(count(json!({ "role": "admin" })).await, 1);
    assert_eq!(count(json!({ "role": "no-such-role" })).await, 0);
}

#[tokio::test]
async fn page_sizes_and_cursors_are_checked() {
    let app = spawn_app().await;
    let token = admin(&app).await;
    let ask = |vars: Value| {
        let token = token.clone();
        let app = &app;
        async move { app.gql(PAGE, vars, Some(&token)).await }
    };
    let body = ask(json!({ "f": 101 })).await;
    assert_eq!((code(&body), field(&body)), ("BAD_USER_INPUT", "first"));
    let body = ask(json!({ "l": 101 })).await;
    assert_eq!((code(&body), field(&body)), ("BAD_USER_INPUT", "last"));
    let body = ask(json!({ "f": -1 })).await;
    assert_eq!(field(&body), "first");
    let body = ask(json!({ "a": "bm90IGEgY3Vyc29y" })).await;
    assert_eq!((code(&body), field(&body)), ("BAD_USER_INPUT", "after"));
    // A cursor of another order is not one of this list.
    let page = ask(json!({ "f": 1, "o": { "field": "EMAIL", "direction": "ASC" } })).await;
    let cursor = page["data"]["users"]["pageInfo"]["endCursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let body =
        ask(json!({ "f": 1, "a": cursor, "o": { "field": "CREATED_AT", "direction": "ASC" } }))
            .await;
    assert_eq!(field(&body), "after");
    let long = "x".repeat(300);
    let body = ask(json!({ "filter": { "search": long } })).await;
    assert_eq!((code(&body), field(&body)), ("BAD_USER_INPUT", "search"));
}

/// Every column of a listed user as stored: the page reads its columns by
/// position, so two of one type swapped would still compile. A display
/// name of 100 four-byte characters also makes the longest cursor.
#[tokio::test]
async fn a_listed_user_shows_each_column_as_stored() {
    let app = spawn_app().await;
    let token = admin(&app).await;
    let at = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .with_timezone(&Utc)
    };
    let id = Uuid::now_v7();
    let email = format!("columns-{}@example.com", id.simple());
    let name = "\u{1F600}".repeat(100);
    let created = at("2021-01-02T03:04:05Z");
    let updated = at("2022-02-03T04:05:06Z");
    let login = at("2023-03-04T05:06:07Z");
    let locked = Utc::now() + ChronoDuration::days(3);
    let locked = locked - ChronoDuration::nanoseconds(i64::from(locked.timestamp_subsec_nanos()));
    entity::user::ActiveModel {
        id: Set(id),
        email: Set(email.clone()),
        password_hash: Set("$argon2id$v=19$m=256,t=1,p=1$c29tZXNhbHQ$aGFzaA".into()),
        display_name: Set(Some(name.clone())),
        status: Set(entity::user::UserStatus::Disabled),
        email_verified: Set(true),
        failed_login_count: Set(0),
        locked_until: Set(Some(locked)),
        last_login_at: Set(Some(login)),
        created_at: Set(created),
        updated_at: Set(updated),
        version: Set(0),
    }
    .insert(&app.state.db.write)
    .await
    .unwrap();
    let fields =
        "id email emailVerified displayName status lockedUntil createdAt updatedAt lastLoginAt";
    let check = |user: &Value| {
        assert_eq!(user["id"], id.to_string(), "{user}");
        assert_eq!(user["email"], email.as_str(), "{user}");
        assert_eq!(user["emailVerified"], true, "{user}");
        assert_eq!(user["displayName"], name.as_str(), "{user}");
        assert_eq!(user["status"], "DISABLED", "{user}");
        let time = |k: &str| at(user[k].as_str().unwrap_or_else(|| panic!("{k}: {user}")));
        assert_eq!(time("lockedUntil"), locked, "{user}");
        assert_eq!(time("createdAt"), created, "{user}");
        assert_eq!(time("updatedAt"), updated, "{user}");
        assert_eq!(time("lastLoginAt"), login, "{user}");
    };
    let list = format!(
        "query($a: String) {{ users(first: 1, after: $a, filter: {{ search: \"{email}\" }}, \
         orderBy: {{ field: DISPLAY_NAME, direction: ASC }}) {{ nodes {{ {fields} }} \
         pageInfo {{ endCursor }} }} }}"
    );
    let body = app.gql(&list, json!({}), Some(&token)).await;
    let page = &body["data"]["users"];
    check(&page["nodes"][0]);
    // The cursor of the longest display name is taken back.
    let cursor = page["pageInfo"]["endCursor"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"));
    let body = app.gql(&list, json!({ "a": cursor }), Some(&token)).await;
    assert_eq!(body["data"]["users"]["nodes"], json!([]), "{body}");
    // The same columns read by id (the cache fill) and from the cache.
    for _ in 0..2 {
        let one = format!("query($id: ID!) {{ user(id: $id) {{ {fields} }} }}");
        let body = app.gql(&one, json!({ "id": id }), Some(&token)).await;
        check(&body["data"]["user"]);
    }
}

#[tokio::test]
async fn admin_queries_need_their_permission() {
    let app = spawn_app().await;
    // A custom role with just users:read and audit:read, before anything is cached.
    let reader = app.signed_up("reader@example.com").await;
    let role_id = Uuid::now_v7();
    entity::role::ActiveModel {
        id: Set(role_id),
        name: Set("auditor".into()),
        description: Set(None),
        permissions: Set(json!(["users:read", "audit:read"])),
        built_in: Set(false),
        created_at: Set(Utc::now()),
        updated_at: Set(Utc::now()),
    }
    .insert(&app.state.db.write)
    .await
    .unwrap();
    entity::user_role::ActiveModel {
        user_id: Set(Uuid::parse_str(&reader.user_id).unwrap()),
        role_id: Set(role_id),
        created_at: Set(Utc::now()),
    }
    .insert(&app.state.db.write)
    .await
    .unwrap();
    let plain = app.signed_up("plain@example.com").await;
    for query in [
        "{ users { totalCount } }",
        "{ userByEmail(email: \"plain@example.com\") { id } }",
        "{ auditEvents { totalCount } }",
    ] {
        assert_eq!(
            code(&app.gql(query, json!({}), None).await),
            "UNAUTHENTICATED",
            "{query}"
        );
        assert_eq!(
            code(&app.gql(query, json!({}), Some(&plain.access)).await),
            "FORBIDDEN",
            "{query}"
        );
        let allowed = app.gql(query, json!({}), Some(&reader.access)).await;
        assert!(allowed.get("errors").is_none(), "{query}: {allowed}");
    }
    // Permission before existence.
    let unknown = app
        .gql(
            "{ userByEmail(email: \"nobody@example.com\") { id } }",
            json!({}),
            Some(&plain.access),
        )
        .await;
    assert_eq!(code(&unknown), "FORBIDDEN");
    let found = app
        .gql(
            "{ userByEmail(email: \" PLAIN@example.com\") { id } }",
            json!({}),
            Some(&reader.access),
        )
        .await;
    assert_eq!(found["data"]["userByEmail"]["id"], plain.user_id.as_str());
    let none = app
        .gql(
            "{ userByEmail(email: \"nobody@example.com\") { id } }",
            json!({}),
            Some(&reader.access),
        )
        .await;
    assert_eq!(none, json!({ "data": { "userByEmail": null } }));
    // auditEvents filters and pages.
    let logins = app
        .gql(
            "query($f: AuditEventFilter) { auditEvents(first: 1, filter: $f) { totalCount nodes { action targetUserId } pageInfo { hasNextPage } } }",
            json!({ "f": { "action": "USER_REGISTERED" } }),
            Some(&reader.access),
        )
        .await;
    assert_eq!(logins["data"]["auditEvents"]["totalCount"], 2, "{logins}");
    assert_eq!(
        logins["data"]["auditEvents"]["nodes"][0]["targetUserId"],
        plain.user_id.as_str(),
        "newest first"
    );
    assert_eq!(
        logins["data"]["auditEvents"]["pageInfo"]["hasNextPage"],
        true
    );
    let bad = app
        .gql(
            "{ auditEvents(filter: {actorId: \"nope\"}) { totalCount } }",
            json!({}),
            Some(&reader.access),
        )
        .await;
    assert_eq!((code(&bad), field(&bad)), ("BAD_USER_INPUT", "actorId"));
}

#[tokio::test]
async fn a_page_costs_the_same_statements_whatever_its_size() {
    let app = spawn_app().await;
    let token = admin(&app).await;
    seed(&app, 5, "small").await;
    seed(&app, 100, "large").await;
    let query = "query($s: String, $n: Int) { users(first: $n, filter: {search: $s}) { nodes { id email roles { name permissions } sessions { id } } } }";
    let cost = |search: &'static str, n: i64| {
        let token = token.clone();
        let app = &app;
        async move {
            let before = app.state.db.statements();
            let body = app
                .gql(query, json!({ "s": search, "n": n }), Some(&token))
                .await;
            assert!(body.get("errors").is_none(), "{body}");
            assert_eq!(
                body["data"]["users"]["nodes"].as_array().unwrap().len() as i64,
                n
            );
            app.state.db.statements() - before
        }
    };
    // The admin's own permissions are cached by a first request; then both
    // pages are cold for their users (roles and sessions not cached yet).
    app.gql(
        "{ users(first: 1) { nodes { id } } }",
        json!({}),
        Some(&token),
    )
    .await;
    let small = cost("small", 5).await;
    let large = cost("large", 100).await;
    assert_eq!(
        small, large,
        "5 users: {small} statements, 100 users: {large}"
    );
    assert!(large <= 6, "{large} statements");
    // Warm: `me { roles }` costs nothing beyond the (cached) session check.
    let me = "{ me { id roles { name } } }";
    app.gql(me, json!({}), Some(&token)).await;
    let before = app.state.db.statements();
    let body = app.gql(me, json!({}), Some(&token)).await;
    assert!(body["data"]["me"]["roles"].is_array(), "{body}");
    assert_eq!(app.state.db.statements() - before, 0);
}

#[tokio::test]
async fn audit_events_past_the_retention_are_purged_in_batches() {
    let app = crate::helpers::spawn_app_with(|c| {
        c.audit_retention = std::time::Duration::from_secs(30 * 86400);
    })
    .await;
    let old = Utc::now() - ChronoDuration::days(31);
    for i in 0..7 {
        entity::audit_event::ActiveModel {
            id: Set(Uuid::now_v7()),
            action: Set("LOGIN_FAILED".into()),
            actor_id: Set(None),
            target_user_id: Set(None),
            ip_address: Set(None),
            user_agent: Set(None),
            metadata: Set(json!({ "i": i })),
            created_at: Set(old - ChronoDuration::minutes(i)),
        }
        .insert(&app.state.db.write)
        .await
        .unwrap();
    }
    app.signed_up("recent@example.com").await;
    let deleted = usergraph::domain::audit::purge_expired(&app.state, 3)
        .await
        .unwrap();
    assert_eq!(deleted, 7);
    use sea_orm::{EntityTrait as _, PaginatorTrait as _};
    let left = entity::audit_event::Entity::find()
        .count(&app.state.db.write)
        .await
        .unwrap();
    assert_eq!(left, 1, "the recent registration stays");
}
