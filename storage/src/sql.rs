//! The seam between the shared queries and sqlx: a statement with its arguments
//! ([`Query`]), run on a connection of either backend ([`Conn`]).
//!
//! The shared queries are ordinary generic code over [`Backend`](crate::backend::Backend).
//! sqlx's own query types are generic over the database, with a trait bound for every
//! bound value's type and every executor, and those bounds do not carry through generic
//! functions. Here a query collects its arguments as [`Arg`] values, and the connection
//! that runs it binds them for its database: a query is a plain value until it reaches a
//! concrete connection.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::future::Future;

use chrono::{DateTime, Utc};
use domain::ports::StoreError;
use serde_json::value::RawValue;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::types::Json;
use uuid::Uuid;

/// A statement and its arguments. Placeholders written in the SQL are `$1`, `$2`, … in
/// both dialects; those [`Query::push_bind`] adds are written in the dialect of the
/// connection that runs the query (see [`Dialect`]).
pub(crate) struct Query {
    sql: Cow<'static, str>,
    args: Vec<Arg>,
    /// Where `push_bind` placeholders go: byte offset in `sql`, and the argument number.
    pushed: Vec<(usize, usize)>,
}

/// How a backend writes the placeholders of a statement built piece by piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// `$N`.
    Postgres,
    /// `?`, or `?N` in a statement that also has written `$N` placeholders. SQLite keeps
    /// numbered and named parameters in a list it scans to prepare each one and again to
    /// name each one when it is bound, so a multi-row insert of thousands of them spends
    /// tens of milliseconds holding the single writer (quadratic); anonymous `?`s are
    /// numbered as they come and never looked up.
    Sqlite,
}

/// A statement to bind arguments to.
pub(crate) fn query(sql: impl Into<Cow<'static, str>>) -> Query {
    Query {
        sql: sql.into(),
        args: Vec::new(),
        pushed: Vec::new(),
    }
}

impl Query {
    /// Binds the next placeholder.
    pub(crate) fn bind(mut self, value: impl ToArg) -> Self {
        self.args.push(value.to_arg());
        self
    }

    /// Appends SQL, for a statement built piece by piece.
    pub(crate) fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.to_mut().push_str(sql);
        self
    }

    /// Appends a placeholder bound to `value`.
    pub(crate) fn push_bind(&mut self, value: impl ToArg) -> &mut Self {
        self.args.push(value.to_arg());
        self.pushed.push((self.sql.len(), self.args.len()));
        self
    }

    /// Appends `(…), (…)`: one parenthesised row of placeholders per item, `row` binding
    /// each item's values.
    pub(crate) fn push_values<T>(
        &mut self,
        items: impl IntoIterator<Item = T>,
        mut row: impl FnMut(&mut Values<'_>, T),
    ) -> &mut Self {
        self.push("VALUES ");
        for (index, item) in items.into_iter().enumerate() {
            self.push(if index == 0 { "(" } else { ", (" });
            row(
                &mut Values {
                    query: self,
                    first: true,
                },
                item,
            );
            self.push(")");
        }
        self
    }

    /// Runs the statement; the number of rows it changed.
    pub(crate) async fn execute(self, mut conn: impl Conn) -> Result<u64, StoreError> {
        conn.run(self).await
    }

    /// The first row the statement returns, if any.
    pub(crate) async fn fetch_optional<R: Rows>(
        self,
        mut conn: impl Conn,
    ) -> Result<Option<R>, StoreError> {
        conn.optional(self).await
    }

    /// The first row the statement returns; [`StoreError::NotFound`] without one.
    pub(crate) async fn fetch_one<R: Rows>(self, mut conn: impl Conn) -> Result<R, StoreError> {
        conn.optional(self).await?.ok_or(StoreError::NotFound)
    }

    /// Every row the statement returns.
    pub(crate) async fn fetch_all<R: Rows>(
        self,
        mut conn: impl Conn,
    ) -> Result<Vec<R>, StoreError> {
        conn.all(self).await
    }

    /// The statement in `dialect` and its arguments, for the connection that binds them.
    pub(crate) fn into_parts(
        self,
        dialect: Dialect,
    ) -> (sqlx::AssertSqlSafe<Cow<'static, str>>, Vec<Arg>) {
        if self.pushed.is_empty() {
            return (sqlx::AssertSqlSafe(self.sql), self.args);
        }
        // sqlx binds anonymous `?`s in order, apart from numbered ones: they may only
        // stand alone.
        let anonymous = dialect == Dialect::Sqlite && self.pushed.len() == self.args.len();
        let mark = match dialect {
            Dialect::Postgres => '$',
            Dialect::Sqlite => '?',
        };
        let mut sql = String::with_capacity(self.sql.len() + self.pushed.len() * 6);
        let mut copied = 0;
        for (offset, number) in &self.pushed {
            sql.push_str(&self.sql[copied..*offset]);
            sql.push(mark);
            if !anonymous {
                // Writing into a `String` cannot fail.
                let _ = write!(sql, "{number}");
            }
            copied = *offset;
        }
        sql.push_str(&self.sql[copied..]);
        (sqlx::AssertSqlSafe(Cow::Owned(sql)), self.args)
    }
}

/// One row of [`Query::push_values`].
pub(crate) struct Values<'q> {
    query: &'q mut Query,
    first: bool,
}

impl Values<'_> {
    /// Appends the row's next placeholder, bound to `value`.
    pub(crate) fn push_bind(&mut self, value: impl ToArg) -> &mut Self {
        if !std::mem::take(&mut self.first) {
            self.query.push(", ");
        }
        self.query.push_bind(value);
        self
    }
}

/// A bound value, with its type even when it is NULL (PostgreSQL checks the types of
/// parameters, NULL ones too).
pub(crate) enum Arg {
    Uuid(Option<Uuid>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
    I64(Option<i64>),
    I32(Option<i32>),
    F64(Option<f64>),
    Bool(Option<bool>),
    Time(Option<DateTime<Utc>>),
    /// `jsonb` on PostgreSQL, JSON text on SQLite.
    Json(Option<Box<RawValue>>),
    /// A value that could not be serialized to JSON: running the query fails with it.
    Invalid(String),
}

/// A value a query can bind.
pub(crate) trait ToArg {
    /// The value as an argument.
    fn to_arg(self) -> Arg;
    /// A NULL of this type.
    fn null() -> Arg;
}

macro_rules! to_arg {
    ($variant:ident: $($type:ty => |$value:ident| $convert:expr),+ $(,)?) => {$(
        impl ToArg for $type {
            fn to_arg(self) -> Arg {
                let $value = self;
                Arg::$variant(Some($convert))
            }
            fn null() -> Arg {
                Arg::$variant(None)
            }
        }
    )+};
}

to_arg!(Uuid: Uuid => |v| v);
to_arg!(Text: String => |v| v, &String => |v| v.clone(), &str => |v| v.to_owned());
to_arg!(Bytes: Vec<u8> => |v| v, &[u8] => |v| v.to_vec());
to_arg!(I64: i64 => |v| v);
to_arg!(I32: i32 => |v| v);
to_arg!(F64: f64 => |v| v);
to_arg!(Bool: bool => |v| v);
to_arg!(Time: DateTime<Utc> => |v| v);

impl<T: ToArg> ToArg for Option<T> {
    fn to_arg(self) -> Arg {
        match self {
            Some(value) => value.to_arg(),
            None => T::null(),
        }
    }
    fn null() -> Arg {
        T::null()
    }
}

impl<T: ToArg + Clone> ToArg for &Option<T> {
    fn to_arg(self) -> Arg {
        self.clone().to_arg()
    }
    fn null() -> Arg {
        T::null()
    }
}

impl<T: serde::Serialize> ToArg for Json<T> {
    fn to_arg(self) -> Arg {
        match serde_json::value::to_raw_value(&self.0) {
            Ok(raw) => Arg::Json(Some(raw)),
            Err(error) => Arg::Invalid(format!("a value does not serialize to JSON: {error}")),
        }
    }
    fn null() -> Arg {
        Arg::Json(None)
    }
}

/// A row type both backends decode (`#[derive(sqlx::FromRow)]` structs and tuples of
/// types both know).
pub(crate) trait Rows:
    for<'r> sqlx::FromRow<'r, SqliteRow> + for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin + 'static
{
}

impl<T> Rows for T where
    T: for<'r> sqlx::FromRow<'r, SqliteRow>
        + for<'r> sqlx::FromRow<'r, PgRow>
        + Send
        + Unpin
        + 'static
{
}

/// A connection a query runs on: a reader pool, or a write transaction.
pub(crate) trait Conn: Send {
    /// Runs `query`; the number of rows it changed.
    fn run(&mut self, query: Query) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// The first row `query` returns, if any.
    fn optional<R: Rows>(
        &mut self,
        query: Query,
    ) -> impl Future<Output = Result<Option<R>, StoreError>> + Send;
    /// Every row `query` returns.
    fn all<R: Rows>(
        &mut self,
        query: Query,
    ) -> impl Future<Output = Result<Vec<R>, StoreError>> + Send;
}

impl<C: Conn> Conn for &mut C {
    fn run(&mut self, query: Query) -> impl Future<Output = Result<u64, StoreError>> + Send {
        (**self).run(query)
    }
    fn optional<R: Rows>(
        &mut self,
        query: Query,
    ) -> impl Future<Output = Result<Option<R>, StoreError>> + Send {
        (**self).optional(query)
    }
    fn all<R: Rows>(
        &mut self,
        query: Query,
    ) -> impl Future<Output = Result<Vec<R>, StoreError>> + Send {
        (**self).all(query)
    }
}

/// Binds `args` for database `DB`.
pub(crate) fn arguments<DB>(args: Vec<Arg>) -> Result<DB::Arguments, sqlx::error::BoxDynError>
where
    DB: sqlx::Database,
    Option<Uuid>: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<String>: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<Vec<u8>>: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<i64>: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<i32>: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<f64>: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<bool>: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<DateTime<Utc>>: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<Json<Box<RawValue>>>: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    use sqlx::Arguments as _;
    let mut out = DB::Arguments::default();
    for arg in args {
        match arg {
            Arg::Uuid(value) => out.add(value)?,
            Arg::Text(value) => out.add(value)?,
            Arg::Bytes(value) => out.add(value)?,
            Arg::I64(value) => out.add(value)?,
            Arg::I32(value) => out.add(value)?,
            Arg::F64(value) => out.add(value)?,
            Arg::Bool(value) => out.add(value)?,
            Arg::Time(value) => out.add(value)?,
            Arg::Json(value) => out.add(value.map(Json))?,
            Arg::Invalid(reason) => return Err(reason.into()),
        }
    }
    Ok(out)
}

/// [`Conn`] for a sqlx executor of a concrete database, writing placeholders in
/// `$dialect`: `$executor` is an expression of `self` that sqlx accepts as its executor.
macro_rules! impl_conn {
    ($db:ty, $dialect:expr, $type:ty, |$this:ident| $executor:expr) => {
        impl $crate::sql::Conn for $type {
            async fn run(
                &mut self,
                query: $crate::sql::Query,
            ) -> Result<u64, domain::ports::StoreError> {
                let $this = self;
                let (sql, args) = query.into_parts($dialect);
                let args = $crate::sql::arguments::<$db>(args)
                    .map_err(domain::ports::StoreError::Internal)?;
                let result = sqlx::query_with(sql, args)
                    .execute($executor)
                    .await
                    .map_err($crate::error::map_sqlx)?;
                Ok(result.rows_affected())
            }

            async fn optional<R: $crate::sql::Rows>(
                &mut self,
                query: $crate::sql::Query,
            ) -> Result<Option<R>, domain::ports::StoreError> {
                let $this = self;
                let (sql, args) = query.into_parts($dialect);
                let args = $crate::sql::arguments::<$db>(args)
                    .map_err(domain::ports::StoreError::Internal)?;
                sqlx::query_as_with::<$db, R, _>(sql, args)
                    .fetch_optional($executor)
                    .await
                    .map_err($crate::error::map_sqlx)
            }

            async fn all<R: $crate::sql::Rows>(
                &mut self,
                query: $crate::sql::Query,
            ) -> Result<Vec<R>, domain::ports::StoreError> {
                let $this = self;
                let (sql, args) = query.into_parts($dialect);
                let args = $crate::sql::arguments::<$db>(args)
                    .map_err(domain::ports::StoreError::Internal)?;
                sqlx::query_as_with::<$db, R, _>(sql, args)
                    .fetch_all($executor)
                    .await
                    .map_err($crate::error::map_sqlx)
            }
        }
    };
}

pub(crate) use impl_conn;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushed_placeholders_are_written_in_the_connections_dialect() {
        let mut built = query("INSERT INTO t (a, b) ");
        built.push_values([(1i64, "x"), (2, "y")], |row, (a, b)| {
            row.push_bind(a).push_bind(b);
        });
        let (sql, args) = built.into_parts(Dialect::Sqlite);
        assert_eq!(sql.0, "INSERT INTO t (a, b) VALUES (?, ?), (?, ?)");
        assert_eq!(args.len(), 4);

        let mut built = query("SELECT 1 FROM t WHERE a = $1").bind(7i64);
        built
            .push(" AND b IN (")
            .push_bind("p")
            .push(", ")
            .push_bind("q")
            .push(")");
        let (sql, _) = built.into_parts(Dialect::Postgres);
        assert_eq!(sql.0, "SELECT 1 FROM t WHERE a = $1 AND b IN ($2, $3)");
        let mut built = query("SELECT 1 FROM t WHERE a = $1").bind(7i64);
        built.push(" AND b = ").push_bind("p");
        let (sql, _) = built.into_parts(Dialect::Sqlite);
        assert_eq!(
            sql.0, "SELECT 1 FROM t WHERE a = $1 AND b = ?2",
            "numbered beside numbered"
        );

        let (sql, _) = query("SELECT $1").bind(1i64).into_parts(Dialect::Sqlite);
        assert_eq!(sql.0, "SELECT $1", "written placeholders are left alone");
    }

    #[test]
    fn nulls_keep_their_type() {
        assert!(matches!(None::<Uuid>.to_arg(), Arg::Uuid(None)));
        assert!(matches!(None::<&str>.to_arg(), Arg::Text(None)));
        assert!(matches!(Some(2.5f64).to_arg(), Arg::F64(Some(_))));
        assert!(matches!(
            None::<Json<serde_json::Value>>.to_arg(),
            Arg::Json(None)
        ));
    }
}
