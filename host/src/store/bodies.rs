//! JSON the node stores packed. What an event carries (the message received, what its
//! processor was given) is kilobytes, written once and read back rarely (to process the
//! event, for a replay, to recognise a redelivery); it was most of a node's database, and a
//! node keeps its events for `keep-events-days`. A twin's replicas, merge base and stamps,
//! its issue's stamps (`twins.rs`) and the messages in the outbox (`outbox.rs`) are the same
//! kind of JSON, rewritten or written and deleted by every event of the twin.
//!
//! On SQLite they are stored compressed (zstd at its fastest regular level), so that a node's
//! database with a million twins stays a fraction of the OS page cache and each event writes
//! fewer pages to the log. PostgreSQL compresses values this size itself (TOAST), so there
//! they stay text.
//!
//! Compression uses a dictionary trained on such bodies (`bodies.dict`, made by
//! `scripts/train-bodies-dictionary`). A body of a few kilobytes is too short for zstd to
//! learn much from itself: with no dictionary it built its entropy tables afresh for every
//! body, about a tenth of a busy node's instructions. The dictionary brings the tables and
//! the JSON the contract repeats (keys, stamps, context): on the throughput bench's bodies
//! they are 3 to 4 times smaller again, on the demo's 1.4 to 2.3 times, and compressing
//! takes a third of the instructions (BENCHMARKS.md, "Events' bodies compressed with a
//! trained dictionary").
//!
//! Each body carries a checksum of its text, so that a damaged one is an error rather
//! than other text.
//!
//! Text stored by earlier versions reads as it is; what this version compresses, earlier
//! versions cannot read (event bodies since the dictionary, twins and outbox messages since
//! they were compressed too): going back to an earlier version means going back to a copy
//! of the database made before.

use std::cell::RefCell;
use std::io;
use std::sync::LazyLock;
use std::thread::LocalKey;

use anyhow::{Context, Result, bail};
use zstd::dict::{DecoderDictionary, EncoderDictionary};

use super::sql::{Dialect, Value};

/// zstd's fastest regular level: most of the gain of higher levels on JSON for a fraction
/// of their time.
const LEVEL: i32 = 1;

/// No body grows past this when unpacked: a damaged value cannot make the node allocate
/// without bound. Far above anything stored: messages are at most 4 MiB on the wire, and a
/// processor's input holds three issues within the limits of one.
const MAX_UNPACKED: usize = 256 << 20;

/// The dictionary bodies are compressed with. Each compressed body names it by its id, and
/// is read back with it, so a dictionary in use is never changed: a better one would be
/// added beside it with a new id, and this one kept to read what it compressed. Bodies
/// stored before it existed name none and read without one.
const DICTIONARY: &[u8] = include_bytes!("bodies.dict");
const DICTIONARY_ID: u32 = 0x7473_0001;

// Prepared once per process: preparing costs more than compressing a few bodies.
static ENCODER: LazyLock<EncoderDictionary<'static>> =
    LazyLock::new(|| EncoderDictionary::copy(DICTIONARY, LEVEL));
static DECODER: LazyLock<DecoderDictionary<'static>> =
    LazyLock::new(|| DecoderDictionary::copy(DICTIONARY));

thread_local! {
    // A context per thread, reused: setting one up costs more than compressing a body.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
    // For bodies stored before the dictionary.
    static PLAIN_DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// A body ready to be bound as a statement's parameter. Packed before the transaction
/// that stores it, by the thread that made it: compressing a processor's input is
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
    let make = || {
        let mut compressor = zstd::bulk::Compressor::with_prepared_dictionary(&ENCODER)?;
        compressor.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))?;
        Ok(compressor)
    };
    let bytes = with_reused(&COMPRESSOR, make, |compressor| {
        compressor.compress(json.as_bytes())
    })?;
    Ok(Packed::Compressed(bytes))
}

/// A stored body as JSON text, whichever way it was stored; `None` for none.
pub fn unpack(value: Value<'_>) -> Result<Option<String>> {
    let bytes = match value {
        Value::Null => return Ok(None),
        Value::Text(text) => return Ok(Some(text.to_string())),
        // Every frame, even of empty text, has a few bytes: none is a damaged body.
        Value::Blob([]) => bail!("a stored body is empty"),
        Value::Blob(bytes) => bytes,
        other => bail!("a body is stored as {other:?}, neither text nor compressed"),
    };
    // The frame names its dictionary. zstd refuses a frame that names another one, but
    // cannot tell whether one that names none was made with a dictionary: decode those
    // without, so that a damaged one cannot reach into the dictionary.
    let decompress =
        |decompressor: &mut zstd::bulk::Decompressor| decompressor.decompress(bytes, MAX_UNPACKED);
    let json = match zstd::zstd_safe::get_dict_id_from_frame(bytes) {
        None => with_reused(
            &PLAIN_DECOMPRESSOR,
            zstd::bulk::Decompressor::new,
            decompress,
        ),
        Some(id) if id.get() == DICTIONARY_ID => with_reused(
            &DECOMPRESSOR,
            || zstd::bulk::Decompressor::with_prepared_dictionary(&DECODER),
            decompress,
        ),
        Some(id) => bail!(
            "a stored body names zstd dictionary {id}, which this version of \
             twinsync does not have (a later version's, or the body is damaged)"
        ),
    };
    let json = json.context("a stored body cannot be decompressed")?;
    String::from_utf8(json)
        .map(Some)
        .context("a stored body is not UTF-8")
}

/// `work` with this thread's context in `slot`, made by `make` the first time.
fn with_reused<C: 'static, R>(
    slot: &'static LocalKey<RefCell<Option<C>>>,
    make: impl FnOnce() -> io::Result<C>,
    work: impl FnOnce(&mut C) -> io::Result<R>,
) -> io::Result<R> {
    slot.with_borrow_mut(|slot| {
        let context = match slot {
            Some(context) => context,
            None => slot.insert(make()?),
        };
        work(context)
    })
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
        let named = zstd::zstd_safe::get_dict_id_from_frame(bytes).map(|id| id.get());
        assert_eq!(named, Some(DICTIONARY_ID), "a body names its dictionary");
        // The frame header's descriptor: bit 2, a checksum of the content follows it.
        assert_ne!(bytes[4] & 0b100, 0, "a body carries its checksum");
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
        let error = unpack(Value::Blob(&[])).unwrap_err();
        assert!(error.to_string().contains("is empty"), "{error:#}");

        // One byte of a body's compressed content changed: its checksum no longer matches.
        let json = r#"{"replica":{"summary":"a summary that is long enough to compress"}}"#;
        let Packed::Compressed(mut bytes) = pack(Dialect::Sqlite, json).unwrap() else {
            panic!("SQLite stores bodies compressed");
        };
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        let read = unpack(Value::Blob(&bytes));
        assert!(read.is_err(), "a damaged body read as {read:?}");
    }

    #[test]
    fn the_dictionary_is_the_one_its_id_names() {
        let id = zstd::zstd_safe::get_dict_id_from_dict(DICTIONARY).map(|id| id.get());
        assert_eq!(id, Some(DICTIONARY_ID));
    }

    #[test]
    fn a_body_stored_before_the_dictionary_still_reads() {
        let json = r#"{"replica":{"summary":"stored by an earlier version"}}"#;
        let plain = zstd::bulk::compress(json.as_bytes(), LEVEL).unwrap();
        assert_eq!(zstd::zstd_safe::get_dict_id_from_frame(&plain), None);
        assert_eq!(unpack(Value::Blob(&plain)).unwrap().as_deref(), Some(json));
    }

    #[test]
    fn a_body_stored_with_this_dictionary_reads_forever() {
        // Packed by the version that brought the dictionary in. Should this fail, the
        // dictionary was changed under bodies already stored with it.
        const STORED: &[u8] = &[
            40, 181, 47, 253, 39, 1, 0, 115, 116, 72, 229, 0, 0, 48, 123, 55, 51, 34, 125, 125, 6,
            252, 53, 69, 135, 40, 43, 89, 238, 41, 79, 252, 110, 235, 94, 133, 88, 73, 180, 5, 40,
            105, 62, 15, 147,
        ];
        let json = r#"{"replica":{"key":"INT-7","summary":"issue 7 rev 3","labels":["bench"]}}"#;
        assert_eq!(unpack(Value::Blob(STORED)).unwrap().as_deref(), Some(json));
    }

    #[test]
    fn a_body_compressed_with_an_unknown_dictionary_is_a_clear_error() {
        // The same dictionary under another id, as a later version's would be.
        let mut other = DICTIONARY.to_vec();
        other[4..8].copy_from_slice(&0x7473_0002u32.to_le_bytes());
        let mut compressor = zstd::bulk::Compressor::with_dictionary(LEVEL, &other).unwrap();
        let bytes = compressor.compress(b"{}").unwrap();
        let error = unpack(Value::Blob(&bytes)).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("dictionary 1953693698, which this version"),
            "{error:#}"
        );
    }
}
