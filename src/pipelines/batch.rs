//! What the pipelines share for several inputs: running over items (image files, label maps) one at
//! a time with progress and cancellation, and stacking per-input results of one size into a batch
//! (`(B, …)`), with an error naming two inputs whose sizes differ.

use candle::Tensor;

use crate::pipelines::input::InputName;
use crate::progress::{check_cancelled, Progress};
use crate::{Error, Result};

/// `run` on each item in order, reported to `progress` as `stage`; stops with
/// [`Error::Interrupted`] when `progress` is cancelled.
pub(crate) fn each<I, T>(
    stage: &str,
    items: &[I],
    progress: &dyn Progress,
    mut run: impl FnMut(&I) -> Result<T>,
) -> Result<Vec<T>> {
    progress.begin(stage, Some(items.len() as u64));
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        check_cancelled(progress, out.len(), items.len())?;
        out.push(run(item)?);
        progress.advance(1);
    }
    progress.end();
    Ok(out)
}

/// Stacks `(name, tensor)` results of equal shapes along a new first axis; `what` names them in
/// errors.
pub(crate) fn stack_results<'a>(
    what: &str,
    results: impl IntoIterator<Item = (&'a InputName, &'a Tensor)>,
) -> Result<Tensor> {
    let results: Vec<_> = results.into_iter().collect();
    let (first_name, first) = results
        .first()
        .copied()
        .ok_or_else(|| Error::input(what, "none to stack"))?;
    if let Some((name, t)) = results.iter().find(|(_, t)| t.dims() != first.dims()) {
        return Err(Error::input(
            what,
            format!(
                "{first_name} and {name} have different sizes ({:?}, {:?}): write one picture each, or run them separately",
                first.dims(),
                t.dims()
            ),
        ));
    }
    let tensors: Vec<&Tensor> = results.iter().map(|(_, t)| *t).collect();
    Ok(Tensor::stack(&tensors, 0)?)
}
