//! The request guard: alias limit, no mutations over GET, metrics, and the
//! rule that every error leaving the API carries a contract code.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextRequest,
};
use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet};
use async_graphql::{Response, ServerError, ServerResult, Variables};

/// Marks a request that arrived over `GET`: it may only query.
pub struct ViaGet;

/// The request's `x-request-id`, given to clients with internal errors so
/// that an operator can find the logged cause.
pub struct RequestId(pub String);

pub struct Guard {
    pub max_aliases: usize,
}

impl ExtensionFactory for Guard {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(GuardExtension {
            max_aliases: self.max_aliases,
            seen: Mutex::new(None),
            request_id: Mutex::new(None),
        })
    }
}

struct GuardExtension {
    max_aliases: usize,
    /// The kind and name of the operation, once parsed.
    seen: Mutex<Option<(&'static str, String)>>,
    /// Copied from the request data once it is attached (at parsing).
    request_id: Mutex<Option<String>>,
}

pub fn coded_error(message: impl Into<String>, code: &str) -> ServerError {
    let mut err = ServerError::new(message, None);
    err.extensions
        .get_or_insert_with(Default::default)
        .set("code", code);
    err
}

fn count_aliases(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(f) => {
                usize::from(f.node.alias.is_some()) + count_aliases(&f.node.selection_set.node)
            }
            Selection::InlineFragment(f) => count_aliases(&f.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

fn kind(op: OperationType) -> &'static str {
    match op {
        OperationType::Query => "query",
        OperationType::Mutation => "mutation",
        OperationType::Subscription => "subscription",
    }
}

/// Operation names are client-chosen: keep the label set bounded.
fn metric_name(name: Option<&str>) -> String {
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let Some(name) = name.filter(|n| n.len() <= 64) else {
        return "anonymous".into();
    };
    let Ok(mut seen) = SEEN.get_or_init(Default::default).lock() else {
        return "other".into();
    };
    if seen.contains(name) || (seen.len() < 500 && seen.insert(name.to_owned())) {
        name.to_owned()
    } else {
        "other".into()
    }
}

#[async_trait::async_trait]
impl Extension for GuardExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let started = Instant::now();
        let mut response = next.run(ctx).await;
        let request_id = self.request_id.lock().ok().and_then(|id| id.clone());
        for err in &mut response.errors {
            ensure_code(err);
            if let (Some(id), Some(ext)) = (request_id.as_deref(), err.extensions.as_mut())
                && ext.get("code") == Some(&async_graphql::Value::from("INTERNAL_SERVER_ERROR"))
            {
                ext.set("requestId", id);
            }
        }
        let (op_type, name) = self
            .seen
            .lock()
            .ok()
            .and_then(|s| s.clone())
            .unwrap_or(("unknown", "anonymous".into()));
        let outcome = if response.errors.is_empty() {
            "ok"
        } else {
            "error"
        };
        metrics::counter!("usergraph_graphql_operations_total", "operation" => name, "type" => op_type, "outcome" => outcome)
            .increment(1);
        metrics::histogram!("usergraph_graphql_operation_duration_seconds", "type" => op_type)
            .record(started.elapsed().as_secs_f64());
        response
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        if let (Some(id), Ok(mut slot)) = (ctx.data_opt::<RequestId>(), self.request_id.lock()) {
            *slot = Some(id.0.clone());
        }
        let doc = next.run(ctx, query, variables).await?;
        let ops: Vec<_> = doc.operations.iter().collect();
        if let Some((name, op)) = ops.first() {
            let label = if ops.len() == 1 {
                metric_name(name.map(|n| n.as_str()))
            } else {
                "multiple".into()
            };
            if let Ok(mut seen) = self.seen.lock() {
                *seen = Some((kind(op.node.ty), label));
            }
        }
        if ctx.data_opt::<ViaGet>().is_some()
            && ops.iter().any(|(_, op)| op.node.ty != OperationType::Query)
        {
            return Err(coded_error(
                "Only queries can be sent with GET; use POST for mutations",
                "BAD_USER_INPUT",
            ));
        }
        let aliases: usize = ops
            .iter()
            .map(|(_, op)| count_aliases(&op.node.selection_set.node))
            .sum::<usize>()
            + doc
                .fragments
                .values()
                .map(|f| count_aliases(&f.node.selection_set.node))
                .sum::<usize>();
        if aliases > self.max_aliases {
            return Err(coded_error(
                format!(
                    "Query uses {aliases} aliases; at most {} are allowed",
                    self.max_aliases
                ),
                "QUERY_TOO_COMPLEX",
            ));
        }
        Ok(doc)
    }
}

/// Gives a code to errors raised by the GraphQL engine itself (parse,
/// validation, limits, argument coercion). Errors from our resolvers already
/// carry theirs.
fn ensure_code(err: &mut ServerError) {
    if err
        .extensions
        .as_ref()
        .is_some_and(|e| e.get("code").is_some())
    {
        return;
    }
    let m = err.message.as_str();
    let code = if m.contains("too deep")
        || m.contains("too complex")
        || m.contains("cannot be greater than")
        || m.contains("recursion depth")
    {
        "QUERY_TOO_COMPLEX"
    } else if err.path.is_empty()
        || m.contains("argument")
        || m.contains("Failed to parse")
        || m.contains("Invalid value")
    {
        "BAD_USER_INPUT"
    } else {
        tracing::error!(message = %err.message, "uncoded resolver error");
        err.message = "Internal server error".into();
        "INTERNAL_SERVER_ERROR"
    };
    err.extensions
        .get_or_insert_with(Default::default)
        .set("code", code);
}
