//! A time counter that closures can add to while borrowed immutably (the segmentation model closure
//! is a `Fn`).

use std::cell::Cell;
use std::time::{Duration, Instant};

/// Accumulated time and a call count.
#[derive(Debug, Default)]
pub struct Counter {
    total: Cell<Duration>,
    calls: Cell<usize>,
}

impl Counter {
    /// Runs `f`, adding its time to the counter.
    pub fn time<T>(&self, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        self.total.set(self.total.get() + start.elapsed());
        self.calls.set(self.calls.get() + 1);
        out
    }

    /// The accumulated time in seconds.
    pub fn secs(&self) -> f64 {
        self.total.get().as_secs_f64()
    }

    /// How many times [`Counter::time`] ran.
    pub fn calls(&self) -> usize {
        self.calls.get()
    }
}
