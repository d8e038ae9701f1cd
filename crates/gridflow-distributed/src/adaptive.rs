//! Adaptive scaling shared by every cluster backend: a thread polls how many workers the
//! scheduler's pending work wants ([`crate::Client::adaptive_target`]) and asks the backend
//! for that many, within a minimum and a maximum. Scaling up happens at once; scaling down
//! only once a lower target has held for several polls in a row and a cool-down after the
//! last change has passed, so that a short lull between two computations does not stop
//! workers that are needed again a moment later (flapping).

use crate::{DistError, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How an adaptive loop behaves.
#[derive(Clone, Copy, Debug)]
pub struct AdaptiveOptions {
    /// Fewest workers.
    pub minimum: usize,
    /// Most workers.
    pub maximum: usize,
    /// How often the scheduler is asked.
    pub interval: Duration,
    /// Polls in a row a lower target must hold before workers are retired (Dask's
    /// `wait_count`).
    pub wait_count: u32,
    /// No scaling down within this long of the last change.
    pub cooldown: Duration,
}

impl AdaptiveOptions {
    /// Between `minimum` and `maximum` workers, asking every second, scaling down after 3
    /// lower polls and 5 s of calm.
    pub fn new(minimum: usize, maximum: usize) -> AdaptiveOptions {
        AdaptiveOptions {
            minimum,
            maximum,
            interval: Duration::from_secs(1),
            wait_count: 3,
            cooldown: Duration::from_secs(5),
        }
    }

    /// An error naming the bounds when `minimum > maximum`.
    pub fn check(&self) -> Result<()> {
        if self.minimum > self.maximum {
            return Err(DistError::Cluster(format!(
                "adapt: the minimum ({}) is above the maximum ({}) number of workers",
                self.minimum, self.maximum
            )));
        }
        Ok(())
    }
}

/// The decision of an adaptive loop, without threads or I/O (see the module's text).
#[derive(Debug)]
pub struct Hysteresis {
    options: AdaptiveOptions,
    lower_polls: u32,
    last_change: Option<Instant>,
}

impl Hysteresis {
    /// A fresh decision state.
    pub fn new(options: AdaptiveOptions) -> Hysteresis {
        Hysteresis {
            options,
            lower_polls: 0,
            last_change: None,
        }
    }

    /// Given the scheduler's `target` and the `current` number of workers asked for, the
    /// number to scale to now, if any (`now`: the poll's time).
    pub fn decide(&mut self, target: usize, current: usize, now: Instant) -> Option<usize> {
        let o = &self.options;
        let want = target.clamp(o.minimum, o.maximum.max(o.minimum));
        if want > current {
            self.lower_polls = 0;
            self.last_change = Some(now);
            return Some(want);
        }
        if want == current {
            self.lower_polls = 0;
            return None;
        }
        self.lower_polls += 1;
        let calm = self
            .last_change
            .is_none_or(|t| now.duration_since(t) >= o.cooldown);
        if self.lower_polls >= o.wait_count.max(1) && calm {
            self.lower_polls = 0;
            self.last_change = Some(now);
            return Some(want);
        }
        None
    }
}

/// A running adaptive loop; stopped on drop.
pub struct Adaptive {
    stop: Arc<(Mutex<bool>, Condvar)>,
    failed: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Adaptive {
    /// Starts the loop: every `options.interval`, `target()` says how many workers the work
    /// wants, `current()` how many are asked for, and `scale(n)` asks for `n`. Errors are
    /// printed and the loop goes on (a scheduler busy for a moment is no reason to stop).
    pub fn start(
        options: AdaptiveOptions,
        target: impl Fn() -> Result<usize> + Send + 'static,
        current: impl Fn() -> usize + Send + 'static,
        scale: impl Fn(usize) -> Result<()> + Send + 'static,
    ) -> Result<Adaptive> {
        options.check()?;
        let stop: Arc<(Mutex<bool>, Condvar)> = Arc::default();
        let failed: Arc<AtomicBool> = Arc::default();
        let (stop2, failed2) = (stop.clone(), failed.clone());
        let thread = std::thread::Builder::new()
            .name("gridflow-adaptive".into())
            .spawn(move || {
                let mut h = Hysteresis::new(options);
                loop {
                    let step =
                        target().and_then(|t| match h.decide(t, current(), Instant::now()) {
                            Some(n) => scale(n),
                            None => Ok(()),
                        });
                    if let Err(e) = step {
                        failed2.store(true, Ordering::Relaxed);
                        tracing::warn!("gridflow adaptive scaling: {e}");
                    }
                    let (m, cv) = &*stop2;
                    let guard = m.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    let (guard, _) = cv
                        .wait_timeout_while(guard, options.interval, |s| !*s)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    if *guard {
                        return;
                    }
                }
            })
            .map_err(|e| DistError::io("starting the adaptive scaling thread", e))?;
        Ok(Adaptive {
            stop,
            failed,
            thread: Some(thread),
        })
    }

    /// True once a poll or a scaling step has failed (each failure is printed).
    pub fn had_errors(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// Stops the loop and waits for it (a scaling step under way finishes first).
    pub fn stop(&mut self) {
        let (m, cv) = &*self.stop;
        *m.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Adaptive {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn opts() -> AdaptiveOptions {
        AdaptiveOptions {
            minimum: 1,
            maximum: 4,
            interval: Duration::from_millis(10),
            wait_count: 3,
            cooldown: Duration::from_secs(5),
        }
    }

    #[test]
    fn scales_up_at_once_within_the_maximum() {
        let mut h = Hysteresis::new(opts());
        let t = Instant::now();
        assert_eq!(h.decide(10, 1, t), Some(4));
        assert_eq!(h.decide(0, 0, t), Some(1)); // the minimum holds even with no work
    }

    #[test]
    fn scales_down_only_after_several_lower_polls_and_the_cooldown() {
        let mut h = Hysteresis::new(opts());
        let t0 = Instant::now();
        assert_eq!(h.decide(4, 2, t0), Some(4));
        // Lower for 3 polls but within the cool-down: nothing.
        for i in 1..=3 {
            assert_eq!(h.decide(1, 4, t0 + Duration::from_secs(i)), None);
        }
        // A poll back at the current size resets the count.
        assert_eq!(h.decide(4, 4, t0 + Duration::from_secs(6)), None);
        assert_eq!(h.decide(1, 4, t0 + Duration::from_secs(7)), None);
        assert_eq!(h.decide(1, 4, t0 + Duration::from_secs(8)), None);
        assert_eq!(h.decide(1, 4, t0 + Duration::from_secs(9)), Some(1));
    }

    #[test]
    fn bounds_the_wrong_way_round_are_refused() {
        let o = AdaptiveOptions::new(3, 2);
        let e = o.check().unwrap_err().to_string();
        assert!(
            e.contains("minimum (3)") && e.contains("maximum (2)"),
            "{e}"
        );
    }
}
