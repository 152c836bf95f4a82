//! The thread that commits usage batches to the embedded store.
//!
//! A usage commit is a burst of CPU: redb writes the pages the batch
//! touched and fdatasyncs them, 2–3 ms for about 70 generations on the
//! two-core reference machine. Run on tokio's blocking pool, that burst
//! woke on a core where a worker was serving a request and the scheduler
//! let it finish first, so every commit delayed a request by about as long
//! as the commit took (`bench/README.md`, "Where the tail came from").
//!
//! Usage commits therefore run on one thread of their own in Linux's idle
//! scheduling class (`SCHED_IDLE`): it runs on CPU time nothing else wants,
//! and yields the moment a request's thread needs the core. Recording
//! usage is not urgent: the router's journal holds every event until its
//! batch is committed.
//!
//! A thread that only gets spare CPU can fall behind on a machine that is
//! busy with other work. When one commit takes longer than [`STARVED`] from
//! hand-over to done, later commits go to a thread of normal priority, until
//! [`CALM_AFTER`] passes with every commit done within [`PROMPT`].

use std::panic::AssertUnwindSafe;
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use tokio::sync::oneshot;

/// A commit slower than this means the idle-class thread is starved.
const STARVED: Duration = Duration::from_millis(500);
/// A commit at normal priority within this counts as prompt.
const PROMPT: Duration = Duration::from_millis(50);
/// Back to the idle class after this long with only prompt commits.
const CALM_AFTER: Duration = Duration::from_secs(30);

type Job = Box<dyn FnOnce() + Send>;

/// Which kind of thread the next commit goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// Linux `SCHED_IDLE`, where the platform allows it.
    Idle,
    Normal,
}

pub(crate) struct Writer {
    lane: Mutex<Lane>,
}

struct Lane {
    tx: mpsc::Sender<Job>,
    class: Class,
    /// Since when every commit at normal priority was prompt.
    prompt_since: Instant,
}

impl Lane {
    fn start(class: Class) -> std::io::Result<Lane> {
        let (tx, rx) = mpsc::channel::<Job>();
        let name = match class {
            Class::Idle => "usage-writer",
            Class::Normal => "usage-writer-n",
        };
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                if class == Class::Idle {
                    lower_to_idle_class();
                }
                // Ends when the lane is replaced and its queue is drained.
                while let Ok(job) = rx.recv() {
                    // A panicking job drops its reply sender, so its caller
                    // gets an error; the thread carries on with the next.
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
                }
            })?;
        Ok(Lane {
            tx,
            class,
            prompt_since: Instant::now(),
        })
    }
}

impl Writer {
    pub(crate) fn start() -> std::io::Result<Writer> {
        Ok(Writer {
            lane: Mutex::new(Lane::start(Class::Idle)?),
        })
    }

    /// Runs `f` on the writer thread and waits for its result.
    pub(crate) async fn run<T, F>(&self, f: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let handed_over = Instant::now();
        let tx = self.lane.lock().expect("writer lane poisoned").tx.clone();
        tx.send(Box::new(move || {
            let _ = reply.send(f());
        }))
        .map_err(|_| anyhow!("the usage writer thread is gone"))?;
        let result = answer
            .await
            .map_err(|_| anyhow!("the usage writer failed (panicked) on this batch"))?;
        self.observe(handed_over.elapsed());
        Ok(result)
    }

    /// The class the next commit goes to.
    #[cfg(test)]
    pub(crate) fn class(&self) -> Class {
        self.lane.lock().expect("writer lane poisoned").class
    }

    fn observe(&self, took: Duration) {
        let mut lane = self.lane.lock().expect("writer lane poisoned");
        let next = match lane.class {
            Class::Idle if took > STARVED => Class::Normal,
            Class::Normal if took > PROMPT => {
                lane.prompt_since = Instant::now();
                return;
            }
            Class::Normal if lane.prompt_since.elapsed() >= CALM_AFTER => Class::Idle,
            _ => return,
        };
        self.switch(&mut lane, next, took);
    }

    fn switch(&self, lane: &mut Lane, next: Class, took: Duration) {
        match Lane::start(next) {
            Ok(fresh) => {
                if next == Class::Normal {
                    tracing::info!(
                        took_ms = took.as_millis() as u64,
                        "usage commits are starved of spare CPU; committing at normal priority"
                    );
                } else {
                    tracing::info!("usage commits are prompt again; back to spare CPU only");
                }
                // The old thread finishes what it was handed, then exits.
                *lane = fresh;
            }
            Err(err) => {
                tracing::warn!(%err, "cannot start a usage writer thread; keeping the old one")
            }
        }
    }

    #[cfg(test)]
    fn force(&self, next: Class) {
        let mut lane = self.lane.lock().expect("writer lane poisoned");
        self.switch(&mut lane, next, Duration::ZERO);
    }
}

#[cfg(target_os = "linux")]
fn lower_to_idle_class() {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id,
    };
    // Lowering one's own priority needs no privilege; a sandbox may still
    // refuse it, and then the thread runs at normal priority.
    if let Err(err) = set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Min,
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
    ) {
        tracing::debug!(?err, "cannot move the usage writer to SCHED_IDLE");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_to_idle_class() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_jobs_and_survives_a_panicking_one() {
        let writer = Writer::start().unwrap();
        assert_eq!(writer.run(|| 2 + 2).await.unwrap(), 4);
        let err = writer
            .run(|| -> u32 { panic!("a bad batch") })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("panicked"), "{err}");
        assert_eq!(writer.run(|| "still here").await.unwrap(), "still here");
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_writer_thread_is_in_the_idle_class_until_starved() {
        use thread_priority::{NormalThreadSchedulePolicy, ThreadSchedulePolicy};
        let policy = || thread_priority::thread_schedule_policy().unwrap();
        let writer = Writer::start().unwrap();
        assert_eq!(writer.class(), Class::Idle);
        assert_eq!(
            writer.run(policy).await.unwrap(),
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle)
        );
        // A commit that took longer than STARVED moves later ones to a
        // normal thread.
        writer.observe(STARVED + Duration::from_millis(1));
        assert_eq!(writer.class(), Class::Normal);
        assert_eq!(
            writer.run(policy).await.unwrap(),
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other)
        );
        // A slow commit at normal priority restarts the calm period.
        writer.observe(PROMPT + Duration::from_millis(1));
        writer.observe(Duration::ZERO);
        assert_eq!(writer.class(), Class::Normal);
        writer.force(Class::Idle);
        assert_eq!(
            writer.run(policy).await.unwrap(),
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle)
        );
    }
}
