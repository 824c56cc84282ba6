//! The library's [`Progress`] drawn as indicatif bars on stderr, one bar per stage, and the Ctrl-C
//! handling that goes with it.
//!
//! Bars are hidden when stderr is not a terminal (indicatif's stderr target) and with the global
//! `--quiet`. The first Ctrl-C during a reported loop sets the cancelled flag that the pipeline polls
//! between units, so it stops cleanly with [`dinoreg::Error::Interrupted`] and `main` prints how far it
//! got and exits with 130; a Ctrl-C outside such a loop, or a second one, exits at once with 130.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use dinoreg::progress::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// `--quiet`: no bars and no status lines.
static QUIET: AtomicBool = AtomicBool::new(false);
/// Set by the first Ctrl-C while a stage runs.
static CANCELLED: AtomicBool = AtomicBool::new(false);
/// Whether a reported stage is running (so a Ctrl-C can stop it between units).
static IN_STAGE: AtomicBool = AtomicBool::new(false);

/// The exit status of an interrupted command (128 + SIGINT, as shells report it).
pub const INTERRUPTED_STATUS: u8 = 130;

/// Sets `--quiet` for the whole run.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Whether `--quiet` was given.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Prints a status line (`wrote …`) on stderr, unless `--quiet`. Results go to stdout instead.
pub fn status(message: impl std::fmt::Display) {
    if !quiet() {
        eprintln!("{message}");
    }
}

/// What an interrupted command adds after "interrupted: N of M done; " (default: nothing was
/// written).
static INTERRUPT_HINT: Mutex<&'static str> = Mutex::new("nothing was written");

/// Sets what the current command says when interrupted, e.g. "rerun the same command to resume".
pub fn set_interrupt_hint(hint: &'static str) {
    *INTERRUPT_HINT
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = hint;
}

/// The line an interrupted stage prints: `interrupted: N of M done; <hint>`.
pub fn interrupted_message(done: usize, total: usize) -> String {
    let hint = *INTERRUPT_HINT
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    format!("interrupted: {done} of {total} done; {hint}")
}

/// Installs the Ctrl-C handler (a watcher thread of the `ctrlc` crate, so it may print and exit).
pub fn install_ctrlc() {
    // Failing to install it only loses the clean message: Ctrl-C then kills the process as usual.
    let _ = ctrlc::set_handler(|| {
        if IN_STAGE.load(Ordering::SeqCst) && !CANCELLED.swap(true, Ordering::SeqCst) {
            eprintln!("\nstopping after the current item (Ctrl-C again to quit at once)");
            return;
        }
        eprintln!("\ninterrupted");
        std::process::exit(i32::from(INTERRUPTED_STATUS));
    });
}

/// A progress bar that follows the stages of a pipeline, one bar per stage.
pub struct Bar {
    bar: Mutex<ProgressBar>,
}

impl Default for Bar {
    fn default() -> Self {
        Self::new()
    }
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
        let target = if quiet() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        let next = ProgressBar::with_draw_target(total, target);
        let template = match total {
            Some(_) => format!(
                "{{bar:40}} {{pos}}/{{len}} {stage}, {{per_sec}} [{{elapsed_precise}} < {{eta}}]"
            ),
            None => format!("{{spinner}} {{pos}} {stage} [{{elapsed_precise}}]"),
        };
        if let Ok(style) = ProgressStyle::with_template(&template) {
            next.set_style(style);
        }
        let mut bar = self.bar();
        bar.finish_and_clear();
        *bar = next;
        IN_STAGE.store(true, Ordering::SeqCst);
    }

    fn advance(&self, n: u64) {
        self.bar().inc(n);
    }

    fn end(&self) {
        IN_STAGE.store(false, Ordering::SeqCst);
        self.bar().finish_and_clear();
    }

    fn cancelled(&self) -> bool {
        CANCELLED.load(Ordering::SeqCst)
    }

    fn note(&self, message: &str) {
        self.bar().suspend(|| eprintln!("{message}"));
    }
}
