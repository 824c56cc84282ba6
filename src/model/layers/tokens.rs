//! The learned tokens both generations share: the register tokens (loaded with HF's rule that a
//! model without registers may store a zero-element tensor) and the mask token of masked image
//! modelling (HF's `bool_masked_pos` replaces the embeddings of the masked patches by it,
//! `torch.where(mask, mask_token, patches)`).
//!
//! Shapes: registers `(1, R, D)`; patches `(B, h·w, D)`, mask `(B, h·w)` (non-zero = masked), mask
//! token with `D` elements (`(1, D)` or `(1, 1, D)`).

use candle::{DType, Tensor};
use dinoreg_heads::Scope;

use crate::{Error, Result};

/// `patches` with the masked positions replaced by `token`; an error when the model has no mask
/// token or the mask has the wrong shape.
pub(crate) fn mask_patches(
    patches: &Tensor,
    bool_masked_pos: &Tensor,
    token: Option<&Tensor>,
) -> Result<Tensor> {
    let (b, n, d) = patches.dims3()?;
    let token = token.ok_or_else(|| {
        Error::input(
            "bool_masked_pos",
            "the checkpoint has no embeddings.mask_token to fill masked patches with",
        )
    })?;
    if bool_masked_pos.dims() != [b, n] {
        return Err(Error::input(
            "bool_masked_pos",
            format!(
                "expected shape [{b}, {n}], got {:?}",
                bool_masked_pos.dims()
            ),
        ));
    }
    let mask = bool_masked_pos
        .to_device(patches.device())?
        .to_dtype(DType::F32)?
        .ne(0f32)?
        .unsqueeze(2)?
        .broadcast_as((b, n, d))?;
    let fill = token
        .to_dtype(patches.dtype())?
        .reshape((1, 1, d))?
        .broadcast_as((b, n, d))?;
    Ok(mask.where_cond(&fill, patches)?)
}

/// Loads the `(1, R, D)` tensor `name` under `scope` when `r > 0`; with `r = 0` the checkpoint may
/// lack it or hold a zero-element `(1, 0, D)` tensor, anything else is a shape error.
pub(crate) fn load_registers(
    scope: &Scope<'_>,
    name: &str,
    r: usize,
    d: usize,
) -> Result<Option<Tensor>> {
    if r > 0 {
        return Ok(Some(scope.get(name, &[1, r, d])?));
    }
    match scope.shape(name).filter(|s| s.get(1) != Some(&0)) {
        Some(found) => Err(dinoreg_heads::Error::TensorShape {
            source_name: scope.store().source_name().to_string(),
            name: scope.path(name),
            expected: vec![1, 0, d],
            found,
        }
        .into()),
        None => Ok(None),
    }
}

/// Loads the mask token `name` under `scope` when the checkpoint has one, as `(1, D)` or
/// `(1, 1, D)`.
pub(crate) fn load_mask_token(scope: &Scope<'_>, name: &str, d: usize) -> Result<Option<Tensor>> {
    match scope.shape(name) {
        None => Ok(None),
        Some(s) if s == [1, d] || s == [1, 1, d] => Ok(Some(scope.get(name, &s)?)),
        Some(found) => Err(dinoreg_heads::Error::TensorShape {
            source_name: scope.store().source_name().to_string(),
            name: scope.path(name),
            expected: vec![1, 1, d],
            found,
        }
        .into()),
    }
}
