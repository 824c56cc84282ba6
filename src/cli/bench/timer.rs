//! A time counter that closures can add to while borrowed immutably (the segmentation model closure
//! is a `Fn`).

use std::cell::Cell;
use std::time::{Duration, Instant};

/// Accumulated time.
#[derive(Debug, Default)]
pub struct Counter {
    total: Cell<Duration>,
}

impl Counter {
    /// Runs `f`, adding its time to the counter.
    pub fn time<T>(&self, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        self.total.set(self.total.get() + start.elapsed());
        out
    }

    /// The accumulated time in seconds.
    pub fn secs(&self) -> f64 {
        self.total.get().as_secs_f64()
    }
}
