//! The picture pipelines used directly, on the retrieval fixture model: their pictures are the ones
//! `viz` draws from the same dense inputs, one PCA or a joint one, the attention pictures are saved
//! under the names `dinoreg attention` uses with a summary in its JSON, and the output files of
//! several images are named per image, and a 16-bit gray PNG is a note of the run's progress.

mod common;

use std::path::{Path, PathBuf};

use dinoreg::pipelines::{
    AttentionPipeline, AttentionPipelineOptions, PcaPipeline, PcaPipelineOptions,
};
use dinoreg::preprocess::ImageProcessor;
use dinoreg::viz::{
    attention_pictures, pca_pictures, picture_files, picture_options, AttentionOptions,
    AttentionSaveOptions, DenseImage, Interpolation, PcaOptions,
};
use dinoreg::{LoadOptions, Vit};

use common::progress::Notes;
use common::scenes::gray16_png;

const MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/retrieval/model"
);
const IMAGES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/images");

/// Compile-time check: the pipelines can be shared between threads.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<PcaPipeline>();
    send_sync::<AttentionPipeline>();
};

fn photos() -> Vec<PathBuf> {
    ["chelsea.png", "coffee.png"]
        .iter()
        .map(|p| Path::new(IMAGES).join(p))
        .collect()
}

/// The dense input `viz` draws from, at short side 56.
fn dense(model: &dyn Vit, path: &Path) -> DenseImage {
    DenseImage::load(
        &ImageProcessor::default(),
        path,
        &picture_options(model.info().patch_size, Some(56)),
        model.device(),
    )
    .expect("image")
}

#[test]
fn pca_pictures_are_the_viz_pictures() {
    let options = PcaPipelineOptions::default()
        .with_short_side(Some(56))
        .with_interpolation(Interpolation::Bilinear);
    let one = PcaPipeline::from_pretrained(MODEL, &options, &LoadOptions::default()).expect("pca");
    let model = one.model();
    let inputs: Vec<DenseImage> = photos().iter().map(|p| dense(model, p)).collect();
    let each = one.run_paths(&photos(), &()).expect("pictures");
    for (picture, input) in each.iter().zip(&inputs) {
        let want = pca_pictures(
            model,
            std::slice::from_ref(input),
            &PcaOptions::default(),
            Interpolation::Bilinear,
        )
        .expect("viz");
        assert!(picture == &want[0], "one PCA per image");
        assert_eq!(picture.dimensions(), input.image.dimensions());
    }
    assert!(
        one.run_image(&inputs[1].image).expect("image") == each[1],
        "a decoded image gives the picture of its file"
    );

    let joint = PcaPipeline::from_pretrained(
        MODEL,
        &options.clone().with_joint(true),
        &LoadOptions::default(),
    )
    .expect("joint");
    let together = joint.run_paths(&photos(), &()).expect("joint pictures");
    let want = pca_pictures(
        model,
        &inputs,
        &PcaOptions::default(),
        Interpolation::Bilinear,
    )
    .expect("viz");
    assert!(together == want, "one PCA over both images");
    assert!(together != each, "a joint PCA colours differently");

    let pixels = one.pixels(&inputs[0].image).expect("pixels");
    let (b, c, h, w) = pixels.dims4().expect("(1, 3, H, W)");
    assert_eq!((b, c), (1, 3));
    let p = model.info().patch_size;
    assert!(
        h % p == 0 && w % p == 0 && h.min(w).abs_diff(56) < p,
        "{h}x{w}"
    );
}

#[test]
fn attention_pictures_are_saved_with_their_summary() {
    let attention = AttentionOptions::default().with_threshold(6.0);
    let options = AttentionPipelineOptions::default()
        .with_short_side(Some(56))
        .with_attention(attention);
    let pipeline =
        AttentionPipeline::from_pretrained(MODEL, &options, &LoadOptions::default()).expect("att");
    let chelsea = &photos()[0];
    let result = pipeline.run_path(chelsea).expect("attention");
    let want = attention_pictures(
        pipeline.model(),
        &dense(pipeline.model(), chelsea),
        &attention,
        Interpolation::Nearest,
    )
    .expect("viz");
    assert!(result.pictures.mean == want.mean && result.pictures.norms == want.norms);

    let tmp = tempfile::tempdir().expect("tempdir");
    let written = result
        .pictures
        .save(
            tmp.path(),
            "chelsea",
            &AttentionSaveOptions::default().with_registers(true),
        )
        .expect("save");
    let heads = pipeline.model().info().num_attention_heads;
    let registers = pipeline.model().info().num_register_tokens;
    assert_eq!(written.len(), heads + 2 + registers);
    for name in ["attn_head0", "attn_mean", "norms", "reg0"] {
        assert!(
            tmp.path().join(format!("chelsea_{name}.png")).is_file(),
            "{name}"
        );
    }
    let without = result
        .pictures
        .save(tmp.path(), "again", &AttentionSaveOptions::default())
        .expect("save");
    assert_eq!(without.len(), heads + 2);

    let s = &result.summary;
    assert_eq!(s.image, chelsea.display().to_string());
    assert_eq!((s.norm_source.as_str(), s.threshold), ("output", 6.0));
    assert_eq!(s.patch_tokens, s.grid[0] * s.grid[1]);
    assert!((s.high_norm_share - s.high_norm_tokens as f32 / s.patch_tokens as f32).abs() < 1e-6);
    let json = s.to_json().expect("JSON");
    let keys: Vec<String> = serde_json::from_str::<serde_json::Value>(&json)
        .expect("valid")
        .as_object()
        .expect("object")
        .keys()
        .cloned()
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "keys in alphabetical order, as before");
    assert!(json.ends_with("}\n"));
}

#[test]
fn several_images_get_one_file_each() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let images = vec![
        PathBuf::from("a/cat.png"),
        PathBuf::from("b/cat.jpg"),
        PathBuf::from("dog.png"),
    ];
    let out = tmp.path().join("pictures");
    let files = picture_files(&out, &images, "pca").expect("files");
    assert!(out.is_dir(), "the folder is created");
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["cat_0_pca.png", "cat_1_pca.png", "dog_pca.png"]);
    let err = picture_files(tmp.path().join("one.png"), &images, "pca").expect_err("one file");
    assert!(err.to_string().contains("give a folder"), "{err}");
}

#[test]
fn sixteen_bit_gray_pngs_are_noted_once_each_when_decoded() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let gray16 = tmp.path().join("gray16.png");
    gray16_png(&gray16, 60, 40, 1000);
    let paths = vec![photos()[0].clone(), gray16.clone()];
    let only_gray16 = |notes: Vec<String>| {
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].starts_with(&format!(
                "warning: {} is a 16-bit grayscale PNG",
                gray16.display()
            )),
            "{notes:?}"
        );
    };
    let notes = Notes::default();
    for joint in [false, true] {
        let options = PcaPipelineOptions::default()
            .with_short_side(Some(28))
            .with_joint(joint);
        let pca =
            PcaPipeline::from_pretrained(MODEL, &options, &LoadOptions::default()).expect("pca");
        pca.run_paths(&paths, &notes).expect("pictures");
        only_gray16(notes.take());
    }
    let options = AttentionPipelineOptions::default().with_short_side(Some(28));
    let attention =
        AttentionPipeline::from_pretrained(MODEL, &options, &LoadOptions::default()).expect("att");
    attention
        .for_each_path(&paths, &notes, |_, _| Ok(()))
        .expect("attention");
    only_gray16(notes.take());
    // Without a progress, a single image is still drawn (the note has nowhere to go).
    attention.run_path(&gray16).expect("one image");
}
