//! The GraphQL API: schema, limits, context, loaders, resolvers.
//!
//! Resolvers are thin: they take state and viewer from the context, check
//! permission, call `domain::…` and convert the result.

pub mod admin;
pub mod audit;
pub mod context;
pub mod directory;
pub mod guard;
pub mod guards;
pub mod loaders;
pub mod mutation;
pub mod query;
pub mod scalars;
pub mod subscription;
pub mod types;

use async_graphql::{MergedObject, Schema};

use crate::config::GraphqlLimits;

#[derive(MergedObject, Default)]
pub struct Query(
    query::UserQuery,
    directory::DirectoryQuery,
    query::RoleQuery,
    audit::AuditQuery,
);

#[derive(MergedObject, Default)]
pub struct Mutation(mutation::AuthMutation, admin::AdminMutation);

pub type AppSchema = Schema<Query, Mutation, subscription::AuditSubscription>;

/// Builds the schema with its limits. It holds no state: the application
/// state and the caller are attached to each request. Requests reach it
/// through the [`guard::Guard`] of the same limits.
pub fn build_schema(limits: &GraphqlLimits) -> AppSchema {
    let mut builder = Schema::build(
        Query::default(),
        Mutation::default(),
        subscription::AuditSubscription,
    )
    // The guard measures depth per kind of path (ordinary, introspection)
    // over the expanded operation; the engine's single limit stays on
    // behind it at the larger of the two.
    .limit_depth(limits.max_depth.max(limits.max_introspection_depth))
    .limit_complexity(limits.max_complexity)
    .limit_directives(limits.max_directives);
    if !limits.introspection {
        // No introspection and no "did you mean" hints that leak the schema.
        builder = builder.disable_introspection().disable_suggestions();
    }
    builder.finish()
}

/// The request guard for a schema built with the same `limits`.
pub fn build_guard(limits: &GraphqlLimits) -> guard::Guard {
    guard::Guard::new(guard::Limits {
        max_depth: limits.max_depth,
        max_introspection_depth: limits.max_introspection_depth,
        max_aliases: limits.max_aliases,
        max_directives: limits.max_directives,
        max_fields: limits.max_complexity,
        introspection: limits.introspection,
    })
}

/// The SDL that `export-schema` writes and `/schema.graphql` serves.
pub fn sdl() -> String {
    let limits = GraphqlLimits {
        max_depth: 10,
        max_introspection_depth: 15,
        max_complexity: 1000,
        max_aliases: 30,
        max_directives: 50,
        max_batch: 10,
        max_body_bytes: 1 << 20,
        introspection: true,
        graphiql: true,
    };
    export(&build_schema(&limits))
}

/// The SDL of a built schema. `DateTime`'s `@specifiedBy` is left to
/// introspection (`specifiedByURL`): schema-diff tools compare directive uses
/// by their SDL text, which a schema loaded from the live URL does not have,
/// so with it the file and the server would never compare equal.
pub fn export(schema: &AppSchema) -> String {
    schema.sdl()
}
