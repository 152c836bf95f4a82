//! Usage delivery to usage-metering: batched, idempotent, and durable.
//!
//! Requests hand their usage event to a bounded queue and move on. A batcher
//! sends up to 100 events per `RecordUsage` call. Whatever metering does not
//! acknowledge is appended to a spool file (length + checksum framed, fsynced)
//! and replayed until acknowledged; metering deduplicates by generation id,
//! so replays are safe. A restart replays the spool first: nothing billable
//! is lost to a metering outage or a router restart.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use sha2::{Digest, Sha256};
use switchyard_kit::Shutdown;
use switchyard_kit::grpc::{InternalChannel, MAX_MESSAGE_BYTES};
use switchyard_proto::metering::v1::usage_metering_service_client::UsageMeteringServiceClient;
use switchyard_proto::metering::v1::{RecordUsageRequest, UsageEvent};
use tokio::sync::{Mutex, mpsc};

use crate::metrics::RouterMetrics;

const QUEUE: usize = 10_000;
const BATCH: usize = 100;
const LINGER: Duration = Duration::from_millis(20);
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
const REPLAY_EVERY: Duration = Duration::from_secs(1);

type Client = UsageMeteringServiceClient<InternalChannel>;

#[derive(Clone)]
pub struct UsageSink {
    tx: mpsc::Sender<UsageEvent>,
    spool: Arc<Spool>,
}

impl UsageSink {
    /// Starts the batcher and the spool replayer. The returned handle
    /// finishes after `shutdown`, once the queue is flushed or spooled.
    pub fn start(
        channel: InternalChannel,
        data_dir: &Path,
        shutdown: Shutdown,
        metrics: RouterMetrics,
    ) -> anyhow::Result<(UsageSink, tokio::task::JoinHandle<()>)> {
        let spool = Arc::new(Spool::open(&data_dir.join("usage-spool"), metrics)?);
        let client = UsageMeteringServiceClient::new(channel)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        let (tx, rx) = mpsc::channel(QUEUE);
        let handle = tokio::spawn(run(client, rx, spool.clone(), shutdown));
        Ok((UsageSink { tx, spool }, handle))
    }

    /// Hands one event over for delivery; never waits on the network.
    pub fn submit(&self, event: UsageEvent) {
        if let Err(err) = self.tx.try_send(event) {
            let event = match err {
                mpsc::error::TrySendError::Full(e) | mpsc::error::TrySendError::Closed(e) => e,
            };
            // Queue full or closed: straight to disk rather than dropping.
            if let Err(err) = self.spool.append_blocking(&[event]) {
                tracing::error!(%err, "usage event could not be spooled");
            }
        }
    }
}

async fn run(
    client: Client,
    mut rx: mpsc::Receiver<UsageEvent>,
    spool: Arc<Spool>,
    shutdown: Shutdown,
) {
    let mut replay = tokio::time::interval(REPLAY_EVERY);
    replay.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            first = rx.recv() => {
                let Some(first) = first else { break };
                let batch = collect_batch(first, &mut rx).await;
                deliver(&client, batch, &spool).await;
            }
            _ = replay.tick() => {
                spool.replay(&client).await;
                spool.report_lag();
            }
            _ = shutdown.wait() => break,
        }
    }
    // Drain what is queued: deliver if metering answers, spool otherwise.
    rx.close();
    let mut rest = Vec::new();
    while let Some(event) = rx.recv().await {
        rest.push(event);
    }
    for chunk in rest.chunks(BATCH) {
        deliver(&client, chunk.to_vec(), &spool).await;
    }
    spool.replay(&client).await;
}

async fn collect_batch(first: UsageEvent, rx: &mut mpsc::Receiver<UsageEvent>) -> Vec<UsageEvent> {
    let mut batch = vec![first];
    let deadline = tokio::time::Instant::now() + LINGER;
    while batch.len() < BATCH {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(event)) => batch.push(event),
            _ => break,
        }
    }
    batch
}

async fn deliver(client: &Client, events: Vec<UsageEvent>, spool: &Spool) {
    let request = RecordUsageRequest { events };
    match send(client, request.clone()).await {
        Ok(()) => {}
        Err(SendError::Rejected(_)) => {
            if !settle_rejected(client, &request, spool).await {
                // Metering went away midway: keep the whole batch; the
                // events it did take are deduplicated on replay.
                if let Err(err) = spool.append(&request).await {
                    tracing::error!(%err, "usage spool write failed");
                }
            }
        }
        Err(SendError::Unreachable(err)) => {
            tracing::warn!(%err, events = request.events.len(), "usage-metering unreachable; spooling usage");
            if let Err(err) = spool.append(&request).await {
                tracing::error!(%err, "usage spool write failed");
            }
        }
    }
}

/// Metering refused a batch as malformed. One bad event must not hold the
/// others hostage, nor be retried forever: send the events one by one and
/// move each one metering still refuses to the dead-letter file. Returns
/// false when metering became unreachable before every event was settled.
async fn settle_rejected(client: &Client, request: &RecordUsageRequest, spool: &Spool) -> bool {
    for event in &request.events {
        let single = RecordUsageRequest {
            events: vec![event.clone()],
        };
        match send(client, single.clone()).await {
            Ok(()) => {}
            Err(SendError::Rejected(status)) => {
                tracing::error!(
                    generation_id = %single.events[0].generation_id,
                    %status,
                    "usage event rejected by metering; moved to dead letters"
                );
                if let Err(err) = spool.dead_letter(&single).await {
                    tracing::error!(%err, "usage dead-letter write failed");
                }
            }
            Err(SendError::Unreachable(_)) => return false,
        }
    }
    true
}

#[derive(Debug)]
enum SendError {
    /// Metering answered: this batch is malformed. Retrying cannot help.
    Rejected(tonic::Status),
    /// Metering did not answer (down, timed out): retry later.
    Unreachable(anyhow::Error),
}

async fn send(client: &Client, request: RecordUsageRequest) -> Result<(), SendError> {
    let mut client = client.clone();
    let call = client.record_usage(request);
    match tokio::time::timeout(SEND_TIMEOUT, call).await {
        Err(_) => Err(SendError::Unreachable(anyhow::anyhow!(
            "RecordUsage timed out"
        ))),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(status)) if status.code() == tonic::Code::InvalidArgument => {
            Err(SendError::Rejected(status))
        }
        Ok(Err(status)) => Err(SendError::Unreachable(status.into())),
    }
}

/// Append-only file of framed `RecordUsageRequest`s: `u32 len | 4-byte
/// sha256 prefix | bytes`. A torn last frame (crash mid-write) fails its
/// checksum and is ignored; everything before it is replayed.
struct Spool {
    pending: PathBuf,
    replaying: PathBuf,
    /// Events metering refused as malformed, kept for an operator.
    dead: PathBuf,
    /// When the oldest batch still waiting in the spool was written.
    oldest: std::sync::Mutex<Option<std::time::Instant>>,
    metrics: RouterMetrics,
    lock: Mutex<()>,
    sync_lock: std::sync::Mutex<()>,
}

impl Spool {
    fn open(dir: &Path, metrics: RouterMetrics) -> anyhow::Result<Spool> {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create usage spool {}: {e}", dir.display()))?;
        Ok(Spool {
            pending: dir.join("pending.spool"),
            replaying: dir.join("replaying.spool"),
            dead: dir.join("rejected.spool"),
            // Whatever a previous run left behind counts from now.
            oldest: std::sync::Mutex::new(
                (dir.join("pending.spool").exists() || dir.join("replaying.spool").exists())
                    .then(std::time::Instant::now),
            ),
            metrics,
            lock: Mutex::new(()),
            sync_lock: std::sync::Mutex::new(()),
        })
    }

    async fn append(&self, request: &RecordUsageRequest) -> anyhow::Result<()> {
        let _guard = self.lock.lock().await;
        let path = self.pending.clone();
        let frame = encode_frame(request);
        tokio::task::spawn_blocking(move || append_frame(&path, &frame)).await??;
        self.spooled();
        Ok(())
    }

    /// Bookkeeping after a batch went to disk.
    fn spooled(&self) {
        self.oldest
            .lock()
            .expect("spool poisoned")
            .get_or_insert_with(std::time::Instant::now);
        let frames = [&self.pending, &self.replaying]
            .iter()
            .map(|p| read_frames(p).map(|f| f.len()).unwrap_or(0))
            .sum::<usize>();
        self.metrics.spool_frames.set(frames as i64);
    }

    fn report_lag(&self) {
        let lag = self
            .oldest
            .lock()
            .expect("spool poisoned")
            .map_or(0, |t| t.elapsed().as_secs() as i64);
        self.metrics.metering_lag_seconds.set(lag);
    }

    async fn dead_letter(&self, request: &RecordUsageRequest) -> anyhow::Result<()> {
        let path = self.dead.clone();
        let frame = encode_frame(request);
        tokio::task::spawn_blocking(move || append_frame(&path, &frame)).await??;
        Ok(())
    }

    fn append_blocking(&self, events: &[UsageEvent]) -> anyhow::Result<()> {
        let _guard = self.sync_lock.lock().expect("spool poisoned");
        let frame = encode_frame(&RecordUsageRequest {
            events: events.to_vec(),
        });
        append_frame(&self.pending, &frame)?;
        self.spooled();
        Ok(())
    }

    /// Sends every spooled batch; removes the file only when all were
    /// acknowledged (a partial failure re-sends, metering dedupes).
    async fn replay(&self, client: &Client) {
        let _guard = self.lock.lock().await;
        if !self.replaying.exists() {
            if !self.pending.exists() {
                return;
            }
            let _sync = self.sync_lock.lock().expect("spool poisoned");
            if let Err(err) = std::fs::rename(&self.pending, &self.replaying) {
                tracing::error!(%err, "usage spool rotate failed");
                return;
            }
        }
        let frames = match read_frames(&self.replaying) {
            Ok(frames) => frames,
            Err(err) => {
                tracing::error!(%err, "usage spool unreadable");
                return;
            }
        };
        for request in frames {
            match send(client, request.clone()).await {
                Ok(()) => {}
                Err(SendError::Rejected(_)) => {
                    if !settle_rejected(client, &request, self).await {
                        return;
                    }
                }
                Err(SendError::Unreachable(err)) => {
                    tracing::debug!(%err, "usage replay deferred");
                    return;
                }
            }
        }
        if let Err(err) = std::fs::remove_file(&self.replaying) {
            tracing::error!(%err, "usage spool cleanup failed");
        } else {
            tracing::info!("usage spool replayed");
            if !self.pending.exists() {
                *self.oldest.lock().expect("spool poisoned") = None;
                self.metrics.spool_frames.set(0);
            }
        }
    }
}

fn encode_frame(request: &RecordUsageRequest) -> Vec<u8> {
    let body = request.encode_to_vec();
    let mut frame = Vec::with_capacity(body.len() + 8);
    frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
    frame.extend_from_slice(&Sha256::digest(&body)[..4]);
    frame.extend_from_slice(&body);
    frame
}

fn append_frame(path: &Path, frame: &[u8]) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(frame)?;
    file.sync_data()?;
    Ok(())
}

fn read_frames(path: &Path) -> anyhow::Result<Vec<RecordUsageRequest>> {
    let mut bytes = Vec::new();
    match std::fs::File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes)?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    }
    let mut frames = Vec::new();
    let mut rest = bytes.as_slice();
    while rest.len() >= 8 {
        let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        let Some(body) = rest.get(8..8 + len) else {
            break;
        };
        if Sha256::digest(body)[..4] != rest[4..8] {
            tracing::warn!("usage spool: torn or corrupt frame ignored");
            break;
        }
        frames.push(RecordUsageRequest::decode(body)?);
        rest = &rest[8 + len..];
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str) -> UsageEvent {
        UsageEvent {
            generation_id: id.into(),
            ..Default::default()
        }
    }

    #[test]
    fn frames_round_trip_and_torn_tails_are_ignored() {
        let dir = std::env::temp_dir().join(format!("sy-spool-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.spool");
        for id in ["gen-1", "gen-2"] {
            let req = RecordUsageRequest {
                events: vec![event(id)],
            };
            append_frame(&path, &encode_frame(&req)).unwrap();
        }
        // A crash mid-write leaves half a frame behind.
        let torn = encode_frame(&RecordUsageRequest {
            events: vec![event("gen-3")],
        });
        append_frame(&path, &torn[..torn.len() - 3]).unwrap();
        let frames = read_frames(&path).unwrap();
        let ids: Vec<_> = frames
            .iter()
            .map(|f| f.events[0].generation_id.as_str())
            .collect();
        assert_eq!(ids, ["gen-1", "gen-2"]);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
