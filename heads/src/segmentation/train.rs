//! Training a BNHead linear probe on cached features of a frozen backbone, the way dinov2's mmseg
//! configs do: BatchNorm in training mode (batch statistics, running statistics updated with momentum
//! 0.1), a 1×1 convolution initialised N(0, 0.01), logits resized bilinearly (align_corners=False)
//! to the label size, cross-entropy with the ignore index 255 (averaged over the labelled pixels),
//! AdamW (lr 1e-3, weight decay 1e-4) with mmseg's linear warmup and poly decay. Every random choice
//! (initial weights, shuffling) comes from one seed, so a run repeats exactly.
//!
//! Memory does not grow with `K × H × W`: the loss, its gradient and the validation predictions at
//! label resolution are computed one band of rows at a time (`loss.rs`); what is held whole is the
//! grid logits `(B, K, h, w)`, the parameters `K × C_in` and the `K × K` confusion matrix.
//!
//! Shapes: a [`Sample`] holds concatenated features `(C_in, h, w)` (the head's blocks, in order) and
//! labels `(H, W)` with `ceil(H / p) = h`, `ceil(W / p) = w`; batches stack samples of equal shapes.

use std::collections::BTreeMap;

use candle::{DType, Device, Tensor, Var};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};

use crate::segmentation::bn_head::{BnHead, BnHeadParams, BN_EPS};
use crate::segmentation::loss::{upsampled_argmax, upsampled_cross_entropy, LossAndGrad};
use crate::segmentation::metrics::{check_labels, ConfusionMatrix, IGNORE_INDEX};
use crate::segmentation::palette::ClassSet;
use crate::segmentation::rng::SplitMix64;
use crate::{Error, Result};

/// One training or validation image: its cached features and its label map.
#[derive(Debug, Clone)]
pub struct Sample {
    features: Tensor,
    labels: Tensor,
}

impl Sample {
    /// Pairs features `(C_in, h, w)` with labels `(H, W)` (u8, u32 or i64) of an image seen by a
    /// backbone of patch size `patch_size`; the label map must cover the same image
    /// (`ceil(H / p) = h`, `ceil(W / p) = w`).
    pub fn new(features: Tensor, labels: Tensor, patch_size: usize) -> Result<Self> {
        let (_, h, w) = features.dims3().map_err(|_| {
            Error::input(
                "features",
                format!("shape {:?}, expected (C, h, w)", features.dims()),
            )
        })?;
        let (lh, lw) = labels.dims2().map_err(|_| {
            Error::input(
                "labels",
                format!("shape {:?}, expected (H, W)", labels.dims()),
            )
        })?;
        if patch_size == 0 || lh.div_ceil(patch_size) != h || lw.div_ceil(patch_size) != w {
            return Err(Error::input(
                "labels",
                format!(
                    "the label map is {lh}x{lw} but the features cover {h}x{w} patches of {patch_size} pixels: image and label sizes differ"
                ),
            ));
        }
        let labels = match labels.dtype() {
            DType::U32 => labels,
            DType::U8 => labels.to_dtype(DType::U32)?,
            DType::I64 => Tensor::new(
                crate::segmentation::metrics::label_values(&labels)?,
                labels.device(),
            )?
            .reshape((lh, lw))?,
            other => {
                return Err(Error::input(
                    "labels",
                    format!("dtype {other:?}, expected u8, u32 or i64"),
                ))
            }
        };
        Ok(Self {
            features: features.to_dtype(DType::F32)?,
            labels,
        })
    }

    /// The features `(C_in, h, w)`.
    pub fn features(&self) -> &Tensor {
        &self.features
    }

    /// The labels `(H, W)`, u32.
    pub fn labels(&self) -> &Tensor {
        &self.labels
    }

    fn shape_key(&self) -> (Vec<usize>, Vec<usize>) {
        (self.features.dims().to_vec(), self.labels.dims().to_vec())
    }
}

/// What head to train.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeConfig {
    /// The number of classes `K`.
    pub num_classes: usize,
    /// The backbone width `E`.
    pub embed_dim: usize,
    /// The blocks read (`[-1]`: dinov2's "linear"; `[-4, -3, -2, -1]`: "ms").
    pub blocks: Vec<i64>,
    /// Class names and colours saved with the head.
    pub classes: Option<ClassSet>,
}

impl ProbeConfig {
    /// A "linear" probe: the last block.
    pub fn linear(num_classes: usize, embed_dim: usize) -> Self {
        Self {
            num_classes,
            embed_dim,
            blocks: vec![-1],
            classes: None,
        }
    }

    /// An "ms" probe: the last four blocks concatenated.
    pub fn multi_scale(num_classes: usize, embed_dim: usize) -> Self {
        Self {
            blocks: vec![-4, -3, -2, -1],
            ..Self::linear(num_classes, embed_dim)
        }
    }

    /// Sets the class names and colours (one per class).
    pub fn with_classes(mut self, classes: ClassSet) -> Self {
        self.classes = Some(classes);
        self
    }

    fn in_channels(&self) -> usize {
        self.blocks.len() * self.embed_dim
    }
}

/// Optimiser and schedule; the defaults follow dinov2's mmseg configs (AdamW lr 1e-3, weight decay
/// 1e-4, poly decay with power 1 to 0) with a warmup scaled to short runs.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOptions {
    /// Passes over the training samples.
    pub epochs: usize,
    /// Samples per step.
    pub batch_size: usize,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f64,
    /// Steps of linear warmup from `learning_rate × 1e-6` (mmseg's `warmup_ratio`).
    pub warmup_steps: usize,
    /// Exponent of the poly decay (`(1 - step / steps)^power`).
    pub poly_power: f64,
    /// BatchNorm momentum for the running statistics.
    pub bn_momentum: f64,
    /// The seed of every random choice.
    pub seed: u64,
    /// The label to ignore.
    pub ignore_index: u32,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            epochs: 20,
            batch_size: 8,
            learning_rate: 1e-3,
            weight_decay: 1e-4,
            warmup_steps: 0,
            poly_power: 1.0,
            bn_momentum: 0.1,
            seed: 0,
            ignore_index: IGNORE_INDEX,
        }
    }
}

impl TrainOptions {
    /// Sets the number of epochs.
    pub fn with_epochs(mut self, epochs: usize) -> Self {
        self.epochs = epochs;
        self
    }

    /// Sets the batch size.
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// Sets the peak learning rate.
    pub fn with_learning_rate(mut self, lr: f64) -> Self {
        self.learning_rate = lr;
        self
    }

    /// Sets the weight decay.
    pub fn with_weight_decay(mut self, wd: f64) -> Self {
        self.weight_decay = wd;
        self
    }

    /// Sets the warmup steps.
    pub fn with_warmup_steps(mut self, steps: usize) -> Self {
        self.warmup_steps = steps;
        self
    }

    /// Sets the seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the ignored label.
    pub fn with_ignore_index(mut self, ignore_index: u32) -> Self {
        self.ignore_index = ignore_index;
        self
    }

    fn validate(&self) -> Result<()> {
        if self.epochs == 0 || self.batch_size == 0 {
            return Err(Error::option(
                "training",
                "epochs and batch size must be at least 1",
            ));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return Err(Error::option("learning rate", "must be a positive number"));
        }
        if !(self.weight_decay >= 0.0 && (0.0..=1.0).contains(&self.bn_momentum)) {
            return Err(Error::option(
                "training",
                "weight decay must be >= 0 and BN momentum in [0, 1]",
            ));
        }
        Ok(())
    }

    /// mmseg's poly schedule with linear warmup, at 0-based `step` of `steps`.
    pub fn learning_rate_at(&self, step: usize, steps: usize) -> f64 {
        let progress = step as f64 / steps.max(1) as f64;
        let lr = self.learning_rate * (1.0 - progress).max(0.0).powf(self.poly_power);
        if step < self.warmup_steps {
            let k = (1.0 - step as f64 / self.warmup_steps as f64) * (1.0 - 1e-6);
            lr * (1.0 - k)
        } else {
            lr
        }
    }
}

/// Progress of one optimiser step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// 0-based epoch.
    pub epoch: usize,
    /// 1-based step over the whole run.
    pub step: usize,
    /// Steps in the whole run.
    pub total_steps: usize,
    /// The batch's loss.
    pub loss: f64,
    /// The learning rate used.
    pub learning_rate: f64,
}

/// The summary of one epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochStats {
    /// 0-based epoch.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches.
    pub train_loss: f64,
    /// Validation mIoU (None without validation samples).
    pub val_miou: Option<f64>,
    /// Validation pixel accuracy.
    pub val_accuracy: Option<f64>,
    /// Per-class validation IoU (None for classes absent from labels and predictions).
    pub val_iou: Vec<Option<f64>>,
}

/// Hooks called during training (progress bars, logs); every method does nothing by default.
pub trait TrainObserver {
    /// After every optimiser step.
    fn on_step(&mut self, _stats: &StepStats) {}
    /// After every epoch, with its validation result.
    fn on_epoch(&mut self, _stats: &EpochStats) {}
    /// Whether training should stop; checked after every step ([`train_probe`] then returns
    /// [`Error::Interrupted`]).
    fn cancelled(&self) -> bool {
        false
    }
}

impl TrainObserver for () {}

/// The result of [`train_probe`]: the head after the last epoch and the per-epoch history.
#[derive(Debug, Clone)]
pub struct TrainedProbe {
    /// The trained head (eval mode: running statistics).
    pub head: BnHead,
    /// One entry per epoch.
    pub history: Vec<EpochStats>,
}

/// The trainable state: BN affine and conv as variables, running statistics as plain tensors.
struct ProbeState {
    bn_weight: Var,
    bn_bias: Var,
    conv_weight: Var,
    conv_bias: Var,
    running_mean: Tensor,
    running_var: Tensor,
}

impl ProbeState {
    fn init(config: &ProbeConfig, rng: &mut SplitMix64, device: &Device) -> Result<Self> {
        let (k, c) = (config.num_classes, config.in_channels());
        let w: Vec<f32> = (0..k * c).map(|_| (rng.normal() * 0.01) as f32).collect();
        Ok(Self {
            bn_weight: Var::ones(c, DType::F32, device)?,
            bn_bias: Var::zeros(c, DType::F32, device)?,
            conv_weight: Var::from_tensor(&Tensor::from_vec(w, (k, c), device)?)?,
            conv_bias: Var::zeros(k, DType::F32, device)?,
            running_mean: Tensor::zeros(c, DType::F32, device)?,
            running_var: Tensor::ones(c, DType::F32, device)?,
        })
    }

    fn vars(&self) -> Vec<Var> {
        vec![
            self.bn_weight.clone(),
            self.bn_bias.clone(),
            self.conv_weight.clone(),
            self.conv_bias.clone(),
        ]
    }

    /// Training-mode forward of `x` `(B, C, h, w)`: grid logits `(B, K, h, w)`, and the batch mean
    /// and unbiased variance `(C,)` for the running statistics.
    fn forward_train(&self, x: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, c, h, w) = x.dims4()?;
        let n = b * h * w;
        let xt = x.transpose(0, 1)?.reshape((c, n))?;
        let mean = xt.mean_keepdim(1)?;
        let centered = xt.broadcast_sub(&mean)?;
        let var = centered.sqr()?.mean_keepdim(1)?;
        let xhat = centered.broadcast_div(&(&var + BN_EPS)?.sqrt()?)?;
        let y = xhat
            .broadcast_mul(&self.bn_weight.as_tensor().reshape((c, 1))?)?
            .broadcast_add(&self.bn_bias.as_tensor().reshape((c, 1))?)?;
        let k = self.conv_bias.dim(0)?;
        let logits = self
            .conv_weight
            .as_tensor()
            .matmul(&y)?
            .broadcast_add(&self.conv_bias.as_tensor().reshape((k, 1))?)?
            .reshape((k, b, h, w))?
            .transpose(0, 1)?;
        let unbiased = (var.detach() * (n as f64 / (n.max(2) - 1) as f64))?;
        Ok((
            logits,
            mean.detach().flatten_all()?,
            unbiased.flatten_all()?,
        ))
    }

    fn update_running(&mut self, mean: &Tensor, var: &Tensor, momentum: f64) -> Result<()> {
        self.running_mean = ((&self.running_mean * (1.0 - momentum))? + (mean * momentum)?)?;
        self.running_var = ((&self.running_var * (1.0 - momentum))? + (var * momentum)?)?;
        Ok(())
    }

    fn head(&self, config: &ProbeConfig) -> Result<BnHead> {
        let (k, c) = (config.num_classes, config.in_channels());
        let params = BnHeadParams {
            bn_weight: self.bn_weight.as_tensor().detach(),
            bn_bias: self.bn_bias.as_tensor().detach(),
            running_mean: self.running_mean.clone(),
            running_var: self.running_var.clone(),
            conv_weight: self
                .conv_weight
                .as_tensor()
                .detach()
                .reshape((k, c, 1, 1))?,
            conv_bias: self.conv_bias.as_tensor().detach(),
        };
        let head = BnHead::from_params(params, config.embed_dim, config.blocks.clone())?;
        match &config.classes {
            Some(classes) => head.with_classes(classes.clone()),
            None => Ok(head),
        }
    }
}

/// Batches of sample indices: shuffled, grouped by shape, `batch_size` at most, in shuffled order.
fn batches(samples: &[Sample], batch_size: usize, rng: &mut SplitMix64) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..samples.len()).collect();
    rng.shuffle(&mut order);
    let mut groups: BTreeMap<(Vec<usize>, Vec<usize>), Vec<usize>> = BTreeMap::new();
    for i in order {
        groups.entry(samples[i].shape_key()).or_default().push(i);
    }
    let mut out: Vec<Vec<usize>> = groups
        .values()
        .flat_map(|g| g.chunks(batch_size).map(<[usize]>::to_vec))
        .collect();
    rng.shuffle(&mut out);
    out
}

fn stack(samples: &[Sample], idx: &[usize]) -> Result<(Tensor, Tensor)> {
    let f: Vec<&Tensor> = idx.iter().map(|&i| &samples[i].features).collect();
    let l: Vec<&Tensor> = idx.iter().map(|&i| &samples[i].labels).collect();
    Ok((Tensor::stack(&f, 0)?, Tensor::stack(&l, 0)?))
}

fn check_samples(samples: &[Sample], config: &ProbeConfig, ignore: u32, what: &str) -> Result<()> {
    for (i, s) in samples.iter().enumerate() {
        let c = s.features.dim(0)?;
        if c != config.in_channels() {
            return Err(Error::input(
                format!("{what} sample {i}"),
                format!(
                    "features have {c} channels, the probe reads {} blocks of width {} = {}",
                    config.blocks.len(),
                    config.embed_dim,
                    config.in_channels()
                ),
            ));
        }
        check_labels(
            &s.labels,
            config.num_classes,
            ignore,
            &format!("{what} sample {i} labels"),
        )?;
    }
    Ok(())
}

/// Evaluates `head` on `samples`: the confusion matrix of argmax predictions at label size (the
/// grid logits resized bilinearly, align_corners=False, one band of rows at a time).
pub fn evaluate(head: &BnHead, samples: &[Sample], ignore_index: u32) -> Result<ConfusionMatrix> {
    let mut cm = ConfusionMatrix::new(head.num_classes()).with_ignore_index(ignore_index);
    for s in samples {
        let logits = head.forward_concat(&s.features.unsqueeze(0)?)?;
        upsampled_argmax(&logits, s.labels.dims2()?, |r0, predictions| {
            cm.update(predictions, &s.labels.narrow(0, r0, predictions.dim(0)?)?)
        })?;
    }
    Ok(cm)
}

/// Trains a probe on `train`, reporting validation mIoU on `val` (may be empty) after every epoch.
pub fn train_probe(
    train: &[Sample],
    val: &[Sample],
    config: &ProbeConfig,
    opts: &TrainOptions,
    observer: &mut dyn TrainObserver,
) -> Result<TrainedProbe> {
    opts.validate()?;
    if config.num_classes == 0 || config.embed_dim == 0 || config.blocks.is_empty() {
        return Err(Error::option(
            "probe",
            "num_classes, embed_dim and blocks must be non-empty",
        ));
    }
    if let Some(classes) = &config.classes {
        classes.check_len(config.num_classes)?;
    }
    let first = train
        .first()
        .ok_or_else(|| Error::input("training samples", "none were given"))?;
    check_samples(train, config, opts.ignore_index, "training")?;
    check_samples(val, config, opts.ignore_index, "validation")?;
    let device = first.features.device().clone();
    let mut rng = SplitMix64::new(opts.seed);
    let mut state = ProbeState::init(config, &mut rng, &device)?;
    let params = ParamsAdamW {
        lr: opts.learning_rate,
        weight_decay: opts.weight_decay,
        ..ParamsAdamW::default()
    };
    let mut optimizer = AdamW::new(state.vars(), params)?;
    let per_epoch = batches(train, opts.batch_size, &mut rng.clone()).len();
    let total_steps = per_epoch * opts.epochs;
    let mut step = 0;
    let mut history = Vec::with_capacity(opts.epochs);
    for epoch in 0..opts.epochs {
        let mut loss_sum = 0.0;
        let epoch_batches = batches(train, opts.batch_size, &mut rng);
        for idx in &epoch_batches {
            let (x, labels) = stack(train, idx)?;
            let lr = opts.learning_rate_at(step, total_steps);
            optimizer.set_learning_rate(lr);
            let (logits, mean, var) = state.forward_train(&x)?;
            let LossAndGrad { loss, grad } =
                upsampled_cross_entropy(&logits, &labels, opts.ignore_index)?;
            // Same parameter gradients as the loss itself: d(Σ logits · grad)/dθ = dL/dθ.
            optimizer.backward_step(&(logits * grad)?.sum_all()?)?;
            state.update_running(&mean, &var, opts.bn_momentum)?;
            loss_sum += loss;
            step += 1;
            observer.on_step(&StepStats {
                epoch,
                step,
                total_steps,
                loss,
                learning_rate: lr,
            });
            if observer.cancelled() {
                return Err(Error::Interrupted {
                    done: step,
                    total: total_steps,
                });
            }
        }
        let (val_miou, val_accuracy, val_iou) = if val.is_empty() {
            (None, None, Vec::new())
        } else {
            let cm = evaluate(&state.head(config)?, val, opts.ignore_index)?;
            (cm.mean_iou(), cm.pixel_accuracy(), cm.iou())
        };
        let stats = EpochStats {
            epoch,
            train_loss: loss_sum / epoch_batches.len().max(1) as f64,
            val_miou,
            val_accuracy,
            val_iou,
        };
        observer.on_epoch(&stats);
        history.push(stats);
    }
    Ok(TrainedProbe {
        head: state.head(config)?,
        history,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_is_mmseg_poly_with_warmup() {
        let o = TrainOptions::default().with_warmup_steps(10);
        assert!(o.learning_rate_at(0, 100) < 1e-8);
        assert!((o.learning_rate_at(50, 100) - 0.5e-3).abs() < 1e-12);
        assert!(o.learning_rate_at(99, 100) > 0.0);
    }
}
