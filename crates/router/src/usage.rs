//! Usage delivery to usage-metering: journaled first, then batched.
//!
//! Every usage event is appended to an on-disk journal (length + checksum
//! framed) by the request that produced it, before it is queued for
//! delivery: a `write` to the page cache, a few microseconds, and the event
//! survives the router process being killed (`kill -9`) at any point after.
//! The journal is fsynced every 50 ms (for power loss) off the request path.
//! A batcher sends up to 500 queued events per `RecordUsage` call and acks
//! them against their journal segment; a segment is deleted once it is
//! sealed (segments rotate every second or 8 MiB) and every event in it is
//! acknowledged. When metering is unreachable, segments stay on disk and are
//! replayed until acknowledged; on start, whatever a previous run left is
//! replayed. Metering deduplicates by generation id, so replays are safe.
//! Above `max_bytes` of undelivered journal the router stops admitting
//! requests rather than serve what it cannot bill.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prost::Message;
use sha2::{Digest, Sha256};
use switchyard_kit::Shutdown;
use switchyard_kit::grpc::{InternalChannel, MAX_MESSAGE_BYTES};
use switchyard_proto::metering::v1::usage_metering_service_client::UsageMeteringServiceClient;
use switchyard_proto::metering::v1::usage_metering_service_server::UsageMeteringService;
use switchyard_proto::metering::v1::{RecordUsageRequest, UsageEvent};
use tokio::sync::mpsc;

use crate::metrics::RouterMetrics;

const QUEUE: usize = 10_000;
/// Under load a batch fills while the previous one commits, so the batch
/// size bounds how many commits per second metering needs to keep up.
const BATCH: usize = 500;
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
const REPLAY_EVERY: Duration = Duration::from_secs(1);
const FSYNC_EVERY: Duration = Duration::from_millis(50);
const ROTATE_AFTER: Duration = Duration::from_secs(1);
const ROTATE_BYTES: u64 = 8 * 1024 * 1024;

type RecordFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), tonic::Status>> + Send + 'a>>;

/// A usage-metering service in this process (the all-in-one binary).
pub trait LocalRecordUsage: Send + Sync + 'static {
    fn record_usage(&self, request: RecordUsageRequest) -> RecordFuture<'_>;
}

impl<T: UsageMeteringService> LocalRecordUsage for T {
    fn record_usage(&self, request: RecordUsageRequest) -> RecordFuture<'_> {
        Box::pin(async move {
            UsageMeteringService::record_usage(self, tonic::Request::new(request)).await?;
            Ok(())
        })
    }
}

/// Where usage batches go: usage-metering over gRPC, or — in the
/// all-in-one process — its service called directly, without encoding a
/// batch to protobuf and decoding it again.
#[derive(Clone)]
pub enum UsageClient {
    Remote(UsageMeteringServiceClient<InternalChannel>),
    Local(Arc<dyn LocalRecordUsage>),
}

impl UsageClient {
    pub fn remote(channel: InternalChannel) -> UsageClient {
        UsageClient::Remote(
            UsageMeteringServiceClient::new(channel)
                .max_encoding_message_size(MAX_MESSAGE_BYTES)
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        )
    }

    pub fn local(service: impl UsageMeteringService) -> UsageClient {
        UsageClient::Local(Arc::new(service))
    }

    async fn record_usage(&self, request: RecordUsageRequest) -> Result<(), tonic::Status> {
        match self {
            UsageClient::Remote(client) => {
                client.clone().record_usage(request).await?;
                Ok(())
            }
            UsageClient::Local(service) => service.record_usage(request).await,
        }
    }
}

/// An event queued for delivery, with the journal segment holding it.
struct Queued {
    segment: u64,
    event: UsageEvent,
}

#[derive(Clone)]
pub struct UsageSink {
    tx: mpsc::Sender<Queued>,
    journal: Arc<Journal>,
}

impl UsageSink {
    /// Opens the journal (replaying what a previous run left on the next
    /// tick) and starts the batcher. The returned handle finishes after
    /// `shutdown`, once the queue is delivered or left in the journal.
    pub fn start(
        client: UsageClient,
        data_dir: &Path,
        max_bytes: u64,
        linger: Duration,
        shutdown: Shutdown,
        metrics: RouterMetrics,
    ) -> anyhow::Result<(UsageSink, tokio::task::JoinHandle<()>)> {
        let journal = Arc::new(Journal::open(
            &data_dir.join("usage-journal"),
            max_bytes,
            metrics,
        )?);
        let (tx, rx) = mpsc::channel(QUEUE);
        let handle = tokio::spawn(run(client, rx, journal.clone(), linger, shutdown));
        Ok((UsageSink { tx, journal }, handle))
    }

    /// Journals one event and queues it for delivery; never waits on the
    /// network. If the queue is full the event is delivered from the
    /// journal instead.
    pub fn submit(&self, event: UsageEvent) {
        let segment = match self.journal.append(&event) {
            Ok(segment) => segment,
            Err(err) => {
                // Still try to deliver it; it just is not crash-safe.
                tracing::error!(%err, generation_id = %event.generation_id, "usage journal write failed");
                u64::MAX
            }
        };
        if let Err(err) = self.tx.try_send(Queued { segment, event }) {
            let queued = match err {
                mpsc::error::TrySendError::Full(q) | mpsc::error::TrySendError::Closed(q) => q,
            };
            self.journal.needs_replay(queued.segment);
        }
    }

    /// Too much undelivered usage on disk: new requests must be refused.
    pub fn is_full(&self) -> bool {
        self.journal.full.load(Ordering::Relaxed)
    }
}

async fn run(
    client: UsageClient,
    mut rx: mpsc::Receiver<Queued>,
    journal: Arc<Journal>,
    linger: Duration,
    shutdown: Shutdown,
) {
    let mut replay = tokio::time::interval(REPLAY_EVERY);
    replay.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut fsync = tokio::time::interval(FSYNC_EVERY);
    fsync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            first = rx.recv() => {
                let Some(first) = first else { break };
                let batch = collect_batch(first, &mut rx, linger).await;
                deliver(&client, batch, &journal).await;
            }
            _ = fsync.tick() => journal.sync().await,
            _ = replay.tick() => {
                journal.rotate_if_older(ROTATE_AFTER);
                journal.replay(&client).await;
                journal.report();
            }
            _ = shutdown.wait() => break,
        }
    }
    // Deliver what is queued if metering answers; the journal keeps the rest.
    rx.close();
    let mut rest = Vec::new();
    while let Some(queued) = rx.recv().await {
        rest.push(queued);
    }
    while !rest.is_empty() {
        let chunk: Vec<Queued> = rest.drain(..rest.len().min(BATCH)).collect();
        deliver(&client, chunk, &journal).await;
    }
    journal.rotate_if_older(Duration::ZERO);
    journal.replay(&client).await;
    journal.sync().await;
    journal.report();
}

async fn collect_batch(
    first: Queued,
    rx: &mut mpsc::Receiver<Queued>,
    linger: Duration,
) -> Vec<Queued> {
    let mut batch = vec![first];
    let deadline = tokio::time::Instant::now() + linger;
    while batch.len() < BATCH {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(event)) => batch.push(event),
            _ => break,
        }
    }
    batch
}

async fn deliver(client: &UsageClient, batch: Vec<Queued>, journal: &Journal) {
    let segments: Vec<u64> = batch.iter().map(|q| q.segment).collect();
    if journal.down.load(Ordering::Relaxed) {
        // Metering is known to be down: the replayer probes it; these
        // events wait in the journal.
        for segment in segments {
            journal.needs_replay(segment);
        }
        return;
    }
    let request = RecordUsageRequest {
        events: batch.into_iter().map(|q| q.event).collect(),
    };
    let delivered = match send(client, request.clone()).await {
        Ok(()) => true,
        Err(SendError::Rejected(_)) => settle_rejected(client, &request, journal).await,
        Err(SendError::Unreachable(err)) => {
            tracing::warn!(%err, events = request.events.len(), "usage-metering unreachable; usage stays in the journal");
            journal.down.store(true, Ordering::Relaxed);
            false
        }
    };
    for segment in segments {
        if delivered {
            journal.ack(segment);
        } else {
            journal.needs_replay(segment);
        }
    }
}

/// Metering refused a batch as malformed. One bad event must not hold the
/// others hostage, nor be retried forever: send the events one by one and
/// move each one metering still refuses to the dead-letter file. Returns
/// false when metering became unreachable before every event was settled.
async fn settle_rejected(
    client: &UsageClient,
    request: &RecordUsageRequest,
    journal: &Journal,
) -> bool {
    for event in &request.events {
        let single = RecordUsageRequest {
            events: vec![event.clone()],
        };
        match send(client, single).await {
            Ok(()) => {}
            Err(SendError::Rejected(status)) => {
                tracing::error!(
                    generation_id = %event.generation_id,
                    %status,
                    "usage event rejected by metering; moved to dead letters"
                );
                if let Err(err) = journal.dead_letter(event) {
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

async fn send(client: &UsageClient, request: RecordUsageRequest) -> Result<(), SendError> {
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

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    written: u64,
    acked: u64,
    bytes: u64,
    opened_at: Instant,
    sealed: bool,
    /// Some event of it was not acknowledged: resend the whole segment.
    dirty: bool,
}

struct Current {
    seq: u64,
    file: File,
}

struct State {
    current: Current,
    segments: BTreeMap<u64, Segment>,
    /// Bytes written to `current` since the last fsync.
    unsynced: u64,
    /// Segments sealed since the last fsync, synced by the next one.
    sealed_unsynced: Vec<File>,
}

/// Append-only segments of framed `UsageEvent`s: `u32 len | u32 CRC-32C |
/// bytes`, both little-endian. A torn last frame (crash mid-write) fails its
/// checksum and is ignored; everything before it is replayed. (Journals
/// written by earlier versions carry the first 4 bytes of the body's SHA-256
/// instead; replay accepts those too, so an upgrade loses no undelivered
/// usage.)
struct Journal {
    dir: PathBuf,
    max_bytes: u64,
    state: Mutex<State>,
    /// Serialises replays (and the dead-letter file).
    replay_lock: tokio::sync::Mutex<()>,
    down: AtomicBool,
    full: AtomicBool,
    metrics: RouterMetrics,
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("usage-{seq:016}.wal"))
}

fn open_segment(dir: &Path, seq: u64) -> anyhow::Result<File> {
    let path = segment_path(dir, seq);
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("cannot open usage journal {}: {e}", path.display()))
}

impl Journal {
    fn open(dir: &Path, max_bytes: u64, metrics: RouterMetrics) -> anyhow::Result<Journal> {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create usage journal {}: {e}", dir.display()))?;
        let mut segments = BTreeMap::new();
        let now = Instant::now();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let Some(seq) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix("usage-"))
                .and_then(|n| n.strip_suffix(".wal"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            let bytes = std::fs::metadata(&path)?.len();
            if bytes == 0 {
                // Opened but never written: nothing to replay.
                let _ = std::fs::remove_file(&path);
                continue;
            }
            // Left by a previous run: everything in it is replayed.
            segments.insert(
                seq,
                Segment {
                    path,
                    written: 0,
                    acked: 0,
                    bytes,
                    opened_at: now,
                    sealed: true,
                    dirty: true,
                },
            );
        }
        if !segments.is_empty() {
            tracing::info!(
                segments = segments.len(),
                "usage journal from a previous run will be replayed"
            );
        }
        let seq = segments.keys().next_back().map_or(1, |s| s + 1);
        let file = open_segment(dir, seq)?;
        segments.insert(
            seq,
            Segment {
                path: segment_path(dir, seq),
                written: 0,
                acked: 0,
                bytes: 0,
                opened_at: now,
                sealed: false,
                dirty: false,
            },
        );
        let journal = Journal {
            dir: dir.to_owned(),
            max_bytes,
            state: Mutex::new(State {
                current: Current { seq, file },
                segments,
                unsynced: 0,
                sealed_unsynced: Vec::new(),
            }),
            replay_lock: tokio::sync::Mutex::new(()),
            down: AtomicBool::new(false),
            full: AtomicBool::new(false),
            metrics,
        };
        journal.report();
        Ok(journal)
    }

    /// Appends one event; returns the segment that holds it.
    fn append(&self, event: &UsageEvent) -> anyhow::Result<u64> {
        let frame = encode_frame(event);
        let mut st = self.state.lock().expect("journal poisoned");
        st.current.file.write_all(&frame)?;
        let seq = st.current.seq;
        st.unsynced += frame.len() as u64;
        let segment = st.segments.get_mut(&seq).expect("current segment");
        segment.written += 1;
        segment.bytes += frame.len() as u64;
        if segment.bytes >= ROTATE_BYTES {
            self.rotate(&mut st);
        }
        Ok(seq)
    }

    /// Seals the current segment and opens the next one.
    fn rotate(&self, st: &mut State) {
        let next = st.current.seq + 1;
        match open_segment(&self.dir, next) {
            Ok(file) => {
                let old = std::mem::replace(&mut st.current, Current { seq: next, file });
                // The next fsync tick (or the one at shutdown) makes the
                // sealed segment durable, off this lock: requests append
                // here, and rotation can happen inside `append`.
                if st.unsynced > 0 {
                    st.sealed_unsynced.push(old.file);
                }
                st.unsynced = 0;
                if let Some(segment) = st.segments.get_mut(&old.seq) {
                    segment.sealed = true;
                }
                st.segments.insert(
                    next,
                    Segment {
                        path: segment_path(&self.dir, next),
                        written: 0,
                        acked: 0,
                        bytes: 0,
                        opened_at: Instant::now(),
                        sealed: false,
                        dirty: false,
                    },
                );
                Self::collect(st, old.seq);
            }
            Err(err) => tracing::error!(%err, "usage journal rotation failed"),
        }
    }

    fn rotate_if_older(&self, age: Duration) {
        let mut st = self.state.lock().expect("journal poisoned");
        let seq = st.current.seq;
        let segment = &st.segments[&seq];
        if segment.written > 0 && segment.opened_at.elapsed() >= age {
            self.rotate(&mut st);
        }
    }

    /// Deletes a sealed segment whose every event was acknowledged.
    fn collect(st: &mut State, seq: u64) {
        let done = st
            .segments
            .get(&seq)
            .is_some_and(|s| s.sealed && !s.dirty && s.acked >= s.written);
        if done
            && let Some(segment) = st.segments.remove(&seq)
            && let Err(err) = std::fs::remove_file(&segment.path)
        {
            tracing::warn!(%err, "usage journal cleanup failed");
        }
    }

    fn ack(&self, seq: u64) {
        let mut st = self.state.lock().expect("journal poisoned");
        if let Some(segment) = st.segments.get_mut(&seq) {
            segment.acked += 1;
        }
        Self::collect(&mut st, seq);
    }

    fn needs_replay(&self, seq: u64) {
        let mut st = self.state.lock().expect("journal poisoned");
        if let Some(segment) = st.segments.get_mut(&seq) {
            segment.dirty = true;
        }
    }

    /// fsyncs what was written since the last sync (the current segment and
    /// any sealed since), off the append lock.
    async fn sync(&self) {
        let files = {
            let mut st = self.state.lock().expect("journal poisoned");
            let mut files = std::mem::take(&mut st.sealed_unsynced);
            if st.unsynced > 0 {
                st.unsynced = 0;
                match st.current.file.try_clone() {
                    Ok(file) => files.push(file),
                    Err(err) => tracing::warn!(%err, "usage journal fsync failed"),
                }
            }
            files
        };
        if files.is_empty() {
            return;
        }
        let _ = tokio::task::spawn_blocking(move || {
            for file in files {
                if let Err(err) = file.sync_data() {
                    tracing::warn!(%err, "usage journal fsync failed");
                }
            }
        })
        .await;
    }

    /// Resends every sealed segment that has undelivered events; deletes
    /// each one metering acknowledged in full.
    async fn replay(&self, client: &UsageClient) {
        let _one = self.replay_lock.lock().await;
        let pending: Vec<(u64, PathBuf)> = {
            let st = self.state.lock().expect("journal poisoned");
            st.segments
                .iter()
                .filter(|(_, s)| s.sealed && s.dirty)
                .map(|(seq, s)| (*seq, s.path.clone()))
                .collect()
        };
        'segments: for (seq, path) in pending {
            // Read and sent a batch at a time: a segment of a busy second
            // holds tens of thousands of events, and decoding them all at
            // once held tens of MB while metering caught up.
            let mut reader = match FrameReader::open(&path) {
                Ok(reader) => reader,
                Err(err) => {
                    tracing::error!(%err, path = %path.display(), "usage journal segment unreadable");
                    continue;
                }
            };
            let mut replayed = 0;
            loop {
                let batch = reader.next_batch(BATCH);
                let undecodable = std::mem::take(&mut reader.undecodable);
                if !undecodable.is_empty() {
                    if let Err(err) = self.set_aside("undecodable.spool", &undecodable.concat()) {
                        tracing::error!(%err, "usage journal: cannot set undecodable frames aside");
                        continue 'segments;
                    }
                    tracing::error!(
                        frames = undecodable.len(),
                        "usage journal: intact frames that do not decode moved to undecodable.spool"
                    );
                }
                let events = match batch {
                    Ok(events) => events,
                    Err(err) => {
                        // A read error: what was sent stays sent (metering
                        // drops repeats), and the segment is tried again.
                        tracing::error!(%err, path = %path.display(), "usage journal segment unreadable");
                        continue 'segments;
                    }
                };
                if events.is_empty() {
                    break;
                }
                replayed += events.len();
                let request = RecordUsageRequest { events };
                let ok = match send(client, request.clone()).await {
                    Ok(()) => true,
                    Err(SendError::Rejected(_)) => settle_rejected(client, &request, self).await,
                    Err(SendError::Unreachable(err)) => {
                        tracing::debug!(%err, "usage replay deferred");
                        false
                    }
                };
                if !ok {
                    self.down.store(true, Ordering::Relaxed);
                    return;
                }
            }
            self.down.store(false, Ordering::Relaxed);
            let mut st = self.state.lock().expect("journal poisoned");
            if let Some(segment) = st.segments.get_mut(&seq) {
                segment.dirty = false;
                segment.acked = segment.written;
            }
            Self::collect(&mut st, seq);
            tracing::info!(events = replayed, "usage journal segment replayed");
        }
        // Nothing was pending and a direct send marked metering down: probe.
        if self.down.load(Ordering::Relaxed) {
            let probe = RecordUsageRequest { events: Vec::new() };
            if send(client, probe).await.is_ok() {
                self.down.store(false, Ordering::Relaxed);
            }
        }
    }

    fn dead_letter(&self, event: &UsageEvent) -> anyhow::Result<()> {
        self.set_aside("rejected.spool", &encode_frame(event))
    }

    /// Appends whole frames to a file beside the journal, for an operator.
    fn set_aside(&self, name: &str, frames: &[u8]) -> anyhow::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(name))?;
        file.write_all(frames)?;
        file.sync_data()?;
        Ok(())
    }

    /// Gauges: undelivered events and bytes, the age of the oldest, and the
    /// fail-closed switch.
    fn report(&self) {
        let st = self.state.lock().expect("journal poisoned");
        let mut undelivered_events = 0u64;
        let mut undelivered_bytes = 0u64;
        let mut oldest: Option<Instant> = None;
        for segment in st.segments.values() {
            let waiting = segment.dirty || segment.acked < segment.written;
            if waiting {
                undelivered_events += segment
                    .written
                    .saturating_sub(segment.acked)
                    .max(u64::from(segment.dirty));
                undelivered_bytes += segment.bytes;
                oldest = Some(oldest.map_or(segment.opened_at, |o| o.min(segment.opened_at)));
            }
        }
        drop(st);
        let full = undelivered_bytes > self.max_bytes;
        if full != self.full.swap(full, Ordering::Relaxed) {
            if full {
                tracing::error!(
                    undelivered_bytes,
                    "usage journal full: refusing new requests until metering catches up"
                );
            } else {
                tracing::info!("usage journal has room again");
            }
        }
        self.metrics.spool_frames.set(undelivered_events as i64);
        self.metrics
            .metering_lag_seconds
            .set(oldest.map_or(0, |t| t.elapsed().as_secs() as i64));
    }
}

/// The frame checksum. It only has to catch a torn or garbled write, and it
/// runs on every request: a table CRC costs a tenth of the SHA-256 it
/// replaced on a typical 1.3 KB event.
const FRAME_CRC: crc::Crc<u32, crc::Table<16>> =
    crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISCSI);

fn encode_frame(event: &UsageEvent) -> Vec<u8> {
    let len = event.encoded_len();
    let mut frame = Vec::with_capacity(len + 8);
    frame.extend_from_slice(&(len as u32).to_le_bytes());
    frame.extend_from_slice(&[0; 4]);
    event
        .encode(&mut frame)
        .expect("a Vec with room for the encoded length");
    let crc = FRAME_CRC.checksum(&frame[8..]);
    frame[4..8].copy_from_slice(&crc.to_le_bytes());
    frame
}

/// Whether `body` matches its frame's checksum: CRC-32C, or the SHA-256
/// prefix of journals written by earlier versions.
fn frame_intact(body: &[u8], checksum: &[u8]) -> bool {
    FRAME_CRC.checksum(body).to_le_bytes() == checksum || Sha256::digest(body)[..4] == *checksum
}

/// Reads a journal segment frame by frame, in order. A missing segment
/// (already collected) reads as empty. Reading stops at the first torn or
/// corrupt frame: nothing after it can be trusted.
struct FrameReader {
    file: Option<std::io::BufReader<File>>,
    /// Intact frames (checksum and all) that do not decode as an event: a
    /// bug or a format this version does not read. They are skipped, so the
    /// rest of the segment is delivered, and kept here for setting aside.
    undecodable: Vec<Vec<u8>>,
}

impl FrameReader {
    fn open(path: &Path) -> anyhow::Result<FrameReader> {
        let file = match File::open(path) {
            Ok(f) => Some(std::io::BufReader::with_capacity(64 * 1024, f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e.into()),
        };
        Ok(FrameReader {
            file,
            undecodable: Vec::new(),
        })
    }

    /// Up to `max` events; empty at the end of the segment.
    fn next_batch(&mut self, max: usize) -> anyhow::Result<Vec<UsageEvent>> {
        let mut batch = Vec::new();
        while batch.len() < max {
            match self.next_event()? {
                Some(event) => batch.push(event),
                None => break,
            }
        }
        Ok(batch)
    }

    fn next_event(&mut self) -> anyhow::Result<Option<UsageEvent>> {
        loop {
            let Some((head, body)) = self.next_frame()? else {
                return Ok(None);
            };
            match UsageEvent::decode(body.as_slice()) {
                Ok(event) => return Ok(Some(event)),
                Err(err) => {
                    // Logged with the count where replay sets these aside.
                    tracing::debug!(%err, "usage journal: an intact frame does not decode");
                    self.undecodable.push([&head[..], &body].concat());
                }
            }
        }
    }

    /// The next intact frame's header and body.
    fn next_frame(&mut self) -> anyhow::Result<Option<([u8; 8], Vec<u8>)>> {
        let Some(file) = self.file.as_mut() else {
            return Ok(None);
        };
        let mut head = [0u8; 8];
        if !read_full(file, &mut head)? {
            self.file = None;
            return Ok(None);
        }
        let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
        if len > MAX_MESSAGE_BYTES {
            tracing::warn!(
                len,
                "usage journal: frame length out of range; rest ignored"
            );
            self.file = None;
            return Ok(None);
        }
        let mut body = vec![0; len];
        if !read_full(file, &mut body)? {
            // The last frame, cut short by a crash.
            self.file = None;
            return Ok(None);
        }
        if !frame_intact(&body, &head[4..8]) {
            tracing::warn!("usage journal: torn or corrupt frame ignored");
            self.file = None;
            return Ok(None);
        }
        Ok(Some((head, body)))
    }
}

/// `read_exact`, telling an end of file (false) from an I/O error.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<bool> {
    match reader.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_frames(path: &Path) -> anyhow::Result<Vec<UsageEvent>> {
        FrameReader::open(path)?.next_batch(usize::MAX)
    }

    fn event(id: &str) -> UsageEvent {
        UsageEvent {
            generation_id: id.into(),
            ..Default::default()
        }
    }

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sy-journal-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn segments_are_read_a_batch_at_a_time_up_to_the_first_bad_frame() {
        let path = temp_dir().join("segment");
        let mut bytes = Vec::new();
        for i in 0..1_200 {
            bytes.extend(encode_frame(&event(&format!("gen-{i}"))));
        }
        let intact = bytes.len();
        bytes.extend(encode_frame(&event("torn")));
        bytes.truncate(bytes.len() - 3);
        std::fs::write(&path, &bytes).unwrap();

        let mut reader = FrameReader::open(&path).unwrap();
        let sizes: Vec<usize> = std::iter::from_fn(|| {
            let batch = reader.next_batch(BATCH).unwrap();
            (!batch.is_empty()).then_some(batch.len())
        })
        .collect();
        assert_eq!(sizes, [500, 500, 200]);

        // A length no frame can have ends the segment without allocating it.
        bytes.truncate(intact);
        bytes.extend(u32::MAX.to_le_bytes());
        bytes.extend([0; 4]);
        bytes.extend(encode_frame(&event("after")));
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(read_frames(&path).unwrap().len(), 1_200);
        // An intact frame that is not an event is skipped and kept aside.
        bytes.truncate(intact);
        let garbage = [0xff_u8; 5];
        bytes.extend((garbage.len() as u32).to_le_bytes());
        bytes.extend(FRAME_CRC.checksum(&garbage).to_le_bytes());
        bytes.extend(garbage);
        bytes.extend(encode_frame(&event("after")));
        std::fs::write(&path, &bytes).unwrap();
        let mut reader = FrameReader::open(&path).unwrap();
        let events = reader.next_batch(usize::MAX).unwrap();
        assert_eq!(events.len(), 1_201);
        assert_eq!(events.last().unwrap().generation_id, "after");
        assert_eq!(reader.undecodable.len(), 1);
        assert!(reader.undecodable[0].ends_with(&garbage));
        // A segment already collected reads as empty.
        std::fs::remove_file(&path).unwrap();
        assert!(read_frames(&path).unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_batch_gathers_for_the_configured_linger() {
        let queued = |id: &str| Queued {
            segment: 0,
            event: event(id),
        };
        let (tx, mut rx) = mpsc::channel(16);
        let late = {
            let tx = tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                tx.send(queued("late")).await.unwrap();
            })
        };
        // No linger: what is queued now, not what comes 50 ms later.
        tx.send(queued("ready")).await.unwrap();
        let batch = collect_batch(queued("first"), &mut rx, Duration::ZERO).await;
        let ids: Vec<_> = batch
            .iter()
            .map(|q| q.event.generation_id.as_str())
            .collect();
        assert_eq!(ids, ["first", "ready"]);
        // A long linger waits for it.
        let batch = collect_batch(queued("next"), &mut rx, Duration::from_millis(500)).await;
        late.await.unwrap();
        let ids: Vec<_> = batch
            .iter()
            .map(|q| q.event.generation_id.as_str())
            .collect();
        assert!(ids.starts_with(&["next", "late"]), "{ids:?}");
    }

    #[test]
    fn frames_round_trip_and_torn_tails_are_ignored() {
        let dir = temp_dir();
        let path = dir.join("p.wal");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        for id in ["gen-1", "gen-2"] {
            file.write_all(&encode_frame(&event(id))).unwrap();
        }
        // A crash mid-write leaves half a frame behind.
        let torn = encode_frame(&event("gen-3"));
        file.write_all(&torn[..torn.len() - 3]).unwrap();
        let ids: Vec<_> = read_frames(&path)
            .unwrap()
            .into_iter()
            .map(|e| e.generation_id)
            .collect();
        assert_eq!(ids, ["gen-1", "gen-2"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn frames_from_before_the_crc_still_replay_and_garbled_ones_do_not() {
        let dir = temp_dir();
        let path = dir.join("old.wal");
        // The earlier frame format: the body's SHA-256 prefix as checksum.
        let old_frame = |id: &str| {
            let body = event(id).encode_to_vec();
            let mut frame = (body.len() as u32).to_le_bytes().to_vec();
            frame.extend_from_slice(&Sha256::digest(&body)[..4]);
            frame.extend_from_slice(&body);
            frame
        };
        let mut bytes = old_frame("gen-old");
        bytes.extend(encode_frame(&event("gen-new")));
        let mut garbled = encode_frame(&event("gen-bad"));
        let last = garbled.len() - 1;
        garbled[last] ^= 0x01;
        bytes.extend(garbled);
        bytes.extend(encode_frame(&event("gen-after")));
        std::fs::write(&path, &bytes).unwrap();
        let ids: Vec<_> = read_frames(&path)
            .unwrap()
            .into_iter()
            .map(|e| e.generation_id)
            .collect();
        // Replay stops at the first bad frame: what follows it is not trusted.
        assert_eq!(ids, ["gen-old", "gen-new"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_sealed_segment_is_synced_by_the_next_sync_not_under_the_lock() {
        let dir = temp_dir();
        let metrics = RouterMetrics::register(&switchyard_kit::metrics::Registry::new());
        let journal = Journal::open(&dir, 1 << 30, metrics).unwrap();
        journal.append(&event("gen-1")).unwrap();
        journal.rotate_if_older(Duration::ZERO);
        {
            let st = journal.state.lock().unwrap();
            assert_eq!(st.sealed_unsynced.len(), 1, "left for the next sync");
            assert_eq!(st.unsynced, 0, "the new segment is empty");
        }
        journal.append(&event("gen-2")).unwrap();
        journal.sync().await;
        {
            let st = journal.state.lock().unwrap();
            assert!(st.sealed_unsynced.is_empty());
            assert_eq!(st.unsynced, 0);
        }
        // A segment already synced in full is not queued again when sealed.
        journal.rotate_if_older(Duration::ZERO);
        assert!(journal.state.lock().unwrap().sealed_unsynced.is_empty());
        drop(journal);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn acknowledged_sealed_segments_are_deleted_and_the_rest_survive_a_restart() {
        let dir = temp_dir();
        let metrics = RouterMetrics::register(&switchyard_kit::metrics::Registry::new());
        let journal = Journal::open(&dir, 1 << 30, metrics.clone()).unwrap();
        let first = journal.append(&event("gen-1")).unwrap();
        journal.ack(first);
        journal.rotate_if_older(Duration::ZERO);
        assert!(
            !segment_path(&dir, first).exists(),
            "acked and sealed: deleted"
        );
        let second = journal.append(&event("gen-2")).unwrap();
        journal.rotate_if_older(Duration::ZERO);
        assert!(segment_path(&dir, second).exists(), "unacknowledged: kept");
        drop(journal);
        // A restart (or kill -9) finds the unacknowledged event.
        let journal = Journal::open(&dir, 1 << 30, metrics).unwrap();
        let st = journal.state.lock().unwrap();
        let pending: Vec<_> = st.segments.values().filter(|s| s.dirty).collect();
        assert_eq!(pending.len(), 1);
        assert_eq!(
            read_frames(&pending[0].path).unwrap()[0].generation_id,
            "gen-2"
        );
        drop(st);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_full_journal_closes_admission() {
        let dir = temp_dir();
        let metrics = RouterMetrics::register(&switchyard_kit::metrics::Registry::new());
        let journal = Journal::open(&dir, 10, metrics).unwrap();
        let seq = journal.append(&event("gen-1")).unwrap();
        journal.needs_replay(seq);
        journal.report();
        assert!(journal.full.load(Ordering::Relaxed));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
