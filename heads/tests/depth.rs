//! Depth heads against their references (fixtures from `tests/fixtures/gen_depth.py`):
//! HF `DepthAnythingForDepthEstimation` (relative and metric, HF and original `.pth` layouts, a
//! registers backbone) and dinov2's linear (1 and 4 blocks) and DPT depth heads, at 1e-4 relative
//! to the output's scale; and the errors on checkpoints, configs and inputs that do not fit.

use std::path::PathBuf;

use candle::{DType, Device, Tensor};
use dinoreg_heads::depth::{
    DepthAnythingConfig, DepthAnythingHead, DepthHead, DepthKind, DepthRange, Dinov2DepthOptions,
    Dinov2DptDepthHead, Dinov2LinearDepthHead, OriginalDepthAnythingOptions,
};
use dinoreg_heads::{Error, FeatureMaps, Head, Result, TensorStore};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/depth")
        .join(name)
}

fn load(store: &TensorStore, name: &str) -> Result<Tensor> {
    store.get_any(name, DType::F32, &Device::Cpu)
}

/// `max|a - b| <= 1e-4 · max(1, max|b|)`, shapes equal.
fn assert_close(actual: &Tensor, expected: &Tensor, what: &str) -> Result<()> {
    assert_eq!(actual.dims(), expected.dims(), "{what}: shape");
    let scale = expected.abs()?.max_all()?.to_scalar::<f32>()?.max(1.0);
    let diff = (actual - expected)?.abs()?.max_all()?.to_scalar::<f32>()?;
    assert!(
        diff <= 1e-4 * scale,
        "{what}: max |diff| {diff} > 1e-4 * {scale}"
    );
    Ok(())
}

/// The maps `map.0..n` (and CLS tokens `cls.*` when present) of an io file.
fn feature_maps(io: &TensorStore, n: usize, patch: usize) -> Result<FeatureMaps> {
    let maps = (0..n)
        .map(|i| load(io, &format!("map.{i}")))
        .collect::<Result<Vec<_>>>()?;
    let cls = match io.contains("cls.0") {
        true => Some(
            (0..n)
                .map(|i| load(io, &format!("cls.{i}")))
                .collect::<Result<Vec<_>>>()?,
        ),
        false => None,
    };
    let (_, _, h, w) = maps[0].dims4()?;
    Ok(FeatureMaps {
        maps,
        cls_tokens: cls,
        patch_size: patch,
        input_size: (h * patch, w * patch),
    })
}

fn depth_anything(case: &str) -> Result<(DepthAnythingHead, TensorStore)> {
    let dir = fixture(case);
    let config = DepthAnythingConfig::from_file(dir.join("config.json"))?;
    let store = TensorStore::open(dir.join("model.safetensors"))?;
    let head = DepthAnythingHead::load(&store, &config, &Device::Cpu)?;
    Ok((head, TensorStore::open(dir.join("io.safetensors"))?))
}

#[test]
fn depth_anything_relative_matches_hf() -> Result<()> {
    let (head, io) = depth_anything("da_relative")?;
    let request = head.request();
    assert_eq!(request.blocks, vec![0, 1, 2, 3]);
    assert!(request.norm && !request.cls_token);
    assert_eq!(head.config().depth_estimation_type, DepthKind::Relative);
    let depth = head.forward(&feature_maps(&io, 4, 4)?)?;
    assert_eq!(depth.dims(), [2, 28, 20]);
    assert_close(&depth, &load(&io, "predicted_depth")?, "relative depth")
}

#[test]
fn depth_anything_metric_matches_hf() -> Result<()> {
    let (head, io) = depth_anything("da_metric")?;
    assert_eq!(head.request().blocks, vec![0, 2, 3, 4]);
    assert_eq!(head.config().depth_estimation_type, DepthKind::Metric);
    assert_eq!(head.config().max_depth, 20.0);
    let depth = head.forward(&feature_maps(&io, 4, 4)?)?;
    assert_eq!(depth.dims(), [2, 24, 36]);
    assert_close(&depth, &load(&io, "predicted_depth")?, "metric depth")
}

#[test]
fn depth_anything_original_layout_matches_hf() -> Result<()> {
    let dir = fixture("da_relative");
    let options = OriginalDepthAnythingOptions::default()
        .with_blocks([0, 1, 2, 3])
        .with_patch_size(4);
    let head = DepthAnythingHead::load_original(
        dir.join("depth_anything_v2_tiny.pth"),
        &options,
        &Device::Cpu,
    )?;
    let hf = DepthAnythingConfig::from_file(dir.join("config.json"))?;
    let config = head.config();
    assert_eq!(config.neck_hidden_sizes, hf.neck_hidden_sizes);
    assert_eq!(config.fusion_hidden_size, hf.fusion_hidden_size);
    assert_eq!(config.head_hidden_size, hf.head_hidden_size);
    let io = TensorStore::open(dir.join("io.safetensors"))?;
    let depth = head.forward(&feature_maps(&io, 4, 4)?)?;
    assert_close(
        &depth,
        &load(&io, "predicted_depth")?,
        "original-layout depth",
    )
}

/// HF hands the neck token sequences `(B, 1 + N, C)` and drops only CLS. A registers backbone has
/// `(B, 1 + R + N, C)`; our maps never hold CLS or registers, so the same head takes it.
#[test]
fn depth_anything_on_a_registers_backbone() -> Result<()> {
    let (head, io) = depth_anything("da_relative")?;
    let dev = Device::Cpu;
    let registers = 4;
    let mut maps = Vec::new();
    for i in 0..4 {
        let tokens = load(&io, &format!("tokens.{i}"))?; // (B, 1 + N, C), CLS first
        let (b, _, c) = tokens.dims3()?;
        let cls = tokens.narrow(1, 0, 1)?;
        let patches = tokens.narrow(1, 1, 35)?;
        let reg = Tensor::randn(0f32, 3.0, (b, registers, c), &dev)?;
        let with_registers = Tensor::cat(&[&cls, &reg, &patches], 1)?; // (B, 1 + R + N, C)
                                                                       // strip CLS and registers by hand, as the backbone does, then (B, N, C) -> (B, C, h, w)
        let stripped = with_registers.narrow(1, 1 + registers, 35)?;
        maps.push(
            stripped
                .reshape((b, 7, 5, c))?
                .permute((0, 3, 1, 2))?
                .contiguous()?,
        );
    }
    let features = FeatureMaps {
        maps,
        cls_tokens: None,
        patch_size: 4,
        input_size: (28, 20),
    };
    let depth = head.forward(&features)?;
    assert_eq!(depth.dims(), [2, 28, 20]);
    let total = depth.sum_all()?.to_scalar::<f32>()?;
    assert!(total.is_finite());
    assert_close(
        &depth,
        &load(&io, "predicted_depth")?,
        "registers-backbone depth",
    )?;
    // back to an image size with Depth-Anything's convention
    assert_eq!(head.resize_output(&depth, (57, 41))?.dims(), [2, 57, 41]);
    Ok(())
}

fn dinov2_case<H: DepthHead>(head: &H, case: &str, n: usize) -> Result<()> {
    let io = TensorStore::open(fixture(&format!("{case}_io.safetensors")))?;
    let depth = head.forward(&feature_maps(&io, n, 14)?)?;
    assert_close(&depth, &load(&io, "depth")?.squeeze(1)?, case)?;
    let resized = head.resize_output(&depth, (40, 66))?;
    assert_close(&resized, &load(&io, "depth_resized")?.squeeze(1)?, case)
}

#[test]
fn dinov2_linear_one_layer_matches_reference() -> Result<()> {
    let store = TensorStore::open(fixture("dinov2_linear1.pth"))?;
    let head =
        Dinov2LinearDepthHead::load(&store, 8, &Dinov2DepthOptions::default(), &Device::Cpu)?;
    let request = head.request();
    assert_eq!(request.blocks, vec![-1]);
    assert!(!request.norm && request.cls_token);
    dinov2_case(&head, "dinov2_linear1", 1)
}

#[test]
fn dinov2_linear_four_layers_matches_reference() -> Result<()> {
    let store = TensorStore::open(fixture("dinov2_linear4.pth"))?;
    let options = Dinov2DepthOptions::default()
        .with_blocks([0, 1, 2, 3])
        .with_range(DepthRange::new(0.5, 3.0)?);
    let head = Dinov2LinearDepthHead::load(&store, 8, &options, &Device::Cpu)?;
    assert_eq!(head.range(), DepthRange::new(0.5, 3.0)?);
    dinov2_case(&head, "dinov2_linear4", 4)
}

#[test]
fn dinov2_linear_four_layers_needs_the_layer_table() -> Result<()> {
    // A 4-block checkpoint on a width with no published table asks for explicit blocks.
    let store = TensorStore::open(fixture("dinov2_linear4.pth"))?;
    let err = Dinov2LinearDepthHead::load(&store, 8, &Dinov2DepthOptions::default(), &Device::Cpu)
        .map(|_| ())
        .err();
    assert!(matches!(err, Some(Error::InvalidOption { .. })), "{err:?}");
    Ok(())
}

#[test]
fn dinov2_dpt_matches_reference() -> Result<()> {
    let store = TensorStore::open(fixture("dinov2_dpt.pth"))?;
    let options = Dinov2DepthOptions::default().with_blocks([0, 1, 2, 3]);
    let head = Dinov2DptDepthHead::load(&store, 16, &options, &Device::Cpu)?;
    assert!(head.request().cls_token);
    dinov2_case(&head, "dinov2_dpt", 4)
}

fn tensor_shape_name(err: Option<Error>) -> String {
    match err {
        Some(Error::TensorShape { name, .. }) => name,
        other => panic!("expected a TensorShape error, got {other:?}"),
    }
}

#[test]
fn heads_that_do_not_fit_the_backbone_width() -> Result<()> {
    let dev = Device::Cpu;
    let lin = TensorStore::open(fixture("dinov2_linear1.pth"))?;
    let err = Dinov2LinearDepthHead::load(&lin, 384, &Dinov2DepthOptions::default(), &dev).err();
    assert_eq!(tensor_shape_name(err), "decode_head.conv_depth.weight");

    let dpt = TensorStore::open(fixture("dinov2_dpt.pth"))?;
    let options = Dinov2DepthOptions::default().with_blocks([0, 1, 2, 3]);
    let err = Dinov2DptDepthHead::load(&dpt, 32, &options, &dev).err();
    assert_eq!(
        tensor_shape_name(err),
        "decode_head.reassemble_blocks.readout_projects.0.0.weight"
    );

    let dir = fixture("da_relative");
    let mut config = DepthAnythingConfig::from_file(dir.join("config.json"))?;
    config.reassemble_hidden_size = 64;
    let store = TensorStore::open(dir.join("model.safetensors"))?;
    let err = DepthAnythingHead::load(&store, &config, &dev).err();
    assert_eq!(
        tensor_shape_name(err),
        "neck.reassemble_stage.layers.0.projection.weight"
    );
    Ok(())
}

#[test]
fn config_without_backbone_is_refused() -> Result<()> {
    let text = std::fs::read_to_string(fixture("da_relative/config.json")).map_err(|source| {
        Error::Io {
            path: fixture("da_relative/config.json"),
            source,
        }
    })?;
    let mut value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::input("fixture", e.to_string()))?;
    if let Some(map) = value.as_object_mut() {
        map.remove("backbone_config");
    }
    match DepthAnythingConfig::from_value(&value) {
        Err(Error::InvalidInput { reason, .. }) => {
            assert!(reason.contains("backbone_config"), "{reason}")
        }
        other => panic!("expected an InvalidInput error, got {other:?}"),
    }
    Ok(())
}

#[test]
fn wrong_feature_maps_are_refused() -> Result<()> {
    let (head, io) = depth_anything("da_relative")?;
    let mut features = feature_maps(&io, 4, 4)?;
    features.maps.pop();
    let err = head.forward(&features).err();
    assert!(
        matches!(&err, Some(Error::InvalidInput { reason, .. }) if reason.contains("needs 4 maps")),
        "{err:?}"
    );

    let store = TensorStore::open(fixture("dinov2_dpt.pth"))?;
    let options = Dinov2DepthOptions::default().with_blocks([0, 1, 2, 3]);
    let dpt = Dinov2DptDepthHead::load(&store, 16, &options, &Device::Cpu)?;
    let io = TensorStore::open(fixture("dinov2_dpt_io.safetensors"))?;
    let mut features = feature_maps(&io, 4, 14)?;
    features.cls_tokens = None;
    let err = dpt.forward(&features).err();
    assert!(matches!(err, Some(Error::InvalidInput { .. })), "{err:?}");
    Ok(())
}
