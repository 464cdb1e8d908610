//! The users directory: filtered, ordered, keyset-paginated lists of users.
//!
//! Every order is `(field, id)` (`field` alone where no two users share a
//! value, as for the email), with nulls last ascending and first
//! descending (PostgreSQL's own index order; the null and non-null runs are
//! queried as separate index ranges, so SQLite agrees),
//! and a page continues strictly after its cursor's `(value, id)` (after
//! its value alone for the email: a user given that same email since the
//! page was read sorts at the cursor, so the next page leaves it out): a
//! deep page costs what the first one costs, and concurrent inserts neither
//! repeat nor skip rows already paged past. Backward pages (`last`/`before`)
//! run the reversed order and are returned in the forward order.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use entity::user::{self, Column, UserStatus};
use sea_orm::sea_query::{Expr, ExprTrait as _, Func, LikeExpr, Order, Query};
use sea_orm::{
    ColumnTrait as _, Condition, EntityTrait as _, QueryFilter as _, QueryOrder as _,
    QuerySelect as _, Select,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::users::{UserView, VIEW_COLUMNS, ViewRow};
use crate::error::{AppError, AppResult};
use crate::state::App;

/// What a list may be ordered by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderField {
    CreatedAt,
    Email,
    DisplayName,
    LastLoginAt,
}

impl OrderField {
    fn column(self) -> Column {
        match self {
            Self::CreatedAt => Column::CreatedAt,
            Self::Email => Column::Email,
            Self::DisplayName => Column::DisplayName,
            Self::LastLoginAt => Column::LastLoginAt,
        }
    }
}

/// The filters of `users`; every one given must hold.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Case-insensitive substring of the email or the display name; `%`
    /// and `_` are matched literally.
    pub search: Option<String>,
    pub role: Option<String>,
    pub status: Option<UserStatus>,
    pub email_verified: Option<bool>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
}

/// Longest search text: far beyond any email or display name.
pub const MAX_SEARCH: usize = 256;

/// A sort value as a cursor carries it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Value {
    #[serde(rename = "s")]
    Text(String),
    #[serde(rename = "t")]
    Time(DateTime<Utc>),
}

/// A position in one order: the row's sort value (null for a null column)
/// and its id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    #[serde(rename = "f")]
    field: OrderField,
    #[serde(rename = "v")]
    value: Option<Value>,
    #[serde(rename = "i")]
    id: Uuid,
}

impl Cursor {
    pub fn of(field: OrderField, user: &UserView) -> Self {
        let value = match field {
            OrderField::CreatedAt => Some(Value::Time(user.created_at)),
            OrderField::Email => Some(Value::Text(user.email.clone())),
            OrderField::DisplayName => user.display_name.clone().map(Value::Text),
            OrderField::LastLoginAt => user.last_login_at.map(Value::Time),
        };
        Self {
            field,
            value,
            id: user.id,
        }
    }

    /// Opaque to clients.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// # Errors
    /// `BAD_USER_INPUT` naming `field` for anything [`Cursor::encode`] did
    /// not make for this order.
    pub fn decode(text: &str, order: OrderField, field: &str) -> AppResult<Self> {
        let bad = || AppError::bad_input(field, "Not a cursor of this list and order");
        // 256 characters of up to 4 bytes, as JSON, in base64.
        if text.len() > 2048 {
            return Err(bad());
        }
        let raw = URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
        let cursor: Self = serde_json::from_slice(&raw).map_err(|_| bad())?;
        let fits = matches!(
            (&cursor.value, cursor.field),
            (None, OrderField::DisplayName | OrderField::LastLoginAt)
                | (
                    Some(Value::Text(_)),
                    OrderField::Email | OrderField::DisplayName
                )
                | (
                    Some(Value::Time(_)),
                    OrderField::CreatedAt | OrderField::LastLoginAt
                )
        );
        let sane = match &cursor.value {
            Some(Value::Time(at)) => (1900..=9999).contains(&chrono::Datelike::year(at)),
            // Characters, not bytes: a display name of 100 characters may
            // take 400 bytes, and its cursor must still be taken back.
            Some(Value::Text(text)) => text.chars().count() <= 256 && !text.contains('\0'),
            None => true,
        };
        if cursor.field != order || !fits || !sane {
            return Err(bad());
        }
        Ok(cursor)
    }
}

/// Which way a page runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Asc,
    Desc,
}

/// One request for a page.
pub struct PageRequest {
    pub field: OrderField,
    pub direction: Direction,
    /// How many rows, and from where: forward after `after`, or backward
    /// before `before`.
    pub size: u64,
    pub after: Option<Cursor>,
    pub before: Option<Cursor>,
    pub backward: bool,
}

pub struct Page {
    pub users: Vec<UserView>,
    pub has_next: bool,
    pub has_previous: bool,
}

/// `LIKE` pattern text with `\`, `%` and `_` escaped (used with `ESCAPE '\'`).
pub fn like_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn filtered(filter: &Filter) -> Select<user::Entity> {
    let mut query = user::Entity::find();
    if let Some(search) = filter
        .search
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let pattern = format!("%{}%", like_literal(&search.to_lowercase()));
        // lower(…) LIKE: what the trigram indexes cover on PostgreSQL.
        let like = |column: Column| {
            Expr::expr(Func::lower(Expr::col((user::Entity, column))))
                .like(LikeExpr::new(pattern.clone()).escape('\\'))
        };
        query = query.filter(
            Condition::any()
                .add(like(Column::Email))
                .add(like(Column::DisplayName)),
        );
    }
    if let Some(role) = &filter.role {
        let holders = Query::select()
            .column(entity::user_role::Column::UserId)
            .from(entity::user_role::Entity)
            .inner_join(
                entity::role::Entity,
                Expr::col((entity::role::Entity, entity::role::Column::Id))
                    .equals((entity::user_role::Entity, entity::user_role::Column::RoleId)),
            )
            .and_where(
                Expr::col((entity::role::Entity, entity::role::Column::Name)).eq(role.as_str()),
            )
            .to_owned();
        query = query.filter(Column::Id.in_subquery(holders));
    }
    if let Some(status) = &filter.status {
        query = query.filter(Column::Status.eq(*status));
    }
    if let Some(verified) = filter.email_verified {
        query = query.filter(Column::EmailVerified.eq(verified));
    }
    if let Some(after) = filter.created_after {
        query = query.filter(Column::CreatedAt.gt(after));
    }
    if let Some(before) = filter.created_before {
        query = query.filter(Column::CreatedAt.lt(before));
    }
    query
}

fn value_expr(value: &Value) -> sea_orm::Value {
    match value {
        Value::Text(text) => text.clone().into(),
        Value::Time(at) => (*at).into(),
    }
}

impl OrderField {
    fn nullable(self) -> bool {
        matches!(self, Self::DisplayName | Self::LastLoginAt)
    }

    /// No two users share a value (a unique index): the value alone is a
    /// position, and the order needs no `id` to break ties. PostgreSQL then
    /// reads the unique index as it stands, with neither a filter on `id`
    /// nor an incremental sort per equal run.
    fn unique(self) -> bool {
        matches!(self, Self::Email)
    }
}

/// A run of one page in one order: rows with a value (after a position),
/// or rows whose sort column is null (after an id). Each is one indexed
/// range: a condition such as `col > v OR (col = v AND id > c) OR col IS
/// NULL` would make PostgreSQL filter the index from its start instead.
enum Segment {
    Values(Option<(Value, Uuid)>),
    Nulls(Option<Uuid>),
}

/// The segments after `cursor`, in order: ascending puts nulls last,
/// descending first.
fn segments(field: OrderField, cursor: Option<&Cursor>, ascending: bool) -> Vec<Segment> {
    let mut out = match (cursor.map(|c| (&c.value, c.id)), ascending) {
        (None, true) => vec![Segment::Values(None), Segment::Nulls(None)],
        (None, false) => vec![Segment::Nulls(None), Segment::Values(None)],
        (Some((Some(v), id)), true) => {
            vec![Segment::Values(Some((v.clone(), id))), Segment::Nulls(None)]
        }
        (Some((Some(v), id)), false) => vec![Segment::Values(Some((v.clone(), id)))],
        (Some((None, id)), true) => vec![Segment::Nulls(Some(id))],
        (Some((None, id)), false) => vec![Segment::Nulls(Some(id)), Segment::Values(None)],
    };
    if !field.nullable() {
        out.retain(|s| matches!(s, Segment::Values(_)));
    }
    out
}

fn segment_query(
    base: Select<user::Entity>,
    field: OrderField,
    segment: &Segment,
    ascending: bool,
) -> Select<user::Entity> {
    let column = field.column();
    let order = if ascending { Order::Asc } else { Order::Desc };
    match segment {
        Segment::Values(from) => {
            let mut query = base;
            if field.nullable() {
                query = query.filter(column.is_not_null());
            }
            if field.unique() {
                if let Some((value, _)) = from {
                    let v = value_expr(value);
                    query = query.filter(if ascending {
                        column.gt(v)
                    } else {
                        column.lt(v)
                    });
                }
                return query.order_by(column, order);
            }
            if let Some((value, id)) = from {
                let v = value_expr(value);
                // `col >= v` is the index range; the rest filters within it.
                query = if ascending {
                    query
                        .filter(column.gte(v.clone()))
                        .filter(Condition::any().add(column.gt(v)).add(Column::Id.gt(*id)))
                } else {
                    query
                        .filter(column.lte(v.clone()))
                        .filter(Condition::any().add(column.lt(v)).add(Column::Id.lt(*id)))
                };
            }
            query
                .order_by(column, order.clone())
                .order_by(Column::Id, order)
        }
        Segment::Nulls(from) => {
            let mut query = base.filter(column.is_null());
            if let Some(id) = from {
                query = query.filter(if ascending {
                    Column::Id.gt(*id)
                } else {
                    Column::Id.lt(*id)
                });
            }
            query.order_by(Column::Id, order)
        }
    }
}

/// One page of users.
///
/// # Errors
/// `Internal` when the database fails.
pub async fn page(app: &App, filter: &Filter, request: &PageRequest) -> AppResult<Page> {
    let forward_ascending = request.direction == Direction::Asc;
    // Backward pages run the reversed order from `before`.
    let ascending = forward_ascending != request.backward;
    let from = if request.backward {
        request.before.as_ref()
    } else {
        request.after.as_ref()
    };
    let want = request.size + 1;
    let mut rows: Vec<UserView> = Vec::new();
    for segment in segments(request.field, from, ascending) {
        let missing = want - rows.len() as u64;
        if missing == 0 {
            break;
        }
        let query = segment_query(filtered(filter), request.field, &segment, ascending)
            .limit(missing)
            .select_only()
            .columns(VIEW_COLUMNS);
        let found: Vec<ViewRow> = app.db.list_tuples(query).await?;
        rows.extend(found.into_iter().map(|row| UserView::from_row(row).0));
    }
    let more = rows.len() as u64 > request.size;
    rows.truncate(usize::try_from(request.size).unwrap_or(usize::MAX));
    if request.backward {
        rows.reverse();
        Ok(Page {
            users: rows,
            has_next: request.before.is_some(),
            has_previous: more,
        })
    } else {
        Ok(Page {
            users: rows,
            has_next: more,
            has_previous: request.after.is_some(),
        })
    }
}

/// How many users the filter matches.
///
/// # Errors
/// `Internal` when the database fails.
pub async fn count(app: &App, filter: &Filter) -> AppResult<u64> {
    let query = filtered(filter);
    Ok(app.db.list_count(query).await?)
}

/// The user with this email (normalized), or none.
///
/// # Errors
/// `BAD_USER_INPUT` (`email`) for a malformed address.
pub async fn by_email(app: &App, email: &str) -> AppResult<Option<UserView>> {
    let email = super::types::EmailAddress::parse(email)?;
    let id: Option<Uuid> = user::Entity::find()
        .select_only()
        .column(Column::Id)
        .filter(Column::Email.eq(email.as_str()))
        .into_tuple()
        .one(&app.db.fresh)
        .await?;
    match id {
        Some(id) => super::users::load(app, id, None).await,
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::QueryTrait as _;

    /// The SQL after `WHERE` of the first segment after `cursor`.
    fn condition_and_order(field: OrderField, cursor: &Cursor, ascending: bool) -> String {
        let segment = &segments(field, Some(cursor), ascending)[0];
        let sql = segment_query(user::Entity::find(), field, segment, ascending)
            .build(sea_orm::DbBackend::Postgres)
            .to_string();
        let (_, condition) = sql.split_once(" WHERE ").expect("a condition");
        format!("WHERE {condition}")
    }

    #[test]
    fn an_email_page_seeks_by_the_email_alone() {
        let cursor = Cursor {
            field: OrderField::Email,
            value: Some(Value::Text("m@example.com".into())),
            id: Uuid::nil(),
        };
        let forward = condition_and_order(OrderField::Email, &cursor, true);
        assert_eq!(
            forward,
            r#"WHERE "users"."email" > 'm@example.com' ORDER BY "users"."email" ASC"#
        );
        let backward = condition_and_order(OrderField::Email, &cursor, false);
        assert_eq!(
            backward,
            r#"WHERE "users"."email" < 'm@example.com' ORDER BY "users"."email" DESC"#
        );
        // A column that users share still needs the id after its value.
        let cursor = Cursor {
            field: OrderField::CreatedAt,
            value: Some(Value::Time(Utc::now())),
            id: Uuid::nil(),
        };
        assert!(
            condition_and_order(OrderField::CreatedAt, &cursor, true).contains(r#""users"."id" >"#)
        );
    }

    #[test]
    fn like_text_is_literal() {
        assert_eq!(like_literal("50%_off\\"), "50\\%\\_off\\\\");
    }

    #[test]
    fn cursors_round_trip_and_belong_to_their_order() {
        let user = UserView {
            id: Uuid::now_v7(),
            email: "a@example.com".into(),
            email_verified: false,
            display_name: None,
            status: UserStatus::Active,
            locked_until: None,
            last_login_at: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        for field in [
            OrderField::CreatedAt,
            OrderField::Email,
            OrderField::DisplayName,
            OrderField::LastLoginAt,
        ] {
            let cursor = Cursor::of(field, &user);
            assert_eq!(
                Cursor::decode(&cursor.encode(), field, "after").unwrap(),
                cursor
            );
        }
        let email = Cursor::of(OrderField::Email, &user).encode();
        assert!(Cursor::decode(&email, OrderField::CreatedAt, "after").is_err());
        assert!(Cursor::decode("junk", OrderField::Email, "before").is_err());
    }
}
