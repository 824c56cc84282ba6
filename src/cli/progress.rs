//! The library's [`Progress`] drawn as an indicatif bar on stderr (hidden when stderr is not a
//! terminal); notes are printed on stdout above the bar.

use std::sync::{Mutex, MutexGuard, PoisonError};

use dinoreg::progress::Progress;
use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar that follows the stages of a pipeline, one bar per stage.
pub struct Bar {
    bar: Mutex<ProgressBar>,
}

impl Bar {
    /// No bar until the first stage begins.
    pub fn new() -> Self {
        Self {
            bar: Mutex::new(ProgressBar::hidden()),
        }
    }

    fn bar(&self) -> MutexGuard<'_, ProgressBar> {
        self.bar.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Progress for Bar {
    fn begin(&self, stage: &str, total: Option<u64>) {
        let next = match total {
            Some(n) => ProgressBar::new(n),
            None => ProgressBar::new_spinner(),
        };
        let template =
            format!("{{bar:40}} {{pos}}/{{len}} {stage} [{{elapsed_precise}} < {{eta}}]");
        if let Ok(style) = ProgressStyle::with_template(&template) {
            next.set_style(style);
        }
        let mut bar = self.bar();
        bar.finish_and_clear();
        *bar = next;
    }

    fn advance(&self, n: u64) {
        self.bar().inc(n);
    }

    fn end(&self) {
        self.bar().finish_and_clear();
    }

    fn note(&self, message: &str) {
        self.bar().suspend(|| println!("{message}"));
    }
}
