//! The seam on PostgreSQL: a connection with its prepared statements, and transactions on
//! it. Also how twinsync connects to PostgreSQL (the node's store and the reference
//! tracker alike): errors in words, and never the password.

use std::cell::RefCell;
use std::collections::HashMap;
use std::error::Error as StdError;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use bytes::BytesMut;
use postgres::config::SslMode;
use postgres::error::SqlState;
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use postgres::{Client, GenericClient, NoTls, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{Dialect, Row, Sql, Value};
use crate::config::Secret;

/// A connection, and the statements prepared on it (a statement is parsed and planned once
/// per connection, as SQLite's statement cache does). As an [`Sql`] it runs each statement
/// on its own (autocommit): reads need no transaction, since under READ COMMITTED each
/// statement of a transaction sees a snapshot of its own anyway.
pub struct PgConnection {
    client: RefCell<Client>,
    statements: RefCell<HashMap<String, Statement>>,
}

/// A transaction on a [`PgConnection`]. `postgres` wants `&mut` to run a statement, the
/// engine passes `&dyn Sql` around: the transaction is behind a `RefCell`, borrowed only
/// for the length of one statement.
pub struct PgTx<'c> {
    tx: RefCell<postgres::Transaction<'c>>,
    statements: &'c RefCell<HashMap<String, Statement>>,
}

impl PgConnection {
    pub fn new(client: Client) -> Self {
        PgConnection {
            client: RefCell::new(client),
            statements: RefCell::new(HashMap::new()),
        }
    }

    pub fn is_closed(&self) -> bool {
        self.client.borrow().is_closed()
    }

    /// A transaction (READ COMMITTED, PostgreSQL's default), committed by [`PgTx::commit`]
    /// and rolled back if dropped.
    pub fn transaction(&mut self) -> Result<PgTx<'_>> {
        let tx = self.client.get_mut().transaction().map_err(from_postgres)?;
        Ok(PgTx {
            tx: RefCell::new(tx),
            statements: &self.statements,
        })
    }
}

impl PgTx<'_> {
    pub fn commit(self) -> Result<()> {
        self.tx.into_inner().commit().map_err(from_postgres)
    }
}

/// `sql` prepared on `client` (once per connection).
fn statement(
    client: &mut impl GenericClient,
    statements: &RefCell<HashMap<String, Statement>>,
    sql: &str,
) -> Result<Statement> {
    if let Some(statement) = statements.borrow().get(sql) {
        return Ok(statement.clone());
    }
    let statement = client
        .prepare(&numbered_parameters(sql)?)
        .map_err(from_postgres)
        .with_context(|| format!("cannot prepare: {sql}"))?;
    statements
        .borrow_mut()
        .insert(sql.to_owned(), statement.clone());
    Ok(statement)
}

fn as_params<'a>(params: &'a [Value<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    params.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

fn execute(
    client: &mut impl GenericClient,
    statements: &RefCell<HashMap<String, Statement>>,
    sql: &str,
    params: &[Value<'_>],
) -> Result<usize> {
    let statement = statement(client, statements, sql)?;
    let changed = client
        .execute(&statement, &as_params(params))
        .map_err(from_postgres)
        .with_context(|| format!("in: {sql}"))?;
    Ok(usize::try_from(changed).unwrap_or(usize::MAX))
}

fn query(
    client: &mut impl GenericClient,
    statements: &RefCell<HashMap<String, Statement>>,
    sql: &str,
    params: &[Value<'_>],
) -> Result<Vec<postgres::Row>> {
    let statement = statement(client, statements, sql)?;
    client
        .query(&statement, &as_params(params))
        .map_err(from_postgres)
        .with_context(|| format!("in: {sql}"))
}

impl Sql for PgTx<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn execute(&self, sql: &str, params: &[Value<'_>]) -> Result<usize> {
        execute(&mut *self.tx.borrow_mut(), self.statements, sql, params)
    }

    fn query(
        &self,
        sql: &str,
        params: &[Value<'_>],
        each: &mut dyn FnMut(&dyn Row) -> Result<()>,
    ) -> Result<()> {
        // The rows are read before `each` sees them: `each` may run statements of its own.
        let rows = query(&mut *self.tx.borrow_mut(), self.statements, sql, params)?;
        rows.iter().try_for_each(|row| each(row))
    }

    fn batch(&self, sql: &str) -> Result<()> {
        self.tx
            .borrow_mut()
            .batch_execute(sql)
            .map_err(from_postgres)
    }
}

impl Sql for PgConnection {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn execute(&self, sql: &str, params: &[Value<'_>]) -> Result<usize> {
        execute(
            &mut *self.client.borrow_mut(),
            &self.statements,
            sql,
            params,
        )
    }

    fn query(
        &self,
        sql: &str,
        params: &[Value<'_>],
        each: &mut dyn FnMut(&dyn Row) -> Result<()>,
    ) -> Result<()> {
        let rows = query(
            &mut *self.client.borrow_mut(),
            &self.statements,
            sql,
            params,
        )?;
        rows.iter().try_for_each(|row| each(row))
    }

    fn batch(&self, sql: &str) -> Result<()> {
        self.client
            .borrow_mut()
            .batch_execute(sql)
            .map_err(from_postgres)
    }
}

/// `?1`, `?2`, ... as PostgreSQL spells them (`$1`, `$2`, ...), outside quoted text. A bare
/// `?` is refused: its number would depend on where it stands.
fn numbered_parameters(sql: &str) -> Result<String> {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => quoted = !quoted,
            '?' if !quoted => {
                if !chars.peek().is_some_and(char::is_ascii_digit) {
                    bail!("a parameter without a number in: {sql}");
                }
                out.push('$');
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    Ok(out)
}

impl ToSql for Value<'_> {
    /// Integers fit the column's integer type, or text; the rest as they are. (SQLite
    /// takes anything anywhere; PostgreSQL names the parameter's type.)
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match *self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(n) => match *ty {
                Type::INT8 => n.to_sql(ty, out),
                Type::INT4 => i32::try_from(n)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(n)?.to_sql(ty, out),
                Type::BOOL => (n != 0).to_sql(ty, out),
                Type::FLOAT8 => (n as f64).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR => n.to_string().as_str().to_sql(ty, out),
                _ => Err(format!("an integer cannot be a parameter of type {ty}").into()),
            },
            Value::Real(x) => match *ty {
                Type::FLOAT8 => x.to_sql(ty, out),
                Type::FLOAT4 => (x as f32).to_sql(ty, out),
                _ => Err(format!("a real number cannot be a parameter of type {ty}").into()),
            },
            Value::Text(text) if <&str as ToSql>::accepts(ty) => text.to_sql(ty, out),
            Value::Text(_) => Err(format!("text cannot be a parameter of type {ty}").into()),
            Value::Blob(bytes) => bytes.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

impl Row for postgres::Row {
    fn value(&self, index: usize) -> Result<Value<'_>> {
        let column = self
            .columns()
            .get(index)
            .ok_or_else(|| anyhow!("no column {index}"))?;
        let get_err = |e: postgres::Error| anyhow!("column {index}: {e}");
        Ok(match *column.type_() {
            Type::INT8 => self
                .try_get::<_, Option<i64>>(index)
                .map_err(get_err)?
                .map_or(Value::Null, Value::Int),
            Type::INT4 => self
                .try_get::<_, Option<i32>>(index)
                .map_err(get_err)?
                .map_or(Value::Null, |n| Value::Int(n.into())),
            Type::INT2 => self
                .try_get::<_, Option<i16>>(index)
                .map_err(get_err)?
                .map_or(Value::Null, |n| Value::Int(n.into())),
            Type::BOOL => self
                .try_get::<_, Option<bool>>(index)
                .map_err(get_err)?
                .map_or(Value::Null, |b| Value::Int(b.into())),
            Type::FLOAT8 => self
                .try_get::<_, Option<f64>>(index)
                .map_err(get_err)?
                .map_or(Value::Null, Value::Real),
            Type::BYTEA => self
                .try_get::<_, Option<&[u8]>>(index)
                .map_err(get_err)?
                .map_or(Value::Null, Value::Blob),
            ref ty if <&str as postgres::types::FromSql>::accepts(ty) => self
                .try_get::<_, Option<&str>>(index)
                .map_err(get_err)?
                .map_or(Value::Null, Value::Text),
            ref ty => bail!(
                "column {index} (`{}`) has type {ty}, which the store does not read: cast it",
                column.name()
            ),
        })
    }
}

/// Connect, with an error that says what is wrong in words, and never shows the password.
/// TLS as the URL's `sslmode` says (`require`: the server's certificate is checked against
/// the public roots and the certificates of `ca_file`); without it, none.
pub fn connect(url: &str, password: Option<&Secret>, ca_file: Option<&Path>) -> Result<Client> {
    let mut config = postgres::Config::from_str(url)
        .map_err(|e| anyhow!("`{}` is not a PostgreSQL URL: {e}", redact(url)))?;
    if let Some(password) = password {
        config.password(password.expose());
    }
    // The driver's default is `prefer`, which would try TLS on a server that offers it and
    // then fail on a certificate nobody said to trust: no TLS unless asked for.
    if !url.contains("sslmode=") {
        config.ssl_mode(SslMode::Disable);
    }
    let user = config.get_user().unwrap_or("(no user)").to_string();
    let database = config.get_dbname().unwrap_or(&user).to_string();
    let place = format!("{} (database `{database}`, user `{user}`)", redact(url));
    let connected = if config.get_ssl_mode() == SslMode::Disable {
        config.connect(NoTls)
    } else {
        config.connect(tls(ca_file)?)
    };
    connected.map_err(|e| match e.code() {
        Some(code) if *code == SqlState::INVALID_PASSWORD => {
            anyhow!("cannot connect to {place}: the password is wrong")
        }
        Some(code) if *code == SqlState::INVALID_CATALOG_NAME => {
            anyhow!("cannot connect to {place}: there is no database `{database}`")
        }
        _ => anyhow!("cannot connect to {place}: {}", describe(&e)),
    })
}

/// TLS to PostgreSQL: the public roots, and the certificates of `ca_file` (PEM).
fn tls(ca_file: Option<&Path>) -> Result<MakeRustlsConnect> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let (public, _) =
        roots.add_parsable_certificates(webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().cloned());
    if let Some(file) = ca_file {
        let pem = std::fs::read(file)
            .with_context(|| format!("cannot read the CA file {}", file.display()))?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow!("{} is not valid PEM: {e}", file.display()))?;
        if certs.is_empty() {
            bail!("no certificate in the CA file {}", file.display());
        }
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            bail!("no usable certificate in the CA file {}", file.display());
        }
    }
    debug_assert!(public > 0);
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// `url` (a URL or `key=value` pairs) with the password, if any, replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url
            .split(' ')
            .map(|pair| match pair.split_once('=') {
                Some(("password", _)) => "password=***",
                _ => pair,
            })
            .collect::<Vec<_>>()
            .join(" ");
    };
    let Some((credentials, host)) = rest.rsplit_once('@') else {
        return url.to_string();
    };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

/// The server's own words where it said something (the client's `Display` says only
/// "db error"), else the client's error with its cause.
pub fn describe(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => match std::error::Error::source(error) {
            Some(cause) => format!("{error}: {cause}"),
            None => error.to_string(),
        },
    }
}

/// A PostgreSQL error, in the server's words, as an `anyhow` error whose source is still
/// the `postgres::Error` (a caller can look for a serialization failure, say).
pub fn from_postgres(error: postgres::Error) -> anyhow::Error {
    let words = describe(&error);
    anyhow::Error::new(error).context(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_never_shows() {
        assert_eq!(
            redact("postgres://ann:s3cret@db:5432/x"),
            "postgres://ann:***@db:5432/x"
        );
        assert_eq!(redact("postgres://ann@db/x"), "postgres://ann@db/x");
        assert_eq!(
            redact("host=db password=s3cret user=ann"),
            "host=db password=*** user=ann"
        );
    }

    #[test]
    fn parameters_are_numbered_as_postgresql_spells_them() {
        assert_eq!(
            numbered_parameters("SELECT '?1' FROM t WHERE a = ?1 AND b = ?12").unwrap(),
            "SELECT '?1' FROM t WHERE a = $1 AND b = $12"
        );
        assert!(numbered_parameters("SELECT ? FROM t").is_err());
    }
}
