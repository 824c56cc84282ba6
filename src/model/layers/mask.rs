//! Masked image modelling's input: HF's `bool_masked_pos` replaces the embeddings of the masked
//! patches by the learned mask token (`torch.where(mask, mask_token, patches)`), the same in both
//! generations. Shapes: patches `(B, h·w, D)`, mask `(B, h·w)` (non-zero = masked), token with `D`
//! elements (`(1, D)` or `(1, 1, D)`).

use candle::{DType, Tensor};

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
