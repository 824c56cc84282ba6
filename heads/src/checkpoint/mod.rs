//! Checkpoint access shared by the backbone and every head: safetensors (memory-mapped, single or
//! sharded), PyTorch `.pth` (optionally under a key such as mmcv's `state_dict`) or an in-memory map,
//! behind one [`TensorStore`] whose lookups fail with typed errors that name the tensor, the expected
//! shape and the shape found.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle::{DType, Device, Tensor};

use crate::{Error, Result};

enum Backing {
    Safetensors(candle::safetensors::MmapedSafetensors),
    Pth(candle::pickle::PthTensors),
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
    /// Opens a checkpoint by extension: `.safetensors` is memory-mapped, `.pth`/`.pt`/`.bin`/`.ckpt`
    /// is read as a PyTorch pickle (a plain state dict, or one under `state_dict` / `model`).
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

    /// Memory-maps one or more safetensors files (the shards of one checkpoint).
    pub fn open_safetensors(paths: &[PathBuf]) -> Result<Self> {
        let first = paths
            .first()
            .ok_or_else(|| Error::option("checkpoint", "no safetensors file was given"))?;
        for p in paths {
            if !p.is_file() {
                return Err(checkpoint_error(p, "no such file"));
            }
        }
        // SAFETY: the files are mapped read-only; like every mmap-based loader we rely on them not
        // being truncated while the store is alive. Tensors are copied out on load.
        let st = unsafe { candle::safetensors::MmapedSafetensors::multi(paths) }
            .map_err(|e| checkpoint_error(first, format!("not a valid safetensors file ({e})")))?;
        Ok(Self {
            source_name: display_name(paths),
            backing: Backing::Safetensors(st),
        })
    }

    /// Reads a PyTorch checkpoint. A plain state dict is used as it is; otherwise the state dict is
    /// looked for under `state_dict`, then `model`.
    pub fn open_pth(path: &Path) -> Result<Self> {
        let mut last_err = None;
        for key in [None, Some("state_dict"), Some("model")] {
            match candle::pickle::PthTensors::new(path, key) {
                Ok(t) if !t.tensor_infos().is_empty() => {
                    return Ok(Self {
                        source_name: path.display().to_string(),
                        backing: Backing::Pth(t),
                    })
                }
                Ok(_) => {}
                Err(e) => last_err = Some(e),
            }
        }
        Err(checkpoint_error(
            path,
            match last_err {
                Some(e) => format!("not a readable PyTorch checkpoint ({e})"),
                None => {
                    "no tensors found (expected a state dict, or one under `state_dict`)".into()
                }
            },
        ))
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
            Backing::Safetensors(st) => st.tensors().into_iter().map(|(n, _)| n).collect(),
            Backing::Pth(p) => p.tensor_infos().keys().cloned().collect(),
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
            Backing::Safetensors(st) => st.get(name).ok().map(|v| v.shape().to_vec()),
            Backing::Pth(p) => p
                .tensor_infos()
                .get(name)
                .map(|i| i.layout.shape().dims().to_vec()),
            Backing::Map(m) => m.get(name).map(|t| t.dims().to_vec()),
        }
    }

    /// Loads `name` whatever its shape, converted to `dtype` on `device`.
    pub fn get_any(&self, name: &str, dtype: DType, device: &Device) -> Result<Tensor> {
        let tensor = match &self.backing {
            Backing::Safetensors(st) => match st.get(name) {
                Ok(view) => Some(candle::safetensors::Load::load(&view, device)?),
                Err(_) => None,
            },
            Backing::Pth(p) => p.get(name)?,
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
