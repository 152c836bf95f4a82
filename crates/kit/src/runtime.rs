//! The async runtime every Switchyard binary runs on.
//!
//! A request hops between several tasks on its way through a service (the
//! connection, the handler, an upstream call, a response stream). With a
//! worker thread on every core, an idle worker is woken for nearly every
//! hop, looks for work, finds the hop already taken and parks again: system
//! calls and cache misses, not work. Measured on 2 cores with everything on
//! one machine (bench/README.md), one worker per process instead of two
//! halved both the CPU each request costs and the latency a service adds,
//! and served as many requests per second at 32 connections. So the
//! default is one worker less than the CPUs the process may use (at least
//! one), which leaves a core to the blocking pool, the usage writer and the
//! neighbours. The cost shows where one worker is the limit: the
//! all-in-one served about half as many streams per second at 32
//! connections. A process that owns its CPUs — a Kubernetes pod with a CPU
//! limit — should say how many it has; our manifests pass `limits.cpu`.

/// Worker threads when nothing says otherwise: one less than the CPUs this
/// process may use (its affinity mask and cgroup quota count), at least one.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
}

/// Builds a multi-threaded runtime with `workers` async worker threads, or,
/// when `None`, `TOKIO_WORKER_THREADS` if set, else [`default_workers`].
pub fn build(workers: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    let workers = workers.or_else(|| {
        std::env::var_os("TOKIO_WORKER_THREADS")
            .is_none()
            .then(default_workers)
    });
    if let Some(workers) = workers {
        builder.worker_threads(workers.max(1));
    }
    builder.build()
}

/// Runs `main` on a runtime from [`build`]; a runtime that cannot start is
/// reported on stderr as `name: ...` and exits with failure.
pub fn run<F>(name: &str, workers: Option<usize>, main: F) -> std::process::ExitCode
where
    F: std::future::Future<Output = std::process::ExitCode>,
{
    match build(workers) {
        Ok(runtime) => runtime.block_on(main),
        Err(e) => {
            eprintln!("{name}: cannot start the async runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_leaves_a_core_but_never_goes_below_one() {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(default_workers(), cpus.saturating_sub(1).max(1));
        assert!(default_workers() >= 1);
    }

    #[test]
    fn an_explicit_count_wins_and_zero_means_one() {
        let runtime = build(Some(3)).unwrap();
        assert_eq!(runtime.metrics().num_workers(), 3);
        let runtime = build(Some(0)).unwrap();
        assert_eq!(runtime.metrics().num_workers(), 1);
    }
}
