//! The seam on SQLite: a connection, and a transaction (which is one).

use anyhow::{Context, Result};

use super::{Dialect, Row, Sql, Value};
use rusqlite::types::{ToSqlOutput, ValueRef};

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            Value::Null => ValueRef::Null,
            Value::Int(n) => ValueRef::Integer(n),
            Value::Real(x) => ValueRef::Real(x),
            Value::Text(text) => ValueRef::Text(text.as_bytes()),
            Value::Blob(bytes) => ValueRef::Blob(bytes),
        }))
    }
}

impl Row for rusqlite::Row<'_> {
    fn value(&self, index: usize) -> Result<Value<'_>> {
        Ok(match self.get_ref(index)? {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(n) => Value::Int(n),
            ValueRef::Real(x) => Value::Real(x),
            ValueRef::Text(bytes) => {
                Value::Text(std::str::from_utf8(bytes).with_context(|| format!("column {index}"))?)
            }
            ValueRef::Blob(bytes) => Value::Blob(bytes),
        })
    }
}

impl Sql for rusqlite::Connection {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&self, sql: &str, params: &[Value<'_>]) -> Result<usize> {
        Ok(self
            .prepare_cached(sql)?
            .execute(rusqlite::params_from_iter(params))?)
    }

    fn query(
        &self,
        sql: &str,
        params: &[Value<'_>],
        each: &mut dyn FnMut(&dyn Row) -> Result<()>,
    ) -> Result<()> {
        let mut statement = self.prepare_cached(sql)?;
        let mut rows = statement.query(rusqlite::params_from_iter(params))?;
        while let Some(row) = rows.next()? {
            each(row)?;
        }
        Ok(())
    }

    fn batch(&self, sql: &str) -> Result<()> {
        Ok(self.execute_batch(sql)?)
    }

    fn insert_keyed(&self, sql: &str, params: &[Value<'_>], _key: &str) -> Result<i64> {
        // The key is the row id (an `INTEGER PRIMARY KEY`). No trigger can change what
        // `last_insert_rowid` says: SQLite restores it when a trigger ends.
        Sql::execute(self, sql, params)?;
        Ok(self.last_insert_rowid())
    }
}

impl Sql for rusqlite::Transaction<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&self, sql: &str, params: &[Value<'_>]) -> Result<usize> {
        Sql::execute(&**self, sql, params)
    }

    fn query(
        &self,
        sql: &str,
        params: &[Value<'_>],
        each: &mut dyn FnMut(&dyn Row) -> Result<()>,
    ) -> Result<()> {
        Sql::query(&**self, sql, params, each)
    }

    fn batch(&self, sql: &str) -> Result<()> {
        Sql::batch(&**self, sql)
    }

    fn insert_keyed(&self, sql: &str, params: &[Value<'_>], key: &str) -> Result<i64> {
        Sql::insert_keyed(&**self, sql, params, key)
    }
}
