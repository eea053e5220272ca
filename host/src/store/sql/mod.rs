//! The store seam: the one way the node's code talks to its database, whichever holds it
//! (SQLite embedded, PostgreSQL past one machine).
//!
//! Statements are written once, in the SQL both databases share, with numbered parameters
//! `?1`, `?2`, ... (PostgreSQL's connection turns them into `$1`, `$2`, ...). The few
//! statements the two spell differently ask [`Sql::dialect`]. Values cross as [`Value`]s
//! and rows are read in place through [`Row`], so reading a row copies no more than the
//! caller keeps.

pub mod postgres;
mod sqlite;

use anyhow::{Context, Result, anyhow, bail};

/// Which database a connection talks to, for the statements the two spell differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A parameter, or a column of a row being read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
}

/// A connection, or a transaction on one.
pub trait Sql {
    fn dialect(&self) -> Dialect;

    /// Run one statement; the number of rows it changed.
    fn execute(&self, sql: &str, params: &[Value<'_>]) -> Result<usize>;

    /// Run one statement and hand each row it returns to `each`, in order.
    fn query(
        &self,
        sql: &str,
        params: &[Value<'_>],
        each: &mut dyn FnMut(&dyn Row) -> Result<()>,
    ) -> Result<()>;

    /// Run several statements without parameters (a schema).
    fn batch(&self, sql: &str) -> Result<()>;

    /// Run an `INSERT` of one row into a table whose integer key (column `key`) the
    /// database assigns, and return the key. (On SQLite, `RETURNING` builds a temporary
    /// table for the rows it returns, a page cache opened and closed per statement: the
    /// connection there returns the row id it already knows instead.)
    fn insert_keyed(&self, sql: &str, params: &[Value<'_>], key: &str) -> Result<i64> {
        let mut id = None;
        self.query(&format!("{sql} RETURNING {key}"), params, &mut |row| {
            id = Some(row.get(0)?);
            Ok(())
        })?;
        id.ok_or_else(|| anyhow!("an INSERT returned no {key}"))
    }
}

/// A row being read.
pub trait Row {
    /// Column `index` (from 0), valid while the row is.
    fn value(&self, index: usize) -> Result<Value<'_>>;
}

impl dyn Row + '_ {
    /// Column `index`, as `T`.
    pub fn get<T: FromValue>(&self, index: usize) -> Result<T> {
        T::from_value(self.value(index)?).with_context(|| format!("column {index}"))
    }
}

impl dyn Sql + '_ {
    /// Every row of the statement, each made into a `T` by `map`.
    pub fn rows<T>(
        &self,
        sql: &str,
        params: &[Value<'_>],
        mut map: impl FnMut(&dyn Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        self.query(sql, params, &mut |row| {
            out.push(map(row)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// The first row of the statement, if any, made into a `T` by `map`.
    pub fn row<T>(
        &self,
        sql: &str,
        params: &[Value<'_>],
        map: impl FnOnce(&dyn Row) -> Result<T>,
    ) -> Result<Option<T>> {
        let mut map = Some(map);
        let mut out = None;
        self.query(sql, params, &mut |row| {
            if let Some(map) = map.take() {
                out = Some(map(row)?);
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// The first column of the first row, if there is a row.
    pub fn value<T: FromValue>(&self, sql: &str, params: &[Value<'_>]) -> Result<Option<T>> {
        self.row(sql, params, |row| row.get(0))
    }

    /// The first column of the first row; an error if there is no row.
    pub fn one<T: FromValue>(&self, sql: &str, params: &[Value<'_>]) -> Result<T> {
        self.value(sql, params)?
            .ok_or_else(|| anyhow!("no row returned by: {sql}"))
    }

    /// Whether the statement returns a row.
    pub fn exists(&self, sql: &str, params: &[Value<'_>]) -> Result<bool> {
        Ok(self.row(sql, params, |_| Ok(()))?.is_some())
    }
}

/// The parameters of a statement: `args![a, b]` is `&[Value::from(a), Value::from(b)]`.
#[doc(hidden)]
#[macro_export]
macro_rules! __sql_args {
    ($($value:expr),* $(,)?) => {
        &[$($crate::store::sql::Value::from($value)),*][..]
    };
}
pub use __sql_args as args;

impl<'a> From<&'a str> for Value<'a> {
    fn from(text: &'a str) -> Self {
        Value::Text(text)
    }
}

impl<'a> From<&'a String> for Value<'a> {
    fn from(text: &'a String) -> Self {
        Value::Text(text)
    }
}

impl<'a> From<&'a &str> for Value<'a> {
    fn from(text: &'a &str) -> Self {
        Value::Text(text)
    }
}

impl<'a> From<&'a [u8]> for Value<'a> {
    fn from(bytes: &'a [u8]) -> Self {
        Value::Blob(bytes)
    }
}

impl From<i64> for Value<'_> {
    fn from(n: i64) -> Self {
        Value::Int(n)
    }
}

impl From<i32> for Value<'_> {
    fn from(n: i32) -> Self {
        Value::Int(n.into())
    }
}

impl From<u32> for Value<'_> {
    fn from(n: u32) -> Self {
        Value::Int(n.into())
    }
}

impl From<u64> for Value<'_> {
    /// Saturating: no count the node keeps comes near `i64::MAX`.
    fn from(n: u64) -> Self {
        Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

impl From<usize> for Value<'_> {
    fn from(n: usize) -> Self {
        Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

impl From<bool> for Value<'_> {
    fn from(yes: bool) -> Self {
        Value::Int(yes.into())
    }
}

impl From<f64> for Value<'_> {
    fn from(x: f64) -> Self {
        Value::Real(x)
    }
}

impl<'a, T: Into<Value<'a>>> From<Option<T>> for Value<'a> {
    fn from(value: Option<T>) -> Self {
        value.map_or(Value::Null, Into::into)
    }
}

/// What a column can be read as.
pub trait FromValue: Sized {
    fn from_value(value: Value<'_>) -> Result<Self>;
}

impl FromValue for i64 {
    fn from_value(value: Value<'_>) -> Result<Self> {
        match value {
            Value::Int(n) => Ok(n),
            other => bail!("expected an integer, found {}", other.kind()),
        }
    }
}

macro_rules! narrower_integer {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(value: Value<'_>) -> Result<Self> {
                let n = i64::from_value(value)?;
                <$t>::try_from(n).map_err(|_| anyhow!("{n} is out of range for {}", stringify!($t)))
            }
        }
    )*};
}
narrower_integer!(i32, u32, u64, usize);

impl FromValue for bool {
    fn from_value(value: Value<'_>) -> Result<Self> {
        Ok(i64::from_value(value)? != 0)
    }
}

impl FromValue for f64 {
    fn from_value(value: Value<'_>) -> Result<Self> {
        match value {
            Value::Real(x) => Ok(x),
            Value::Int(n) => Ok(n as f64),
            other => bail!("expected a number, found {}", other.kind()),
        }
    }
}

impl FromValue for String {
    fn from_value(value: Value<'_>) -> Result<Self> {
        match value {
            Value::Text(text) => Ok(text.to_owned()),
            other => bail!("expected text, found {}", other.kind()),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(value: Value<'_>) -> Result<Self> {
        match value {
            Value::Blob(bytes) => Ok(bytes.to_vec()),
            Value::Text(text) => Ok(text.as_bytes().to_vec()),
            other => bail!("expected bytes, found {}", other.kind()),
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: Value<'_>) -> Result<Self> {
        match value {
            Value::Null => Ok(None),
            value => T::from_value(value).map(Some),
        }
    }
}

impl Value<'_> {
    /// What the value is, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Int(_) => "an integer",
            Value::Real(_) => "a real number",
            Value::Text(_) => "text",
            Value::Blob(_) => "bytes",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_cross_both_ways_on_sqlite() {
        let db = rusqlite::Connection::open_in_memory().unwrap();
        let db: &dyn Sql = &db;
        db.batch("CREATE TABLE t (n INTEGER, s TEXT, x REAL)")
            .unwrap();
        let none: Option<&str> = None;
        db.execute(
            "INSERT INTO t VALUES (?1, ?2, ?3)",
            args![7_i64, "seven", 7.5],
        )
        .unwrap();
        db.execute("INSERT INTO t VALUES (?1, ?2, NULL)", args![8_u32, none])
            .unwrap();
        let rows = db
            .rows("SELECT n, s, x FROM t ORDER BY n", &[], |r| {
                Ok((
                    r.get::<i64>(0)?,
                    r.get::<Option<String>>(1)?,
                    r.get::<Option<f64>>(2)?,
                ))
            })
            .unwrap();
        assert_eq!(
            rows,
            vec![(7, Some("seven".to_owned()), Some(7.5)), (8, None, None)]
        );
        assert_eq!(db.one::<i64>("SELECT count(*) FROM t", &[]).unwrap(), 2);
        assert!(db.exists("SELECT 1 FROM t WHERE n = ?1", args![7]).unwrap());
        assert!(
            db.value::<i64>("SELECT n FROM t WHERE n = ?1", args![9])
                .unwrap()
                .is_none()
        );
        let error = db.one::<String>("SELECT n FROM t", &[]).unwrap_err();
        assert!(format!("{error:#}").contains("expected text"), "{error:#}");
    }

    #[test]
    fn an_insert_returns_the_key_it_was_given_on_a_connection_and_in_a_transaction() {
        let mut db = rusqlite::Connection::open_in_memory().unwrap();
        db.execute_batch(
            "CREATE TABLE t (seq INTEGER PRIMARY KEY AUTOINCREMENT, s TEXT);
             CREATE TABLE other (id INTEGER PRIMARY KEY, s TEXT);
             INSERT INTO other (id) VALUES (1000);
             -- a trigger's own inserts must not pass for the row's key
             CREATE TRIGGER copy AFTER INSERT ON t BEGIN
                 INSERT INTO other (s) VALUES (new.s);
             END;",
        )
        .unwrap();
        let insert = "INSERT INTO t (s) VALUES (?1)";
        assert_eq!(
            Sql::insert_keyed(&db, insert, args!["a"], "seq").unwrap(),
            1
        );
        let tx = db.transaction().unwrap();
        assert_eq!(
            Sql::insert_keyed(&tx, insert, args!["b"], "seq").unwrap(),
            2
        );
        tx.commit().unwrap();
        let keys: Vec<i64> = (&db as &dyn Sql)
            .rows("SELECT seq FROM t ORDER BY seq", &[], |r| r.get(0))
            .unwrap();
        assert_eq!(keys, vec![1, 2]);
    }
}
