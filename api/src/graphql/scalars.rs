//! Scalars of the schema, described in our own words.

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};
use chrono::{DateTime, SecondsFormat, Utc};

/// A point in time as RFC 3339 text in UTC, e.g. `2026-12-01T17:20:51.123456Z`.
/// Sent as a string; an offset other than `Z` is accepted on input and
/// converted to UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub DateTime<Utc>);

impl From<DateTime<Utc>> for Timestamp {
    fn from(at: DateTime<Utc>) -> Self {
        Self(at)
    }
}

/// A point in time as RFC 3339 text in UTC, e.g. `2026-12-01T17:20:51.123456Z`.
#[Scalar(
    name = "DateTime",
    specified_by_url = "https://datatracker.ietf.org/doc/html/rfc3339"
)]
impl ScalarType for Timestamp {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(text) => DateTime::parse_from_rfc3339(text)
                .map(|at| Self(at.to_utc()))
                .map_err(|_| InputValueError::custom("expected RFC 3339 date-time text")),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_text_round_trips() {
        let at = Timestamp::parse(Value::String("2026-12-01T18:20:51.5+01:00".into())).unwrap();
        assert_eq!(
            at.to_value(),
            Value::String("2026-12-01T17:20:51.500Z".into())
        );
        assert!(Timestamp::parse(Value::String("yesterday".into())).is_err());
        assert!(Timestamp::parse(Value::Number(1.into())).is_err());
    }
}
