//! The fuzz targets' bodies, one function per parser of user files, shared by the cargo-fuzz targets
//! (`fuzz_targets/*.rs`) and by the stable regression test that replays the committed corpora and
//! crashes (`tests/robustness/fuzz_replay.rs`). Each must return (an `Err` is fine) and never panic,
//! abort or allocate beyond the input's size.

#![allow(dead_code)]

use std::path::Path;
use std::sync::OnceLock;

use candle::{DType, Device};
use dinoreg::heads::TensorStore;
use dinoreg::io::image::{decode_image_bytes, to_rgb8, AlphaMode, DecodeLimits};
use dinoreg::pipelines::LabelMap;
use dinoreg::preprocess::{DenseOptions, ImageProcessor, ProcessorConfig};
use dinoreg::retrieval::chunks::{Journal, Outcome, Record};
use dinoreg::retrieval::store::{IndexMeta, FORMAT_VERSION};
use dinoreg::retrieval::{merge_shards, ApproxIndex, ApproxOptions, EmbeddingIndex, Embeddings};
use dinoreg::Dinov2Config;
use dinoreg_heads::discovery::dataset::{list_coco, CocoOptions};
use image::RgbImage;
use ndarray::Array2;

/// Splits `data` into `N` parts: each of the first `N - 1` is prefixed by its length (u16 LE, cut to
/// what is left), the last takes the rest.
pub fn split<const N: usize>(mut data: &[u8]) -> [&[u8]; N] {
    let mut parts = [&[][..]; N];
    for part in parts.iter_mut().take(N - 1) {
        if data.len() < 2 {
            return parts;
        }
        let len = usize::from(u16::from_le_bytes([data[0], data[1]])).min(data.len() - 2);
        *part = &data[2..2 + len];
        data = &data[2 + len..];
    }
    parts[N - 1] = data;
    parts
}

/// A scratch folder for this process, emptied for each input.
pub fn scratch() -> std::path::PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR
        .get_or_init(|| tempfile::tempdir().expect("tempdir"))
        .path()
        .join("case");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

/// 80 unit rows of 4 dims, and the genuine `hnsw.bin` of them.
fn fixture() -> &'static (EmbeddingIndex, Vec<u8>) {
    static FIXTURE: OnceLock<(EmbeddingIndex, Vec<u8>)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let rows = 80;
        let mut v = Array2::from_shape_fn((rows, 4), |(i, j)| ((i * 7 + j * 13) % 17) as f32 - 8.0);
        for mut row in v.rows_mut() {
            let n = row.dot(&row).sqrt().max(1e-6);
            row /= n;
        }
        let index = EmbeddingIndex::from_embeddings(Embeddings {
            meta: IndexMeta {
                format: FORMAT_VERSION,
                model: "m".into(),
                descriptor: "cls".into(),
                dims: 4,
                count: rows,
                skipped: 0,
                shard: None,
                complete: true,
            },
            vectors: v,
            paths: (0..rows).map(|i| format!("{i}")).collect(),
            skipped: Vec::new(),
        })
        .expect("index");
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = ApproxOptions::default()
            .with_ef_search(16)
            .with_ef_construction(16);
        ApproxIndex::build(&index, &opts)
            .expect("build")
            .save(dir.path())
            .expect("save");
        let bytes = std::fs::read(ApproxIndex::path(dir.path())).expect("read");
        (index, bytes)
    })
}

/// `config.json` (both layouts: a DINOv2 config, or one nested under `backbone_config`), and what the
/// model derives from it.
pub fn config_json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = Dinov2Config::from_json(text) {
        let _ = cfg.validate();
        let _ = (
            cfg.head_dim(),
            cfg.mlp_hidden_size(),
            cfg.swiglu_hidden_size(),
        );
        let _ = (
            cfg.position_grid(),
            cfg.num_labels(),
            cfg.interpolate_antialias(),
        );
        let _ = cfg.derived_stage_names();
    }
}

/// `preprocessor_config.json`, then preprocessing a small image with it (the sizes it sets drive the
/// allocations).
pub fn preprocessor_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = ProcessorConfig::from_json_str(text, Path::new("preprocessor_config.json"))
    else {
        return;
    };
    let image = RgbImage::from_fn(7, 5, |x, y| image::Rgb([x as u8 * 30, y as u8 * 40, 200]));
    let processor = ImageProcessor::new(config);
    let _ = processor.preprocess(&image);
    let _ = processor.dense(&image, &DenseOptions::default().with_short_side(Some(9)));
}

/// `.npy` headers and data.
pub fn npy(data: &[u8]) {
    let _ = dinoreg::io::npy::read_array_bytes("fuzz.npy", data);
}

/// safetensors headers through `TensorStore`, every tensor read, then the backbone search and config
/// inference on what was found.
pub fn safetensors(data: &[u8]) {
    let Ok(store) = TensorStore::from_safetensors_bytes("fuzz.safetensors", data.to_vec()) else {
        return;
    };
    for name in store.names() {
        let _ = store.shape(&name);
        let _ = store.get_any(&name, DType::F32, &Device::Cpu);
    }
    if let Ok(weights) = dinoreg::model::weights::find_backbone(store) {
        let _ = dinoreg::model::weights::infer_config(&weights);
    }
}

/// PyTorch `.pth` archives (zip directory, pickle, storages) through `TensorStore`, every tensor read,
/// then the backbone search (original-layout renames) and config inference.
pub fn pth(data: &[u8]) {
    let Ok(store) = TensorStore::from_pth_bytes("fuzz.pth", data.to_vec()) else {
        return;
    };
    for name in store.names() {
        let _ = store.get_any(&name, DType::F32, &Device::Cpu);
    }
    if let Ok(weights) = dinoreg::model::weights::find_backbone(store) {
        let _ = dinoreg::model::weights::infer_config(&weights);
    }
}

/// An embedding folder: `index.json`, `paths.txt`, `skipped.txt` and `embeddings.npy` (the input split
/// in four), read, searched and merged as a one-shard split.
pub fn index_files(data: &[u8]) {
    let [meta, paths, skipped, npy] = split::<4>(data);
    let dir = scratch();
    let folder = dir.join("emb");
    std::fs::create_dir_all(&folder).expect("mkdir");
    for (name, bytes) in [
        ("index.json", meta),
        ("paths.txt", paths),
        ("skipped.txt", skipped),
        ("embeddings.npy", npy),
    ] {
        std::fs::write(folder.join(name), bytes).expect("write");
    }
    if let Ok(e) = Embeddings::read(&folder) {
        if let Ok(index) = EmbeddingIndex::from_embeddings(e) {
            let dims = index.meta().dims.min(4096);
            let _ = index.search(&vec![1.0; dims], 3);
            let _ = index.search_row(0, 3);
        }
    }
    let _ = merge_shards(&[folder], &dir.join("merged"));
}

/// `hnsw.bin` for a fixed embedding folder: the input is either a whole file (first byte odd) or a
/// list of byte patches `(offset u16 LE, value)` applied to the genuine file (first byte even), so the
/// fuzzer reaches the graph checks behind the fingerprint. A loaded graph is searched.
pub fn hnsw(data: &[u8]) {
    let (index, genuine) = fixture();
    let bytes = match data.split_first() {
        Some((mode, rest)) if mode % 2 == 0 => {
            let mut bytes = genuine.clone();
            for patch in rest.chunks_exact(3) {
                let at = usize::from(u16::from_le_bytes([patch[0], patch[1]]));
                if let Some(b) = bytes.get_mut(at) {
                    *b = patch[2];
                }
            }
            bytes
        }
        Some((_, rest)) => rest.to_vec(),
        None => genuine.clone(),
    };
    let opts = ApproxOptions::default()
        .with_ef_search(16)
        .with_ef_construction(16);
    if let Some(graph) = ApproxIndex::from_bytes(&bytes, index, &opts) {
        for row in [0, 17, 79] {
            let _ = graph.search_row(index, row, 5);
        }
        let _ = graph.search(index, &[0.5, -0.5, 0.5, 0.5], 5);
    }
}

/// The embedding job's journal: one chunk (the input split in three: its number as text, the `.tsv`,
/// the `.npy`) read, then a chunk appended.
pub fn chunks(data: &[u8]) {
    let [name, tsv, npy] = split::<3>(data);
    let dir = scratch();
    let chunks = dir.join("chunks");
    std::fs::create_dir_all(&chunks).expect("mkdir");
    // The chunk's number comes from the input too (as text), to reach the numbering.
    let number = String::from_utf8_lossy(name).into_owned();
    // Names the file system cannot hold are not a parser's problem.
    if number.is_empty()
        || number.len() > 64
        || number.contains(['/', '\0'])
        || number.starts_with('.')
    {
        return;
    }
    std::fs::write(chunks.join(format!("{number}.tsv")), tsv).expect("tsv");
    std::fs::write(chunks.join(format!("{number}.npy")), npy).expect("npy");
    let Ok(journal) = Journal::open(&dir, 4) else {
        return;
    };
    let _ = journal.read();
    let _ = journal.append(&[Record {
        path: "a.png".into(),
        outcome: Outcome::Embedded(vec![1.0; 4]),
    }]);
}

/// VOC annotation XML (CorLoc ground truth).
pub fn voc_xml(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = dinoreg_heads::discovery::dataset::parse_voc_annotation(text, "fuzz.xml");
    }
}

/// COCO annotation JSON (CorLoc ground truth), listed against an image folder holding `a.jpg`.
pub fn coco_json(data: &[u8]) {
    let dir = scratch();
    let file = dir.join("instances.json");
    std::fs::write(&file, data).expect("write");
    std::fs::write(dir.join("a.jpg"), b"").expect("image");
    let _ = list_coco(&file, &dir, &CocoOptions::default());
}

/// Image decoding (PNG, JPEG, WebP, TIFF, BMP, GIF) under decode limits, conversion to RGB in both
/// alpha modes, and the default preprocessing.
pub fn image(data: &[u8]) {
    // Smaller than the defaults, to keep each input fast; the same code paths.
    let limits = DecodeLimits::default()
        .with_max_width(2048)
        .with_max_height(2048)
        .with_max_alloc(64 << 20);
    let Ok(image) = decode_image_bytes(Path::new("fuzz"), data, &limits) else {
        return;
    };
    let _ = to_rgb8(&image, AlphaMode::Drop);
    let rgb = to_rgb8(&image, AlphaMode::White);
    let _ = ImageProcessor::default().preprocess(&rgb);
}

/// Label PNGs (segmentation training): decoded under decode limits at their stored bit depth (gray
/// values, or class colours looked up in a classes file and the VOC map), then checked and resized
/// as training does.
pub fn label_png(data: &[u8]) {
    let limits = DecodeLimits::default()
        .with_max_width(2048)
        .with_max_height(2048)
        .with_max_alloc(64 << 20);
    let colors = [[1, 2, 3], [128, 0, 0]];
    for colors in [None, Some(&colors[..])] {
        let Ok(map) = LabelMap::decode("fuzz.png", data, &limits, colors) else {
            continue;
        };
        let _ = (map.largest_label(), map.label_outside(3));
        let small = map.resize_nearest((7, 5));
        let _ = small.to_tensor(&Device::Cpu);
    }
}
