//! The seam between the shared SQL and a driver: a [`Statement`] is SQL text and the values of
//! its `$1…` parameters; a [`Row`] gives a result's columns by name. A backend runs statements
//! with [`query`], which binds the values to a native sqlx query of its database, and hands its
//! rows back as they are (every sqlx row is a [`Row`]). The shared code thus never names a
//! driver, and needs none of sqlx's per-database trait bounds.

use std::borrow::Cow;

use claimd_domain::Timestamp;

use crate::error::{StoreError, StoreResult};

/// Where the SQL of the two databases differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// Two statements sent as one query, so they cost one round trip; the parameters are
    /// numbered across both. SQLite runs statements separated by `;` in one query; PostgreSQL's
    /// extended protocol takes one statement, so the first becomes a data-modifying CTE (which
    /// runs to completion whether or not the main statement reads it).
    pub fn in_one_trip(self, first: &str, second: &str) -> String {
        match self {
            Self::Sqlite => format!("{first}; {second}"),
            Self::Postgres => format!("WITH first AS ({first}) {second}"),
        }
    }

    /// `rows` rows of `width` parameters each, `(…), (…), …`, for a multi-row statement.
    /// SQLite gets anonymous `?` parameters, bound in order: sqlx looks each named parameter
    /// up by name, which costs the statement's parameter count per parameter.
    pub fn value_rows(self, width: usize, rows: usize) -> String {
        let rows: Vec<String> = (0..rows)
            .map(|row| {
                let params: Vec<String> = (1..=width)
                    .map(|col| match self {
                        Self::Sqlite => "?".to_owned(),
                        Self::Postgres => format!("${}", row * width + col),
                    })
                    .collect();
                format!("({})", params.join(", "))
            })
            .collect();
        rows.join(", ")
    }
}

/// A parameter value: the few column types claimd stores. Text and integers may be NULL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value<'a> {
    Text(Option<&'a str>),
    Int(Option<i64>),
    Bool(bool),
    Bytes(&'a [u8]),
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(v: &'a str) -> Self {
        Self::Text(Some(v))
    }
}

impl<'a> From<Option<&'a str>> for Value<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Self::Text(v)
    }
}

impl From<i64> for Value<'_> {
    fn from(v: i64) -> Self {
        Self::Int(Some(v))
    }
}

impl From<Option<i64>> for Value<'_> {
    fn from(v: Option<i64>) -> Self {
        Self::Int(v)
    }
}

impl From<Timestamp> for Value<'_> {
    fn from(v: Timestamp) -> Self {
        Self::Int(Some(v.as_millis()))
    }
}

impl From<Option<Timestamp>> for Value<'_> {
    fn from(v: Option<Timestamp>) -> Self {
        Self::Int(v.map(Timestamp::as_millis))
    }
}

impl From<bool> for Value<'_> {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}

impl<'a> From<&'a [u8]> for Value<'a> {
    fn from(v: &'a [u8]) -> Self {
        Self::Bytes(v)
    }
}

/// SQL text with its parameter values, and what a violated constraint means for it.
#[derive(Debug)]
pub struct Statement<'a> {
    sql: Cow<'a, str>,
    values: Vec<Value<'a>>,
    on_unique_violation: Option<StoreError>,
    on_foreign_key_violation: Option<StoreError>,
}

impl<'a> Statement<'a> {
    pub fn new(sql: impl Into<Cow<'a, str>>) -> Self {
        Self {
            sql: sql.into(),
            values: Vec::new(),
            on_unique_violation: None,
            on_foreign_key_violation: None,
        }
    }

    /// The value of the next parameter.
    pub fn bind(mut self, value: impl Into<Value<'a>>) -> Self {
        self.values.push(value.into());
        self
    }

    pub fn bind_all(mut self, values: impl IntoIterator<Item = Value<'a>>) -> Self {
        self.values.extend(values);
        self
    }

    /// The error to answer when the statement violates a unique constraint.
    pub fn on_unique_violation(mut self, error: impl Into<StoreError>) -> Self {
        self.on_unique_violation = Some(error.into());
        self
    }

    /// The error to answer when the statement violates a foreign key.
    pub fn on_foreign_key_violation(mut self, error: impl Into<StoreError>) -> Self {
        self.on_foreign_key_violation = Some(error.into());
        self
    }

    pub fn sql(&self) -> &str {
        &self.sql
    }

    pub fn values(&self) -> &[Value<'a>] {
        &self.values
    }

    /// What a driver error running this statement means: the statement's own meaning of a
    /// violated constraint, else the backend's mapping `db_error`.
    pub fn error(&self, e: sqlx::Error, db_error: fn(sqlx::Error) -> StoreError) -> StoreError {
        if let sqlx::Error::Database(d) = &e {
            let meant = if d.is_unique_violation() {
                &self.on_unique_violation
            } else if d.is_foreign_key_violation() {
                &self.on_foreign_key_violation
            } else {
                &None
            };
            if let Some(error) = meant {
                return error.clone();
            }
        }
        db_error(e)
    }
}

/// The statement as a native sqlx query of database `DB`, its values bound in order. Called by
/// the backends, which name their database.
pub fn query<'q, DB>(
    statement: &'q Statement<'q>,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    DB: sqlx::Database,
    Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    &'q [u8]: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let mut query = sqlx::query(statement.sql());
    for value in statement.values() {
        query = match *value {
            Value::Text(v) => query.bind(v),
            Value::Int(v) => query.bind(v),
            Value::Bool(v) => query.bind(v),
            Value::Bytes(v) => query.bind(v),
        };
    }
    query
}

/// A result row's columns, by name. Anything unreadable is a corrupt stored value.
pub trait Row {
    fn text(&self, column: &str) -> StoreResult<String>;
    fn text_or_null(&self, column: &str) -> StoreResult<Option<String>>;
    fn int(&self, column: &str) -> StoreResult<i64>;
    fn int_or_null(&self, column: &str) -> StoreResult<Option<i64>>;
    fn flag(&self, column: &str) -> StoreResult<bool>;

    fn timestamp(&self, column: &str) -> StoreResult<Timestamp> {
        self.int(column).map(Timestamp::from_millis)
    }

    fn timestamp_or_null(&self, column: &str) -> StoreResult<Option<Timestamp>> {
        Ok(self.int_or_null(column)?.map(Timestamp::from_millis))
    }
}

impl<R> Row for R
where
    R: sqlx::Row,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn text(&self, column: &str) -> StoreResult<String> {
        self.try_get(column).map_err(|e| unreadable(column, &e))
    }

    fn text_or_null(&self, column: &str) -> StoreResult<Option<String>> {
        self.try_get(column).map_err(|e| unreadable(column, &e))
    }

    fn int(&self, column: &str) -> StoreResult<i64> {
        self.try_get(column).map_err(|e| unreadable(column, &e))
    }

    fn int_or_null(&self, column: &str) -> StoreResult<Option<i64>> {
        self.try_get(column).map_err(|e| unreadable(column, &e))
    }

    fn flag(&self, column: &str) -> StoreResult<bool> {
        self.try_get(column).map_err(|e| unreadable(column, &e))
    }
}

fn unreadable(column: &str, e: &sqlx::Error) -> StoreError {
    StoreError::Internal(format!("unreadable stored value in column {column}: {e}"))
}

/// A stored value that does not parse as what its column holds.
pub fn corrupt(column: &str) -> StoreError {
    StoreError::Internal(format!("unreadable stored value in column {column}"))
}

/// `INSERT INTO table (columns…) VALUES ($first, …)`.
pub fn insert_sql(table: &str, columns: &[&str], first: usize) -> String {
    let params: Vec<String> = (0..columns.len())
        .map(|i| format!("${}", first + i))
        .collect();
    format!(
        "INSERT INTO {table} ({}) VALUES ({})",
        columns.join(", "),
        params.join(", ")
    )
}

/// `INSERT INTO table (columns…) VALUES (…), (…), …` for `rows` rows.
pub fn bulk_insert_sql(dialect: Dialect, table: &str, columns: &[&str], rows: usize) -> String {
    format!(
        "INSERT INTO {table} ({}) VALUES {}",
        columns.join(", "),
        dialect.value_rows(columns.len(), rows)
    )
}

/// `UPDATE table SET set… = $1… WHERE key… = $n…`: the set values bind first, then the key.
pub fn update_sql(table: &str, set: &[&str], key: &[&str]) -> String {
    let assign = |columns: &[&str], offset: usize, joiner: &str| {
        columns
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c} = ${}", offset + i + 1))
            .collect::<Vec<_>>()
            .join(joiner)
    };
    format!(
        "UPDATE {table} SET {} WHERE {}",
        assign(set, 0, ", "),
        assign(key, set.len(), " AND ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_text_names_its_columns() {
        assert_eq!(
            insert_sql("t", &["a", "b"], 3),
            "INSERT INTO t (a, b) VALUES ($3, $4)"
        );
        assert_eq!(
            bulk_insert_sql(Dialect::Postgres, "t", &["a", "b"], 2),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)"
        );
        assert_eq!(
            bulk_insert_sql(Dialect::Sqlite, "t", &["a", "b"], 2),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?)"
        );
        assert_eq!(
            update_sql("t", &["a", "b"], &["k", "l"]),
            "UPDATE t SET a = $1, b = $2 WHERE k = $3 AND l = $4"
        );
    }
}
