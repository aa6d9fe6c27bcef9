//! Samples taken once a second while a run lasts: the server process's CPU and memory
//! (`server::Sampler`) and the machine's CPU (`machine::MachineSampler`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// Samples, each with the seconds since the run started.
pub type Samples<S> = Arc<Mutex<Vec<(f64, S)>>>;

/// Calls `read` every second until `stop` is cancelled or `read` finds nothing more to
/// read (the process is gone), recording each sample with its time since `started`.
pub fn every_second<S, F>(read: F, started: Instant, stop: CancellationToken) -> Samples<S>
where
    S: Send + 'static,
    F: Fn() -> Option<S> + Send + 'static,
{
    let samples: Samples<S> = Arc::new(Mutex::new(Vec::new()));
    let recorded = Arc::clone(&samples);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = ticker.tick() => {}
            }
            let Some(sample) = read() else { break };
            let at_s = started.elapsed().as_secs_f64();
            lock(&recorded).push((at_s, sample));
        }
    });
    samples
}

/// Takes one more sample now and summarises all of them.
pub fn finish<S, T>(
    samples: &Samples<S>,
    read: impl FnOnce() -> Option<S>,
    started: Instant,
    summarise: impl FnOnce(&[(f64, S)]) -> T,
) -> T {
    let mut samples = lock(samples);
    if let Some(sample) = read() {
        samples.push((started.elapsed().as_secs_f64(), sample));
    }
    summarise(&samples)
}

fn lock<S>(samples: &Samples<S>) -> std::sync::MutexGuard<'_, Vec<(f64, S)>> {
    samples
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn samples_each_second_until_stopped_and_once_more_at_the_end() {
        let started = Instant::now();
        let stop = CancellationToken::new();
        let count = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let read = {
            let count = Arc::clone(&count);
            move || Some(count.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
        };
        let samples = every_second(read.clone(), started, stop.clone());
        // The first tick is at once, then one a second: 0, 1, 2, 3 s.
        tokio::time::sleep(Duration::from_millis(3_500)).await;
        stop.cancel();
        tokio::task::yield_now().await;
        let taken = finish(&samples, read, started, |samples| {
            samples.iter().map(|(_, n)| *n).collect::<Vec<_>>()
        });
        assert_eq!(taken, [0, 1, 2, 3, 4]);
    }

    #[tokio::test(start_paused = true)]
    async fn stops_at_the_first_read_that_finds_nothing() {
        // Reads 0 and 1, then nothing (the process is gone), then would read again.
        let calls = std::sync::atomic::AtomicU32::new(0);
        let read = move || {
            let n = calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            (n != 2).then_some(n)
        };
        let samples = every_second(read, Instant::now(), CancellationToken::new());
        tokio::time::sleep(Duration::from_secs(6)).await;
        let taken: Vec<u32> = lock(&samples).iter().map(|(_, n)| *n).collect();
        assert_eq!(taken, [0, 1]);
    }
}
