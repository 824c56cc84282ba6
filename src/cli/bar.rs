//! A terminal progress bar (indicatif, on stderr, hidden when stderr is not a terminal) that
//! receives the library's [`Progress`] reports; notes are printed as `warning: …` lines above it.

use dinoreg::progress::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// An indicatif bar behind the [`Progress`] trait.
pub struct Bar {
    bar: ProgressBar,
}

impl Bar {
    /// A hidden bar drawn with `template` (indicatif's syntax) once a stage begins.
    pub fn new(template: &str) -> anyhow::Result<Self> {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(ProgressStyle::with_template(template)?);
        Ok(Self { bar })
    }
}

impl Progress for Bar {
    fn begin(&self, _stage: &str, total: Option<u64>) {
        if let Some(n) = total {
            self.bar.set_length(n);
        }
        self.bar.set_position(0);
    }

    fn advance(&self, n: u64) {
        self.bar.inc(n);
    }

    fn end(&self) {
        self.bar.finish_and_clear();
    }

    fn note(&self, message: &str) {
        self.bar.suspend(|| eprintln!("warning: {message}"));
    }
}
