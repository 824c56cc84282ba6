//! Which depth head a model and an optional head file make, and the backbone it runs on:
//!
//! - no head file: the model's own head, a Depth-Anything checkpoint (HF
//!   `DepthAnythingForDepthEstimation`: `config.json` with a `backbone_config`, `backbone.*`,
//!   `neck.*`, `head.*`); a bare Depth-Anything-V2 `.pth` given as the model is its own head file;
//! - a Depth-Anything-V2 `.pth` (`depth_head.*`): its DPT head, and its own fine-tuned backbone
//!   (`pretrained.*`) in place of the model's weights;
//! - one of dinov2's depth heads (mmcv layout, `decode_head.*`): `conv_depth.*` is the linear head
//!   (one or four blocks), `reassemble_blocks.*` the DPT head; both on the model's backbone, over a
//!   metric range that is KITTI's (0.001 to 80 m) when the head's **file name** says `kitti`, NYU's
//!   (0.001 to 10 m) otherwise. The folders above the file do not count: a NYU head kept under
//!   `runs/kitti_exp/` is still a NYU head.

use std::path::Path;

use crate::heads::depth::{
    AnyDepthHead, DepthAnythingConfig, DepthAnythingHead, DepthRange, Dinov2DepthOptions,
    Dinov2DptDepthHead, Dinov2LinearDepthHead, OriginalDepthAnythingOptions,
};
use crate::heads::TensorStore;
use crate::model::weights::open_backbone;
use crate::model::{DinoModel, LoadOptions, ModelSource};
use crate::pipelines::depth::DepthOptions;
use crate::{Error, Result};

/// The default metric range of one of dinov2's depth heads, from its file name alone (not the
/// folders above it): [`DepthRange::KITTI`] when the name contains `kitti` (any case), else
/// [`DepthRange::NYU`], as dinov2 publishes `dinov2_vit*14_{nyu,kitti}_*_head.pth`.
///
/// ```
/// use dinoreg::heads::depth::DepthRange;
/// use dinoreg::pipelines::depth_range_for_head_file;
///
/// assert_eq!(depth_range_for_head_file("dinov2_vits14_kitti_dpt_head.pth"), DepthRange::KITTI);
/// assert_eq!(depth_range_for_head_file("runs/kitti_exp/dinov2_vits14_nyu_dpt_head.pth"), DepthRange::NYU);
/// ```
pub fn depth_range_for_head_file(path: impl AsRef<Path>) -> DepthRange {
    let kitti = path
        .as_ref()
        .file_name()
        .is_some_and(|n| n.to_string_lossy().to_ascii_lowercase().contains("kitti"));
    if kitti {
        DepthRange::KITTI
    } else {
        DepthRange::NYU
    }
}

/// The backbone and head for `source` and an optional head file.
pub(crate) fn load_depth(
    source: &ModelSource,
    name: &str,
    head: Option<&Path>,
    options: &DepthOptions,
    load: &LoadOptions,
) -> Result<(DinoModel, AnyDepthHead)> {
    // A bare Depth-Anything-V2 .pth given as the model carries its own head.
    let own_head = source
        .config_inferred
        .then(|| source.files.weights.first().cloned())
        .flatten();
    match head.or(own_head.as_deref()) {
        None => depth_anything_model(source, name, options, load),
        Some(path) => {
            let store = TensorStore::open(path)?;
            if store.contains("depth_head.projects.0.weight") {
                depth_anything_file(source, name, path, &store, options, load)
            } else {
                let head = dinov2_head(source, path, &store, options, load)?;
                Ok((source.load(load)?, head))
            }
        }
    }
}

/// Refuses a minimum depth for heads whose range has no bottom to set.
fn no_min_depth(options: &DepthOptions, head: &str) -> Result<()> {
    match options.min_depth {
        Some(_) => Err(Error::option(
            "min_depth",
            format!("applies to dinov2's depth heads only; {head} is a Depth-Anything head"),
        )),
        None => Ok(()),
    }
}

/// An HF Depth-Anything model: backbone, neck and head in one checkpoint.
fn depth_anything_model(
    source: &ModelSource,
    name: &str,
    options: &DepthOptions,
    load: &LoadOptions,
) -> Result<(DinoModel, AnyDepthHead)> {
    no_min_depth(options, name)?;
    let mut config = DepthAnythingConfig::from_file(&source.files.config).map_err(|e| Error::Model {
        model: name.to_string(),
        reason: format!(
            "has no depth head ({e}); give a head file: one of dinov2's depth heads or a Depth-Anything-V2 .pth"
        ),
    })?;
    if let Some(m) = options.max_depth {
        config.max_depth = m;
    }
    let weights = open_backbone(&source.files.weights)?;
    let head = DepthAnythingHead::load(&weights.store, &config, &load.device)?;
    Ok((source.load(load)?, head.into()))
}

/// A Depth-Anything-V2 `.pth`: its head, and its own fine-tuned backbone when it holds one.
fn depth_anything_file(
    source: &ModelSource,
    name: &str,
    path: &Path,
    store: &TensorStore,
    options: &DepthOptions,
    load: &LoadOptions,
) -> Result<(DinoModel, AnyDepthHead)> {
    no_min_depth(options, &path.display().to_string())?;
    let mut original = match options.max_depth {
        Some(m) => OriginalDepthAnythingOptions::metric(m),
        None => OriginalDepthAnythingOptions::default(),
    }
    .with_patch_size(source.config.patch_size());
    if let Some(blocks) = &options.blocks {
        original = original.with_blocks(blocks.clone());
    }
    let head = DepthAnythingHead::from_original_store(store, &original, &load.device)?;
    let (head_width, width) = (
        head.config().reassemble_hidden_size,
        source.config.hidden_size(),
    );
    if head_width != width {
        return Err(Error::input(
            path.display().to_string(),
            format!(
                "a head for a backbone of width {head_width}, but the model {name} has width {width}"
            ),
        ));
    }
    let own_backbone = store.names().iter().any(|n| n.starts_with("pretrained."));
    let model = match own_backbone {
        true => source.load_from(&[path], load)?,
        false => source.load(load)?,
    };
    Ok((model, head.into()))
}

/// One of dinov2's depth heads, on the model's backbone.
fn dinov2_head(
    source: &ModelSource,
    path: &Path,
    store: &TensorStore,
    options: &DepthOptions,
    load: &LoadOptions,
) -> Result<AnyDepthHead> {
    let default = depth_range_for_head_file(path);
    let range = DepthRange::new(
        options.min_depth.unwrap_or(default.min),
        options.max_depth.unwrap_or(default.max),
    )?;
    let head_options = Dinov2DepthOptions {
        blocks: options.blocks.clone(),
        range,
    };
    let width = source.config.hidden_size();
    let has = |name: &str| store.contains(name) || store.contains(&format!("decode_head.{name}"));
    if has("reassemble_blocks.projects.0.conv.weight") {
        Ok(Dinov2DptDepthHead::load(store, width, &head_options, &load.device)?.into())
    } else if has("conv_depth.weight") {
        Ok(Dinov2LinearDepthHead::load(store, width, &head_options, &load.device)?.into())
    } else {
        Err(Error::input(
            path.display().to_string(),
            "not a depth head: expected dinov2's (decode_head.conv_depth.*, decode_head.reassemble_blocks.*) or Depth-Anything-V2's (depth_head.*)",
        ))
    }
}
