//! Building DINOv3's blocks from HF's checkpoint names (`layer.N.*`, what `save_pretrained` writes;
//! an original `.pth` is renamed to these first): `norm{1,2}`, `attention.{q,k,v,o}_proj` with the
//! biases the config's `query_bias` / `key_bias` / `value_bias` / `proj_bias` say,
//! `layer_scale{1,2}.lambda1`, and `mlp.{up,down}_proj` (+ `gate_proj` when `use_gated_mlp`) with
//! `mlp_bias`. A bias or gate the config does not expect is an error, as is a missing one.

use std::path::PathBuf;

use dinoreg_heads::Scope;

use crate::model::config::Dinov3Config;
use crate::model::layers::{Attention, AttentionWeights, Block, FeedForward, Linear};
use crate::{Error, Result};

/// Loads one block from `scope` (scoped to `layer.N.`).
pub(crate) fn load_block(scope: &Scope<'_>, cfg: &Dinov3Config) -> Result<Block> {
    let d = cfg.hidden_size;
    let eps = cfg.layer_norm_eps;
    let linear = |s: Scope<'_>, input: usize, output: usize, flag: &str, bias: bool| {
        Linear::load(&s, input, output)?.expect_bias(&s, flag, bias)
    };
    let attn = scope.pp("attention");
    let attention = Attention::new(
        AttentionWeights {
            q: linear(attn.pp("q_proj"), d, d, "query_bias", cfg.query_bias)?,
            k: linear(attn.pp("k_proj"), d, d, "key_bias", cfg.key_bias)?,
            v: linear(attn.pp("v_proj"), d, d, "value_bias", cfg.value_bias)?,
            o: linear(attn.pp("o_proj"), d, d, "proj_bias", cfg.proj_bias)?,
        },
        cfg.num_attention_heads,
    )?;
    let mlp = scope.pp("mlp");
    let h = cfg.intermediate_size;
    let up = linear(mlp.pp("up_proj"), d, h, "mlp_bias", cfg.mlp_bias)?;
    let down = linear(mlp.pp("down_proj"), h, d, "mlp_bias", cfg.mlp_bias)?;
    let ffn = if cfg.use_gated_mlp {
        let gate = linear(mlp.pp("gate_proj"), d, h, "mlp_bias", cfg.mlp_bias)?;
        FeedForward::gated(gate, up, down, cfg.hidden_act)?
    } else if mlp.contains("gate_proj.weight") {
        return Err(Error::Config {
            path: PathBuf::from("<config>"),
            reason: format!(
                "use_gated_mlp is false but the checkpoint {} has `{}`; the config and the weights do not belong together",
                scope.store().source_name(),
                mlp.path("gate_proj.weight")
            ),
        });
    } else {
        FeedForward::mlp(up, down, cfg.hidden_act)?
    };
    Block::load(scope, d, eps, attention, ffn)
}
