//! What an event carries (the message received, what its processor was given): kilobytes of
//! JSON, written once, read back rarely (to process the event, for a replay, to recognise a
//! redelivery). They were most of a node's database: about 4.6 KB per incoming event, where a
//! twin's own state is 2 KB, and a node keeps its events for `keep-events-days`.
//!
//! On SQLite they are stored compressed (zstd at its fastest level: about 3 times smaller,
//! a few microseconds per event), so that a node's database with a million twins stays a
//! fraction of the OS page cache and each event writes fewer pages to the log. PostgreSQL
//! compresses values this size itself (TOAST), so there they stay text. Text written by
//! earlier versions reads as it is.

use std::cell::RefCell;

use anyhow::{Context, Result, bail};

use super::sql::{Dialect, Value};

/// zstd's fastest regular level: most of the gain of higher levels on JSON for a fraction
/// of their time.
const LEVEL: i32 = 1;

/// No body grows past this when unpacked: a damaged value cannot make the node allocate
/// without bound. Far above anything stored: messages are at most 4 MiB on the wire, and a
/// processor's input holds three issues within the limits of one.
const MAX_UNPACKED: usize = 256 << 20;

thread_local! {
    // A context per thread, reused: setting one up costs more than compressing a body.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// A body ready to be bound as a statement's parameter. Packed before the transaction
/// that stores it, by the thread that made it: compressing a processor's input is tens of
/// microseconds, which a write transaction would hold the database's write lock for.
#[derive(Debug, Clone, PartialEq)]
pub enum Packed {
    Text(String),
    Compressed(Vec<u8>),
}

impl Packed {
    pub fn value(&self) -> Value<'_> {
        match self {
            Packed::Text(text) => Value::Text(text),
            Packed::Compressed(bytes) => Value::Blob(bytes),
        }
    }
}

/// `json` as it is stored on a database of `dialect`.
pub fn pack(dialect: Dialect, json: &str) -> Result<Packed> {
    if dialect == Dialect::Postgres {
        return Ok(Packed::Text(json.to_owned()));
    }
    COMPRESSOR.with_borrow_mut(|slot| {
        let compressor = match slot {
            Some(compressor) => compressor,
            None => slot.insert(zstd::bulk::Compressor::new(LEVEL)?),
        };
        Ok(Packed::Compressed(compressor.compress(json.as_bytes())?))
    })
}

/// A stored body as JSON text, whichever way it was stored; `None` for none.
pub fn unpack(value: Value<'_>) -> Result<Option<String>> {
    let bytes = match value {
        Value::Null => return Ok(None),
        Value::Text(text) => return Ok(Some(text.to_string())),
        Value::Blob(bytes) => bytes,
        other => bail!("an event's body is stored as {other:?}, neither text nor compressed"),
    };
    let json = DECOMPRESSOR.with_borrow_mut(|slot| -> Result<Vec<u8>> {
        let decompressor = match slot {
            Some(decompressor) => decompressor,
            None => slot.insert(zstd::bulk::Decompressor::new()?),
        };
        Ok(decompressor.decompress(bytes, MAX_UNPACKED)?)
    });
    let json = json.context("an event's stored body cannot be decompressed")?;
    String::from_utf8(json)
        .map(Some)
        .context("an event's stored body is not UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_reads_back_as_written_on_either_database_and_old_text_reads_as_it_is() {
        let json = r#"{"replica":{"summary":"a summary","labels":["a","a","a","a","a","a"]}}"#;
        let packed = pack(Dialect::Sqlite, json).unwrap();
        let Value::Blob(bytes) = packed.value() else {
            panic!("SQLite stores bodies compressed");
        };
        assert!(bytes.len() < json.len());
        assert_eq!(unpack(packed.value()).unwrap().as_deref(), Some(json));

        let packed = pack(Dialect::Postgres, json).unwrap();
        assert_eq!(packed.value(), Value::Text(json));
        assert_eq!(unpack(packed.value()).unwrap().as_deref(), Some(json));

        assert_eq!(unpack(Value::Null).unwrap(), None);
    }

    #[test]
    fn a_damaged_body_is_an_error_not_a_panic() {
        let error = unpack(Value::Blob(b"not zstd at all")).unwrap_err();
        assert!(
            format!("{error:#}").contains("cannot be decompressed"),
            "{error:#}"
        );
        let error = unpack(Value::Int(7)).unwrap_err();
        assert!(error.to_string().contains("neither text nor compressed"));
    }
}
