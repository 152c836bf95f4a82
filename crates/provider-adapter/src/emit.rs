//! Normalized events out, the same for every wire format: `Started`, deltas,
//! exactly one `Finish`, then usage — the upstream's last report, or an
//! estimate flagged `estimated` when it reported none. Reasoning the caller
//! asked to exclude is dropped here, after it was counted.

use std::sync::atomic::{AtomicBool, Ordering};

use switchyard_proto::common::v1::{FinishReason, TokenUsage};
use switchyard_proto::provider::v1::generate_response::Event;
use switchyard_proto::provider::v1::{Delta, Finish, GenerateResponse, Started};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::Status;

use crate::errors::UpstreamFailure;
use crate::metrics::AdapterMetrics;
use crate::translate::tokens_for_chars;

pub type EventSender = mpsc::Sender<Result<GenerateResponse, Status>>;

/// What a wire format's decoder makes of a body or an event, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    /// The upstream's id for the generation, when its body names one.
    Id(String),
    Delta(Delta),
    Finish(Finish),
    /// Cumulative usage so far; the last one counts.
    Usage(TokenUsage),
    /// The format's end-of-stream marker (`[DONE]`, `message_stop`).
    Done,
}

pub enum Stop {
    Failed(UpstreamFailure),
    ClientGone,
}

impl From<UpstreamFailure> for Stop {
    fn from(failure: UpstreamFailure) -> Stop {
        Stop::Failed(failure)
    }
}

pub async fn emit(tx: &EventSender, event: Event) -> Result<(), Stop> {
    tx.send(Ok(GenerateResponse { event: Some(event) }))
        .await
        .map_err(|_| Stop::ClientGone)
}

/// Times one call for the metrics: from sending to first content.
pub struct Probe<'a> {
    pub metrics: &'a AdapterMetrics,
    pub provider: &'a str,
    pub started: Instant,
    pub first_token_seen: AtomicBool,
}

impl Probe<'_> {
    fn first_token(&self) {
        if !self.first_token_seen.swap(true, Ordering::Relaxed) {
            self.metrics
                .first_token(self.provider, self.started.elapsed());
        }
    }
}

pub struct Emitter<'a> {
    tx: &'a EventSender,
    probe: &'a Probe<'a>,
    hide_reasoning: bool,
    prompt_estimate: u64,
    /// Any upstream delta, shown or not: the upstream is making progress.
    pub first_token_seen: bool,
    pub finished: bool,
    pub done: bool,
    usage: Option<TokenUsage>,
    completion_chars: usize,
    reasoning_chars: usize,
}

impl<'a> Emitter<'a> {
    pub fn new(
        tx: &'a EventSender,
        probe: &'a Probe<'a>,
        hide_reasoning: bool,
        prompt_estimate: u64,
    ) -> Emitter<'a> {
        Emitter {
            tx,
            probe,
            hide_reasoning,
            prompt_estimate,
            first_token_seen: false,
            finished: false,
            done: false,
            usage: None,
            completion_chars: 0,
            reasoning_chars: 0,
        }
    }

    pub async fn started(&self, upstream_id: String, status: u16) -> Result<(), Stop> {
        let started = Started {
            upstream_id,
            upstream_status: u32::from(status),
        };
        emit(self.tx, Event::Started(started)).await
    }

    pub async fn piece(&mut self, piece: Piece) -> Result<(), Stop> {
        if self.done {
            return Ok(());
        }
        match piece {
            Piece::Id(_) => {}
            Piece::Delta(mut delta) => {
                self.count(&delta);
                self.first_token_seen = true;
                if self.hide_reasoning {
                    delta.reasoning = None;
                }
                if is_empty(&delta) {
                    return Ok(());
                }
                self.probe.first_token();
                emit(self.tx, Event::Delta(delta)).await?;
            }
            Piece::Finish(finish) => {
                if !self.finished {
                    self.finished = true;
                    emit(self.tx, Event::Finish(finish)).await?;
                }
            }
            Piece::Usage(usage) => self.usage = Some(usage),
            Piece::Done => self.done = true,
        }
        Ok(())
    }

    /// Ends a generation that ran to completion: a finish if the upstream
    /// never named one, then usage.
    pub async fn close(self) -> Result<(), Stop> {
        if !self.finished {
            emit(self.tx, Event::Finish(unreported_finish())).await?;
        }
        let usage = match self.usage {
            // All zeros beside generated text is a host that does not count.
            Some(usage)
                if !(usage.prompt_tokens == 0
                    && usage.completion_tokens == 0
                    && self.completion_chars > 0) =>
            {
                usage
            }
            _ => self.estimate(),
        };
        emit(self.tx, Event::Usage(usage)).await
    }

    fn count(&mut self, delta: &Delta) {
        let chars = |text: &Option<String>| text.as_deref().map_or(0, |t| t.chars().count());
        let reasoning = chars(&delta.reasoning);
        let calls: usize = delta
            .tool_calls
            .iter()
            .map(|c| chars(&c.name) + chars(&c.arguments))
            .sum();
        self.reasoning_chars += reasoning;
        self.completion_chars += chars(&delta.content) + chars(&delta.refusal) + reasoning + calls;
    }

    fn estimate(&self) -> TokenUsage {
        TokenUsage {
            prompt_tokens: self.prompt_estimate,
            completion_tokens: tokens_for_chars(self.completion_chars),
            reasoning_tokens: tokens_for_chars(self.reasoning_chars),
            estimated: true,
            ..Default::default()
        }
    }
}

fn is_empty(delta: &Delta) -> bool {
    delta.content.is_none()
        && delta.reasoning.is_none()
        && delta.refusal.is_none()
        && delta.tool_calls.is_empty()
}

/// Some hosts end cleanly without a finish reason.
fn unreported_finish() -> Finish {
    Finish {
        reason: FinishReason::Stop as i32,
        native_reason: String::new(),
    }
}
