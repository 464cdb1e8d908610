//! Query limits measured over the expanded operation: depth per kind of path
//! (ordinary fields, introspection), aliases and directives counted each
//! time a fragment is spread, fragment cycles refused.

use serde_json::{Value, json};

use crate::helpers::{TestApp, code, spawn_app};

/// `count` levels of `ofType` under `type`, ending in `kind name`.
fn type_ref(levels: usize) -> String {
    let mut inner = String::from("kind name");
    for _ in 0..levels {
        inner = format!("kind name ofType {{ {inner} }}");
    }
    inner
}

/// The introspection query graphql-js 16 builds when every option is on
/// (descriptions, `specifiedByURL`, repeatable directives, schema
/// description, input-value deprecation) — what GraphiQL, graphql-codegen
/// and graphql-inspector send. Its deepest path is
/// `__schema types fields args type` and nine `ofType`s: depth 15.
fn standard_introspection_query() -> String {
    let type_ref = type_ref(8);
    format!(
        "query IntrospectionQuery {{
          __schema {{
            description
            queryType {{ name }} mutationType {{ name }} subscriptionType {{ name }}
            types {{ ...FullType }}
            directives {{ name description isRepeatable locations args(includeDeprecated: true) {{ ...InputValue }} }}
          }}
        }}
        fragment FullType on __Type {{
          kind name description specifiedByURL
          fields(includeDeprecated: true) {{
            name description args(includeDeprecated: true) {{ ...InputValue }}
            type {{ ...TypeRef }} isDeprecated deprecationReason
          }}
          inputFields(includeDeprecated: true) {{ ...InputValue }}
          interfaces {{ ...TypeRef }}
          enumValues(includeDeprecated: true) {{ name description isDeprecated deprecationReason }}
          possibleTypes {{ ...TypeRef }}
        }}
        fragment InputValue on __InputValue {{
          name description type {{ ...TypeRef }} defaultValue isDeprecated deprecationReason
        }}
        fragment TypeRef on __Type {{ kind name ofType {{ {type_ref} }} }}"
    )
}

async fn refused(app: &TestApp, query: &str) -> Value {
    let body = app.gql(query, json!({}), None).await;
    assert_eq!(code(&body), "QUERY_TOO_COMPLEX", "{body}");
    assert!(
        body.get("data").is_none_or(Value::is_null),
        "nothing executed: {body}"
    );
    body
}

#[tokio::test]
async fn the_standard_introspection_query_is_answered() {
    let app = spawn_app().await;
    let body = app
        .gql(&standard_introspection_query(), json!({}), None)
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    let types = body["data"]["__schema"]["types"].as_array().unwrap();
    let date_time = types
        .iter()
        .find(|t| t["name"] == "DateTime")
        .expect("DateTime is listed");
    assert_eq!(
        date_time["specifiedByURL"],
        "https://datatracker.ietf.org/doc/html/rfc3339"
    );
    assert!(
        date_time["description"]
            .as_str()
            .unwrap()
            .contains("RFC 3339"),
        "{date_time}"
    );
}

#[tokio::test]
async fn introspection_is_limited_at_depth_15_and_ordinary_fields_at_10() {
    let app = spawn_app().await;
    // __type(1) fields(2) type(3), k × ofType, then the leaves: 4 + k.
    let at = |depth: usize| {
        format!(
            "{{ __type(name: \"User\") {{ fields {{ type {{ {} }} }} }} }}",
            type_ref(depth - 4)
        )
    };
    let ok = app.gql(&at(15), json!({}), None).await;
    assert!(ok.get("errors").is_none(), "{ok}");
    let body = refused(&app, &at(16)).await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("inside introspection"),
        "{body}"
    );
    // The same depth through a fragment counts the same.
    let through_fragment = format!(
        "{{ __type(name: \"User\") {{ ...F }} }} fragment F on __Type {{ fields {{ type {{ {} }} }} }}",
        type_ref(12)
    );
    refused(&app, &through_fragment).await;

    // Ordinary paths keep 10 (measured before validation, so unknown
    // fields are enough to show it).
    let nest = |depth: usize| {
        let mut q = String::from("x");
        for _ in 1..depth {
            q = format!("x {{ {q} }}");
        }
        format!("{{ {q} }}")
    };
    let ten = app.gql(&nest(10), json!({}), None).await;
    assert_eq!(
        code(&ten),
        "BAD_USER_INPUT",
        "depth 10 reaches validation: {ten}"
    );
    refused(&app, &nest(11)).await;
}

#[tokio::test]
async fn aliases_and_directives_count_each_time_a_fragment_is_spread() {
    let app = spawn_app().await;
    let fragment: String = (0..20).map(|i| format!("x{i}: id ")).collect();
    // 2 + 20 + 20 = 42 aliases once expanded; the fragment alone holds 20.
    refused(
        &app,
        &format!("{{ a: me {{ ...F }} b: me {{ ...F }} }} fragment F on User {{ {fragment} }}"),
    )
    .await;
    let once = app
        .gql(
            &format!("{{ a: me {{ ...F }} }} fragment F on User {{ {fragment} }}"),
            json!({}),
            None,
        )
        .await;
    assert!(once.get("errors").is_none(), "21 aliases pass: {once}");

    // A fragment doubling at each level would expand to millions of aliases
    // (and directives): counted without expanding, refused before the engine
    // walks it.
    let mut doubling = String::from("fragment F0 on User { a: id b: id }");
    for i in 1..=24 {
        doubling.push_str(&format!(
            " fragment F{i} on User {{ ...F{j} ...F{j} }}",
            j = i - 1
        ));
    }
    refused(&app, &format!("{{ me {{ ...F24 }} }} {doubling}")).await;
    let directives: String = (0..26)
        .map(|i| format!("d{i}: id @include(if: true) "))
        .collect();
    let body = refused(
        &app,
        &format!("{{ me {{ ...D ...D }} }} fragment D on User {{ {directives} }}"),
    )
    .await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("aliases")
            || body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("directives"),
        "{body}"
    );
    let only_directives: String = (0..26).map(|_| "id @skip(if: false) ").collect();
    let body = refused(
        &app,
        &format!("{{ me {{ ...D ...D }} }} fragment D on User {{ {only_directives} }}"),
    )
    .await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("52 directives"),
        "{body}"
    );
}

#[tokio::test]
async fn doubling_fragments_without_aliases_are_refused_before_any_expansion() {
    let app = spawn_app().await;
    // 2^29 fields once expanded, in a few hundred bytes, no alias, no
    // directive, nested 31 deep. The engine's own checks would expand it
    // spread by spread (minutes of CPU); the guard counts it in 30 steps.
    let mut doc = String::from("{ me { ...F29 } } fragment F0 on User { id }");
    for i in 1..=29 {
        doc.push_str(&format!(
            " fragment F{i} on User {{ ...F{j} ...F{j} }}",
            j = i - 1
        ));
    }
    let body = refused(&app, &doc).await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("fields"),
        "{body}"
    );
    // Unused fragments are measured too: validation walks them all the same.
    let mut unused = String::from("{ me { id } } fragment G0 on User { id }");
    for i in 1..=29 {
        unused.push_str(&format!(
            " fragment G{i} on User {{ ...G{j} ...G{j} }}",
            j = i - 1
        ));
    }
    refused(&app, &unused).await;
}

#[tokio::test]
async fn brackets_nested_a_hundred_thousand_deep_are_refused_unparsed() {
    let app = spawn_app().await;
    for open in ["{a", "[", "(a:"] {
        let text = open.repeat(100_000);
        let body = refused(&app, &text).await;
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("brackets"),
            "{body}"
        );
    }
    let healthy = app.gql("{ me { id } }", json!({}), None).await;
    assert_eq!(
        healthy,
        json!({ "data": { "me": null } }),
        "the server survived"
    );
}

#[tokio::test]
async fn fragment_cycles_and_long_fragment_chains_are_refused() {
    let app = spawn_app().await;
    // The guard finds the cycle before the engine walks it.
    let body = refused(
        &app,
        "{ me { ...A } } fragment A on User { id ...B } fragment B on User { ...A }",
    )
    .await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("spreads itself"),
        "{body}"
    );
    // Thousands of fragments spreading the next one: refused without
    // recursing through all of them.
    let mut chain = String::from("{ me { ...F0 } }");
    for i in 0..5000 {
        chain.push_str(&format!(" fragment F{i} on User {{ id ...F{} }}", i + 1));
    }
    chain.push_str(" fragment F5000 on User { id }");
    refused(&app, &chain).await;
    // The same for a mutation, whose class (does it hash a password?) is
    // found through its fragments: the limits come before that walk, which
    // would otherwise recurse 20,000 deep and overflow the worker's stack.
    let mut chain = String::from("mutation { ...M0 }");
    for i in 0..20_000 {
        chain.push_str(&format!(" fragment M{i} on Mutation {{ ...M{} }}", i + 1));
    }
    chain.push_str(" fragment M20000 on Mutation { logout }");
    refused(&app, &chain).await;
    let healthy = app.gql("{ me { id } }", json!({}), None).await;
    assert_eq!(healthy, json!({ "data": { "me": null } }));
}

/// Parsed documents are kept by their text (the guard's cache): what is
/// kept is the document only, never its verdict on a refused one, nor
/// anything of the request that brought it.
#[tokio::test]
async fn a_kept_document_answers_each_request_afresh() {
    let app = spawn_app().await;
    // Refused each time: a refused document is never kept.
    let fragment: String = (0..20).map(|i| format!("x{i}: id ")).collect();
    let over =
        format!("{{ a: me {{ ...F }} b: me {{ ...F }} }} fragment F on User {{ {fragment} }}");
    for _ in 0..3 {
        refused(&app, &over).await;
    }
    // One text, two callers, each answered with its own account.
    let alice = app.signed_up("kept-alice@example.com").await;
    let bob = app.signed_up("kept-bob@example.com").await;
    for (who, email) in [
        (&alice, "kept-alice@example.com"),
        (&bob, "kept-bob@example.com"),
        (&alice, "kept-alice@example.com"),
    ] {
        let body = app.me(&who.access).await;
        assert_eq!(body["data"]["me"]["email"], email, "{body}");
    }
    // One text, other variables.
    let q = "query Who($id: ID!) { user(id: $id) { email } }";
    let own = app
        .gql(q, json!({ "id": alice.user_id }), Some(&alice.access))
        .await;
    assert_eq!(
        own["data"]["user"]["email"], "kept-alice@example.com",
        "{own}"
    );
    let other = app
        .gql(q, json!({ "id": bob.user_id }), Some(&alice.access))
        .await;
    assert!(other.get("errors").is_some(), "{other}");
    assert!(!other.to_string().contains("kept-bob"), "{other}");
    // A mutation kept from a POST is still refused over GET.
    let logout = "mutation { logout }";
    let posted = app.gql(logout, json!({}), Some(&bob.access)).await;
    assert!(posted.get("errors").is_none(), "{posted}");
    let got = app.get_json("/graphql", &[("query", logout)]).await;
    assert_eq!(code(&got), "BAD_USER_INPUT", "{got}");
}
