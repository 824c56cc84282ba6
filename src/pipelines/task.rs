//! The tasks the pipelines serve, by name ([`Task`]), and the task a model folder serves by itself
//! ([`Task::served_by`]): HF's `pipeline(task, model)` picks a pipeline from the model's config the
//! same way (`architectures`, `model_type`).

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::model::config::read_json;
use crate::{Error, Result};

/// One use of the crate, as the pipeline that serves it and the command that runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Task {
    /// Backbone feature maps ([`FeaturesPipeline`](super::FeaturesPipeline), `dinoreg features`).
    Features,
    /// Image classification ([`ClassificationPipeline`](super::ClassificationPipeline)).
    Classify,
    /// Monocular depth ([`DepthPipeline`](super::DepthPipeline)).
    Depth,
    /// Semantic segmentation ([`SegmentationPipeline`](super::SegmentationPipeline)).
    Segment,
    /// Single-object discovery ([`DiscoveryPipeline`](super::DiscoveryPipeline)).
    Discover,
    /// The PCA picture ([`PcaPipeline`](super::PcaPipeline)).
    Pca,
    /// The attention and norm pictures ([`AttentionPipeline`](super::AttentionPipeline)).
    Attention,
    /// Retrieval embeddings ([`EmbeddingPipeline`](super::EmbeddingPipeline)).
    Embed,
}

impl Task {
    /// Every task, in the order above.
    pub const ALL: [Task; 8] = [
        Task::Features,
        Task::Classify,
        Task::Depth,
        Task::Segment,
        Task::Discover,
        Task::Pca,
        Task::Attention,
        Task::Embed,
    ];

    /// The task's name, as the command that runs it (`features`, `classify`, `depth`, …).
    pub fn name(self) -> &'static str {
        match self {
            Task::Features => "features",
            Task::Classify => "classify",
            Task::Depth => "depth",
            Task::Segment => "segment",
            Task::Discover => "discover",
            Task::Pca => "pca",
            Task::Attention => "attention",
            Task::Embed => "embed",
        }
    }

    /// The task a model serves by itself, from its `config.json`: a Depth-Anything model
    /// (`model_type` `depth_anything`) → [`Task::Depth`]; an image classifier (`architectures` names
    /// a `…ForImageClassification`) → [`Task::Classify`]; any other backbone, or a folder with no
    /// `config.json` (a `preprocessor_config.json` alone) → [`Task::Features`].
    ///
    /// ```
    /// use dinoreg::pipelines::Task;
    ///
    /// assert_eq!(Task::served_by("tests/fixtures/depth/da_relative")?, Task::Depth);
    /// assert_eq!(Task::served_by("tests/fixtures/model/classifier")?, Task::Classify);
    /// assert_eq!(Task::served_by("tests/fixtures/model/reg4")?, Task::Features);
    /// # Ok::<(), dinoreg::Error>(())
    /// ```
    pub fn served_by(model_dir: impl AsRef<Path>) -> Result<Task> {
        let config = model_dir.as_ref().join("config.json");
        if !config.is_file() {
            return Ok(Task::Features);
        }
        let value = read_json(&config)?;
        let model_type = value.get("model_type").and_then(|t| t.as_str());
        let classifier = value
            .get("architectures")
            .and_then(|a| a.as_array())
            .is_some_and(|a| {
                a.iter()
                    .filter_map(|n| n.as_str())
                    .any(|n| n.ends_with("ForImageClassification"))
            });
        Ok(match (model_type, classifier) {
            (Some("depth_anything"), _) => Task::Depth,
            (_, true) => Task::Classify,
            _ => Task::Features,
        })
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Task {
    type Err = Error;

    /// A task by its [`Task::name`].
    fn from_str(s: &str) -> Result<Self> {
        Task::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Task::ALL.iter().map(|t| t.name()).collect();
                Error::option(
                    "task",
                    format!("{s:?}: expected one of {}", names.join(", ")),
                )
            })
    }
}
