//! Models with random weights, **for benchmarks and tests**: the architecture of a config with seeded
//! weights built in memory (no download, no file), and random input pixels. The numbers mean nothing;
//! the same seed gives the same weights on every machine.
//!
//! Weights are uniform (rather than normal: the giant model has 1.1 G parameters to draw) with these
//! means and standard deviations: linear and conv weights, biases, tokens and positions 0 ± 0.02;
//! norm weights and layer scales 1 ± 0.1. Each generation has its own builder listing its
//! checkpoint's tensors through one shared sampler: DINOv2's is [`random_dinov2_weights`], behind
//! [`Dinov2Model::random`]; DINOv3's is [`random_dinov3_weights`], behind [`Dinov3Model::random`].

use std::collections::HashMap;

use candle::{Device, Tensor};
use dinoreg_heads::TensorStore;

use crate::model::config::{Dinov2Config, Dinov3Config};
use crate::model::dinov2::Dinov2Model;
use crate::model::dinov3::Dinov3Model;
use crate::model::load::LoadOptions;
use crate::model::pretrained::{DinoModel, ModelConfig};
use crate::model::weights::find_backbone;
use crate::Result;

/// Mean and standard deviation of weights, biases, tokens and positions.
const SMALL: (f32, f32) = (0.0, 0.02);
/// Mean and standard deviation of norm weights and layer scales.
const NEAR_ONE: (f32, f32) = (1.0, 0.1);

/// SplitMix64: a small seeded generator, enough for benchmark weights.
#[derive(Debug, Clone)]
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `n` samples uniform on `mean ± std·√3` (standard deviation `std`).
    fn uniforms(&mut self, n: usize, (mean, std): (f32, f32)) -> Vec<f32> {
        let half = std * 3f32.sqrt();
        (0..n)
            .map(|_| {
                let u = (self.next() >> 40) as f32 / (1u64 << 24) as f32;
                mean + half * (2.0 * u - 1.0)
            })
            .collect()
    }
}

/// Draws named tensors in order from one seeded generator; a generation's builder lists its
/// checkpoint's tensors through it.
#[derive(Debug)]
pub(crate) struct WeightSampler {
    rng: SplitMix,
    tensors: HashMap<String, Tensor>,
}

impl WeightSampler {
    /// An empty checkpoint drawn from `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            rng: SplitMix(seed),
            tensors: HashMap::new(),
        }
    }

    /// A tensor of `shape` around 0 (weights, biases, tokens, positions).
    pub(crate) fn small(&mut self, name: impl Into<String>, shape: &[usize]) -> Result<()> {
        self.put(name.into(), shape, SMALL)
    }

    /// A tensor of `shape` around 1 (norm weights, layer scales).
    pub(crate) fn near_one(&mut self, name: impl Into<String>, shape: &[usize]) -> Result<()> {
        self.put(name.into(), shape, NEAR_ONE)
    }

    /// A linear layer `name.{weight,bias}`: `(output, input)` and `(output,)`.
    pub(crate) fn linear(&mut self, name: &str, input: usize, output: usize) -> Result<()> {
        self.linear_with(name, input, output, true)
    }

    /// A linear layer `name.weight` `(output, input)`, with `name.bias` `(output,)` when `bias`.
    pub(crate) fn linear_with(
        &mut self,
        name: &str,
        input: usize,
        output: usize,
        bias: bool,
    ) -> Result<()> {
        self.small(format!("{name}.weight"), &[output, input])?;
        if bias {
            self.small(format!("{name}.bias"), &[output])?;
        }
        Ok(())
    }

    /// The tensors drawn, by name.
    pub(crate) fn into_tensors(self) -> HashMap<String, Tensor> {
        self.tensors
    }

    fn put(&mut self, name: String, shape: &[usize], law: (f32, f32)) -> Result<()> {
        let values = self.rng.uniforms(shape.iter().product(), law);
        self.tensors
            .insert(name, Tensor::from_vec(values, shape, &Device::Cpu)?);
        Ok(())
    }
}

/// Random HF-layout `Dinov2WithRegistersModel` weights for `config` (see the module docs), on the
/// CPU, by tensor name.
pub fn random_dinov2_weights(config: &Dinov2Config, seed: u64) -> Result<HashMap<String, Tensor>> {
    let mut w = WeightSampler::new(seed);
    let (d, p, c) = (config.hidden_size, config.patch_size, config.num_channels);
    let g = config.position_grid();
    w.small("embeddings.cls_token", &[1, 1, d])?;
    w.small("embeddings.mask_token", &[1, d])?;
    if config.num_register_tokens > 0 {
        w.small(
            "embeddings.register_tokens",
            &[1, config.num_register_tokens, d],
        )?;
    }
    w.small("embeddings.position_embeddings", &[1, 1 + g * g, d])?;
    w.small(
        "embeddings.patch_embeddings.projection.weight",
        &[d, c, p, p],
    )?;
    w.small("embeddings.patch_embeddings.projection.bias", &[d])?;
    for i in 0..config.num_hidden_layers {
        let l = format!("encoder.layer.{i}");
        for norm in ["norm1", "norm2"] {
            w.near_one(format!("{l}.{norm}.weight"), &[d])?;
            w.small(format!("{l}.{norm}.bias"), &[d])?;
        }
        for qkv in ["query", "key", "value"] {
            w.linear(&format!("{l}.attention.attention.{qkv}"), d, d)?;
        }
        w.linear(&format!("{l}.attention.output.dense"), d, d)?;
        w.near_one(format!("{l}.layer_scale1.lambda1"), &[d])?;
        w.near_one(format!("{l}.layer_scale2.lambda1"), &[d])?;
        if config.use_swiglu_ffn {
            let h = config.swiglu_hidden_size();
            w.linear(&format!("{l}.mlp.weights_in"), d, 2 * h)?;
            w.linear(&format!("{l}.mlp.weights_out"), h, d)?;
        } else {
            let h = config.mlp_hidden_size();
            w.linear(&format!("{l}.mlp.fc1"), d, h)?;
            w.linear(&format!("{l}.mlp.fc2"), h, d)?;
        }
    }
    w.near_one("layernorm.weight", &[d])?;
    w.small("layernorm.bias", &[d])?;
    Ok(w.into_tensors())
}

/// Random HF-layout `DINOv3ViTModel` weights for `config` (see the module docs), on the CPU, by
/// tensor name: only the biases the config has, the gated MLP when it has one.
pub fn random_dinov3_weights(config: &Dinov3Config, seed: u64) -> Result<HashMap<String, Tensor>> {
    let mut w = WeightSampler::new(seed);
    let (d, p, c) = (config.hidden_size, config.patch_size, config.num_channels);
    let h = config.intermediate_size;
    w.small("embeddings.cls_token", &[1, 1, d])?;
    w.small("embeddings.mask_token", &[1, 1, d])?;
    if config.num_register_tokens > 0 {
        w.small(
            "embeddings.register_tokens",
            &[1, config.num_register_tokens, d],
        )?;
    }
    w.small("embeddings.patch_embeddings.weight", &[d, c, p, p])?;
    w.small("embeddings.patch_embeddings.bias", &[d])?;
    for i in 0..config.num_hidden_layers {
        let l = format!("layer.{i}");
        for norm in ["norm1", "norm2"] {
            w.near_one(format!("{l}.{norm}.weight"), &[d])?;
            w.small(format!("{l}.{norm}.bias"), &[d])?;
        }
        for (proj, bias) in [
            ("q_proj", config.query_bias),
            ("k_proj", config.key_bias),
            ("v_proj", config.value_bias),
            ("o_proj", config.proj_bias),
        ] {
            w.linear_with(&format!("{l}.attention.{proj}"), d, d, bias)?;
        }
        w.near_one(format!("{l}.layer_scale1.lambda1"), &[d])?;
        w.near_one(format!("{l}.layer_scale2.lambda1"), &[d])?;
        if config.use_gated_mlp {
            w.linear_with(&format!("{l}.mlp.gate_proj"), d, h, config.mlp_bias)?;
        }
        w.linear_with(&format!("{l}.mlp.up_proj"), d, h, config.mlp_bias)?;
        w.linear_with(&format!("{l}.mlp.down_proj"), h, d, config.mlp_bias)?;
    }
    w.near_one("norm.weight", &[d])?;
    w.small("norm.bias", &[d])?;
    Ok(w.into_tensors())
}

impl Dinov3Model {
    /// A model of `config`'s architecture with random weights drawn from `seed`, **for benchmarks
    /// and tests** (see [`crate::model::random`]); `load` chooses the device, dtype and kernels.
    ///
    /// ```
    /// use dinoreg::{Dinov3Config, Dinov3Model, LoadOptions, Vit};
    ///
    /// let config = Dinov3Config {
    ///     hidden_size: 32,
    ///     num_hidden_layers: 2,
    ///     num_attention_heads: 2,
    ///     intermediate_size: 64,
    ///     num_register_tokens: 4,
    ///     ..Dinov3Config::default()
    /// };
    /// let model = Dinov3Model::random(&config, 0, &LoadOptions::default())?;
    /// let pixels = dinoreg::model::random::random_pixels((1, 3, 32, 48), 0, model.device())?;
    /// // CLS, 4 registers and a 2 x 3 grid of 16-pixel patches.
    /// assert_eq!(model.forward(&pixels)?.last_hidden_state.dims(), &[1, 1 + 4 + 6, 32]);
    /// # Ok::<(), dinoreg::Error>(())
    /// ```
    pub fn random(config: &Dinov3Config, seed: u64, load: &LoadOptions) -> Result<Self> {
        let store = TensorStore::from_map(
            format!("<random, seed {seed}>"),
            random_dinov3_weights(config, seed)?,
        );
        Self::from_weights(config.clone(), &find_backbone(store)?, load)
    }
}

impl Dinov2Model {
    /// A model of `config`'s architecture with random weights drawn from `seed`, **for benchmarks
    /// and tests** (see [`crate::model::random`]); `load` chooses the device, dtype and kernels.
    ///
    /// ```
    /// use dinoreg::{Dinov2Config, Dinov2Model, LoadOptions, Vit};
    ///
    /// let config = Dinov2Config {
    ///     hidden_size: 32,
    ///     num_hidden_layers: 2,
    ///     num_attention_heads: 2,
    ///     image_size: 56,
    ///     ..Dinov2Config::default()
    /// };
    /// let model = Dinov2Model::random(&config, 0, &LoadOptions::default())?;
    /// let pixels = dinoreg::model::random::random_pixels((1, 3, 28, 28), 0, model.device())?;
    /// assert_eq!(model.forward(&pixels)?.pooler_output.dims(), &[1, 32]);
    /// # Ok::<(), dinoreg::Error>(())
    /// ```
    pub fn random(config: &Dinov2Config, seed: u64, load: &LoadOptions) -> Result<Self> {
        let store = TensorStore::from_map(
            format!("<random, seed {seed}>"),
            random_dinov2_weights(config, seed)?,
        );
        Self::from_weights(config.clone(), &find_backbone(store)?, load)
    }
}

impl DinoModel {
    /// A model of `config`'s architecture (either generation) with random weights drawn from `seed`,
    /// **for benchmarks and tests**; with [`ModelConfig::preset_by_name`], the published
    /// architectures without a download (`dinoreg bench --model base`).
    ///
    /// ```
    /// use dinoreg::{DinoModel, LoadOptions, ModelConfig, Vit};
    ///
    /// let config = ModelConfig::preset_by_name("dinov3-small")?;
    /// assert_eq!((config.patch_size(), config.hidden_size()), (16, 384));
    /// let tiny = ModelConfig::Dinov2(dinoreg::Dinov2Config {
    ///     hidden_size: 32,
    ///     num_hidden_layers: 1,
    ///     num_attention_heads: 2,
    ///     ..Default::default()
    /// });
    /// let model = DinoModel::random(&tiny, 0, &LoadOptions::default())?;
    /// assert_eq!(model.info().hidden_size, 32);
    /// assert!(ModelConfig::preset_by_name("huge").is_err());
    /// # Ok::<(), dinoreg::Error>(())
    /// ```
    pub fn random(config: &ModelConfig, seed: u64, load: &LoadOptions) -> Result<Self> {
        Ok(match config {
            ModelConfig::Dinov2(c) => Self::Dinov2(Dinov2Model::random(c, seed, load)?),
            ModelConfig::Dinov3(c) => Self::Dinov3(Dinov3Model::random(c, seed, load)?),
        })
    }
}

/// Random input pixels `(B, C, H, W)` on `device`, uniform on `±√3` (mean 0, standard deviation 1,
/// like normalised images), drawn from `seed`, for benchmarks and tests.
pub fn random_pixels(
    (b, c, h, w): (usize, usize, usize, usize),
    seed: u64,
    device: &Device,
) -> Result<Tensor> {
    let values = SplitMix(seed).uniforms(b * c * h * w, (0.0, 1.0));
    Ok(Tensor::from_vec(values, (b, c, h, w), &Device::Cpu)?.to_device(device)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::vit::Vit;

    fn tiny() -> Dinov2Config {
        Dinov2Config {
            hidden_size: 16,
            num_hidden_layers: 2,
            num_attention_heads: 2,
            image_size: 28,
            ..Dinov2Config::default()
        }
    }

    #[test]
    fn a_seed_gives_the_same_model_and_another_seed_another() {
        let load = LoadOptions::default();
        let pixels = random_pixels((1, 3, 28, 28), 7, &Device::Cpu).unwrap();
        let out = |seed| {
            Dinov2Model::random(&tiny(), seed, &load)
                .unwrap()
                .forward(&pixels)
                .unwrap()
                .pooler_output
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        assert_eq!(out(1), out(1));
        assert_ne!(out(1), out(2));
    }

    #[test]
    fn weights_follow_their_laws() {
        let w = random_dinov2_weights(&tiny().without_registers(), 3).unwrap();
        assert!(!w.contains_key("embeddings.register_tokens"));
        let values = |name: &str| w[name].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let half = 0.1 * 3f32.sqrt();
        assert!(values("layernorm.weight")
            .iter()
            .all(|v| (v - 1.0).abs() <= half));
        assert!(values("encoder.layer.1.mlp.fc1.weight")
            .iter()
            .all(|v| v.abs() <= 0.02 * 3f32.sqrt()));
        assert_eq!(w["encoder.layer.0.mlp.fc1.weight"].dims(), &[64, 16]);
    }
}
