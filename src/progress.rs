//! Observing long work: a loop over images, sliding windows, scales or epochs reports through
//! [`Progress`], so a caller can draw a progress bar (the CLI uses indicatif) and stop the work early
//! (Ctrl-C). The library itself prints nothing.
//!
//! A loop calls [`Progress::begin`] with its stage name and length, [`Progress::advance`] after
//! each unit, [`Progress::end`] when done, and checks [`Progress::cancelled`] between units: a
//! cancelled loop returns [`Error::Interrupted`](crate::Error::Interrupted) with how far it got.

/// Receives progress of long work; every method has a do-nothing default.
pub trait Progress: Send + Sync {
    /// A stage of `total` units (`None` when unknown) begins, for example `("images", Some(40))`.
    fn begin(&self, _stage: &str, _total: Option<u64>) {}

    /// `n` more units of the current stage are done.
    fn advance(&self, _n: u64) {}

    /// The current stage is done.
    fn end(&self) {}

    /// Whether the caller asked the work to stop.
    fn cancelled(&self) -> bool {
        false
    }

    /// A message for the user (a skipped file, a warning) that should not break a progress bar.
    fn note(&self, _message: &str) {}
}

/// No progress reporting.
impl Progress for () {}

/// Returns [`Error::Interrupted`](crate::Error::Interrupted) when `progress` was cancelled.
pub(crate) fn check_cancelled(
    progress: &dyn Progress,
    done: usize,
    total: usize,
) -> crate::Result<()> {
    if progress.cancelled() {
        return Err(crate::Error::Interrupted { done, total });
    }
    Ok(())
}

/// Runs `f` on each of `items` in order as the stage `stage`: begins it, advances it after each
/// item, checks for cancellation before each ([`Error::Interrupted`](crate::Error::Interrupted))
/// and ends it. The first error of `f` stops the loop.
pub(crate) fn for_each_reported<I, T>(
    progress: &dyn Progress,
    stage: &str,
    items: &[I],
    mut f: impl FnMut(&I) -> crate::Result<T>,
) -> crate::Result<Vec<T>> {
    progress.begin(stage, Some(items.len() as u64));
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        check_cancelled(progress, i, items.len())?;
        out.push(f(item)?);
        progress.advance(1);
    }
    progress.end();
    Ok(out)
}
