//! PyTorch's zip checkpoint format (`torch.save` since 1.6; `.pth`, `.pt`, `.bin`, `.ckpt`): a zip
//! archive `<dir>/data.pkl` (the pickled object), `<dir>/data/<key>` (one stored, uncompressed entry
//! per storage, little-endian), and `<dir>/byteorder`.
//!
//! A tensor is pickled as `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, …)`, possibly
//! wrapped in `_rebuild_parameter(tensor, …)`, with the storage a persistent id
//! `('storage', torch.<Type>Storage, key, location, numel)`. The state dict is the pickled dict itself
//! when it holds tensors, else the dict under `state_dict`, then `model` (mmcv, Lightning, DINO
//! training checkpoints). Each tensor's storage entry is located at open and every tensor is checked
//! to lie inside it, so reads later are positioned reads of known ranges.

use std::collections::HashMap;
use std::io::Read;

use candle::DType;

use super::pickle::{self, Obj, Pickle};
use super::source::Source;
use super::stored::Stored;

/// The largest `data.pkl` read (real state dicts are a few hundred kilobytes).
const MAX_PICKLE: u64 = 64 << 20;

/// Keys under which a training checkpoint keeps its state dict, tried in order after the top level.
const STATE_DICT_KEYS: [&str; 2] = ["state_dict", "model"];

/// The tensors of a PyTorch zip checkpoint, or why it is not one.
pub(crate) fn read_index(source: &Source) -> Result<Vec<(String, Stored)>, String> {
    let mut zip = zip::ZipArchive::new(source.cursor()).map_err(|e| {
        format!(
            "not a zip archive ({e}); only the zip format of torch.save (PyTorch >= 1.6) is read"
        )
    })?;
    let names: Vec<String> = zip
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .collect();
    let pkl = names
        .iter()
        .filter(|n| n.ends_with("data.pkl"))
        .min_by_key(|n| n.len())
        .ok_or("no data.pkl in the archive")?
        .clone();
    let dir = &pkl[..pkl.len() - "data.pkl".len()];
    if let Some(order) = names.iter().find(|n| **n == format!("{dir}byteorder")) {
        let text = read_small(&mut zip, order, 64)?;
        if text.trim_ascii() != b"little" {
            return Err("stored big-endian, which is not supported".into());
        }
    }
    let data = read_small(&mut zip, &pkl, MAX_PICKLE)?;
    let p = pickle::parse(&data).map_err(|e| format!("{pkl}: {e}"))?;
    let dict = state_dict(&p)
        .ok_or("no tensors found: expected a state dict, or one under `state_dict` or `model`")?;
    let mut storages: HashMap<String, (u64, u64)> = HashMap::new();
    let mut tensors = Vec::new();
    for &(key, value) in dict {
        let Some(name) = p.str(key) else { continue };
        let Some(found) = tensor_ref(&p, value) else {
            continue;
        };
        let t = found.map_err(|e| format!("tensor `{name}`: {e}"))?;
        let entry = format!("{dir}data/{}", t.key);
        let (start, len) = match storages.get(&entry) {
            Some(&range) => range,
            None => {
                let range = stored_range(&mut zip, &entry, source.len())
                    .map_err(|e| format!("tensor `{name}`: {e}"))?;
                storages.insert(entry.clone(), range);
                range
            }
        };
        // Elements the entry holds from the tensor's offset on; a view may use no more.
        let capacity = t.numel.min(len / t.size).saturating_sub(t.offset);
        let stored = Stored {
            start: start.saturating_add(t.offset.saturating_mul(t.size)),
            strides: (!is_contiguous(&t.shape, &t.strides)).then_some(t.strides),
            shape: t.shape,
            dtype: t.dtype,
            source: 0,
        };
        stored
            .check(start + len, capacity)
            .map_err(|e| format!("tensor `{name}`: {e}"))?;
        tensors.push((name.to_string(), stored));
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(tensors)
}

/// The first dict of name → tensor: the top level, then under [`STATE_DICT_KEYS`].
fn state_dict(p: &Pickle) -> Option<&[(usize, usize)]> {
    let holds_tensors = |id: usize| {
        p.dict(id)
            .filter(|d| d.iter().any(|&(_, v)| tensor_ref(p, v).is_some()))
    };
    holds_tensors(p.root()).or_else(|| {
        STATE_DICT_KEYS
            .iter()
            .find_map(|k| p.lookup(p.root(), k).and_then(holds_tensors))
    })
}

/// A tensor's pickled description.
struct TensorRef {
    key: String,
    dtype: Result<DType, String>,
    size: u64,
    numel: u64,
    offset: u64,
    shape: Vec<usize>,
    strides: Vec<usize>,
}

/// `Some` when `id` is a tensor rebuild call (`Err` when malformed), `None` when it is not a tensor.
fn tensor_ref(p: &Pickle, id: usize) -> Option<Result<TensorRef, String>> {
    let mut id = id;
    // `_rebuild_parameter(tensor, requires_grad, hooks)` wraps the tensor once.
    for _ in 0..2 {
        let Obj::Call(callable, args) = p.get(id) else {
            return None;
        };
        let Obj::Global(module, name) = p.get(*callable) else {
            return None;
        };
        if module != "torch._utils" || !name.starts_with("_rebuild_") {
            return None;
        }
        let args = p.tuple(*args).unwrap_or(&[]);
        match name.as_str() {
            "_rebuild_parameter" | "_rebuild_parameter_with_state" => match args.first() {
                Some(&inner) => id = inner,
                None => return Some(Err("a parameter without data".into())),
            },
            "_rebuild_tensor_v2" | "_rebuild_tensor" => return Some(rebuild_args(p, args)),
            other => {
                return Some(Err(format!(
                    "stored with torch._utils.{other}, which is not supported"
                )))
            }
        }
    }
    Some(Err("nested parameters".into()))
}

/// `(storage, offset, size, stride, …)` of `_rebuild_tensor_v2`.
fn rebuild_args(p: &Pickle, args: &[usize]) -> Result<TensorRef, String> {
    let [storage, offset, size, stride, ..] = args else {
        return Err(format!(
            "{} rebuild arguments, expected at least 4",
            args.len()
        ));
    };
    let Obj::PersId(pid) = p.get(*storage) else {
        return Err("the storage is not a persistent id".into());
    };
    let parts = p.tuple(*pid).ok_or("the storage id is not a tuple")?;
    let [kind, class, key, _location, numel] = parts else {
        return Err(format!("a storage id of {} items, expected 5", parts.len()));
    };
    if p.str(*kind) != Some("storage") {
        return Err("the persistent id is not a storage".into());
    }
    let Obj::Global(_, class) = p.get(*class) else {
        return Err("the storage type is not a class".into());
    };
    let dtype = storage_dtype(class);
    let size_of = match &dtype {
        Ok(d) => d.size_in_bytes() as u64,
        Err(_) => 1,
    };
    let key = p
        .str(*key)
        .ok_or("the storage key is not a string")?
        .to_string();
    let count = |id: usize, what: &str| {
        p.int(id)
            .and_then(|v| u64::try_from(v).ok())
            .ok_or_else(|| format!("the {what} is not a non-negative integer"))
    };
    let dims = |id: usize, what: &str| -> Result<Vec<usize>, String> {
        p.tuple(id)
            .ok_or_else(|| format!("the {what} is not a tuple"))?
            .iter()
            .map(|&d| {
                count(d, what)
                    .and_then(|v| usize::try_from(v).map_err(|_| format!("{what} too large")))
            })
            .collect()
    };
    let shape = dims(*size, "size")?;
    let strides = dims(*stride, "stride")?;
    if strides.len() != shape.len() {
        return Err(format!("size {shape:?} with stride {strides:?}"));
    }
    Ok(TensorRef {
        key,
        dtype,
        size: size_of,
        numel: count(*numel, "storage size")?,
        offset: count(*offset, "storage offset")?,
        shape,
        strides,
    })
}

/// candle's dtype of a `torch.<Type>Storage`, or the type's name when candle has none.
fn storage_dtype(class: &str) -> Result<DType, String> {
    Ok(match class {
        "FloatStorage" => DType::F32,
        "DoubleStorage" => DType::F64,
        "HalfStorage" => DType::F16,
        "BFloat16Storage" => DType::BF16,
        "ByteStorage" | "BoolStorage" => DType::U8,
        "ShortStorage" => DType::I16,
        "IntStorage" => DType::I32,
        "LongStorage" => DType::I64,
        other => return Err(format!("torch.{other}")),
    })
}

/// Whether `strides` are the C-order strides of `shape` (dims of size 1 may have any stride).
fn is_contiguous(shape: &[usize], strides: &[usize]) -> bool {
    let mut expected = 1usize;
    for (&d, &s) in shape.iter().zip(strides).rev() {
        if d != 1 && s != expected {
            return false;
        }
        expected = expected.saturating_mul(d);
    }
    true
}

/// The byte range `(start, len)` of the stored (uncompressed) entry `name` inside a file of `file_len`
/// bytes.
fn stored_range<R: std::io::Read + std::io::Seek>(
    zip: &mut zip::ZipArchive<R>,
    name: &str,
    file_len: u64,
) -> Result<(u64, u64), String> {
    let index = zip
        .index_for_name(name)
        .ok_or_else(|| format!("its storage {name} is not in the archive"))?;
    let entry = zip
        .by_index_raw(index)
        .map_err(|e| format!("{name}: {e}"))?;
    if entry.compression() != zip::CompressionMethod::Stored
        || entry.encrypted()
        || entry.compressed_size() != entry.size()
    {
        return Err(format!(
            "{name} is compressed or encrypted; save it with torch.save"
        ));
    }
    let start = entry
        .data_start()
        .ok_or_else(|| format!("{name}: no data offset"))?;
    let len = entry.size();
    start
        .checked_add(len)
        .filter(|end| *end <= file_len)
        .ok_or_else(|| format!("{name} runs past the end of the file"))?;
    Ok((start, len))
}

/// The content of the (small) entry `name`, refusing more than `limit` bytes.
fn read_small<R: std::io::Read + std::io::Seek>(
    zip: &mut zip::ZipArchive<R>,
    name: &str,
    limit: u64,
) -> Result<Vec<u8>, String> {
    let entry = zip.by_name(name).map_err(|e| format!("{name}: {e}"))?;
    if entry.size() > limit {
        return Err(format!(
            "{name} is {} bytes, more than {limit}",
            entry.size()
        ));
    }
    let mut data = Vec::new();
    entry
        .take(limit)
        .read_to_end(&mut data)
        .map_err(|e| format!("{name}: {e}"))?;
    Ok(data)
}
