//! The request guard: limits on the expanded operation, no mutations over
//! GET, only subscriptions over WebSocket (and none over HTTP), metrics, and
//! the rule that every error leaving the API carries a contract code.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet};
use async_graphql::{Data, Executor, Request, Response, ServerError, ServerResult};
use futures_util::StreamExt as _;
use futures_util::stream::{self, BoxStream};

use super::AppSchema;
use crate::infra::cache::Prefetch;

/// The request guard's limits (the engine's own depth and complexity limits
/// stay on behind it).
#[derive(Clone, Copy)]
pub struct Limits {
    pub max_depth: usize,
    pub max_introspection_depth: usize,
    pub max_aliases: usize,
    pub max_directives: usize,
    /// Fields of the expanded operations (the complexity limit).
    pub max_fields: usize,
    /// Whether `__schema` and `__type` may be asked for (`__typename`
    /// always may).
    pub introspection: bool,
}

/// Documents already parsed and found within the limits, by their exact
/// text: a client sends the same few operations again and again, and
/// parsing is the largest share of a small query's work. Bounded by an
/// estimate of the memory the parsed documents take (a parsed field or
/// value is tens of times its text); long documents are never kept.
#[derive(Clone)]
pub struct Documents(moka::future::Cache<String, Arc<ExecutableDocument>>);

impl Documents {
    /// Longest text kept (a hand-written operation is far shorter).
    pub const MAX_TEXT: usize = 8 * 1024;
    /// Estimated bytes of a parsed document per byte of its text, and per
    /// entry besides (the key, the map's own bookkeeping).
    const PER_BYTE: u64 = 64;
    const PER_ENTRY: u64 = 1024;
    /// The estimated memory all kept documents may take.
    const CAPACITY: u64 = 16 * 1024 * 1024;

    pub fn new() -> Self {
        Self(
            moka::future::Cache::builder()
                .weigher(|text: &String, _| {
                    let estimate = (text.len() as u64)
                        .saturating_mul(Self::PER_BYTE)
                        .saturating_add(Self::PER_ENTRY);
                    u32::try_from(estimate).unwrap_or(u32::MAX)
                })
                .max_capacity(Self::CAPACITY)
                .build(),
        )
    }

    pub async fn get(&self, text: &str) -> Option<Arc<ExecutableDocument>> {
        if text.len() > Self::MAX_TEXT {
            return None;
        }
        self.0.get(text).await
    }

    /// Keeps `doc`, parsed from `text`, when `text` is short enough.
    pub async fn keep(&self, text: &str, doc: &Arc<ExecutableDocument>) {
        if text.len() <= Self::MAX_TEXT {
            self.0.insert(text.to_owned(), Arc::clone(doc)).await;
        }
    }
}

impl Default for Documents {
    fn default() -> Self {
        Self::new()
    }
}

/// Which transport a request came by: it decides which operations may run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `POST /graphql`: queries and mutations.
    Post,
    /// `GET /graphql`: queries only.
    Get,
    /// `/graphql/ws`: subscriptions only (a query or mutation there would
    /// run on the identity checked when the connection began, however long
    /// ago).
    WebSocket,
}

/// The request guard: the limits, checked before the engine parses or
/// walks anything; the transport rules; a contract code on every error;
/// the operation metrics.
///
/// It runs around `Schema::execute` rather than as a schema extension: a
/// schema with any extension sends every field through the extension chain
/// (a boxed future and registry lookups per field), which cost a `users`
/// page a tenth of its server time.
#[derive(Clone)]
pub struct Guard {
    limits: Limits,
    documents: Documents,
}

/// An operation as the metrics name it.
struct Seen {
    kind: &'static str,
    name: String,
    class: &'static str,
}

/// One operation's metrics, recorded when it is dropped: also when the
/// request is cut off before an answer (the request timeout, or the client
/// going away), as `outcome="cancelled"` with the time it ran, so an
/// operation cut off by the timeout counts against the latency objectives.
/// Dropped while a panic unwinds, it is an `error`.
pub struct Tally {
    started: Instant,
    seen: Option<Seen>,
    outcome: &'static str,
}

impl Tally {
    /// Starts timing an operation: before authenticating its request.
    pub fn start() -> Self {
        Self {
            started: Instant::now(),
            seen: None,
            outcome: "cancelled",
        }
    }
}

impl Drop for Tally {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.outcome = "error";
        }
        let Seen { kind, name, class } = self.seen.take().unwrap_or(Seen {
            kind: "unknown",
            name: "anonymous".into(),
            class: "read",
        });
        metrics::counter!("usergraph_graphql_operations_total", "operation" => name, "type" => kind, "class" => class, "outcome" => self.outcome)
            .increment(1);
        metrics::histogram!("usergraph_graphql_operation_duration_seconds", "type" => kind, "class" => class)
            .record(self.started.elapsed().as_secs_f64());
    }
}

pub fn coded_error(message: impl Into<String>, code: &str) -> ServerError {
    let mut err = ServerError::new(message, None);
    err.extensions
        .get_or_insert_with(Default::default)
        .set("code", code);
    err
}

/// What an operation costs once every fragment spread is expanded in place:
/// depth of ordinary paths and of paths through introspection, and the
/// aliases and directives it carries (a fragment counts each time it is
/// spread).
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Shape {
    pub depth: usize,
    pub introspection_depth: usize,
    pub aliases: usize,
    pub directives: usize,
    /// Fields once every spread is expanded: the work validation and
    /// execution would do, which a few doubling fragments make exponential.
    pub fields: usize,
}

impl Shape {
    fn merge(&mut self, other: Shape) {
        self.depth = self.depth.max(other.depth);
        self.introspection_depth = self.introspection_depth.max(other.introspection_depth);
        self.aliases = self.aliases.saturating_add(other.aliases);
        self.directives = self.directives.saturating_add(other.directives);
        self.fields = self.fields.saturating_add(other.fields);
    }
}

/// Fragments spread inside fragments deeper than this are refused before
/// anything else looks at them (the measure itself recurses).
const MAX_FRAGMENT_NESTING: usize = 32;

/// Why a document cannot be measured.
#[derive(Debug, PartialEq, Eq)]
pub enum Unmeasurable {
    Cycle(String),
    TooNested,
}

/// Measures selection sets with each fragment computed once per context
/// (outside or inside introspection), so the cost is linear in the document
/// however often fragments are spread.
struct Measure<'a> {
    doc: &'a ExecutableDocument,
    done: HashMap<(&'a str, bool), Shape>,
    open: Vec<&'a str>,
}

impl<'a> Measure<'a> {
    fn set(&mut self, set: &'a SelectionSet, inside: bool) -> Result<Shape, Unmeasurable> {
        let mut total = Shape::default();
        for item in &set.items {
            let shape = match &item.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    let name = field.name.node.as_str();
                    let entering = inside || name == "__schema" || name == "__type";
                    let child = self.set(&field.selection_set.node, entering)?;
                    let (depth, introspection_depth) = if entering {
                        (0, child.introspection_depth + 1)
                    } else if child.introspection_depth > 0 {
                        (child.depth + 1, child.introspection_depth + 1)
                    } else {
                        (child.depth + 1, 0)
                    };
                    Shape {
                        depth,
                        introspection_depth,
                        aliases: child
                            .aliases
                            .saturating_add(usize::from(field.alias.is_some())),
                        directives: child.directives.saturating_add(field.directives.len()),
                        fields: child.fields.saturating_add(1),
                    }
                }
                Selection::InlineFragment(fragment) => {
                    let mut shape = self.set(&fragment.node.selection_set.node, inside)?;
                    shape.directives = shape
                        .directives
                        .saturating_add(fragment.node.directives.len());
                    shape
                }
                Selection::FragmentSpread(spread) => {
                    let mut shape =
                        self.fragment(spread.node.fragment_name.node.as_str(), inside)?;
                    shape.directives = shape
                        .directives
                        .saturating_add(spread.node.directives.len());
                    shape
                }
            };
            total.merge(shape);
        }
        Ok(total)
    }

    fn fragment(&mut self, name: &'a str, inside: bool) -> Result<Shape, Unmeasurable> {
        if let Some(shape) = self.done.get(&(name, inside)) {
            return Ok(*shape);
        }
        // An unknown fragment is the validator's to report.
        let Some((key, definition)) = self.doc.fragments.get_key_value(name) else {
            return Ok(Shape::default());
        };
        if self.open.contains(&name) {
            return Err(Unmeasurable::Cycle(name.to_owned()));
        }
        if self.open.len() >= MAX_FRAGMENT_NESTING {
            return Err(Unmeasurable::TooNested);
        }
        self.open.push(key.as_str());
        let result = self.set(&definition.node.selection_set.node, inside);
        self.open.pop();
        let mut shape = result?;
        shape.directives = shape
            .directives
            .saturating_add(definition.node.directives.len());
        self.done.insert((key.as_str(), inside), shape);
        Ok(shape)
    }
}

/// The shape of every operation of a document, with fragments expanded,
/// then one more for the fragments no operation spreads (validation still
/// walks them).
///
/// # Errors
/// A fragment cycle, or fragments nested too deep to measure.
pub fn measure(doc: &ExecutableDocument) -> Result<Vec<Shape>, Unmeasurable> {
    let mut measure = Measure {
        doc,
        done: HashMap::new(),
        open: Vec::new(),
    };
    let mut shapes = Vec::with_capacity(doc.operations.iter().count() + 1);
    for (_, op) in doc.operations.iter() {
        let mut shape = measure.set(&op.node.selection_set.node, false)?;
        let variable_directives: usize = op
            .node
            .variable_definitions
            .iter()
            .map(|v| v.node.directives.len())
            .sum();
        shape.directives = shape
            .directives
            .saturating_add(op.node.directives.len())
            .saturating_add(variable_directives);
        shapes.push(shape);
    }
    let mut unused = Shape::default();
    for name in doc.fragments.keys() {
        let name = name.as_str();
        if !measure.done.contains_key(&(name, false)) && !measure.done.contains_key(&(name, true)) {
            unused.merge(measure.fragment(name, false)?);
        }
    }
    shapes.push(unused);
    Ok(shapes)
}

/// How deep `{`, `[` and `(` nest in a document's text, outside strings and
/// comments: checked before parsing, because the parser recurses once per
/// level and a megabyte of `{a{a{…` would exhaust its stack.
pub fn text_nesting(query: &str) -> usize {
    let bytes = query.as_bytes();
    let (mut depth, mut deepest, mut i) = (0usize, 0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    i += if bytes[i..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                i += 2;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    deepest
}

/// Text nested deeper than this is refused before parsing. Far above what
/// the depth limits let through, far below what the parser's stack takes.
const MAX_TEXT_NESTING: usize = 128;

/// The mutations that hash or verify a password (argon2id): slow on purpose,
/// so their latency is watched apart from the rest.
const HASHING_MUTATIONS: [&str; 6] = [
    "register",
    "login",
    "changePassword",
    "resetPassword",
    "deleteAccount",
    "createUser",
];

/// The operation's class for latency objectives: `auth` (a mutation that
/// hashes a password, also when reached through a fragment), `write`
/// (another mutation) or `read`.
fn class(
    doc: &ExecutableDocument,
    op: &async_graphql::parser::types::OperationDefinition,
) -> &'static str {
    /// Bounded by `visited` (each fragment walked once) and, for the stack,
    /// by `depth` (spreads and inline fragments). A document nested past
    /// 32 of those is refused by the engine's recursion limit anyway, so
    /// the bound never changes the class of an operation that runs.
    fn hashes(
        doc: &ExecutableDocument,
        set: &SelectionSet,
        visited: &mut HashSet<String>,
        depth: usize,
    ) -> bool {
        if depth > MAX_FRAGMENT_NESTING + MAX_TEXT_NESTING {
            return false;
        }
        set.items.iter().any(|item| match &item.node {
            Selection::Field(f) => HASHING_MUTATIONS.contains(&f.node.name.node.as_str()),
            Selection::InlineFragment(inline) => {
                hashes(doc, &inline.node.selection_set.node, visited, depth + 1)
            }
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.as_str();
                visited.insert(name.to_owned())
                    && doc.fragments.get(name).is_some_and(|fragment| {
                        hashes(doc, &fragment.node.selection_set.node, visited, depth + 1)
                    })
            }
        })
    }
    match op.ty {
        OperationType::Mutation if hashes(doc, &op.selection_set.node, &mut HashSet::new(), 0) => {
            "auth"
        }
        OperationType::Mutation => "write",
        _ => "read",
    }
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

/// The operation's kind, its name for the metrics (of the one operation a
/// document holds, else `multiple`) and the class of the one that runs.
fn describe(doc: &ExecutableDocument, operation_name: Option<&str>) -> Option<Seen> {
    let mut ops = doc.operations.iter();
    let (first_name, first) = ops.next()?;
    let name = if ops.next().is_none() {
        metric_name(first_name.map(|n| n.as_str()))
    } else {
        "multiple".into()
    };
    // The operation that runs: the one named, else the only one.
    let chosen = match operation_name {
        Some(wanted) => doc
            .operations
            .iter()
            .find(|(n, _)| n.is_some_and(|n| n.as_str() == wanted)),
        None => Some((first_name, first)),
    };
    Some(Seen {
        kind: kind(first.node.ty),
        name,
        class: chosen.map_or("read", |(_, op)| class(doc, &op.node)),
    })
}

impl Guard {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            documents: Documents::new(),
        }
    }

    /// Runs one request through the guard, then the engine. Reads ahead
    /// (`hints`) are turned off when the request writes; `request_id` goes
    /// to clients with internal errors; `tally` (started before the caller
    /// authenticated the request) records the operation's metrics.
    pub async fn execute(
        &self,
        schema: &AppSchema,
        mut request: Request,
        transport: Transport,
        request_id: &str,
        hints: Option<&Prefetch>,
        mut tally: Tally,
    ) -> Response {
        let mut response = match self
            .admit(&mut request, transport, hints, &mut tally.seen)
            .await
        {
            Ok(()) => schema.execute(request).await,
            Err(err) => Response::from_errors(vec![err]),
        };
        coded(&mut response, request_id);
        tally.outcome = if response.errors.is_empty() {
            "ok"
        } else {
            "error"
        };
        response
    }

    /// The limits and the transport rules. A document that parses is handed
    /// to the engine parsed (and kept, so the next one like it skips both
    /// parsing and measuring); one that does not is the engine's to report.
    /// `seen` names the operation once the document parses.
    async fn admit(
        &self,
        request: &mut Request,
        transport: Transport,
        hints: Option<&Prefetch>,
        seen: &mut Option<Seen>,
    ) -> ServerResult<()> {
        // Seen before: parsed and within the limits then, and the limits
        // are this guard's, so they hold now.
        let doc = match self.documents.get(&request.query).await {
            Some(doc) => {
                *seen = describe(&doc, request.operation_name.as_deref());
                doc
            }
            None => {
                let nesting = text_nesting(&request.query);
                if nesting > MAX_TEXT_NESTING {
                    return Err(coded_error(
                        format!("Query is nested too deep: {nesting} levels of brackets"),
                        "QUERY_TOO_COMPLEX",
                    ));
                }
                let Ok(doc) = async_graphql::parser::parse_query(&request.query) else {
                    return Ok(());
                };
                // The limits first: `describe` follows fragment spreads.
                self.check_limits(&doc)?;
                *seen = describe(&doc, request.operation_name.as_deref());
                let doc = Arc::new(doc);
                self.documents.keep(&request.query, &doc).await;
                doc
            }
        };
        let is = |ty: OperationType| doc.operations.iter().any(|(_, op)| op.node.ty == ty);
        let only = |ty: OperationType| doc.operations.iter().all(|(_, op)| op.node.ty == ty);
        // A request that writes reads its own writes, not what was read
        // ahead of it.
        if !only(OperationType::Query)
            && let Some(hints) = hints
        {
            hints.off();
        }
        match transport {
            Transport::Get if !only(OperationType::Query) => {
                return Err(coded_error(
                    "Only queries can be sent with GET; use POST for mutations",
                    "BAD_USER_INPUT",
                ));
            }
            Transport::WebSocket if !only(OperationType::Subscription) => {
                return Err(coded_error(
                    "Only subscriptions run over /graphql/ws; send queries and mutations to POST /graphql",
                    "BAD_USER_INPUT",
                ));
            }
            Transport::Get | Transport::Post if is(OperationType::Subscription) => {
                return Err(coded_error(
                    "Subscriptions run over WebSocket at /graphql/ws (protocol graphql-transport-ws)",
                    "BAD_USER_INPUT",
                ));
            }
            _ => {}
        }
        request.set_parsed_query(ExecutableDocument::clone(&doc));
        Ok(())
    }

    /// Depth, aliases and directives over the expanded operations, before
    /// anything is validated or executed.
    fn check_limits(&self, doc: &ExecutableDocument) -> ServerResult<()> {
        let limits = &self.limits;
        let too_complex = |message: String| Err(coded_error(message, "QUERY_TOO_COMPLEX"));
        let shapes = match measure(doc) {
            Ok(shapes) => shapes,
            Err(Unmeasurable::Cycle(name)) => {
                return too_complex(format!("Fragment \"{name}\" spreads itself"));
            }
            Err(Unmeasurable::TooNested) => {
                return too_complex(format!(
                    "Fragments are nested more than {MAX_FRAGMENT_NESTING} deep"
                ));
            }
        };
        let mut total = Shape::default();
        for shape in shapes {
            total.merge(shape);
        }
        if !limits.introspection && total.introspection_depth > 0 {
            return Err(coded_error(
                "Introspection is disabled on this server (GRAPHQL_INTROSPECTION)",
                "BAD_USER_INPUT",
            ));
        }
        if total.depth > limits.max_depth {
            return too_complex(format!(
                "Query is nested too deep: depth {}, at most {}",
                total.depth, limits.max_depth
            ));
        }
        if total.introspection_depth > limits.max_introspection_depth {
            return too_complex(format!(
                "Query is nested too deep: depth {} inside introspection, at most {}",
                total.introspection_depth, limits.max_introspection_depth
            ));
        }
        if total.aliases > limits.max_aliases {
            return too_complex(format!(
                "Query uses {} aliases; at most {} are allowed",
                total.aliases, limits.max_aliases
            ));
        }
        if total.fields > limits.max_fields {
            return too_complex(format!(
                "Query selects {} fields once its fragments are expanded; at most {}",
                total.fields, limits.max_fields
            ));
        }
        if total.directives > limits.max_directives {
            return too_complex(format!(
                "Query uses {} directives; at most {} are allowed",
                total.directives, limits.max_directives
            ));
        }
        Ok(())
    }
}

/// The schema behind the guard for one WebSocket connection, whose server
/// (async-graphql-axum's `GraphQLWebSocket`) takes an [`Executor`]. Only
/// subscriptions pass; every error of the stream carries a code, an
/// internal one also the connection's request id.
#[derive(Clone)]
pub struct Subscriptions {
    pub schema: AppSchema,
    pub guard: Guard,
    /// The `x-request-id` of the request that opened the connection.
    pub request_id: Arc<str>,
}

impl Executor for Subscriptions {
    /// Not called by `GraphQLWebSocket` (it streams every operation); the
    /// same rules all the same.
    async fn execute(&self, request: Request) -> Response {
        self.guard
            .execute(
                &self.schema,
                request,
                Transport::WebSocket,
                &self.request_id,
                None,
                Tally::start(),
            )
            .await
    }

    fn execute_stream(
        &self,
        mut request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        let this = self.clone();
        let request_id = Arc::clone(&self.request_id);
        stream::once(async move {
            let mut seen = None;
            match this
                .guard
                .admit(&mut request, Transport::WebSocket, None, &mut seen)
                .await
            {
                Ok(()) => this
                    .schema
                    .execute_stream_with_session_data(request, session_data.unwrap_or_default()),
                Err(err) => stream::iter([Response::from_errors(vec![err])]).boxed(),
            }
        })
        .flatten()
        .map(move |mut response| {
            coded(&mut response, &request_id);
            response
        })
        .boxed()
    }
}

/// Every error leaves with a contract code; an internal one also with the
/// request id, to find the logged cause.
fn coded(response: &mut Response, request_id: &str) {
    for err in &mut response.errors {
        ensure_code(err);
        if !request_id.is_empty()
            && let Some(ext) = err.extensions.as_mut()
            && ext.get("code") == Some(&async_graphql::Value::from("INTERNAL_SERVER_ERROR"))
        {
            ext.set("requestId", request_id);
        }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use async_graphql::parser::parse_query;

    use super::{Documents, Shape, Tally, Unmeasurable, measure};

    /// An operation's tally records `cancelled` when dropped before its
    /// outcome is known, and `error` while a panic unwinds.
    #[test]
    fn a_dropped_operation_is_counted_by_how_it_ended() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            let mut done = Tally::start();
            done.outcome = "ok";
            drop(done);
            drop(Tally::start());
            let unwound = std::panic::catch_unwind(|| {
                let _tally = Tally::start();
                panic!("a resolver's bug");
            });
            assert!(unwound.is_err());
        });
        let text = handle.render();
        for outcome in ["ok", "cancelled", "error"] {
            let series = format!(
                "usergraph_graphql_operations_total{{operation=\"anonymous\",type=\"unknown\",class=\"read\",outcome=\"{outcome}\"}} 1"
            );
            assert!(text.contains(&series), "{series} in:\n{text}");
        }
    }

    #[tokio::test]
    async fn documents_keep_short_texts_only() {
        let docs = Documents::new();
        let short = "{ me { id } }";
        let doc = Arc::new(parse_query(short).unwrap());
        docs.keep(short, &doc).await;
        assert!(docs.get(short).await.is_some());
        assert!(docs.get("{ me { id email } }").await.is_none());
        let long = format!("{{ me {{ id }} }} #{}", "x".repeat(Documents::MAX_TEXT));
        let doc = Arc::new(parse_query(&long).unwrap());
        docs.keep(&long, &doc).await;
        assert!(docs.get(&long).await.is_none(), "too long to keep");
    }

    #[test]
    fn hashing_mutations_are_classed_auth_through_fragments_too() {
        let class_of = |query: &str| {
            let doc = parse_query(query).unwrap();
            let (_, op) = doc.operations.iter().next().unwrap();
            super::class(&doc, &op.node)
        };
        assert_eq!(class_of("{ me { id } }"), "read");
        assert_eq!(class_of("mutation { logout }"), "write");
        assert_eq!(
            class_of("mutation { a: login(input: {}) { accessToken } }"),
            "auth"
        );
        assert_eq!(
            class_of("mutation { ... on Mutation { register(input: {}) { accessToken } } }"),
            "auth"
        );
        assert_eq!(
            class_of(
                "mutation { ...F } fragment F on Mutation { ...G } fragment G on Mutation { login(input: {}) { accessToken } }"
            ),
            "auth"
        );
        assert_eq!(
            class_of("mutation { ...F } fragment F on Mutation { logout ...F }"),
            "write",
            "a cycle ends"
        );
    }

    fn shape(query: &str) -> Result<Shape, Unmeasurable> {
        let doc = parse_query(query).unwrap();
        let mut total = Shape::default();
        for shape in measure(&doc)? {
            total.merge(shape);
        }
        Ok(total)
    }

    #[test]
    fn depth_is_split_between_ordinary_and_introspection_paths() {
        let s =
            shape("{ me { roles { name } } __type(name: \"User\") { fields { type { name } } } }")
                .unwrap();
        assert_eq!((s.depth, s.introspection_depth), (3, 4));
        // An ordinary field above introspection counts toward the latter.
        let s = shape("{ a { __type(name: \"X\") { name } } }").unwrap();
        assert_eq!((s.depth, s.introspection_depth), (1, 3));
    }

    #[test]
    fn fragments_count_each_time_they_are_spread_without_being_expanded() {
        let s = shape(
            "{ a: me { ...F } b: me { ...F @include(if: true) } } \
             fragment F on User { x: id y: id @skip(if: false) }",
        )
        .unwrap();
        assert_eq!((s.aliases, s.directives, s.depth), (6, 3, 2));
        // 2^30 aliases once expanded, measured in 31 steps.
        let mut doubling = String::from("{ me { ...F30 } } fragment F0 on User { a: id }");
        for i in 1..=30 {
            doubling.push_str(&format!(
                " fragment F{i} on User {{ ...F{j} ...F{j} }}",
                j = i - 1
            ));
        }
        assert_eq!(shape(&doubling).unwrap().aliases, 1 << 30);
    }

    #[test]
    fn text_nesting_skips_strings_and_comments() {
        use super::text_nesting;
        assert_eq!(text_nesting("{ a { b(x: [1, {y: 2}]) } }"), 5);
        assert_eq!(text_nesting("{ a(s: \"{{{{\\\"{{\") }"), 2);
        assert_eq!(
            text_nesting("{ a(s: \"\"\"{{{ \\\"\"\" {{\"\"\") } # {{{{{\n"),
            2
        );
        assert_eq!(text_nesting(&"{a".repeat(1000)), 1000);
    }

    #[test]
    fn fields_count_every_expansion() {
        let s = shape("{ me { ...F ...F } } fragment F on User { id email }").unwrap();
        assert_eq!(s.fields, 5);
        // An unused fragment still counts once.
        let s = shape("{ me { id } } fragment U on User { id email }").unwrap();
        assert_eq!(s.fields, 4);
    }

    #[test]
    fn cycles_and_long_chains_are_unmeasurable() {
        assert_eq!(
            shape("{ me { ...A } } fragment A on User { ...B } fragment B on User { id ...A }"),
            Err(Unmeasurable::Cycle("A".into()))
        );
        let mut chain = String::from("{ me { ...F0 } }");
        for i in 0..100 {
            chain.push_str(&format!(" fragment F{i} on User {{ id ...F{} }}", i + 1));
        }
        chain.push_str(" fragment F100 on User { id }");
        assert_eq!(shape(&chain), Err(Unmeasurable::TooNested));
    }
}
