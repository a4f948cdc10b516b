//! What the SQL stores share: every unit of work, written once as plain generic Rust over a
//! [`Backend`], with its SQL and the way rows become domain values. One module per aggregate
//! ([`organizations`], [`credentials`], [`domains`], [`events`]), each holding its statements,
//! its units of work and its part of the contract, implemented for every backend.
//!
//! A unit of work loads what it needs, asks the lifecycle rule in `claimd-domain`, applies the
//! answer to the record in memory, writes it back by named columns and appends its event — all
//! inside the one transaction [`Backend::write`] runs it in.
//!
//! A backend supplies only what differs between databases: how one statement runs on its
//! driver, how a connection for reads is had, and how a unit of work runs as one transaction —
//! in a task the caller does not own, serialized against the other units it must not overlap
//! ([`Lock`]), answered once committed.

mod backend;
mod credentials;
mod domains;
mod events;
mod fleet;
mod organizations;
mod previews;
mod rechecks;
mod sessions;
mod statement;
mod users;
mod webhooks;

pub use backend::{Backend, BoxFuture, Db, Lock};
pub use domains::{MAX_NEW_RECORDS, NewRecord, insert_new_records};
pub use statement::{
    Dialect, Row, Statement, Value, bulk_insert_sql, corrupt, insert_sql, query, update_sql,
};
