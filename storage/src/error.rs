//! sqlx errors as the domain sees them: a missing row, a conflict, a database that is
//! down (retry later: HTTP 503) or a bug.

use domain::ports::StoreError;

/// Maps a sqlx error to the domain's [`StoreError`].
pub(crate) fn map_sqlx(error: sqlx::Error) -> StoreError {
    match error {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(error.to_string()),
        sqlx::Error::Database(ref database_error) => {
            if database_error.is_unique_violation() {
                let constraint = database_error.constraint().unwrap_or("unique").to_owned();
                return StoreError::Conflict(format!("duplicate value violates {constraint}"));
            }
            let code = database_error
                .code()
                .map(|code| code.into_owned())
                .unwrap_or_default();
            let unavailable = if database_error
                .try_downcast_ref::<sqlx::sqlite::SqliteError>()
                .is_some()
            {
                sqlite_unavailable(&code)
            } else {
                postgres_unavailable(&code)
            };
            if unavailable {
                StoreError::Unavailable(error.to_string())
            } else {
                StoreError::Internal(Box::new(error))
            }
        }
        other => StoreError::Internal(Box::new(other)),
    }
}

/// PostgreSQL codes that mean "the database cannot serve now", not "this query is
/// wrong": class 08 connection exceptions, admin or crash shutdown, cannot connect now,
/// too many connections, out of disk or memory.
fn postgres_unavailable(code: &str) -> bool {
    code.starts_with("08")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "53300" | "53100" | "53200"
        )
}

/// SQLite result codes (extended codes carry the primary code in their low byte) that
/// mean the same: BUSY, LOCKED, IOERR, FULL, CANTOPEN.
fn sqlite_unavailable(code: &str) -> bool {
    code.parse::<u32>()
        .is_ok_and(|extended| matches!(extended & 0xff, 5 | 6 | 10 | 13 | 14))
}

/// A value read from the database that the domain refuses: corrupt data, a bug.
pub(crate) fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("corrupt {what} in database: {detail}").into())
}
