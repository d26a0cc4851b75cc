//! Typed access to the database: a [`Reader`] pool, a [`Writer`] pool and
//! [`Tx`] transactions.
//!
//! Store functions say what they need in their signature: `impl Read` for
//! queries (a `&Reader`, a `&Writer` or a `&mut Tx`) and `impl Write` for
//! statements that change data (a `&Writer` or a `&mut Tx`, never a
//! reader). On SQLite the writer is one connection, so writes queue
//! in-process instead of sleeping in SQLite's busy handler; on PostgreSQL
//! both are the same pool. The compiler, not a convention, keeps writes off
//! the reader pool.

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use sqlx::any::{AnyQueryResult, AnyRow, AnyStatement, AnyTypeInfo};
use sqlx::{Any, AnyConnection, AnyPool, Describe, Either, Execute, Executor, Transaction};

use super::StoreError;

/// The pool for queries.
#[derive(Clone, Debug)]
pub struct Reader(pub(super) AnyPool);

/// The pool every write goes through (one connection on SQLite).
#[derive(Clone, Debug)]
pub struct Writer(pub(super) AnyPool);

/// An open transaction on the writer. Dropped without [`Tx::commit`], it
/// rolls back: a multi-step write either happens whole or not at all.
pub struct Tx(Transaction<'static, Any>);

impl Writer {
    /// Start a transaction. While it is open it holds the writer connection
    /// (SQLite), so do every write and read of the operation through it.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(Tx(self.0.begin().await?))
    }
}

impl Tx {
    pub async fn commit(self) -> Result<(), StoreError> {
        Ok(self.0.commit().await?)
    }
    /// Explicit rollback (dropping the transaction does the same).
    pub async fn rollback(self) -> Result<(), StoreError> {
        Ok(self.0.rollback().await?)
    }
}

/// Where one statement runs: a pool or the connection of a transaction.
#[derive(Debug)]
pub enum Exec<'c> {
    Pool(&'c AnyPool),
    Conn(&'c mut AnyConnection),
}

/// Something queries can run on: `&Reader`, `&Writer` or `&mut Tx`.
pub trait Read: Send {
    fn exec(&mut self) -> Exec<'_>;
}

/// Something writes can run on: `&Writer` or `&mut Tx` (never a reader).
pub trait Write: Read {}

impl Read for &Reader {
    fn exec(&mut self) -> Exec<'_> {
        Exec::Pool(&self.0)
    }
}

impl Read for &Writer {
    fn exec(&mut self) -> Exec<'_> {
        Exec::Pool(&self.0)
    }
}

impl Read for &mut Tx {
    fn exec(&mut self) -> Exec<'_> {
        Exec::Conn(&mut self.0)
    }
}

impl Write for &Writer {}
impl Write for &mut Tx {}

impl<'c> Executor<'c> for Exec<'c> {
    type Database = Any;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        match self {
            Exec::Pool(p) => p.fetch_many(query),
            Exec::Conn(c) => c.fetch_many(query),
        }
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<AnyRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        match self {
            Exec::Pool(p) => p.fetch_optional(query),
            Exec::Conn(c) => c.fetch_optional(query),
        }
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [AnyTypeInfo],
    ) -> BoxFuture<'e, Result<AnyStatement<'q>, sqlx::Error>>
    where
        'c: 'e,
    {
        match self {
            Exec::Pool(p) => p.prepare_with(sql, parameters),
            Exec::Conn(c) => c.prepare_with(sql, parameters),
        }
    }

    fn describe<'e, 'q: 'e>(self, sql: &'q str) -> BoxFuture<'e, Result<Describe<Any>, sqlx::Error>>
    where
        'c: 'e,
    {
        match self {
            Exec::Pool(p) => p.describe(sql),
            Exec::Conn(c) => c.describe(sql),
        }
    }
}
