//! The reference tracker: a small issue tracker that implements [`Tracker`](super::Tracker)
//! with every field of the contract. The demo and the tests run on it; it is also the model
//! for embedding twinsync in a real tracker. It comes in two storages with one behaviour
//! ([`rows`]): one SQLite file for a single machine, and PostgreSQL for several processes
//! sharing one tracker.

mod postgres;
mod rows;
mod sqlite;

pub use postgres::PostgresTracker;
pub use sqlite::ReferenceTracker;
