//! The discovery and CorLoc pipelines used directly, on the tiny 4-register model of
//! tests/fixtures/discovery: the boxes, seeds and masks of the numpy / scipy reference
//! (tests/fixtures/gen_discovery.py, the numbers `discovery_cli.rs` checks through the CLI), the
//! padded pixels, the short side, the patch-count guard, two threads sharing one pipeline, the
//! picture, and CorLoc on the hand-made VOC and COCO fixtures with its progress reports.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use candle::Tensor;
use dinoreg::heads::discovery::{CocoOptions, LostOptions, TokenCutOptions, VocOptions};
use dinoreg::io::npy::read_pixels;
use dinoreg::pipelines::{
    CorLocDataset, CorLocOptions, CorLocPipeline, DiscoveredObject, DiscoveryMethod,
    DiscoveryOptions, DiscoveryPipeline, InputName,
};
use dinoreg::progress::Progress;
use dinoreg::{Error, LoadOptions};
use serde_json::Value;

/// Compile-time check: the pipelines can be shared between threads.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<DiscoveryPipeline>();
    send_sync::<CorLocPipeline>();
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/discovery")
}

fn image(name: &str) -> PathBuf {
    fixtures().join("voc/JPEGImages").join(name)
}

fn pipeline(options: &DiscoveryOptions) -> DiscoveryPipeline {
    DiscoveryPipeline::from_pretrained(
        fixtures().join("tiny_reg4").to_str().expect("utf-8"),
        options,
        &LoadOptions::default(),
    )
    .expect("pipeline")
}

fn lost(options: LostOptions) -> DiscoveryOptions {
    DiscoveryOptions::default().with_method(DiscoveryMethod::Lost(options))
}

fn tokencut() -> DiscoveryOptions {
    DiscoveryOptions::default().with_method(DiscoveryMethod::TokenCut(TokenCutOptions::default()))
}

fn expected() -> Value {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).expect("expected.json");
    serde_json::from_str(&text).expect("JSON")
}

fn reference_pixels() -> Tensor {
    read_pixels(fixtures().join("pixels_reg4.npy"), 3).expect("pixels")
}

/// The one object found in the reference pixels.
fn on_reference(options: &DiscoveryOptions) -> DiscoveredObject {
    let mut found = pipeline(options)
        .run_pixels(&reference_pixels())
        .expect("discover");
    assert_eq!(found.len(), 1);
    found.remove(0)
}

fn same_object(found: &DiscoveredObject, case: &Value, what: &str) {
    let usizes = |v: &Value| -> Vec<usize> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|x| x.as_u64().expect("number") as usize)
            .collect()
    };
    assert_eq!(found.bbox().to_vec(), usizes(&case["box"]), "{what}: box");
    assert_eq!(found.seed().to_vec(), usizes(&case["seed"]), "{what}: seed");
    let mask: Vec<bool> = usizes(&case["mask"]).iter().map(|&m| m == 1).collect();
    assert_eq!(found.mask(), mask.as_slice(), "{what}: mask");
}

#[test]
fn discovery_matches_the_reference() {
    let exp = expected();
    let cases: Vec<&Value> = exp["lost"]
        .as_array()
        .expect("lost cases")
        .iter()
        .filter(|c| c["features"] == "keys_reg4")
        .collect();
    assert_eq!(cases.len(), 4);
    for case in cases {
        let options = LostOptions::default()
            .with_k_patches(case["k_patches"].as_u64().expect("k") as usize)
            .with_gram_bias(case["gram_bias"].as_f64().expect("bias") as f32)
            .with_seed_expansion(case["expansion"] != false);
        let found = on_reference(&lost(options));
        same_object(&found, case, &format!("LOST {options:?}"));
        assert_eq!(found.image, InputName::Pixels(0));
        assert_eq!((found.image_size, found.input_size), ([38, 54], [38, 54]));
    }
    let case = &exp["tokencut"][1];
    assert_eq!(case["features"], "keys_reg4");
    let found = on_reference(&tokencut());
    same_object(&found, case, "TokenCut");
    assert_eq!(
        found.discovery.eigenvector.as_ref().map(Vec::len),
        Some(140)
    );
}

#[test]
fn discovered_objects_serialise_as_the_command_writes_them() {
    let found = on_reference(&DiscoveryOptions::default());
    let value = serde_json::to_value(&found).expect("JSON");
    let keys: Vec<&str> = value
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    for key in [
        "image",
        "image_size",
        "input_size",
        "box",
        "box_patches",
        "seed",
        "grid",
        "mask",
        "mask_patches",
    ] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
    assert_eq!(value["image"], "pixels[0]");
    assert!(
        value.get("eigenvector").is_none(),
        "LOST has no eigenvector"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("found.json");
    DiscoveredObject::write_json(&path, &[found.clone(), found]).expect("write");
    let text = std::fs::read_to_string(&path).expect("read");
    assert_eq!(text.lines().count(), 4, "one object a line: {text}");
    let back: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(back[1], value);
}

#[test]
fn pixels_are_padded_bottom_right_to_the_patch() {
    let pipeline = pipeline(&DiscoveryOptions::default());
    let p = pipeline.model().info().patch_size;
    // An image one pixel short of the patch grid on both sides.
    let (ih, iw) = (5 * p - 1, 6 * p - 1);
    let rgb = image::RgbImage::from_fn(iw as u32, ih as u32, |x, y| {
        image::Rgb([(x * 9) as u8, (y * 7) as u8, 200])
    });
    let pixels = pipeline.pixels(&rgb).expect("pixels");
    let (h, w) = (5 * p, 6 * p);
    assert_eq!(pixels.dims(), &[1, 3, h, w]);
    let sum_abs = |t: Tensor| {
        t.abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    assert_eq!(sum_abs(pixels.narrow(2, ih, 1).unwrap()), 0.0);
    assert_eq!(sum_abs(pixels.narrow(3, iw, 1).unwrap()), 0.0);
    let inside = pixels.narrow(2, 0, ih).unwrap().narrow(3, 0, iw).unwrap();
    let zeros = inside
        .eq(0f32)
        .unwrap()
        .to_dtype(candle::DType::F32)
        .unwrap();
    assert_eq!(sum_abs(zeros), 0.0, "no zero inside the image");
}

#[test]
fn images_give_boxes_in_their_own_pixels() {
    let full = pipeline(&tokencut());
    let found = full.run_path(image("000002.jpg")).expect("discover");
    assert_eq!(found.image, InputName::File(image("000002.jpg")));
    assert_eq!((found.image_size, found.input_size), ([20, 24], [20, 24]));
    assert_eq!(found.discovery.grid, [5, 6]);

    // Twice the size before the model: the box is mapped back onto the 20x24 image.
    let doubled = pipeline(&tokencut().with_short_side(Some(40)));
    let found = doubled.run_path(image("000002.jpg")).expect("discover");
    assert_eq!((found.image_size, found.input_size), ([20, 24], [40, 48]));
    let [x1, y1, x2, y2] = found.bbox();
    assert!(
        x1 < x2 && x2 <= 24 && y1 < y2 && y2 <= 20,
        "{:?}",
        found.bbox()
    );
    // The patch box [c0, r0, c1, r1] in pixels of the 40x48 input, clipped, then halved.
    let p = doubled.model().info().patch_size;
    let [c0, r0, c1, r1] = found.discovery.box_patches;
    let half =
        |v: usize, max: usize| (((v * p).min(2 * max) as f64 * 0.5).round() as usize).min(max);
    let expect = [half(c0, 24), half(r0, 20), half(c1, 24), half(r1, 20)];
    assert_eq!(found.bbox(), expect);
}

#[test]
fn the_patch_guard_names_the_image_and_the_short_side() {
    let chelsea = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/images/chelsea.png");
    let err = pipeline(&tokencut())
        .run_path(&chelsea)
        .expect_err("too many patches for TokenCut");
    let text = err.to_string();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    for needle in ["chelsea.png", "TokenCut", "6000", "--short-side"] {
        assert!(text.contains(needle), "{needle:?} not in {text}");
    }
    assert!(!text.contains('\n'));
    // The same grid is within what LOST handles; TokenCut runs it with a short side.
    assert!(DiscoveryMethod::default()
        .check_grid((75, 113), "chelsea")
        .is_ok());
    assert!(DiscoveryMethod::TokenCut(TokenCutOptions::default())
        .check_grid((75, 113), "chelsea")
        .is_err());
    let small = pipeline(&tokencut().with_short_side(Some(40)))
        .run_path(&chelsea)
        .expect("short side");
    assert_eq!((small.image_size, small.input_size), ([300, 451], [40, 60]));
}

#[test]
fn invalid_options_fail_when_the_pipeline_is_built() {
    let model = fixtures().join("tiny_reg4");
    let build = |options: &DiscoveryOptions| {
        DiscoveryPipeline::from_pretrained(
            model.to_str().expect("utf-8"),
            options,
            &LoadOptions::default(),
        )
    };
    let err = build(&lost(LostOptions::default().with_k_patches(0))).expect_err("k 0");
    assert!(err.to_string().contains("k_patches"), "{err}");
    let err = build(&DiscoveryOptions::default().with_short_side(Some(0))).expect_err("side 0");
    assert!(err.to_string().contains("short_side"), "{err}");
}

#[test]
fn one_pipeline_serves_two_threads() {
    let pipeline = pipeline(&tokencut());
    let paths: Vec<PathBuf> = ["000001.jpg", "000002.jpg", "000003.jpg"]
        .map(image)
        .to_vec();
    let alone = pipeline.run_paths(&paths, &()).expect("alone");
    let reversed: Vec<PathBuf> = paths.iter().rev().cloned().collect();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| pipeline.run_paths(&paths, &()).expect("thread a"));
        let b = s.spawn(|| pipeline.run_paths(&reversed, &()).expect("thread b"));
        (a.join().expect("a"), b.join().expect("b"))
    });
    assert_eq!(a, alone);
    let mut b = b;
    b.reverse();
    assert_eq!(b, alone);
}

#[test]
fn the_picture_tints_the_object_at_the_image_size() {
    let pipeline = pipeline(&DiscoveryOptions::default());
    let rgb = pipeline
        .processor()
        .read(image("000001.jpg"))
        .expect("image");
    let found = pipeline
        .run_image(&rgb, InputName::File(image("000001.jpg")))
        .expect("discover");
    let picture = pipeline.draw(&rgb, &found);
    assert_eq!(picture.dimensions(), rgb.dimensions());
    let p = pipeline.model().info().patch_size as u32;
    let [_, gw] = found.discovery.grid;
    let changed = |x: u32, y: u32| picture.get_pixel(x, y) != rgb.get_pixel(x, y);
    // Every pixel of a masked patch is changed, no pixel of an unmasked patch away from the outlines.
    let [x1, y1, x2, y2] = found.bbox().map(|v| v as u32);
    for (y, x) in (0..rgb.height()).flat_map(|y| (0..rgb.width()).map(move |x| (y, x))) {
        let masked = found.mask()[(y / p) as usize * gw + (x / p) as usize];
        let near_box = (x + 2 > x1 && x < x2 + 2) && (y + 2 > y1 && y < y2 + 2);
        if masked {
            assert!(changed(x, y), "masked pixel ({x}, {y}) not tinted");
        } else if !near_box {
            assert!(
                !changed(x, y),
                "pixel ({x}, {y}) outside the object changed"
            );
        }
    }
}

/// Records what a run reports, and cancels after `stop_after` units when set.
#[derive(Default)]
struct Recorder {
    total: Mutex<Option<u64>>,
    done: AtomicU64,
    notes: Mutex<Vec<String>>,
    stop_after: Option<u64>,
    ends: AtomicUsize,
}

impl Progress for Recorder {
    fn begin(&self, _stage: &str, total: Option<u64>) {
        *self.total.lock().unwrap() = total;
    }
    fn advance(&self, n: u64) {
        self.done.fetch_add(n, Ordering::SeqCst);
    }
    fn end(&self) {
        self.ends.fetch_add(1, Ordering::SeqCst);
    }
    fn cancelled(&self) -> bool {
        self.stop_after
            .is_some_and(|n| self.done.load(Ordering::SeqCst) >= n)
    }
    fn note(&self, message: &str) {
        self.notes.lock().unwrap().push(message.to_string());
    }
}

fn corloc(options: &CorLocOptions) -> CorLocPipeline {
    CorLocPipeline::new(pipeline(&DiscoveryOptions::default()), options).expect("corloc")
}

#[test]
fn corloc_on_the_voc_fixture_goes_past_bad_items() {
    let voc = CorLocDataset::voc(fixtures().join("voc"), VocOptions::default());
    let progress = Recorder::default();
    let report = corloc(&CorLocOptions::default())
        .run(&voc, &progress)
        .expect("corloc");
    assert_eq!(report.total, 5);
    assert_eq!(report.images.len(), 5);
    assert_eq!(report.errors.len(), 3);
    assert!(report.skipped.is_empty());
    let found = report.images.iter().filter(|r| r.result.found).count();
    assert_eq!(report.found, found);
    assert!((report.corloc - 100.0 * found as f64 / 5.0).abs() < 1e-9);
    for row in &report.images {
        let iou = row.result.best_iou.expect("every fixture image has a box");
        assert_eq!(row.result.found, iou >= 0.5, "{row:?}");
        assert_eq!(row.image_size, [20, 24]);
    }
    // Every error was reported as a warning note, the images one by one.
    let notes = progress.notes.lock().unwrap().clone();
    let reported: Vec<String> = report
        .errors
        .iter()
        .map(|e| format!("warning: skipped {e}"))
        .collect();
    assert_eq!(notes, reported);
    assert_eq!(*progress.total.lock().unwrap(), Some(5));
    assert_eq!(progress.done.load(Ordering::SeqCst), 5);
    assert_eq!(progress.ends.load(Ordering::SeqCst), 1);

    // The JSON the command writes: the summary, then one image a line.
    let json = report.to_json().expect("JSON");
    let value: Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(value["total"], 5);
    assert_eq!(value["images"].as_array().map(Vec::len), Some(5));
    assert_eq!(json.lines().count(), 1 + 1 + 5 + 1);
}

#[test]
fn corloc_limits_skips_hard_images_and_stops_when_cancelled() {
    let voc = CorLocDataset::voc(
        fixtures().join("voc"),
        VocOptions::default().with_remove_hard(true),
    );
    let report = corloc(&CorLocOptions::default().with_limit(Some(2)))
        .run(&voc, &())
        .expect("corloc");
    assert_eq!((report.total, report.skipped.len()), (2, 1));

    let stop = Recorder {
        stop_after: Some(1),
        ..Recorder::default()
    };
    let voc = CorLocDataset::voc(fixtures().join("voc"), VocOptions::default());
    let err = corloc(&CorLocOptions::default())
        .run(&voc, &stop)
        .expect_err("cancelled");
    assert!(
        matches!(err, Error::Interrupted { done: 1, total: 5 }),
        "{err:?}"
    );
}

#[test]
fn corloc_reads_coco_and_refuses_what_it_cannot_score() {
    let voc = fixtures().join("voc");
    let coco = CorLocDataset::coco(
        voc.join("coco.json"),
        voc.join("JPEGImages"),
        CocoOptions::default(),
    );
    let report = corloc(&CorLocOptions::default())
        .run(&coco, &())
        .expect("coco");
    // Three images listed, one missing; the crowd-only image counts as not found.
    assert_eq!((report.total, report.errors.len()), (3, 1));
    let crowd = report
        .images
        .iter()
        .find(|r| r.result.image == "000003.jpg")
        .expect("000003.jpg");
    assert_eq!((crowd.result.best_iou, crowd.result.found), (None, false));

    let nowhere = CorLocDataset::voc(fixtures().join("nowhere"), VocOptions::default());
    let err = corloc(&CorLocOptions::default())
        .run(&nowhere, &())
        .expect_err("no folder");
    assert!(err.to_string().contains("nowhere"), "{err}");
    let err = CorLocPipeline::new(
        pipeline(&DiscoveryOptions::default()),
        &CorLocOptions::default().with_iou_threshold(1.5),
    )
    .expect_err("threshold");
    assert!(err.to_string().contains("threshold"), "{err}");
}
