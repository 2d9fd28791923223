//! One chunk, copied: its batches streamed into one binary COPY, and its checkpoint row
//! committed in the same transaction. When PostgreSQL refuses a row, the chunk is copied
//! again carefully, in small batches under savepoints, halving around each refused row
//! until it stands alone and is rejected with PostgreSQL's reason.

use std::ops::Range;
use std::sync::atomic::Ordering;
use std::time::Instant;

use sqlx::postgres::PgConnection;
use tokio::sync::oneshot;

use super::reader::{Batch, Chunk, Cursor, TableReader, TableSpec};
use super::scheduler::{Shared, TableJob};
use crate::bookkeeping::{self, RejectRow};
use crate::encode;
use crate::error::{Result, TransferError};
use crate::ident::qualified;
use crate::pg::{self, classify, describe, error_column, Connector, ErrorClass};

enum ChunkError {
    Pg(sqlx::Error),
    Fatal(TransferError),
}

impl From<sqlx::Error> for ChunkError {
    fn from(e: sqlx::Error) -> Self {
        ChunkError::Pg(e)
    }
}

pub(crate) async fn copy_chunk(
    shared: &Shared,
    conn: &mut Option<PgConnection>,
    job: &TableJob,
    reader: &TableReader,
    chunk: Chunk,
) -> Result<()> {
    let table = &job.spec.plan.source;
    let (lo, hi) = chunk.bounds();
    let context = format!("copying table {table:?} rowids {lo}..={hi}");
    let policy = shared.pg.retry;
    let started = Instant::now();
    let mut attempt = 1;
    let mut careful = false;
    loop {
        let c = match conn.take() {
            Some(c) => conn.insert(c),
            None => conn.insert(shared.pg.connect(&context).await?),
        };
        let mut counted = (0u64, 0u64);
        match copy_chunk_once(shared, c, job, reader, chunk, careful, &mut counted).await {
            Ok(()) => return Ok(()),
            Err(ChunkError::Fatal(e)) => return Err(e),
            Err(ChunkError::Pg(e)) => {
                job.bar.undo(counted.0, counted.1);
                match classify(&e) {
                    ErrorClass::Connection => {
                        if let Some(broken) = conn.take() {
                            Connector::close(broken).await;
                        }
                        if attempt >= policy.attempts {
                            return Err(TransferError::Unreachable {
                                url: shared.pg.url.to_string(),
                                context,
                                attempts: attempt,
                                seconds: started.elapsed().as_secs_f64(),
                                message: describe(&e),
                            });
                        }
                        attempt += 1;
                        tracing::warn!(table = %table, lo, hi, attempt, "connection lost ({}); retrying the chunk", describe(&e));
                        tokio::time::sleep(policy.backoff(attempt)).await;
                    }
                    ErrorClass::Data if !careful => {
                        tracing::info!(table = %table, lo, hi, "PostgreSQL refused a row ({}); isolating it", describe(&e));
                        let _ = pg::exec(&mut *c, "ROLLBACK").await;
                        careful = true;
                    }
                    _ => {
                        let _ = pg::exec(&mut *c, "ROLLBACK").await;
                        return Err(shared.pg.err(context, &e));
                    }
                }
            }
        }
    }
}

async fn next_batch(
    rx: oneshot::Receiver<std::result::Result<Batch, String>>,
    table: &str,
) -> std::result::Result<Batch, ChunkError> {
    match rx.await {
        Ok(Ok(b)) => Ok(b),
        Ok(Err(msg)) => Err(ChunkError::Fatal(TransferError::Inconsistent {
            table: table.to_owned(),
            message: msg,
        })),
        Err(_) => Err(ChunkError::Fatal(TransferError::Inconsistent {
            table: table.to_owned(),
            message: "the SQLite reader thread stopped".into(),
        })),
    }
}

/// A boxed `Send` future: spelling the type out lets the compiler prove `Send` for the
/// borrowed connection (sqlx's executor bounds otherwise defeat its inference).
pub(crate) type BoxFut<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

fn copy_chunk_once<'a>(
    shared: &'a Shared,
    conn: &'a mut PgConnection,
    job: &'a TableJob,
    reader: &'a TableReader,
    chunk: Chunk,
    careful: bool,
    counted: &'a mut (u64, u64),
) -> BoxFut<'a, std::result::Result<(), ChunkError>> {
    Box::pin(copy_chunk_body(
        shared, conn, job, reader, chunk, careful, counted,
    ))
}

async fn copy_chunk_body(
    shared: &Shared,
    conn: &mut PgConnection,
    job: &TableJob,
    reader: &TableReader,
    chunk: Chunk,
    careful: bool,
    counted: &mut (u64, u64),
) -> std::result::Result<(), ChunkError> {
    let spec = &job.spec;
    let table = &spec.plan.source;
    let schema = &shared.pg.schema;
    let (lo, hi) = chunk.bounds();
    let started = Instant::now();
    pg::exec(&mut *conn, "BEGIN").await?;
    // A previous attempt may have committed before its connection died.
    let exists: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT rows FROM {} WHERE source_table = $1 AND lo = $2",
        qualified(schema, bookkeeping::CHECKPOINTS)
    ))
    .bind(table)
    .bind(lo)
    .fetch_optional(&mut *conn)
    .await?;
    if exists.is_some() {
        pg::exec(&mut *conn, "ROLLBACK").await?;
        return Ok(());
    }
    let mut rows = 0u64;
    let mut bytes = 0u64;
    let mut rejected = 0u64;
    let mut rejects: Vec<RejectRow> = Vec::new();
    if !careful {
        let mut copy = conn.copy_in_raw(&spec.copy_sql).await?;
        let mut acc = Tally::default();
        let streamed = stream_chunk(&mut copy, reader, chunk, job, &mut acc, counted).await;
        rows = acc.rows;
        bytes = acc.bytes;
        rejected = acc.rejected;
        rejects = acc.rejects;
        match streamed {
            Ok(()) => {
                copy.send(&encode::TRAILER[..]).await?;
                let n = copy.finish().await?;
                if n != rows {
                    return Err(ChunkError::Fatal(TransferError::Inconsistent {
                        table: table.clone(),
                        message: format!(
                            "PostgreSQL stored {n} rows of chunk {lo}..={hi}, ferry sent {rows}"
                        ),
                    }));
                }
            }
            Err(ChunkError::Fatal(e)) => {
                let _ = copy.abort("ferry stopped reading the source").await;
                let _ = pg::exec(&mut *conn, "ROLLBACK").await;
                return Err(ChunkError::Fatal(e));
            }
            Err(ChunkError::Pg(e)) => return Err(ChunkError::Pg(e)),
        }
    } else {
        let mut cursor = Cursor::Start;
        loop {
            let batch = next_batch(reader.request(chunk, cursor.clone(), true), table).await?;
            rejected += batch.rejected_rows;
            rejects.extend(batch.rejects.iter().cloned());
            let (loaded, refused) = copy_isolating(conn, spec, &batch, &mut rejects).await?;
            rows += loaded;
            rejected += refused;
            bytes += batch.data.len() as u64;
            job.bar
                .add(batch.rows + batch.rejected_rows, batch.data.len() as u64);
            counted.0 += batch.rows + batch.rejected_rows;
            counted.1 += batch.data.len() as u64;
            match batch.next {
                Some(n) => cursor = n,
                None => break,
            }
        }
    }
    sqlx::query(&format!(
        "INSERT INTO {} (source_table, lo, hi, rows, bytes, rejected_rows, seconds) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        qualified(schema, bookkeeping::CHECKPOINTS)
    ))
    .bind(table)
    .bind(lo)
    .bind(hi)
    .bind(rows as i64)
    .bind(bytes as i64)
    .bind(rejected as i64)
    .bind(started.elapsed().as_secs_f64())
    .execute(&mut *conn)
    .await?;
    if !rejects.is_empty() {
        let col = |f: fn(&RejectRow) -> String| rejects.iter().map(f).collect::<Vec<String>>();
        sqlx::query(&format!(
            "INSERT INTO {} (source_table, chunk_lo, kind, row_key, column_name, reason, bytes_hex)
             SELECT $1, $2, * FROM UNNEST($3::text[], $4::text[], $5::text[], $6::text[], $7::text[])",
            qualified(schema, bookkeeping::REJECTS)
        ))
        .bind(table)
        .bind(lo)
        .bind(col(|r| r.kind.clone()))
        .bind(col(|r| r.key.clone()))
        .bind(col(|r| r.column.clone()))
        .bind(col(|r| r.reason.clone()))
        .bind(rejects.iter().map(|r| r.bytes_hex.clone()).collect::<Vec<Option<String>>>())
        .execute(&mut *conn)
        .await?;
    }
    pg::exec(&mut *conn, "COMMIT").await?;
    job.rows.fetch_add(rows, Ordering::SeqCst);
    job.rejected.fetch_add(rejected, Ordering::SeqCst);
    Ok(())
}

/// What a chunk has sent so far.
#[derive(Default)]
struct Tally {
    rows: u64,
    bytes: u64,
    rejected: u64,
    rejects: Vec<RejectRow>,
}

/// Streams a chunk's batches into an open COPY, reading the next batch while one travels.
async fn stream_chunk(
    copy: &mut sqlx::postgres::PgCopyIn<&mut PgConnection>,
    reader: &TableReader,
    chunk: Chunk,
    job: &TableJob,
    acc: &mut Tally,
    counted: &mut (u64, u64),
) -> std::result::Result<(), ChunkError> {
    let table = &job.spec.plan.source;
    copy.send(encode::HEADER).await?;
    let mut pending = Some(reader.request(chunk, Cursor::Start, false));
    while let Some(rx) = pending.take() {
        let batch = next_batch(rx, table).await?;
        if let Some(n) = &batch.next {
            pending = Some(reader.request(chunk, n.clone(), false));
        }
        if !batch.data.is_empty() {
            copy.send(batch.data.as_slice()).await?;
        }
        acc.rows += batch.rows;
        acc.bytes += batch.data.len() as u64;
        acc.rejected += batch.rejected_rows;
        acc.rejects.extend(batch.rejects);
        job.bar
            .add(batch.rows + batch.rejected_rows, batch.data.len() as u64);
        counted.0 += batch.rows + batch.rejected_rows;
        counted.1 += batch.data.len() as u64;
    }
    Ok(())
}

/// One COPY of already encoded rows.
async fn copy_bytes(
    conn: &mut PgConnection,
    sql: &str,
    rows: &[u8],
) -> std::result::Result<u64, sqlx::Error> {
    let mut copy = conn.copy_in_raw(sql).await?;
    copy.send(encode::HEADER).await?;
    copy.send(rows).await?;
    copy.send(&encode::TRAILER[..]).await?;
    copy.finish().await
}

/// Copies a careful batch under savepoints, halving around rows PostgreSQL refuses until
/// each refused row stands alone; returns rows loaded and rows refused.
fn copy_isolating<'a>(
    conn: &'a mut PgConnection,
    spec: &'a TableSpec,
    batch: &'a Batch,
    rejects: &'a mut Vec<RejectRow>,
) -> BoxFut<'a, std::result::Result<(u64, u64), ChunkError>> {
    Box::pin(copy_isolating_body(conn, spec, batch, rejects))
}

async fn copy_isolating_body(
    conn: &mut PgConnection,
    spec: &TableSpec,
    batch: &Batch,
    rejects: &mut Vec<RejectRow>,
) -> std::result::Result<(u64, u64), ChunkError> {
    let mut loaded = 0;
    let mut refused = 0;
    let n = batch.row_ends.len();
    let mut stack: Vec<Range<usize>> = Vec::new();
    if n > 0 {
        stack.push(0..n);
    }
    let start_of = |i: usize| if i == 0 { 0 } else { batch.row_ends[i - 1] };
    while let Some(range) = stack.pop() {
        pg::exec(&mut *conn, "SAVEPOINT ferry_rows").await?;
        let bytes = &batch.data[start_of(range.start)..batch.row_ends[range.end - 1]];
        let res = copy_bytes(conn, &spec.copy_sql, bytes).await;
        match res {
            Ok(_) => {
                pg::exec(&mut *conn, "RELEASE SAVEPOINT ferry_rows").await?;
                loaded += range.len() as u64;
            }
            Err(e) if classify(&e) == ErrorClass::Data => {
                pg::exec(
                    &mut *conn,
                    "ROLLBACK TO SAVEPOINT ferry_rows; RELEASE SAVEPOINT ferry_rows",
                )
                .await?;
                if range.len() == 1 {
                    refused += 1;
                    let column = error_column(&e).and_then(|target| {
                        spec.plan
                            .columns
                            .iter()
                            .find(|c| c.target == target)
                            .map(|c| c.source.clone())
                    });
                    rejects.push(RejectRow {
                        table: spec.plan.source.clone(),
                        kind: "reject".into(),
                        key: batch.row_keys[range.start].clone(),
                        column: column.unwrap_or_default(),
                        reason: format!("PostgreSQL refused the row: {}", describe(&e)),
                        bytes_hex: None,
                    });
                } else {
                    let mid = range.start + range.len() / 2;
                    // Pushed in reverse so rows are tried in order.
                    stack.push(mid..range.end);
                    stack.push(range.start..mid);
                }
            }
            Err(e) => return Err(ChunkError::Pg(e)),
        }
    }
    Ok((loaded, refused))
}
