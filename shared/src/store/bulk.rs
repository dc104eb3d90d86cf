//! Multi-row statements, so a consumer writes a batch with one round trip per
//! table instead of one per message. Plain `VALUES` lists with `$n` parameters:
//! the same SQL runs on PostgreSQL and SQLite. Long batches are split so no
//! statement passes either backend's limit on parameters.

use sqlx::AssertSqlSafe;

use super::{Backend, Tx};

/// One value of a row.
#[derive(Debug, Clone)]
pub enum Value {
    Text(Option<String>),
    Int(Option<i64>),
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(Some(v.to_string()))
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(Some(v))
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(Some(v.clone()))
    }
}
impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Self {
        Value::Text(v)
    }
}
impl From<&Option<String>> for Value {
    fn from(v: &Option<String>) -> Self {
        Value::Text(v.clone())
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(Some(v))
    }
}
impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Self {
        Value::Int(v)
    }
}

/// `$first, $first+1, …` for `n` parameters (an `IN (…)` list).
pub fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Most parameters in one statement (SQLite allows 32766, PostgreSQL 65535).
const MAX_PARAMS: usize = 30_000;

/// `(…), (…)` placeholders for `rows` rows of `width` values, numbered from `$first`.
fn values_list(rows: usize, width: usize, first: usize) -> String {
    let mut sql = String::with_capacity(rows * width * 5);
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..width {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(first + r * width + c).to_string());
        }
        sql.push(')');
    }
    sql
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

fn bind_all<'q, 'v>(mut query: AnyQuery<'q>, values: impl IntoIterator<Item = &'v Value>) -> AnyQuery<'q> {
    for value in values {
        query = match value {
            Value::Text(v) => query.bind(v.clone()),
            Value::Int(v) => query.bind(*v),
        };
    }
    query
}

/// `INSERT INTO {table} ({columns}) VALUES … {suffix}` for every row; answers the
/// rows affected (with `ON CONFLICT DO NOTHING`, those actually inserted).
pub async fn insert(
    tx: &mut Tx,
    table: &str,
    columns: &[&str],
    rows: &[Vec<Value>],
    suffix: &str,
) -> sqlx::Result<u64> {
    let width = columns.len();
    let mut affected = 0;
    for chunk in rows.chunks((MAX_PARAMS / width.max(1)).max(1)) {
        debug_assert!(chunk.iter().all(|r| r.len() == width));
        let sql = format!(
            "INSERT INTO {table} ({}) VALUES {} {suffix}",
            columns.join(", "),
            values_list(chunk.len(), width, 1)
        );
        let done = bind_all(sqlx::query(AssertSqlSafe(sql)), chunk.iter().flatten())
            .execute(&mut **tx)
            .await?;
        affected += done.rows_affected();
    }
    Ok(affected)
}

/// `UPDATE {table} SET {set} FROM (VALUES …) AS v WHERE {condition}`: `set` and
/// `condition` name the rows' values `v.column1`, `v.column2`, … and may use `$1`…
/// for the `shared` values bound before the rows. Answers the rows updated.
pub async fn update_from_values(
    tx: &mut Tx,
    table: &str,
    set: &str,
    condition: &str,
    shared: &[Value],
    rows: &[Vec<Value>],
) -> sqlx::Result<u64> {
    let Some(width) = rows.first().map(Vec::len) else {
        return Ok(0);
    };
    let mut affected = 0;
    for chunk in rows.chunks(((MAX_PARAMS - shared.len()) / width.max(1)).max(1)) {
        let sql = format!(
            "UPDATE {table} SET {set} FROM (VALUES {}) AS v WHERE {condition}",
            values_list(chunk.len(), width, shared.len() + 1)
        );
        let values = shared.iter().chain(chunk.iter().flatten());
        let done = bind_all(sqlx::query(AssertSqlSafe(sql)), values)
            .execute(&mut **tx)
            .await?;
        affected += done.rows_affected();
    }
    Ok(affected)
}

/// A column read from a JSON array of objects by [`insert_json_rows`].
#[derive(Debug, Clone, Copy)]
pub enum JsonColumn {
    Text(&'static str),
    Int(&'static str),
}

impl JsonColumn {
    fn name(self) -> &'static str {
        match self {
            JsonColumn::Text(name) | JsonColumn::Int(name) => name,
        }
    }
}

/// `INSERT INTO table (columns) SELECT … FROM <rows of $1> <tail>`, where `$1` is a
/// JSON array of objects keyed by column name: one parameter and one short statement
/// for any number of rows, so neither backend parses thousands of placeholders or
/// binds a value at a time. PostgreSQL reads the rows with `json_to_recordset`,
/// SQLite with `json_each`.
pub fn json_rows_insert(backend: Backend, table: &str, columns: &[JsonColumn], tail: &str) -> String {
    let names = columns.iter().map(|c| c.name()).collect::<Vec<_>>().join(", ");
    let source = match backend {
        Backend::Postgres => {
            let types = columns
                .iter()
                .map(|c| match c {
                    JsonColumn::Text(n) => format!("{n} text"),
                    JsonColumn::Int(n) => format!("{n} bigint"),
                })
                .collect::<Vec<_>>()
                .join(", ");
            format!("SELECT {names} FROM json_to_recordset(CAST($1 AS json)) AS r({types})")
        }
        Backend::Sqlite => {
            let fields = columns
                .iter()
                .map(|c| format!("json_extract(value, '$.{}')", c.name()))
                .collect::<Vec<_>>()
                .join(", ");
            format!("SELECT {fields} FROM json_each($1)")
        }
    };
    // SQLite needs a WHERE before an upsert tail on INSERT … SELECT (its parser
    // cannot otherwise tell ON CONFLICT from a join constraint).
    let filter = match backend {
        Backend::Sqlite if !tail.is_empty() => " WHERE true",
        _ => "",
    };
    format!("INSERT INTO {table} ({names}) {source}{filter} {tail}")
}

/// Runs [`json_rows_insert`] with `rows` (a JSON array) as its one parameter.
pub async fn insert_json_rows(
    tx: &mut Tx,
    backend: Backend,
    table: &str,
    columns: &[JsonColumn],
    tail: &str,
    rows: String,
) -> sqlx::Result<u64> {
    let sql = json_rows_insert(backend, table, columns, tail);
    let done = sqlx::query(AssertSqlSafe(sql)).bind(rows).execute(&mut **tx).await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_row_by_row() {
        assert_eq!(values_list(2, 3, 1), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(values_list(1, 2, 3), "($3, $4)");
    }
}
