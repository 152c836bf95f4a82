//! Server-sent events, shared by every streaming API (chat completions,
//! legacy completions, Anthropic messages). The response waits briefly for
//! the engine to commit, so a request that fails everywhere still gets a real
//! error status; if committing takes longer than the keep-alive interval, the
//! 200 goes out with `: OPENROUTER PROCESSING` comments while attempts go on,
//! and comments keep an idle stream alive. Each API supplies a
//! [`StreamFormat`] that turns engine events into its own events.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::sync::oneshot;
use tracing::Instrument;

use super::AppState;
use super::chat::completion_headers;
use crate::engine::{Committed, Event, Job};
use crate::error::ApiError;

const KEEPALIVE: &[u8] = b": OPENROUTER PROCESSING\n\n";

type Started = Result<Committed, ApiError>;

/// One API's streaming wire format.
pub trait StreamFormat: Sized + Send + 'static {
    /// Called once the stream is committed to an endpoint; may return the
    /// stream's opening event (e.g. Anthropic's `message_start`).
    fn start(committed: &Committed) -> (Self, Option<Bytes>);
    /// Bytes for one engine event, if it shows on the wire.
    fn render(&mut self, event: Event) -> Option<Bytes>;
    /// The in-band error for a failure after the 200 went out but before
    /// any endpoint committed.
    fn error_before_commit(generation_id: &str, err: ApiError) -> Bytes;
}

pub async fn respond<F: StreamFormat>(
    state: &Arc<AppState>,
    job: Job,
) -> Result<Response, ApiError> {
    let generation_id = job.generation_id.clone();
    let engine = state.engine.clone();
    let (tx, mut rx) = oneshot::channel::<Started>();
    tokio::spawn(
        async move {
            let _ = tx.send(engine.start(job).await);
        }
        .instrument(tracing::Span::current()),
    );
    let keepalive = state.keepalive;
    let (phase, headers) = match tokio::time::timeout(keepalive, &mut rx).await {
        Ok(Ok(Err(err))) => return Err(err),
        Ok(Ok(Ok(committed))) => (Phase::Committed(committed), None),
        Ok(Err(_)) => return Err(ApiError::Internal(anyhow::anyhow!("engine task vanished"))),
        Err(_) => (
            Phase::Waiting(rx),
            Some(vec![("x-generation-id", generation_id.clone())]),
        ),
    };
    let headers = headers.unwrap_or_else(|| match &phase {
        Phase::Committed(c) => completion_headers(c),
        _ => Vec::new(),
    });
    let state = SseState::<F> {
        phase,
        keepalive,
        generation_id,
        opened: false,
    };
    let stream = futures_util::stream::unfold(state, |mut s| async move {
        s.next().await.map(|bytes| (Ok::<_, Infallible>(bytes), s))
    });
    let mut response = (
        [
            (axum::http::header::CONTENT_TYPE, "text/event-stream"),
            (axum::http::header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(stream),
    )
        .into_response();
    response
        .headers_mut()
        .insert("x-accel-buffering", "no".parse().expect("static"));
    for (name, value) in headers {
        if let Ok(value) = value.parse() {
            response.headers_mut().insert(name, value);
        }
    }
    Ok(response)
}

enum Phase<F> {
    Waiting(oneshot::Receiver<Started>),
    Committed(Committed),
    Streaming(Committed, F),
    Finished,
}

struct SseState<F> {
    phase: Phase<F>,
    keepalive: Duration,
    generation_id: String,
    opened: bool,
}

impl<F: StreamFormat> SseState<F> {
    async fn next(&mut self) -> Option<Bytes> {
        if !self.opened {
            self.opened = true;
            return Some(Bytes::from_static(KEEPALIVE));
        }
        loop {
            match std::mem::replace(&mut self.phase, Phase::Finished) {
                Phase::Finished => return None,
                Phase::Waiting(mut rx) => match tokio::time::timeout(self.keepalive, &mut rx).await
                {
                    Err(_) => {
                        self.phase = Phase::Waiting(rx);
                        return Some(Bytes::from_static(KEEPALIVE));
                    }
                    Ok(Ok(Ok(committed))) => self.phase = Phase::Committed(committed),
                    Ok(Ok(Err(err))) => {
                        return Some(F::error_before_commit(&self.generation_id, err));
                    }
                    Ok(Err(_)) => {
                        let err = ApiError::Internal(anyhow::anyhow!("engine task vanished"));
                        return Some(F::error_before_commit(&self.generation_id, err));
                    }
                },
                Phase::Committed(committed) => {
                    let (format, opening) = F::start(&committed);
                    self.phase = Phase::Streaming(committed, format);
                    if let Some(bytes) = opening {
                        return Some(bytes);
                    }
                }
                Phase::Streaming(mut committed, mut format) => {
                    match tokio::time::timeout(self.keepalive, committed.events.recv()).await {
                        Err(_) => {
                            self.phase = Phase::Streaming(committed, format);
                            return Some(Bytes::from_static(KEEPALIVE));
                        }
                        Ok(None) => return None,
                        Ok(Some(event)) => {
                            let bytes = render_burst(&mut format, &mut committed, event).await;
                            self.phase = Phase::Streaming(committed, format);
                            if bytes.is_some() {
                                return bytes;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A frame this big goes out without taking more.
const MAX_FRAME: usize = 64 * 1024;

/// Scheduler passes [`render_burst`] gives a burst to arrive, at most.
/// Measured on the all-in-one with a 24-chunk answer that came in one read:
/// at one connection, after one pass nothing had arrived yet, after the
/// second all 23 remaining events. At 32 connections the events trickle in
/// over more passes (the upstream's and the pump's tasks take turns with
/// every other stream's): with 2 passes a stream left in about 11 writes,
/// with up to 6 in about 7.7, and streaming throughput rose in four of
/// five interleaved pairs, by up to 11% (`bench/README.md`, "Flame graphs").
const BURST_PASSES: usize = 6;
/// Passes in a row with nothing new after which the burst is over: a paced
/// stream's chunk waits no longer than it did with 2 passes in all.
const QUIET_PASSES: usize = 2;

/// [`render_ready`], then, while the stream is still open, up to
/// [`BURST_PASSES`] passes of the scheduler, taking whatever arrived, until
/// [`QUIET_PASSES`] in a row bring nothing. An
/// upstream body is handed over one HTTP chunk at a time, each chunk a
/// round of task wake-ups (connection, adapter, pump) that ends by waking
/// this task; without the pause, a burst of chunks that came in one read
/// would still leave in one write per chunk. Like
/// `switchyard_kit::grpc::Coalesce` on internal connections, it never waits
/// for an event that is not on its way: a paced stream's chunk goes out
/// after those passes, and a closed stream's at once.
async fn render_burst<F: StreamFormat>(
    format: &mut F,
    committed: &mut Committed,
    first: Event,
) -> Option<Bytes> {
    let mut frame = render_ready(format, committed, first);
    let mut quiet = 0;
    for _ in 0..BURST_PASSES {
        let full = frame.as_ref().is_some_and(|b| b.len() >= MAX_FRAME);
        if full
            || quiet == QUIET_PASSES
            || (committed.events.is_closed() && committed.events.is_empty())
        {
            break;
        }
        tokio::task::yield_now().await;
        let Ok(next) = committed.events.try_recv() else {
            quiet += 1;
            continue;
        };
        quiet = 0;
        frame = match (frame, render_ready(format, committed, next)) {
            (Some(a), Some(b)) => Some(Bytes::from([a, b].concat())),
            (a, b) => a.or(b),
        };
    }
    frame
}

/// Most events are ready in bursts (a provider's TCP read often carries
/// several chunks): render `first` and every event already waiting into one
/// body frame, so a burst costs one write to the client instead of one per
/// chunk. Nothing waits for events that have not arrived.
fn render_ready<F: StreamFormat>(
    format: &mut F,
    committed: &mut Committed,
    first: Event,
) -> Option<Bytes> {
    let mut parts: Vec<Bytes> = Vec::new();
    let mut len = 0;
    let mut next = Some(first);
    while let Some(event) = next {
        if let Some(bytes) = format.render(event) {
            len += bytes.len();
            parts.push(bytes);
        }
        if len >= MAX_FRAME {
            break;
        }
        next = committed.events.try_recv().ok();
    }
    match parts.len() {
        0 | 1 => parts.pop(),
        _ => Some(Bytes::from(parts.concat())),
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;

    use super::*;

    /// Renders finish events as `<reason>\n` and nothing else.
    struct Reasons;

    impl StreamFormat for Reasons {
        fn start(_: &Committed) -> (Reasons, Option<Bytes>) {
            (Reasons, None)
        }
        fn render(&mut self, event: Event) -> Option<Bytes> {
            match event {
                Event::Finish { reason, .. } => Some(Bytes::from(format!("{reason}\n"))),
                _ => None,
            }
        }
        fn error_before_commit(_: &str, _: ApiError) -> Bytes {
            Bytes::new()
        }
    }

    fn finish(reason: &str) -> Event {
        Event::Finish {
            reason: reason.into(),
            native: String::new(),
        }
    }

    fn committed(events: mpsc::Receiver<Event>) -> Committed {
        Committed {
            generation_id: "gen-1".into(),
            created: 0,
            model: "m".into(),
            provider_name: "p".into(),
            endpoint_id: "e".into(),
            attempts: Vec::new(),
            reasoning_format: "unknown",
            events,
        }
    }

    #[tokio::test]
    async fn a_burst_of_ready_events_goes_out_as_one_frame_and_nothing_waits() {
        let (tx, events) = mpsc::channel(16);
        let mut committed = committed(events);
        for event in [
            finish("a"),
            Event::Delta(Default::default()),
            finish("b"),
            finish("c"),
        ] {
            tx.send(event).await.unwrap();
        }
        let first = committed.events.recv().await.unwrap();
        let frame = render_ready(&mut Reasons, &mut committed, first).unwrap();
        assert_eq!(
            &frame[..],
            b"a\nb\nc\n",
            "every ready event, in order, unrendered ones skipped"
        );

        // A lone event goes out alone, without waiting for a next one.
        tx.send(finish("d")).await.unwrap();
        let first = committed.events.recv().await.unwrap();
        let frame = render_ready(&mut Reasons, &mut committed, first).unwrap();
        assert_eq!(&frame[..], b"d\n");

        // An event that renders nothing, with nothing behind it: no frame.
        tx.send(Event::Delta(Default::default())).await.unwrap();
        let first = committed.events.recv().await.unwrap();
        assert!(render_ready(&mut Reasons, &mut committed, first).is_none());
    }

    /// The next event of a burst arrives scheduler passes later (as an
    /// upstream's chunks do, one round of wake-ups each): it joins the
    /// frame. One that is not on its way is not waited for, and a closed
    /// stream's last events go out at once.
    #[tokio::test]
    async fn a_burst_arriving_over_scheduler_passes_goes_out_as_one_frame() {
        let (tx, events) = mpsc::channel(16);
        let mut committed = committed(events);
        let (release, paced) = tokio::sync::oneshot::channel::<()>();
        let producer = tokio::spawn(async move {
            tx.send(finish("a")).await.unwrap();
            // Two passes behind, as measured on the all-in-one.
            tokio::task::yield_now().await;
            tokio::task::yield_now().await;
            tx.send(finish("b")).await.unwrap();
            // Paced: the next chunk comes only once the test says so.
            paced.await.unwrap();
            tx.send(finish("c")).await.unwrap();
            tx.send(finish("d")).await.unwrap();
        });
        let first = committed.events.recv().await.unwrap();
        let frame = render_burst(&mut Reasons, &mut committed, first).await;
        assert_eq!(
            frame.as_deref(),
            Some(&b"a\nb\n"[..]),
            "the event two passes behind joins the frame"
        );
        // Returning at all means nothing waited for the paced event.
        release.send(()).unwrap();

        // The producer's last events and the close: no pass to wait for.
        let first = committed.events.recv().await.unwrap();
        producer.await.unwrap();
        let frame = render_burst(&mut Reasons, &mut committed, first).await;
        assert_eq!(frame.as_deref(), Some(&b"c\nd\n"[..]));
        assert!(committed.events.recv().await.is_none());
    }

    /// Under load a burst trickles in, an event every pass: it keeps
    /// joining the frame while it comes, up to the pass limit, and the
    /// frame goes out after two quiet passes.
    #[tokio::test]
    async fn a_trickling_burst_keeps_joining_until_the_passes_go_quiet() {
        let (tx, events) = mpsc::channel(16);
        let mut committed = committed(events);
        let (release, paced) = tokio::sync::oneshot::channel::<()>();
        let producer = tokio::spawn(async move {
            tx.send(finish("a")).await.unwrap();
            for reason in ["b", "c", "d", "e"] {
                tokio::task::yield_now().await;
                tx.send(finish(reason)).await.unwrap();
            }
            paced.await.unwrap();
            tx.send(finish("f")).await.unwrap();
        });
        let first = committed.events.recv().await.unwrap();
        let frame = render_burst(&mut Reasons, &mut committed, first).await;
        assert_eq!(frame.as_deref(), Some(&b"a\nb\nc\nd\ne\n"[..]));
        release.send(()).unwrap();
        let first = committed.events.recv().await.unwrap();
        producer.await.unwrap();
        let frame = render_burst(&mut Reasons, &mut committed, first).await;
        assert_eq!(frame.as_deref(), Some(&b"f\n"[..]));
    }
}
