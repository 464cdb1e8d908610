//! Administration mutations: the permission matrix, last-admin protection
//! (also under concurrent attempts), disabling, roles, and permissions that
//! change for a live token at the next request.

use serde_json::{Value, json};

use crate::directory::admin;
use crate::helpers::{PASSWORD, TestApp, code, field, spawn_app};

async fn as_user(app: &TestApp, token: &str, query: &str, vars: Value) -> Value {
    app.gql(query, vars, Some(token)).await
}

/// A signed-in user holding a custom role with exactly `permission`.
async fn holder_of(app: &TestApp, admin_token: &str, permission: &str) -> String {
    let name = format!("only-{}", permission.replace(':', "-"));
    let created = as_user(
        app,
        admin_token,
        "mutation($i: CreateRoleInput!) { createRole(input: $i) { name permissions } }",
        json!({ "i": { "name": name, "permissions": [permission] } }),
    )
    .await;
    assert_eq!(
        created["data"]["createRole"]["permissions"],
        json!([permission]),
        "{created}"
    );
    let email = format!("{name}@example.com");
    let user = app.signed_up(&email).await;
    let assigned = as_user(
        app,
        admin_token,
        "mutation($u: ID!, $r: String!) { assignRole(userId: $u, role: $r) { id } }",
        json!({ "u": user.user_id, "r": name }),
    )
    .await;
    assert!(assigned.get("errors").is_none(), "{assigned}");
    user.access
}

#[tokio::test]
async fn every_admin_mutation_needs_its_permission() {
    let app = spawn_app().await;
    let root = admin(&app).await;
    let plain = app.signed_up("plain@example.com").await;
    let target = app.signed_up("target@example.com").await;
    let cases: Vec<(&str, &str, Value)> = vec![
        (
            "users:write",
            "mutation($v: CreateUserInput!) { createUser(input: $v) { id } }",
            json!({ "v": { "email": "new@example.com", "password": PASSWORD } }),
        ),
        (
            "users:write",
            "mutation($v: ID!) { updateUser(id: $v, input: {displayName: \"T\"}) { id } }",
            json!({ "v": target.user_id }),
        ),
        (
            "users:write",
            "mutation($v: ID!) { unlockUser(id: $v) { id } }",
            json!({ "v": target.user_id }),
        ),
        (
            "roles:assign",
            "mutation($v: ID!) { assignRole(userId: $v, role: \"user\") { id } }",
            json!({ "v": target.user_id }),
        ),
        (
            "roles:assign",
            "mutation($v: ID!) { removeRole(userId: $v, role: \"user\") { id } }",
            json!({ "v": target.user_id }),
        ),
        (
            "roles:write",
            "mutation($v: CreateRoleInput!) { createRole(input: $v) { id } }",
            json!({ "v": { "name": "extra", "permissions": [] } }),
        ),
        (
            "roles:write",
            "mutation($v: UpdateRoleInput!) { updateRole(name: \"extra\", input: $v) { id } }",
            json!({ "v": { "description": "x" } }),
        ),
        (
            "roles:write",
            "mutation($v: String!) { deleteRole(name: $v) }",
            json!({ "v": "extra" }),
        ),
        (
            "users:delete",
            "mutation($v: ID!) { deleteUser(id: $v) }",
            json!({ "v": target.user_id }),
        ),
    ];
    let mut holders = std::collections::HashMap::new();
    for (permission, query, vars) in cases {
        assert_eq!(
            code(&app.gql(query, vars.clone(), None).await),
            "UNAUTHENTICATED",
            "{query}"
        );
        assert_eq!(
            code(&as_user(&app, &plain.access, query, vars.clone()).await),
            "FORBIDDEN",
            "{query}"
        );
        if !holders.contains_key(permission) {
            holders.insert(permission, holder_of(&app, &root, permission).await);
        }
        let allowed = as_user(&app, &holders[permission], query, vars).await;
        assert!(
            allowed.get("errors").is_none(),
            "{permission} {query}: {allowed}"
        );
    }
}

#[tokio::test]
async fn the_last_active_admin_stays() {
    let app = spawn_app().await;
    let root = admin(&app).await;
    let me = as_user(&app, &root, "{ me { id } }", json!({})).await["data"]["me"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (query, vars) in [
        (
            "mutation($u: ID!) { removeRole(userId: $u, role: \"admin\") { id } }",
            json!({ "u": me }),
        ),
        (
            "mutation($u: ID!) { updateUser(id: $u, input: {status: DISABLED}) { id } }",
            json!({ "u": me }),
        ),
        (
            "mutation($u: ID!) { deleteUser(id: $u) }",
            json!({ "u": me }),
        ),
    ] {
        assert_eq!(
            code(&as_user(&app, &root, query, vars).await),
            "FORBIDDEN",
            "{query}"
        );
    }
    // Two admins removing each other's admin role at once: one wins.
    let second = admin(&app).await;
    let other = as_user(&app, &second, "{ me { id } }", json!({})).await["data"]["me"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let remove = "mutation($u: ID!) { removeRole(userId: $u, role: \"admin\") { id } }";
    let (a, b) = tokio::join!(
        as_user(&app, &root, remove, json!({ "u": other })),
        as_user(&app, &second, remove, json!({ "u": me })),
    );
    let ok = [&a, &b]
        .iter()
        .filter(|r| r.get("errors").is_none())
        .count();
    assert_eq!(ok, 1, "{a} {b}");
    let admins = as_user(
        &app,
        if a.get("errors").is_none() {
            &root
        } else {
            &second
        },
        "{ users(filter: {role: \"admin\"}) { totalCount } }",
        json!({}),
    )
    .await;
    assert_eq!(admins["data"]["users"]["totalCount"], 1, "{admins}");
}

#[tokio::test]
async fn disabling_ends_every_session_and_refuses_login() {
    let app = spawn_app().await;
    let root = admin(&app).await;
    let kim = app.signed_up("kim@example.com").await;
    let disabled = as_user(
        &app,
        &root,
        "mutation($u: ID!) { updateUser(id: $u, input: {status: DISABLED}) { status } }",
        json!({ "u": kim.user_id }),
    )
    .await;
    assert_eq!(
        disabled["data"]["updateUser"]["status"], "DISABLED",
        "{disabled}"
    );
    assert_eq!(code(&app.me(&kim.access).await), "UNAUTHENTICATED");
    assert_eq!(code(&app.refresh(&kim.refresh).await), "INVALID_TOKEN");
    assert_eq!(
        code(&app.login("kim@example.com", PASSWORD).await),
        "FORBIDDEN"
    );
    let taken = as_user(
        &app,
        &root,
        "mutation($u: ID!) { updateUser(id: $u, input: {email: \"plain@example.com\"}) { id } }",
        json!({ "u": kim.user_id }),
    )
    .await;
    assert!(taken.get("errors").is_none(), "a free address: {taken}");
    app.signed_up("other@example.com").await;
    let conflict = as_user(
        &app,
        &root,
        "mutation($u: ID!) { updateUser(id: $u, input: {email: \"other@example.com\"}) { id } }",
        json!({ "u": kim.user_id }),
    )
    .await;
    assert_eq!((code(&conflict), field(&conflict)), ("CONFLICT", "email"));
    // A new address with its verification given in the same change.
    let both = as_user(&app, &root, "mutation($u: ID!) { updateUser(id: $u, input: {email: \"moved@example.com\", emailVerified: true}) { email emailVerified } }", json!({ "u": kim.user_id })).await;
    assert_eq!(
        both["data"]["updateUser"],
        json!({ "email": "moved@example.com", "emailVerified": true }),
        "{both}"
    );
    let moved = as_user(&app, &root, "mutation($u: ID!) { updateUser(id: $u, input: {email: \"moved2@example.com\"}) { emailVerified } }", json!({ "u": kim.user_id })).await;
    assert_eq!(
        moved["data"]["updateUser"]["emailVerified"], false,
        "{moved}"
    );
    let missing = as_user(
        &app,
        &root,
        "mutation { deleteUser(id: \"00000000-0000-0000-0000-000000000000\") }",
        json!({}),
    )
    .await;
    assert_eq!(code(&missing), "NOT_FOUND");
}

#[tokio::test]
async fn roles_are_validated_and_permissions_change_at_the_next_request() {
    let app = spawn_app().await;
    let root = admin(&app).await;
    let create = |input: Value| {
        let root = root.clone();
        let app = &app;
        async move {
            as_user(
                app,
                &root,
                "mutation($i: CreateRoleInput!) { createRole(input: $i) { name builtIn } }",
                json!({ "i": input }),
            )
            .await
        }
    };
    let bad = create(json!({ "name": "Not A Slug", "permissions": [] })).await;
    assert_eq!((code(&bad), field(&bad)), ("BAD_USER_INPUT", "name"));
    let bad = create(json!({ "name": "reader", "permissions": ["users:fly"] })).await;
    assert_eq!((code(&bad), field(&bad)), ("BAD_USER_INPUT", "permissions"));
    // Bounded: a long list, or a huge unknown entry that is never echoed.
    let many = vec!["users:read"; 33];
    let bad = create(json!({ "name": "reader", "permissions": many })).await;
    assert_eq!((code(&bad), field(&bad)), ("BAD_USER_INPUT", "permissions"));
    let huge = "p".repeat(100_000);
    let bad = create(json!({ "name": "reader", "permissions": [huge] })).await;
    assert_eq!((code(&bad), field(&bad)), ("BAD_USER_INPUT", "permissions"));
    assert!(bad.to_string().len() < 2_000, "the entry is not echoed");
    assert_eq!(
        create(json!({ "name": "reader", "permissions": ["users:read"] })).await["data"]["createRole"],
        json!({ "name": "reader", "builtIn": false })
    );
    assert_eq!(
        code(&create(json!({ "name": "reader", "permissions": [] })).await),
        "CONFLICT"
    );
    for name in ["admin", "user"] {
        let body = as_user(
            &app,
            &root,
            "mutation($n: String!) { deleteRole(name: $n) }",
            json!({ "n": name }),
        )
        .await;
        assert_eq!(code(&body), "FORBIDDEN", "{name}");
    }
    let body = as_user(
        &app,
        &root,
        "mutation { updateRole(name: \"admin\", input: {permissions: []}) { id } }",
        json!({}),
    )
    .await;
    assert_eq!(code(&body), "FORBIDDEN");
    let body = as_user(
        &app,
        &root,
        "mutation { updateRole(name: \"nope\", input: {permissions: []}) { id } }",
        json!({}),
    )
    .await;
    assert_eq!(code(&body), "NOT_FOUND");

    // A reader's access follows the role at its next request, same token.
    let lee = app.signed_up("lee@example.com").await;
    as_user(
        &app,
        &root,
        "mutation($u: ID!) { assignRole(userId: $u, role: \"reader\") { id } }",
        json!({ "u": lee.user_id }),
    )
    .await;
    let list = "{ users(first: 1) { totalCount } }";
    assert!(
        as_user(&app, &lee.access, list, json!({}))
            .await
            .get("errors")
            .is_none()
    );
    as_user(
        &app,
        &root,
        "mutation { updateRole(name: \"reader\", input: {permissions: []}) { id } }",
        json!({}),
    )
    .await;
    assert_eq!(
        code(&as_user(&app, &lee.access, list, json!({})).await),
        "FORBIDDEN"
    );
    as_user(
        &app,
        &root,
        "mutation { updateRole(name: \"reader\", input: {permissions: [\"users:read\"]}) { id } }",
        json!({}),
    )
    .await;
    assert!(
        as_user(&app, &lee.access, list, json!({}))
            .await
            .get("errors")
            .is_none()
    );
    as_user(
        &app,
        &root,
        "mutation($u: ID!) { removeRole(userId: $u, role: \"reader\") { id } }",
        json!({ "u": lee.user_id }),
    )
    .await;
    assert_eq!(
        code(&as_user(&app, &lee.access, list, json!({})).await),
        "FORBIDDEN"
    );
    as_user(
        &app,
        &root,
        "mutation($u: ID!) { assignRole(userId: $u, role: \"reader\") { id } }",
        json!({ "u": lee.user_id }),
    )
    .await;
    assert!(
        as_user(&app, &lee.access, list, json!({}))
            .await
            .get("errors")
            .is_none()
    );
    assert_eq!(
        as_user(
            &app,
            &root,
            "mutation { deleteRole(name: \"reader\") }",
            json!({})
        )
        .await["data"]["deleteRole"],
        true
    );
    assert_eq!(
        code(&as_user(&app, &lee.access, list, json!({})).await),
        "FORBIDDEN"
    );
    let roles = as_user(&app, &lee.access, "{ me { roles { name } } }", json!({})).await;
    assert_eq!(roles["data"]["me"]["roles"], json!([{ "name": "user" }]));
}

/// A change on one replica is what the other answers at the very next
/// request, 50 times in a row.
#[tokio::test]
#[ignore = "needs TEST_REDIS_URL (shared by two replicas); run with --include-ignored"]
async fn changes_on_one_replica_hold_on_the_other_at_the_next_request() {
    assert!(
        crate::helpers::redis_url().is_some(),
        "needs TEST_REDIS_URL"
    );
    let a = spawn_app().await;
    let b = crate::helpers::spawn_replica(&a).await;
    let root = admin(&a).await;
    let sam = a.signed_up("sam@example.com").await;
    as_user(
        &a,
        &root,
        "mutation { createRole(input: {name: \"reader\", permissions: [\"users:read\"]}) { id } }",
        json!({}),
    )
    .await;
    let list = "{ users(first: 1) { totalCount } }";
    let can = |body: &Value| body.get("errors").is_none();
    for round in 0..50 {
        let name = format!("Sam {round}");
        let renamed = as_user(&a, &root, "mutation($u: ID!, $n: String!) { updateUser(id: $u, input: {displayName: $n}) { id } }", json!({ "u": sam.user_id, "n": name })).await;
        assert!(can(&renamed), "{renamed}");
        let seen = as_user(&b, &sam.access, "{ me { displayName } }", json!({})).await;
        assert_eq!(
            seen["data"]["me"]["displayName"],
            name.as_str(),
            "round {round}"
        );

        as_user(
            &a,
            &root,
            "mutation($u: ID!) { assignRole(userId: $u, role: \"reader\") { id } }",
            json!({ "u": sam.user_id }),
        )
        .await;
        assert!(
            can(&as_user(&b, &sam.access, list, json!({})).await),
            "round {round}: assigned"
        );
        as_user(
            &a,
            &root,
            "mutation($u: ID!) { removeRole(userId: $u, role: \"reader\") { id } }",
            json!({ "u": sam.user_id }),
        )
        .await;
        assert_eq!(
            code(&as_user(&b, &sam.access, list, json!({})).await),
            "FORBIDDEN",
            "round {round}: removed"
        );

        as_user(
            &a,
            &root,
            "mutation($u: ID!) { assignRole(userId: $u, role: \"reader\") { id } }",
            json!({ "u": sam.user_id }),
        )
        .await;
        as_user(
            &a,
            &root,
            "mutation { updateRole(name: \"reader\", input: {permissions: []}) { id } }",
            json!({}),
        )
        .await;
        assert_eq!(
            code(&as_user(&b, &sam.access, list, json!({})).await),
            "FORBIDDEN",
            "round {round}: emptied"
        );
        as_user(&a, &root, "mutation { updateRole(name: \"reader\", input: {permissions: [\"users:read\"]}) { id } }", json!({})).await;
        assert!(
            can(&as_user(&b, &sam.access, list, json!({})).await),
            "round {round}: refilled"
        );
        as_user(
            &a,
            &root,
            "mutation($u: ID!) { removeRole(userId: $u, role: \"reader\") { id } }",
            json!({ "u": sam.user_id }),
        )
        .await;
    }
}

#[tokio::test]
async fn nobody_grants_what_they_do_not_hold() {
    let app = spawn_app().await;
    let root = admin(&app).await;
    let root_id = as_user(&app, &root, "{ me { id } }", json!({})).await["data"]["me"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let writer = holder_of(&app, &root, "users:write").await;
    let assigner = holder_of(&app, &root, "roles:assign").await;
    let role_writer = holder_of(&app, &root, "roles:write").await;
    let plain = app.signed_up("plain@example.com").await;
    let cases: Vec<(&str, &str, Value)> = vec![
        // users:write cannot hand out roles, nor touch an admin.
        (
            &writer,
            "mutation { createUser(input: {email: \"x@example.com\", password: \"correct horse battery staple\", roles: [\"admin\"]}) { id } }",
            json!({}),
        ),
        (
            &writer,
            "mutation($u: ID!) { updateUser(id: $u, input: {email: \"mine@example.com\"}) { id } }",
            json!({ "u": root_id }),
        ),
        // roles:assign cannot grant (or take) what it does not hold.
        (
            &assigner,
            "mutation($u: ID!) { assignRole(userId: $u, role: \"admin\") { id } }",
            json!({ "u": plain.user_id }),
        ),
        (
            &assigner,
            "mutation($u: ID!) { removeRole(userId: $u, role: \"admin\") { id } }",
            json!({ "u": root_id }),
        ),
        // roles:write cannot create or widen a role beyond its own.
        (
            &role_writer,
            "mutation { createRole(input: {name: \"wide\", permissions: [\"users:delete\"]}) { id } }",
            json!({}),
        ),
        (
            &role_writer,
            "mutation { updateRole(name: \"only-users-write\", input: {description: \"x\"}) { id } }",
            json!({}),
        ),
        // The built-in user role gets no permission, from anybody.
        (
            &root,
            "mutation { updateRole(name: \"user\", input: {permissions: [\"users:read\"]}) { id } }",
            json!({}),
        ),
    ];
    for (token, query, vars) in cases {
        assert_eq!(
            code(&as_user(&app, token, query, vars).await),
            "FORBIDDEN",
            "{query}"
        );
    }
    let roles = as_user(&app, &plain.access, "{ me { roles { name } } }", json!({})).await;
    assert_eq!(roles["data"]["me"]["roles"], json!([{ "name": "user" }]));
    // Within what they hold, they may.
    let ok = as_user(&app, &role_writer, "mutation { createRole(input: {name: \"writer-two\", permissions: [\"roles:write\"]}) { id } }", json!({})).await;
    assert!(ok.get("errors").is_none(), "{ok}");
    let ok = as_user(
        &app,
        &writer,
        "mutation($u: ID!) { updateUser(id: $u, input: {displayName: \"Plain\"}) { displayName } }",
        json!({ "u": plain.user_id }),
    )
    .await;
    assert_eq!(ok["data"]["updateUser"]["displayName"], "Plain", "{ok}");
}

#[tokio::test]
async fn a_page_runs_one_way_only() {
    let app = spawn_app().await;
    let root = admin(&app).await;
    let page = as_user(
        &app,
        &root,
        "{ users(first: 1) { pageInfo { endCursor } } }",
        json!({}),
    )
    .await;
    let cursor = page["data"]["users"]["pageInfo"]["endCursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let both = as_user(
        &app,
        &root,
        "query($c: String) { users(first: 1, before: $c) { totalCount } }",
        json!({ "c": cursor }),
    )
    .await;
    assert_eq!((code(&both), field(&both)), ("BAD_USER_INPUT", "before"));
    let both = as_user(
        &app,
        &root,
        "query($c: String) { users(last: 1, after: $c) { totalCount } }",
        json!({ "c": cursor }),
    )
    .await;
    assert_eq!((code(&both), field(&both)), ("BAD_USER_INPUT", "after"));
    let nul = as_user(
        &app,
        &root,
        "{ users(filter: {search: \"a\\u0000b\"}) { totalCount } }",
        json!({}),
    )
    .await;
    assert_eq!((code(&nul), field(&nul)), ("BAD_USER_INPUT", "search"));
}
