//! A member of an embedded consumer group.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use super::{store, Shared};
use futures::future::BoxFuture;

use crate::port::{Consumer, ConsumerOptions, PartitionLag, StartFrom};
use crate::record::Message;
use crate::Result;

/// Batches read per fetch (each holds up to one writer transaction's records of a partition).
const FETCH_BATCHES: i64 = 4;

/// Poll interval of a consumer on a read-only bus.
const READ_ONLY_POLL: std::time::Duration = std::time::Duration::from_millis(100);

pub(crate) struct EmbeddedConsumer {
    shared: Arc<Shared>,
    group: String,
    member: u64,
    options: ConsumerOptions,
    log_rx: watch::Receiver<u64>,
    group_rx: watch::Receiver<u64>,
    /// Generation of the assignment in use; `None` before the first.
    generation: Option<u64>,
    assigned: Vec<(String, i32)>,
    /// Next offset to fetch per assigned partition.
    positions: HashMap<(String, i32), i64>,
    /// Where each assigned partition started at the last assignment.
    initial: HashMap<(String, i32), i64>,
    buffer: VecDeque<Message>,
    /// Next offset to commit per partition (stored, not yet committed).
    stored: HashMap<(String, i32), i64>,
    dirty: bool,
    last_commit: Instant,
    cursor: usize,
    /// A membership change was seen and must be looked at.
    check_group: bool,
    left: bool,
}

impl EmbeddedConsumer {
    pub(crate) fn new(
        shared: Arc<Shared>,
        group: String,
        member: u64,
        options: ConsumerOptions,
    ) -> Self {
        let log_rx = shared.log_version.subscribe();
        let group_rx = shared.group_version.subscribe();
        Self {
            shared,
            group,
            member,
            options,
            log_rx,
            group_rx,
            generation: None,
            assigned: Vec::new(),
            positions: HashMap::new(),
            initial: HashMap::new(),
            buffer: VecDeque::new(),
            stored: HashMap::new(),
            dirty: false,
            last_commit: Instant::now(),
            cursor: 0,
            check_group: true,
            left: false,
        }
    }

    /// Follows a membership change: commit, then take the new assignment.
    async fn rebalance(&mut self) -> Result<()> {
        self.group_rx.borrow_and_update();
        let (generation, assigned) = self.shared.assignment(&self.group, self.member);
        if Some(generation) == self.generation {
            return Ok(());
        }
        self.commit_now().await?;
        // Rewind retained partitions to their first unreturned buffered message.
        let mut positions = HashMap::new();
        for tp in &assigned {
            let buffered_min = self
                .buffer
                .iter()
                .filter(|m| m.topic == tp.0 && m.partition == tp.1)
                .map(|m| m.offset)
                .min();
            let pos = match (buffered_min, self.positions.get(tp)) {
                (Some(o), _) => o,
                (None, Some(p)) => *p,
                (None, None) => {
                    match store::committed(&self.shared.pool, &self.group, &tp.0, tp.1).await? {
                        Some(o) => o,
                        None => match self.options.start_from {
                            StartFrom::Earliest => 0,
                            StartFrom::Latest => {
                                store::end_offset(&self.shared.pool, &tp.0, tp.1).await?
                            }
                        },
                    }
                }
            };
            positions.insert(tp.clone(), pos);
        }
        tracing::debug!(group = %self.group, member = self.member, generation, partitions = ?assigned, "embedded consumer assignment");
        self.buffer.clear();
        self.stored.retain(|tp, _| assigned.contains(tp));
        self.initial.clone_from(&positions);
        self.positions = positions;
        self.assigned = assigned;
        self.generation = Some(generation);
        Ok(())
    }

    async fn commit_now(&mut self) -> Result<()> {
        if self.dirty && self.shared.read_only {
            return Err(self.shared.refuse("commit offsets"));
        }
        if self.dirty {
            store::commit(&self.shared.pool, &self.group, &self.stored).await?;
            self.dirty = false;
        }
        self.last_commit = Instant::now();
        Ok(())
    }

    /// How long to wait for new records before looking again. A read-only
    /// bus is not woken by the writing process, so it polls.
    fn idle_wait(&self) -> std::time::Duration {
        if self.shared.read_only {
            self.options.commit_interval.min(READ_ONLY_POLL)
        } else {
            self.options.commit_interval
        }
    }

    /// Fetches from the next partition (round-robin) that has data.
    async fn fetch(&mut self) -> Result<bool> {
        let n = self.assigned.len();
        for i in 0..n {
            let idx = (self.cursor + i) % n;
            let (topic, partition) = self.assigned[idx].clone();
            let from = self
                .positions
                .get(&(topic.clone(), partition))
                .copied()
                .unwrap_or(0);
            let msgs =
                store::fetch(&self.shared.pool, &topic, partition, from, FETCH_BATCHES).await?;
            if let Some(last) = msgs.last() {
                self.positions.insert((topic, partition), last.offset + 1);
                self.buffer.extend(msgs);
                self.cursor = idx + 1;
                return Ok(true);
            }
        }
        Ok(false)
    }
}

#[async_trait::async_trait]
impl Consumer for EmbeddedConsumer {
    async fn recv(&mut self) -> Result<Message> {
        loop {
            if self.check_group || self.group_rx.has_changed().unwrap_or(false) {
                self.rebalance().await?;
                self.check_group = false;
            }
            if self.dirty && self.last_commit.elapsed() >= self.options.commit_interval {
                self.commit_now().await?;
            }
            if let Some(m) = self.buffer.pop_front() {
                return Ok(m);
            }
            self.log_rx.borrow_and_update();
            if self.fetch().await? {
                continue;
            }
            let idle = self.idle_wait();
            tokio::select! {
                _ = self.log_rx.changed() => {}
                _ = self.group_rx.changed() => self.check_group = true,
                () = tokio::time::sleep(idle) => {}
            }
        }
    }

    fn store(&mut self, message: &Message) -> Result<()> {
        let tp = (message.topic.clone(), message.partition);
        if self.assigned.contains(&tp) {
            self.stored.insert(tp, message.offset + 1);
            self.dirty = true;
        }
        Ok(())
    }

    async fn commit(&mut self) -> Result<()> {
        self.commit_now().await
    }

    fn assignment(&self) -> Vec<(String, i32)> {
        self.assigned.clone()
    }

    fn lag(&self) -> BoxFuture<'static, Result<Vec<PartitionLag>>> {
        let shared = self.shared.clone();
        let group = self.group.clone();
        let parts: Vec<((String, i32), Option<i64>, i64)> = self
            .assigned
            .iter()
            .map(|tp| {
                let start = self.initial.get(tp).copied().unwrap_or(0);
                (tp.clone(), self.stored.get(tp).copied(), start)
            })
            .collect();
        Box::pin(async move {
            let mut out = Vec::with_capacity(parts.len());
            for ((topic, partition), stored, start) in parts {
                let (low, end_offset) = store::watermarks(&shared.pool, &topic, partition).await?;
                let position = match stored {
                    Some(o) => o,
                    None => store::committed(&shared.pool, &group, &topic, partition)
                        .await?
                        .unwrap_or(start),
                };
                out.push(PartitionLag {
                    topic,
                    partition,
                    end_offset,
                    // Retention may have deleted records the group never read.
                    position: position.max(low),
                });
            }
            Ok(out)
        })
    }

    async fn close(mut self: Box<Self>) -> Result<()> {
        let res = self.commit_now().await;
        self.shared.leave(&self.group, self.member);
        self.left = true;
        res
    }
}

impl Drop for EmbeddedConsumer {
    fn drop(&mut self) {
        if !self.left {
            self.shared.leave(&self.group, self.member);
        }
    }
}
