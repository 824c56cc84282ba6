//! Object discovery (LOST, TokenCut) and CorLoc against tests/fixtures/discovery (made by
//! tests/fixtures/gen_discovery.py): boxes, seeds and masks equal to the numpy reference of LOST and to
//! TokenCut with scipy's generalised `eigh`, on the centred last-layer keys of tiny random HF models;
//! CorLoc on a hand-made VOC folder and COCO file with known answers; bad inputs.

use std::path::{Path, PathBuf};

use candle::{DType, Device, Tensor};
use dinoreg_heads::discovery::{
    list_coco, list_voc, pad_to_patches, CocoOptions, CorLoc, Discovery, Lost, LostOptions,
    TokenCut, TokenCutOptions, VocOptions,
};
use dinoreg_heads::{FeatureMaps, FeatureSource, Head, TensorStore};
use serde_json::Value;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/discovery")
}

fn expected() -> Result<Value> {
    Ok(serde_json::from_str(&std::fs::read_to_string(
        fixtures().join("expected.json"),
    )?)?)
}

fn pair(v: &Value) -> (usize, usize) {
    (
        v[0].as_u64().unwrap_or(0) as usize,
        v[1].as_u64().unwrap_or(0) as usize,
    )
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_u64)
        .map(|x| x as usize)
        .collect()
}

/// The feature maps `(1, C, h, w)` of one fixture key set, as a backbone hands them to a head.
fn keys(name: &str, exp: &Value) -> Result<FeatureMaps> {
    let store = TensorStore::open(fixtures().join("keys.safetensors"))?;
    let (h, w) = pair(&exp["grid"]);
    let p = exp["patch_size"].as_u64().unwrap_or(0) as usize;
    let map = store.get_any(name, DType::F32, &Device::Cpu)?;
    assert_eq!(map.dims()[1..], [h, w]);
    Ok(FeatureMaps {
        maps: vec![map.unsqueeze(0)?],
        cls_tokens: None,
        patch_size: p,
        input_size: (h * p, w * p),
    })
}

fn check(found: &Discovery, case: &Value, what: &str) {
    assert_eq!(found.bbox.to_vec(), usizes(&case["box"]), "{what}: box");
    assert_eq!(found.seed.to_vec(), usizes(&case["seed"]), "{what}: seed");
    let mask: Vec<bool> = usizes(&case["mask"]).into_iter().map(|m| m == 1).collect();
    assert_eq!(found.mask, mask, "{what}: mask");
    assert_eq!(
        found.mask_patches,
        mask.iter().filter(|&&m| m).count(),
        "{what}: mask size"
    );
}

#[test]
fn lost_matches_the_reference() -> Result {
    let exp = expected()?;
    let image_size = pair(&exp["image_size"]);
    let cases = exp["lost"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    assert_eq!(cases.len(), 8);
    for case in cases {
        let options = LostOptions::default()
            .with_k_patches(case["k_patches"].as_u64().unwrap_or(0) as usize)
            .with_seed_expansion(case["expansion"].as_bool().unwrap_or(true))
            .with_gram_bias(case["gram_bias"].as_f64().unwrap_or(0.0) as f32);
        let features = keys(case["features"].as_str().unwrap_or(""), &exp)?;
        let found = Lost::new(options)?.discover(&features, image_size)?;
        assert_eq!(found.len(), 1);
        check(
            &found[0],
            case,
            &format!("LOST {options:?} on {}", case["features"]),
        );
        assert!(found[0].eigenvector.is_none());
    }
    Ok(())
}

#[test]
fn tokencut_matches_scipy_eigh() -> Result {
    let exp = expected()?;
    let image_size = pair(&exp["image_size"]);
    for case in exp["tokencut"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let features = keys(case["features"].as_str().unwrap_or(""), &exp)?;
        let found = TokenCut::new(TokenCutOptions::default())?.discover(&features, image_size)?;
        check(
            &found[0],
            case,
            &format!("TokenCut on {}", case["features"]),
        );
        let want: Vec<f64> = case["eigenvector"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_f64)
            .collect();
        let got = found[0].eigenvector.clone().unwrap_or_default();
        assert_eq!(got.len(), want.len());
        let scale = want.iter().fold(1f64, |m, v| m.max(v.abs()));
        let err = got
            .iter()
            .zip(&want)
            .fold(0f64, |m, (g, w)| m.max((*g as f64 - w).abs()));
        assert!(
            err <= 1e-4 * scale,
            "TokenCut eigenvector: max error {err} at scale {scale}"
        );
    }
    Ok(())
}

#[test]
fn heads_ask_for_last_layer_keys_and_forward_clips_to_the_padded_input() -> Result {
    let exp = expected()?;
    let lost = Lost::new(LostOptions::default())?;
    let request = lost.request();
    assert_eq!(request.blocks, vec![-1]);
    assert_eq!(request.source, FeatureSource::Keys);
    assert!(!request.norm && !request.cls_token);
    let values = TokenCut::new(TokenCutOptions::default().with_source(FeatureSource::Values))?;
    assert_eq!(values.request().source, FeatureSource::Values);
    // Without the unpadded size, the box may reach the padded border (56 x 40).
    let features = keys("keys_reg4", &exp)?;
    let found = lost.forward(&features)?;
    assert_eq!(found[0].bbox, [28, 8, 56, 40]);
    let json = serde_json::to_value(&found[0])?;
    assert_eq!(json["box"], serde_json::json!([28, 8, 56, 40]));
    assert_eq!(json["mask_patches"], 27);
    Ok(())
}

#[test]
fn pixels_are_padded_bottom_right_with_zeros() -> Result {
    let x = Tensor::ones((2, 3, 38, 54), DType::F32, &Device::Cpu)?;
    let (padded, size) = pad_to_patches(&x, 4)?;
    assert_eq!(padded.dims(), [2, 3, 40, 56]);
    assert_eq!(size, (38, 54));
    assert_eq!(
        padded.sum_all()?.to_scalar::<f32>()?,
        (2 * 3 * 38 * 54) as f32
    );
    assert_eq!(
        padded
            .narrow(2, 0, 38)?
            .narrow(3, 0, 54)?
            .min_all()?
            .to_scalar::<f32>()?,
        1.0
    );
    let (same, _) = pad_to_patches(&padded, 4)?;
    assert_eq!(same.dims(), [2, 3, 40, 56]);
    assert!(pad_to_patches(&x, 0).is_err());
    Ok(())
}

#[test]
fn bad_options_and_inputs_are_errors() -> Result {
    let exp = expected()?;
    assert!(Lost::new(LostOptions::default().with_k_patches(0)).is_err());
    assert!(Lost::new(LostOptions::default().with_gram_bias(f32::NAN)).is_err());
    assert!(TokenCut::new(TokenCutOptions::default().with_eps(0.0)).is_err());
    assert!(CorLoc::new().with_threshold(0.0).is_err());
    let lost = Lost::new(LostOptions::default())?;
    let mut features = keys("keys_reg0", &exp)?;
    let err = lost.discover(&features, (41, 54)).unwrap_err().to_string();
    assert!(err.contains("image size"), "{err}");
    // A bias far below every correlation leaves the seed out of its own mask.
    let err = Lost::new(LostOptions::default().with_gram_bias(-1e9))?
        .discover(&features, (38, 54))
        .unwrap_err()
        .to_string();
    assert!(err.contains("seed"), "{err}");
    features.maps.push(features.maps[0].clone());
    let err = lost.forward(&features).unwrap_err().to_string();
    assert!(err.contains("exactly one map"), "{err}");
    Ok(())
}

/// Predictions for the VOC fixture, worked out by hand against its annotations
/// (ground truth `[xmin - 1, ymin - 1, xmax, ymax]`).
fn voc_predictions(name: &str) -> [f32; 4] {
    match name {
        "000001" => [0., 0., 10., 10.],   // gt [0, 0, 10, 10]: IoU 1
        "000002" => [12., 8., 22., 20.],  // gt (difficult) [0, 0, 8, 8], [12, 8, 24, 20]: IoU 0.83
        "000003" => [0., 0., 10., 5.],    // gt [0, 0, 10, 10]: IoU exactly 0.5, found as in LOST
        "000004" => [10., 10., 20., 20.], // gt [0, 0, 6, 6]: IoU 0
        _ => [2., 2., 20., 18.],          // 000005, gt (truncated) [2, 2, 20, 18]: IoU 1
    }
}

fn corloc(items: &[dinoreg_heads::discovery::GtItem]) -> CorLoc {
    let mut score = CorLoc::new();
    for item in items {
        score.add(item.name.clone(), voc_predictions(&item.name), &item.boxes);
    }
    score
}

#[test]
fn corloc_on_a_voc_folder() -> Result {
    let root = fixtures().join("voc");
    let listing = list_voc(&root, &VocOptions::default())?;
    let names: Vec<&str> = listing.items.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["000001", "000002", "000003", "000004", "000005"]);
    assert_eq!(
        listing.items[1].boxes,
        vec![[0., 0., 8., 8.], [12., 8., 24., 20.]]
    );
    assert!(listing.items[1].image.ends_with("JPEGImages/000002.jpg"));
    // The bad items are reported, one line each, and the others are kept.
    let errors: Vec<String> = listing.errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(
        errors[0].starts_with("000007:") && errors[0].contains("does not exist"),
        "{errors:?}"
    );
    assert!(
        errors[1].starts_with("000008:") && errors[1].contains("<xmin> `abc` is not a number"),
        "{errors:?}"
    );
    assert!(
        errors[2].starts_with("broken:") && errors[2].contains("not valid XML"),
        "{errors:?}"
    );
    let score = corloc(&listing.items);
    assert_eq!((score.found(), score.total()), (4, 5));
    assert!((score.percent() - 80.0).abs() < 1e-9);
    let found: Vec<bool> = score.results().iter().map(|r| r.found).collect();
    assert_eq!(found, [true, true, true, false, true]);
    assert_eq!(score.results()[2].best_iou, Some(0.5));
    assert!(serde_json::to_string(&score)?.contains("\"best_iou\":0.5"));

    // LOST's --no_hard: 000005 (only a truncated object) is not counted.
    let no_hard = list_voc(&root, &VocOptions::default().with_remove_hard(true))?;
    assert_eq!(no_hard.skipped, ["000005"]);
    assert_eq!(no_hard.items[1].boxes, vec![[12., 8., 24., 20.]]);
    let score = corloc(&no_hard.items);
    assert_eq!((score.found(), score.total()), (3, 4));

    let set = list_voc(&root, &VocOptions::default().with_image_set("test"))?;
    assert!(set.errors.is_empty());
    let score = corloc(&set.items);
    assert_eq!((score.found(), score.total()), (1, 2));

    let err = list_voc(&root, &VocOptions::default().with_image_set("nope")).unwrap_err();
    assert!(err.to_string().contains("nope.txt"), "{err}");
    assert!(list_voc(&root.join("missing"), &VocOptions::default()).is_err());
    Ok(())
}

#[test]
fn coco_ground_truth_is_rounded_and_crowds_removed() -> Result {
    let root = fixtures().join("voc");
    let json = root.join("coco.json");
    let images = root.join("JPEGImages");
    let listing = list_coco(&json, &images, &CocoOptions::default())?;
    let names: Vec<&str> = listing.items.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["000001.jpg", "000002.jpg", "000003.jpg"]);
    // [0.5, 0, 9.5, 10.5] -> x1 = round(0.5) = 0 and y2 = round(10.5) = 10 (half to even); crowd removed.
    assert_eq!(listing.items[0].boxes, vec![[0., 0., 10., 10.]]);
    assert_eq!(listing.items[1].boxes, vec![[12., 8., 24., 20.]]);
    assert!(listing.items[2].boxes.is_empty());
    assert_eq!(listing.errors.len(), 1);
    assert_eq!(listing.errors[0].item, "missing.jpg");

    let mut score = CorLoc::new();
    for item in &listing.items {
        score.add(item.name.clone(), [0., 0., 10., 10.], &item.boxes);
    }
    // Found on 000001 only; 000003 has no box left and counts as not found.
    assert_eq!((score.found(), score.total()), (1, 3));
    assert_eq!(score.results()[2].best_iou, None);

    let list = std::env::temp_dir().join(format!("dinoreg-coco-list-{}.txt", std::process::id()));
    std::fs::write(&list, "train2014/000002.jpg\nval/000404.jpg\n")?;
    let some = list_coco(
        &json,
        &images,
        &CocoOptions::default().with_file_list(&list),
    );
    std::fs::remove_file(&list)?;
    let some = some?;
    assert_eq!(some.items.len(), 1);
    assert_eq!(some.items[0].name, "000002.jpg");
    assert_eq!(some.errors.len(), 1);
    assert!(some.errors[0]
        .to_string()
        .starts_with("000404.jpg: is listed in"));

    let err = list_coco(
        &root.join("Annotations/000001.xml"),
        &images,
        &CocoOptions::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("is not a COCO annotation file"),
        "{err}"
    );
    Ok(())
}
