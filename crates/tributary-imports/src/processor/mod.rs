//! The processor (`imports-processor`): consumer group on the files topic.
//! For each `FileExtractSuccess` it streams the stored body back (memory
//! bounded by one batch of records, whatever the file size), splits it,
//! validates every record against its kind's rules and loads each batch
//! in ONE transaction: the valid rows (upsert by natural key), the
//! rejected records, one `ValidationError` per rejected record into the
//! outbox, and the upload's checkpoint. The end (`completed` and
//! `ImportCompleted`) is one more transaction.
//!
//! Guarantees:
//! - the offset is stored only after the upload's final state is durable
//!   (the bus runner stores it when [`Processor::handle`] returns `Ok`);
//! - a crash (or a backend failure, retried with backoff while the
//!   partition waits) resumes from the checkpoint: the records of a
//!   committed batch are neither loaded nor reported twice, and a batch
//!   cut short by the crash committed nothing;
//! - two runs of one upload (a rebalance) cannot both apply a batch: the
//!   checkpoint update is conditional on the checkpoint the batch started
//!   from, so the later one stops;
//! - an event that is not a `FileExtractSuccess` of a known upload is
//!   poison: it goes to `<files topic>.dlq` and the partition moves on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt as _;
use tributary_bus::runner::{Handler, HandlerError};
use tributary_bus::Message;
use tributary_storage::Objects;

use crate::domain::body::{Record, Splitter};
use crate::domain::company::validate;
use crate::domain::rules::Violation;
use crate::events::{parse_file_event, FileExtractSuccess, ViolationView};
use crate::kinds::{judge_schema, Kind, Kinds};
use crate::metrics as m;
use crate::settings::ImportsSettings;
use crate::store::{state, Batch, CompanyRow, RecordError, UploadStore};

/// What processing one upload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Processed to its end now.
    Completed {
        /// Records loaded by this run.
        loaded: u64,
        /// Records rejected by this run.
        rejected: u64,
    },
    /// Marked failed (object gone, unknown kind, malformed stored body).
    Failed(String),
    /// Already finished (a redelivery), or another run got ahead.
    Skipped,
}

/// Readiness of the processor: red while an upload's processing fails on
/// a backend and is retried (the partition waits meanwhile).
#[derive(Clone, Debug, Default)]
pub struct ProcessorHealth {
    failing: Arc<AtomicBool>,
    reason: Arc<Mutex<String>>,
}

impl ProcessorHealth {
    fn set(&self, failure: Option<&str>) {
        if let Some(reason) = failure {
            if let Ok(mut r) = self.reason.lock() {
                reason.clone_into(&mut r);
            }
        }
        self.failing.store(failure.is_some(), Ordering::Relaxed);
    }

    /// Whether the last attempt failed on a backend.
    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }
}

#[async_trait::async_trait]
impl tributary_platform::HealthCheck for ProcessorHealth {
    fn name(&self) -> String {
        "imports processor".into()
    }
    async fn check(&self) -> Result<(), String> {
        if self.is_failing() {
            let reason = self.reason.lock().map(|r| r.clone()).unwrap_or_default();
            Err(format!(
                "processing fails on a backend and is retried: {reason}"
            ))
        } else {
            Ok(())
        }
    }
}

/// Why the reading half of [`Processor::process`] stopped early.
#[derive(Debug)]
enum ReadStop {
    /// A backend failed: run the upload again from its checkpoint.
    Retry(HandlerError),
    /// The stored body is not what the API accepted: the upload fails.
    Malformed(String),
}

/// The processor of one process. Cheap to share (`Arc`).
pub struct Processor {
    store: UploadStore,
    objects: Objects,
    settings: Arc<ImportsSettings>,
    kinds: Arc<Kinds>,
    health: ProcessorHealth,
}

impl std::fmt::Debug for Processor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Processor")
            .field("store", &self.store)
            .field("objects", &self.objects)
            .finish_non_exhaustive()
    }
}

fn retry(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::Retryable(e.to_string())
}

fn view(v: &Violation) -> ViolationView {
    ViolationView {
        pointer: v.pointer.clone(),
        rule: v.rule.to_owned(),
        value: v.value.clone(),
        message: v.message.clone(),
    }
}

/// Validates `records` of upload `request_id` (pure CPU): the rows to load
/// (the last record of a permalink wins within the batch), the rejected
/// records, and how many were valid.
pub fn judge(request_id: &str, records: Vec<Record>) -> (Vec<CompanyRow>, Vec<RecordError>, u64) {
    let mut rows: Vec<CompanyRow> = Vec::with_capacity(records.len());
    let mut at: HashMap<String, usize> = HashMap::with_capacity(records.len());
    let mut errors = Vec::new();
    let mut valid = 0u64;
    for r in records {
        let violations = match r.parse() {
            Ok(value) => match validate(&value) {
                Ok(company) => {
                    valid += 1;
                    let row = CompanyRow::new(company, request_id, r.index as u64);
                    match at.get(&row.permalink) {
                        Some(&i) => rows[i] = row,
                        None => {
                            at.insert(row.permalink.clone(), rows.len());
                            rows.push(row);
                        }
                    }
                    continue;
                }
                Err(v) => v,
            },
            Err(e) => vec![Violation::new(
                "",
                "type.document",
                &serde_json::Value::Null,
                format!("the record does not decode: {}", e.reason),
            )],
        };
        let views: Vec<ViolationView> = violations.iter().map(view).collect();
        let first = views.first().cloned().unwrap_or(ViolationView {
            pointer: String::new(),
            rule: "type.document".into(),
            value: String::new(),
            message: "invalid record".into(),
        });
        errors.push(RecordError {
            record: r.index as u64,
            line: r.line as u64,
            pointer: first.pointer,
            rule: first.rule,
            value: first.value,
            message: first.message,
            violations: views,
        });
    }
    (rows, errors, valid)
}

impl Processor {
    /// A processor over `store`, the imports `objects`, `settings` and the
    /// record `kinds`.
    pub fn new(
        store: UploadStore,
        objects: Objects,
        settings: Arc<ImportsSettings>,
        kinds: Arc<Kinds>,
    ) -> Self {
        Self {
            store,
            objects,
            settings,
            kinds,
            health: ProcessorHealth::default(),
        }
    }

    /// Its readiness check.
    pub fn health(&self) -> ProcessorHealth {
        self.health.clone()
    }

    /// Ends the upload as failed (with its `ImportCompleted`).
    async fn fail(
        &self,
        request_id: &str,
        kind: &str,
        reason: String,
    ) -> Result<Outcome, HandlerError> {
        tracing::warn!(request_id, %reason, "upload failed");
        self.store
            .finish(request_id, Some(&reason))
            .await
            .map_err(retry)?;
        metrics::counter!(m::PROCESSED, "kind" => kind.to_owned(), "outcome" => "failed")
            .increment(1);
        Ok(Outcome::Failed(reason))
    }

    /// Validates one batch of records (pure CPU, on a blocking thread).
    async fn prepare(
        &self,
        event: &FileExtractSuccess,
        from: u64,
        records: Vec<Record>,
    ) -> Result<Batch, HandlerError> {
        let to = from + records.len() as u64;
        let id = event.request_id.clone();
        let kinds = self.kinds.clone();
        let kind = event.kind.clone();
        let (companies, rows, errors, valid) =
            tokio::task::spawn_blocking(move || match kinds.get(&kind) {
                Some(Kind::Schema(k)) => {
                    let (rows, errors, valid) = judge_schema(k, &id, records);
                    (Vec::new(), rows, errors, valid)
                }
                _ => {
                    let (companies, errors, valid) = judge(&id, records);
                    (companies, Vec::new(), errors, valid)
                }
            })
            .await
            .map_err(retry)?;
        Ok(Batch {
            companies,
            records: rows,
            errors,
            valid,
            from,
            to,
        })
    }

    /// Loads one validated batch; `false` when another run got ahead.
    async fn apply(
        &self,
        event: &FileExtractSuccess,
        batch: &Batch,
        totals: &mut (u64, u64),
    ) -> Result<bool, HandlerError> {
        let t0 = Instant::now();
        let applied = self
            .store
            .load_batch(&event.request_id, batch)
            .await
            .map_err(retry)?;
        metrics::histogram!(m::BATCH_SECONDS).record(t0.elapsed().as_secs_f64());
        if applied {
            let rejected = batch.errors.len() as u64;
            metrics::counter!(m::RECORDS_LOADED, "kind" => event.kind.clone())
                .increment(batch.valid);
            metrics::counter!(m::RECORDS_REJECTED, "kind" => event.kind.clone())
                .increment(rejected);
            totals.0 += batch.valid;
            totals.1 += rejected;
        }
        Ok(applied)
    }

    /// The reading half of [`Processor::process`]: streams the stored body,
    /// splits it and validates it batch by batch, handing each batch to
    /// `out` in order. It runs beside the loading half, so the next batch
    /// is read and validated while the database loads the previous one.
    /// Ends early (`Ok`) when the loader has stopped listening.
    async fn read_batches(
        &self,
        event: &FileExtractSuccess,
        mut stream: futures::stream::BoxStream<'static, tributary_storage::Result<bytes::Bytes>>,
        mut checkpoint: u64,
        out: tokio::sync::mpsc::Sender<Batch>,
    ) -> Result<(), ReadStop> {
        let mut splitter = Splitter::with_max_record(self.settings.max_record_bytes);
        let batch_size = self.settings.batch_size.max(1);
        let mut pending: Vec<Record> = Vec::with_capacity(batch_size);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ReadStop::Retry(retry(e)))?;
            let records = splitter
                .push(&chunk)
                .map_err(|e| ReadStop::Malformed(format!("stored body: {e}")))?;
            for r in records {
                if (r.index as u64) < checkpoint {
                    continue;
                }
                pending.push(r);
                if pending.len() >= batch_size {
                    let full = std::mem::replace(&mut pending, Vec::with_capacity(batch_size));
                    let n = full.len() as u64;
                    let batch = self
                        .prepare(event, checkpoint, full)
                        .await
                        .map_err(ReadStop::Retry)?;
                    if out.send(batch).await.is_err() {
                        return Ok(());
                    }
                    checkpoint += n;
                }
            }
        }
        splitter
            .finish()
            .map_err(|e| ReadStop::Malformed(format!("stored body: {e}")))?;
        if !pending.is_empty() {
            let batch = self
                .prepare(event, checkpoint, pending)
                .await
                .map_err(ReadStop::Retry)?;
            // A closed channel means the loader stopped; it says why.
            let _ = out.send(batch).await;
        }
        Ok(())
    }

    /// Processes one upload to its end (see the module docs).
    ///
    /// # Errors
    /// [`HandlerError::Retryable`] when a backend fails (run it again: it
    /// resumes from the checkpoint); [`HandlerError::Permanent`] when the
    /// upload does not exist.
    pub async fn process(&self, event: &FileExtractSuccess) -> Result<Outcome, HandlerError> {
        let Some(upload) = self
            .store
            .start_processing(&event.request_id)
            .await
            .map_err(retry)?
        else {
            return Err(HandlerError::Permanent(format!(
                "no upload {:?} (deleted, or an event from elsewhere)",
                event.request_id
            )));
        };
        if upload.state != state::PROCESSING {
            return Ok(Outcome::Skipped);
        }
        if self.kinds.get(&event.kind).is_none() {
            return self
                .fail(
                    &event.request_id,
                    &event.kind,
                    format!("unknown kind {:?}", event.kind),
                )
                .await;
        }
        let started = Instant::now();
        let stream = match self.objects.get_stream(&event.key).await {
            Ok(s) => s,
            Err(tributary_storage::Error::NotFound { .. }) => {
                return self
                    .fail(
                        &event.request_id,
                        &event.kind,
                        format!("the stored body {} is gone", event.key),
                    )
                    .await
            }
            Err(e) => return Err(retry(e)),
        };
        // Two halves side by side in this task: the reader validates batch
        // N+1 (on a blocking thread) while the loader's transaction of
        // batch N runs in the database. The channel holds one batch, so
        // memory stays bounded by about three batches.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Batch>(1);
        let reader = self.read_batches(event, stream, upload.processed, tx);
        // `move`: the receiver drops with the loader, so a loader that
        // stops early unblocks a reader waiting to send.
        let loader = async move {
            let mut totals = (0u64, 0u64);
            while let Some(batch) = rx.recv().await {
                if !self.apply(event, &batch, &mut totals).await? {
                    return Ok(None);
                }
            }
            Ok::<_, HandlerError>(Some(totals))
        };
        let (read, loaded) = tokio::join!(reader, loader);
        // The loader's stop comes first: its batches were read before any
        // later read failure.
        let Some(totals) = loaded? else {
            return Ok(Outcome::Skipped);
        };
        match read {
            Ok(()) => {}
            Err(ReadStop::Retry(e)) => return Err(e),
            Err(ReadStop::Malformed(reason)) => {
                return self.fail(&event.request_id, &event.kind, reason).await
            }
        }
        match self
            .store
            .finish(&event.request_id, None)
            .await
            .map_err(retry)?
        {
            Some(done) => {
                metrics::counter!(m::PROCESSED, "kind" => event.kind.clone(), "outcome" => "completed").increment(1);
                metrics::histogram!(m::PROCESSING_SECONDS, "kind" => event.kind.clone())
                    .record(started.elapsed().as_secs_f64());
                tracing::info!(request_id = %event.request_id, records = done.records, loaded = done.loaded,
                    rejected = done.rejected, duration_ms = done.duration_ms, "upload processed");
                Ok(Outcome::Completed {
                    loaded: totals.0,
                    rejected: totals.1,
                })
            }
            None => Ok(Outcome::Skipped),
        }
    }
}

#[async_trait::async_trait]
impl Handler for Processor {
    async fn handle(&self, message: &Message) -> Result<(), HandlerError> {
        let event = parse_file_event(&message.value).map_err(HandlerError::Permanent)?;
        let outcome = self.process(&event).await;
        match &outcome {
            Err(HandlerError::Retryable(reason)) => self.health.set(Some(reason)),
            _ => self.health.set(None),
        }
        outcome.map(|_| ())
    }
}
