//! Checkpoints with tensors of unexpected rank or size, truncated files, and crafted headers.

use std::collections::HashMap;

use candle::{Device, Tensor};
use dinoreg::heads::TensorStore;
use dinoreg::model::weights::{find_backbone, infer_config};

/// A tiny original-layout (`.pth`-style) backbone whose `blocks.0.mlp.fc1.weight` is `fc1`.
fn original(fc1: Tensor) -> TensorStore {
    let dev = Device::Cpu;
    let z = |shape: &[usize]| Tensor::zeros(shape, candle::DType::F32, &dev).expect("zeros");
    let d = 64;
    let mut m = HashMap::new();
    m.insert("patch_embed.proj.weight".to_string(), z(&[d, 3, 14, 14]));
    m.insert("pos_embed".to_string(), z(&[1, 1 + 4, d]));
    m.insert("cls_token".to_string(), z(&[1, 1, d]));
    m.insert("blocks.0.norm1.weight".to_string(), z(&[d]));
    m.insert("blocks.0.mlp.fc1.weight".to_string(), fc1);
    TensorStore::from_map("crafted.pth", m)
}

#[test]
fn config_inference_refuses_tensors_of_the_wrong_rank() {
    let dev = Device::Cpu;
    let ok = find_backbone(original(
        Tensor::zeros((256, 64), candle::DType::F32, &dev).expect("z"),
    ))
    .expect("backbone");
    let cfg = infer_config(&ok).expect("a well-formed checkpoint");
    assert_eq!(
        (cfg.hidden_size, cfg.mlp_ratio, cfg.image_size),
        (64, 4.0, 28)
    );

    let scalar = Tensor::new(1f32, &dev).expect("0-d");
    let weights = find_backbone(original(scalar)).expect("backbone");
    let err = infer_config(&weights).expect_err("a 0-d fc1");
    assert!(err.to_string().contains("mlp.fc1.weight"), "{err}");
    assert!(err.to_string().contains("expected 2 dims"), "{err}");
}

#[test]
fn config_inference_refuses_a_position_table_of_the_wrong_rank() {
    let dev = Device::Cpu;
    let mut store = original(Tensor::zeros((256, 64), candle::DType::F32, &dev).expect("z"));
    let mut m = HashMap::new();
    for name in store.names() {
        let t = store.get_any(&name, candle::DType::F32, &dev).expect("get");
        m.insert(name, t);
    }
    m.insert(
        "pos_embed".into(),
        Tensor::zeros(5, candle::DType::F32, &dev).expect("1-d"),
    );
    store = TensorStore::from_map("crafted.pth", m);
    let err = infer_config(&find_backbone(store).expect("backbone")).expect_err("1-d table");
    assert!(err.to_string().contains("position_embeddings"), "{err}");
}

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(FIXTURES).join(name)
}

/// Equality of dtype, shape and every value (f16 and bf16 widen to f32 exactly; f32 by its bits).
fn same(a: &Tensor, b: &Tensor) -> bool {
    let values = |t: &Tensor| -> Vec<u64> {
        let t = t.flatten_all().expect("flatten");
        match t.dtype() {
            candle::DType::I64 => t
                .to_vec1::<i64>()
                .expect("i64")
                .iter()
                .map(|v| *v as u64)
                .collect(),
            candle::DType::U8 => t
                .to_vec1::<u8>()
                .expect("u8")
                .iter()
                .map(|v| u64::from(*v))
                .collect(),
            _ => t
                .to_dtype(candle::DType::F32)
                .and_then(|t| t.to_vec1::<f32>())
                .expect("f32")
                .iter()
                .map(|v| u64::from(v.to_bits()))
                .collect(),
        }
    };
    a.dtype() == b.dtype() && a.dims() == b.dims() && values(a) == values(b)
}

/// Every tensor of `store` in its stored dtype.
fn load_all(store: &TensorStore) -> HashMap<String, Tensor> {
    store
        .names()
        .into_iter()
        .map(|n| {
            let dtype = store.dtype(&n).expect("a readable dtype");
            let t = store.get_any(&n, dtype, &Device::Cpu).expect("tensor");
            (n, t)
        })
        .collect()
}

#[test]
fn pth_views_dtypes_and_parameters_read_as_torch_saved_them() {
    let store = TensorStore::open(fixture("checkpoints/views.pth")).expect("views.pth");
    let expected =
        TensorStore::open(fixture("checkpoints/views_expected.safetensors")).expect("expected");
    let (got, want) = (load_all(&store), load_all(&expected));
    assert_eq!(got.len(), 13, "every state-dict entry, nothing from meta");
    for (name, w) in &want {
        assert!(same(&got[name], w), "{name}: {:?} vs {:?}", got[name], w);
    }
}

#[test]
fn pth_fixtures_read_as_candle_reads_them() {
    let files = [
        "model/reg4/model.pth",
        "model/swiglu/model.pth",
        "segmentation/bn_linear.pth",
        "segmentation/bn_ms.pth",
        "depth/dinov2_linear4.pth",
        "depth/dinov2_dpt.pth",
        "depth/da_relative/depth_anything_v2_tiny.pth",
        "dinov3/reg4/model.pth",
    ];
    for file in files {
        let path = fixture(file);
        let ours = load_all(&TensorStore::open(&path).expect(file));
        let theirs = [None, Some("state_dict"), Some("model")]
            .into_iter()
            .find_map(|key| {
                candle::pickle::read_all_with_key(&path, key)
                    .ok()
                    .filter(|t| !t.is_empty())
            })
            .expect("candle reads it");
        assert_eq!(ours.len(), theirs.len(), "{file}");
        for (name, t) in &theirs {
            assert!(same(&ours[name], t), "{file}: {name}");
        }
    }
}

/// A safetensors fixture's bytes.
fn safetensors_bytes() -> Vec<u8> {
    std::fs::read(fixture("checkpoints/views_expected.safetensors")).expect("fixture")
}

#[test]
fn safetensors_whose_length_disagrees_with_the_header_are_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bytes = safetensors_bytes();
    let truncated = tmp.path().join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() - 1]).expect("write");
    let err = TensorStore::open(&truncated).expect_err("one byte short");
    assert!(err.to_string().contains("truncated.safetensors"), "{err}");
    assert!(err.to_string().contains("header describes"), "{err}");
    let mut padded = bytes.clone();
    padded.push(0);
    assert!(TensorStore::from_safetensors_bytes("padded", padded).is_err());
    // A header length of 2^64 - 1, and one past the end of the file.
    for n in [u64::MAX, bytes.len() as u64] {
        let mut crafted = bytes.clone();
        crafted[..8].copy_from_slice(&n.to_le_bytes());
        let err = TensorStore::from_safetensors_bytes("crafted", crafted).expect_err("length");
        assert!(err.to_string().contains("header claims"), "{err}");
    }
    // A shard that repeats a tensor of another shard.
    let copy = tmp.path().join("copy.safetensors");
    std::fs::write(&copy, &bytes).expect("write");
    let first = fixture("checkpoints/views_expected.safetensors");
    let err = TensorStore::open_safetensors(&[first, copy]).expect_err("duplicate");
    assert!(err.to_string().contains("another shard"), "{err}");
}

#[test]
fn a_file_truncated_while_open_is_an_error_not_a_crash() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for (name, bytes) in [
        ("a.safetensors", safetensors_bytes()),
        (
            "a.pth",
            std::fs::read(fixture("checkpoints/views.pth")).expect("pth"),
        ),
    ] {
        let path = tmp.path().join(name);
        std::fs::write(&path, &bytes).expect("write");
        let store = TensorStore::open(&path).expect("open");
        // Truncated under the open store (a memory map would raise SIGBUS on the lost pages).
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_len(64))
            .expect("truncate");
        let err = store
            .get_any("contiguous", candle::DType::F32, &Device::Cpu)
            .expect_err("the data is gone");
        assert!(
            err.to_string().contains("truncated or rewritten"),
            "{name}: {err}"
        );
    }
}

/// A `.pth` archive holding `pickle` as `archive/data.pkl` and `storage` as `archive/data/0`.
fn pth(pickle: &[u8], storage: &[u8]) -> Vec<u8> {
    archive(&[("archive/data.pkl", pickle), ("archive/data/0", storage)])
}

/// A zip archive of stored entries.
fn archive(entries: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for &(name, data) in entries {
        zip.start_file(name, stored).expect("entry");
        zip.write_all(data).expect("write");
    }
    zip.finish().expect("finish").into_inner()
}

/// A protocol-2 pickle of `{"w": _rebuild_tensor_v2(storage 0 of `numel` floats, offset, size,
/// stride, False, {})}`.
fn tensor_pickle(numel: u64, offset: u64, size: &[u64], stride: &[u64]) -> Vec<u8> {
    let int = |p: &mut Vec<u8>, v: u64| {
        p.extend([0x8a, 9]);
        p.extend(v.to_le_bytes());
        p.push(0);
    };
    let text = |p: &mut Vec<u8>, s: &str| {
        p.push(b'X');
        p.extend((s.len() as u32).to_le_bytes());
        p.extend(s.as_bytes());
    };
    let mut p = b"\x80\x02}(".to_vec();
    text(&mut p, "w");
    p.extend(b"ctorch._utils\n_rebuild_tensor_v2\n((");
    text(&mut p, "storage");
    p.extend(b"ctorch\nFloatStorage\n");
    text(&mut p, "0");
    text(&mut p, "cpu");
    int(&mut p, numel);
    p.extend(b"tQ");
    int(&mut p, offset);
    for dims in [size, stride] {
        p.push(b'(');
        for &d in dims {
            int(&mut p, d);
        }
        p.push(b't');
    }
    p.extend(b"\x89}tRu.");
    p
}

#[test]
fn pth_tensors_outside_their_storage_are_refused_at_open() {
    let floats: Vec<u8> = (0..6u8).flat_map(|i| f32::from(i).to_le_bytes()).collect();
    let ok = TensorStore::from_pth_bytes(
        "ok.pth",
        pth(&tensor_pickle(6, 0, &[2, 3], &[3, 1]), &floats),
    )
    .expect("a well-formed archive");
    let t = ok
        .get_any("w", candle::DType::F32, &Device::Cpu)
        .expect("w");
    assert_eq!(
        t.to_vec2::<f32>().expect("2-D"),
        [[0., 1., 2.], [3., 4., 5.]]
    );
    let transposed = pth(&tensor_pickle(6, 0, &[3, 2], &[1, 3]), &floats);
    let t = TensorStore::from_pth_bytes("t.pth", transposed)
        .expect("transposed")
        .get_any("w", candle::DType::F32, &Device::Cpu)
        .expect("w");
    assert_eq!(
        t.to_vec2::<f32>().expect("2-D"),
        [[0., 3.], [1., 4.], [2., 5.]]
    );

    let cases: [(&str, Vec<u8>); 6] = [
        (
            "storage larger than its entry",
            tensor_pickle(1 << 40, 0, &[1 << 40], &[1]),
        ),
        (
            "size beyond the storage",
            tensor_pickle(6, 0, &[1 << 40], &[1]),
        ),
        (
            "offset beyond the storage",
            tensor_pickle(6, 1 << 60, &[2], &[1]),
        ),
        (
            "stride beyond the storage",
            tensor_pickle(6, 0, &[2, 3], &[1 << 62, 1]),
        ),
        ("expanded view", tensor_pickle(6, 0, &[1 << 20], &[0])),
        ("rank mismatch", tensor_pickle(6, 0, &[2, 3], &[1])),
    ];
    for (what, pickle) in cases {
        let err =
            TensorStore::from_pth_bytes("crafted.pth", pth(&pickle, &floats)).expect_err(what);
        assert!(err.to_string().contains("crafted.pth"), "{what}: {err}");
        assert!(err.to_string().contains("tensor `w`"), "{what}: {err}");
    }
    let pickle = tensor_pickle(6, 0, &[6], &[1]);
    let missing = archive(&[("archive/data.pkl", &pickle), ("archive/data/9", &floats)]);
    let err = TensorStore::from_pth_bytes("m.pth", missing).expect_err("no storage 0");
    assert!(err.to_string().contains("archive/data/0"), "{err}");
    for junk in [&b""[..], b"PK\x03\x04", b"\x80\x02}."] {
        assert!(TensorStore::from_pth_bytes("junk.pth", junk.to_vec()).is_err());
    }
}

#[test]
fn configs_with_absurd_sizes_are_refused_before_anything_is_allocated() {
    // Found by the config_json fuzz target: 10^16 layers made the stage names alone ask for
    // 2.4e17 bytes (an abort, not an error). Both generations, plain and nested.
    let reg4: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("model/reg4/config.json")).expect("config"),
    )
    .expect("JSON");
    let v3: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("dinov3/reg4/config.json")).expect("config"),
    )
    .expect("JSON");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("config.json");
    for (base, name) in [(&reg4, "DINOv2"), (&v3, "DINOv3")] {
        for (field, value, needle) in [
            (
                "num_hidden_layers",
                9_999_999_999_999_999u64,
                "this crate accepts",
            ),
            ("num_hidden_layers", 1025, "more than the 1024"),
            ("hidden_size", 1 << 21, "more than the 1048576"),
        ] {
            let mut config = base.clone();
            config[field] = value.into();
            for nested in [false, true] {
                let text = match nested {
                    false => config.to_string(),
                    true => serde_json::json!({
                        "architectures": ["DepthAnythingForDepthEstimation"],
                        "backbone_config": config,
                    })
                    .to_string(),
                };
                std::fs::write(&path, text).expect("write");
                let err = dinoreg::ModelConfig::from_file(&path)
                    .expect_err("an absurd size")
                    .to_string();
                assert!(
                    err.contains(field) && err.contains(needle) && !err.contains('\n'),
                    "{name} {field}={value} nested={nested}: {err}"
                );
            }
        }
    }
}
