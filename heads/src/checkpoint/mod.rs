//! Checkpoint access shared by the backbone and every head: safetensors (single or sharded), PyTorch
//! `.pth` (optionally under a key such as mmcv's `state_dict`) or an in-memory map, behind one
//! [`TensorStore`] whose lookups fail with typed errors that name the tensor, the expected shape and
//! the shape found.
//!
//! Files are never memory-mapped. Opening reads and checks the index (the safetensors header, the
//! `.pth` pickle and zip directory) against the file's length; each tensor is then read with positioned
//! reads straight into its buffer when it is asked for. A file truncated or rewritten while open gives
//! an error, and only the tensors being loaded occupy memory.
//!
//! - `source`: the bytes behind a store (file or buffer) and positioned reads;
//! - `stored`: one tensor's place in a file, its bounds check and its read;
//! - `safetensors`, `pth` (with `pickle`): the two file formats' indexes.

mod pickle;
mod pth;
mod safetensors;
mod source;
mod stored;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle::{DType, Device, Tensor};

use crate::{Error, Result};
use source::Source;
use stored::Stored;

enum Backing {
    /// Tensors indexed in files (or buffers) and read on demand.
    Files {
        sources: Vec<Source>,
        tensors: HashMap<String, Stored>,
    },
    /// Tensors already in memory.
    Map(HashMap<String, Tensor>),
}

/// A set of named tensors read from one or more checkpoint files.
pub struct TensorStore {
    source_name: String,
    backing: Backing,
}

impl std::fmt::Debug for TensorStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TensorStore")
            .field("source", &self.source_name)
            .field("tensors", &self.names().len())
            .finish()
    }
}

fn checkpoint_error(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::Checkpoint {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Whether `path` names a PyTorch pickle checkpoint (`.pth`, `.pt`, `.bin`, `.ckpt`).
pub fn is_pth(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("pth" | "pt" | "bin" | "ckpt")
    )
}

impl TensorStore {
    /// Opens a checkpoint by extension: `.pth`/`.pt`/`.bin`/`.ckpt` is read as a PyTorch zip
    /// checkpoint (a plain state dict, or one under `state_dict` / `model`), anything else as
    /// safetensors.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        if !path.is_file() {
            return Err(checkpoint_error(path, "no such file"));
        }
        if is_pth(path) {
            Self::open_pth(path)
        } else {
            Self::open_safetensors(&[path.to_path_buf()])
        }
    }

    /// Opens one or more safetensors files (the shards of one checkpoint), checking each file's
    /// length against its header.
    pub fn open_safetensors(paths: &[PathBuf]) -> Result<Self> {
        if paths.is_empty() {
            return Err(Error::option("checkpoint", "no safetensors file was given"));
        }
        let sources = paths
            .iter()
            .map(|p| open_source(p))
            .collect::<Result<Vec<_>>>()?;
        Self::index_safetensors(display_name(paths), sources)
    }

    /// A safetensors checkpoint held in memory; `source_name` is used in error messages.
    pub fn from_safetensors_bytes(source_name: impl Into<String>, bytes: Vec<u8>) -> Result<Self> {
        let name = source_name.into();
        Self::index_safetensors(name.clone(), vec![Source::bytes(name, bytes)])
    }

    fn index_safetensors(source_name: String, sources: Vec<Source>) -> Result<Self> {
        let mut tensors = HashMap::new();
        for (i, source) in sources.iter().enumerate() {
            let found = safetensors::read_header(source, i).map_err(|reason| {
                checkpoint_error(
                    source.path(),
                    format!("not a valid safetensors file: {reason}"),
                )
            })?;
            for (name, stored) in found {
                if tensors.contains_key(&name) {
                    return Err(checkpoint_error(
                        source.path(),
                        format!("tensor `{name}` is also in another shard"),
                    ));
                }
                tensors.insert(name, stored);
            }
        }
        Ok(Self {
            source_name,
            backing: Backing::Files { sources, tensors },
        })
    }

    /// Reads a PyTorch zip checkpoint's index. A plain state dict is used as it is; otherwise the
    /// state dict is looked for under `state_dict`, then `model`.
    pub fn open_pth(path: &Path) -> Result<Self> {
        Self::index_pth(path.display().to_string(), open_source(path)?)
    }

    /// A PyTorch zip checkpoint held in memory; `source_name` is used in error messages.
    pub fn from_pth_bytes(source_name: impl Into<String>, bytes: Vec<u8>) -> Result<Self> {
        let name = source_name.into();
        Self::index_pth(name.clone(), Source::bytes(name, bytes))
    }

    fn index_pth(source_name: String, source: Source) -> Result<Self> {
        let tensors = pth::read_index(&source).map_err(|reason| {
            checkpoint_error(
                source.path(),
                format!("not a readable PyTorch checkpoint: {reason}"),
            )
        })?;
        Ok(Self {
            source_name,
            backing: Backing::Files {
                sources: vec![source],
                tensors: tensors.into_iter().collect(),
            },
        })
    }

    /// A store over tensors already in memory; `source_name` is used in error messages.
    pub fn from_map(source_name: impl Into<String>, tensors: HashMap<String, Tensor>) -> Self {
        Self {
            source_name: source_name.into(),
            backing: Backing::Map(tensors),
        }
    }

    /// The checkpoint's name, as used in error messages.
    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    /// Every tensor name, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = match &self.backing {
            Backing::Files { tensors, .. } => tensors.keys().cloned().collect(),
            Backing::Map(m) => m.keys().cloned().collect(),
        };
        names.sort();
        names
    }

    /// Whether the store holds `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.shape(name).is_some()
    }

    /// The shape of `name`, if present.
    pub fn shape(&self, name: &str) -> Option<Vec<usize>> {
        match &self.backing {
            Backing::Files { tensors, .. } => tensors.get(name).map(|t| t.shape.clone()),
            Backing::Map(m) => m.get(name).map(|t| t.dims().to_vec()),
        }
    }

    /// The dtype `name` is stored in, if present and of a dtype candle holds.
    pub fn dtype(&self, name: &str) -> Option<DType> {
        match &self.backing {
            Backing::Files { tensors, .. } => tensors.get(name)?.dtype.as_ref().ok().copied(),
            Backing::Map(m) => m.get(name).map(Tensor::dtype),
        }
    }

    /// Loads `name` whatever its shape, converted to `dtype` on `device`.
    pub fn get_any(&self, name: &str, dtype: DType, device: &Device) -> Result<Tensor> {
        let tensor = match &self.backing {
            Backing::Files { sources, tensors } => match tensors.get(name) {
                Some(stored) => Some(stored.read(&sources[stored.source], name)?),
                None => None,
            },
            Backing::Map(m) => m.get(name).cloned(),
        };
        let tensor = tensor.ok_or_else(|| Error::MissingTensor {
            source_name: self.source_name.clone(),
            name: name.to_string(),
            expected: None,
        })?;
        Ok(tensor.to_dtype(dtype)?.to_device(device)?)
    }

    /// Loads `name`, checking that its shape is `expected`, converted to `dtype` on `device`.
    pub fn get(
        &self,
        name: &str,
        expected: &[usize],
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        match self.shape(name) {
            None => Err(Error::MissingTensor {
                source_name: self.source_name.clone(),
                name: name.to_string(),
                expected: Some(expected.to_vec()),
            }),
            Some(found) if found != expected => Err(Error::TensorShape {
                source_name: self.source_name.clone(),
                name: name.to_string(),
                expected: expected.to_vec(),
                found,
            }),
            Some(_) => self.get_any(name, dtype, device),
        }
    }

    /// A view of the store under `prefix` (for example `"backbone."`), loading f32 tensors on `device`.
    pub fn scope<'a>(&'a self, prefix: &str, device: &Device) -> Scope<'a> {
        Scope {
            store: self,
            prefix: prefix.to_string(),
            dtype: DType::F32,
            device: device.clone(),
        }
    }
}

/// Opens `path` for positioned reads, with a checkpoint error naming it.
fn open_source(path: &Path) -> Result<Source> {
    if !path.is_file() {
        return Err(checkpoint_error(path, "no such file"));
    }
    Source::open(path).map_err(|e| checkpoint_error(path, e))
}

fn display_name(paths: &[PathBuf]) -> String {
    match paths {
        [one] => one.display().to_string(),
        many => format!(
            "{} (+{} shards)",
            many[0].display(),
            many.len().saturating_sub(1)
        ),
    }
}

/// A prefixed view of a [`TensorStore`], like candle's `VarBuilder::pp`, with typed errors.
#[derive(Clone)]
pub struct Scope<'a> {
    store: &'a TensorStore,
    prefix: String,
    dtype: DType,
    device: Device,
}

impl<'a> Scope<'a> {
    /// A sub-scope: `scope.pp("encoder").pp(3)` reads `encoder.3.*`.
    pub fn pp(&self, name: impl std::fmt::Display) -> Scope<'a> {
        let mut s = self.clone();
        s.prefix = format!("{}{}.", self.prefix, name);
        s
    }

    /// The same view loading tensors as `dtype`.
    pub fn with_dtype(&self, dtype: DType) -> Scope<'a> {
        let mut s = self.clone();
        s.dtype = dtype;
        s
    }

    /// The full name of `name` under this scope.
    pub fn path(&self, name: &str) -> String {
        format!("{}{}", self.prefix, name)
    }

    /// The device tensors are loaded on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The dtype tensors are loaded as.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The store behind this scope.
    pub fn store(&self) -> &'a TensorStore {
        self.store
    }

    /// Whether the scope holds `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.store.contains(&self.path(name))
    }

    /// The shape of `name`, if present.
    pub fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.store.shape(&self.path(name))
    }

    /// Loads `name` with the expected shape.
    pub fn get(&self, name: &str, expected: &[usize]) -> Result<Tensor> {
        self.store
            .get(&self.path(name), expected, self.dtype, &self.device)
    }

    /// Loads `name` whatever its shape.
    pub fn get_any(&self, name: &str) -> Result<Tensor> {
        self.store
            .get_any(&self.path(name), self.dtype, &self.device)
    }
}
