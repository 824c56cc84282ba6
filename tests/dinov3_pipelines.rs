//! Every library pipeline on a DINOv3 ViT, end to end, on `tests/fixtures/dinov3_dense` (HF
//! `DINOv3ViTModel` with the published checkpoints' patch 16 and 4 registers, random weights,
//! `tests/fixtures/gen_dinov3_dense.py`): features (processor and dense mode) and embeddings
//! against HF, dinov2's linear and DPT depth heads on the DINOv3 backbone against the Python
//! reference, PCA and attention pictures, LOST / TokenCut and CorLoc, a probe trained on the
//! DINOv3 backbone then used by the segmentation pipeline, and classification's refusal.

mod common;

use std::path::{Path, PathBuf};

use common::scenes::{square_dataset, square_scene, voc_folder};
use common::{assert_close, fixture, load_expected, TOL};
use dinoreg::heads::discovery::{LostOptions, TokenCutOptions, VocOptions};
use dinoreg::heads::segmentation::{TrainOptions, Window};
use dinoreg::pipelines::{
    AttentionPipeline, AttentionPipelineOptions, ClassificationPipeline, CorLocDataset,
    CorLocOptions, CorLocPipeline, DepthMap, DepthOptions, DepthPipeline, DepthPreprocessing,
    DiscoveryMethod, DiscoveryOptions, DiscoveryPipeline, EmbeddingPipeline, FeaturesOptions,
    FeaturesPipeline, PcaPipeline, PcaPipelineOptions, ProbeData, ProbeDataOptions,
    ProbeTrainingOptions, ProbeTrainingPipeline, Resolution, Scale, SegmentationOptions,
    SegmentationPipeline, Validation,
};
use dinoreg::preprocess::DenseOptions;
use dinoreg::retrieval::{Descriptor, EmbedOptions, SearchOptions, Searcher};
use dinoreg::{BackboneOptions, Family, LoadOptions, Vit};

/// The fixture's patch size: DINOv3's.
const P: usize = 16;

fn model() -> String {
    fixture("dinov3_dense").display().to_string()
}

fn expected() -> std::collections::HashMap<String, candle::Tensor> {
    load_expected("dinov3_dense/expected.safetensors")
}

fn load() -> LoadOptions {
    LoadOptions::default()
}

fn photo(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/images")
        .join(name)
}

/// A picture with a bright square in the middle, `h × w`.
fn picture(h: u32, w: u32) -> image::RgbImage {
    square_scene(h, w).0
}

#[test]
fn the_fixture_is_a_patch_16_dinov3() -> dinoreg::Result<()> {
    let pipeline =
        FeaturesPipeline::from_pretrained(&model(), &FeaturesOptions::default(), &load())?;
    let info = pipeline.backbone().model().info();
    assert_eq!(
        (info.family, info.patch_size, info.num_register_tokens),
        (Family::Dinov3, P, 4)
    );
    Ok(())
}

#[test]
fn features_from_pixels_match_hf_backbone() -> dinoreg::Result<()> {
    let exp = expected();
    let options = FeaturesOptions::default()
        .with_backbone(BackboneOptions::default().with_out_indices(vec![1, -1]));
    let pipeline = FeaturesPipeline::from_pretrained(&model(), &options, &load())?;
    let features = pipeline.run_pixels(&exp["wide.pixel_values"])?;
    let names: Vec<&str> = features.stages.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["stage1", "stage4"]);
    // 48x80 pixels at patch 16: a 3x5 grid.
    assert_eq!(features.stages[0].1.dims(), &[2, 32, 3, 5]);
    assert_close("stage1", &features.stages[0].1, &exp["wide.stage1"], TOL);
    assert_close("stage4", &features.stages[1].1, &exp["wide.stage4"], TOL);
    assert_close(
        "last_hidden_state",
        &features.last_hidden_state,
        &exp["wide.last_hidden_state"],
        TOL,
    );
    assert_close(
        "pooler_output",
        &features.pooler_output,
        &exp["wide.pooler_output"],
        TOL,
    );
    Ok(())
}

#[test]
fn features_of_an_image_use_the_dinov3_processor() -> dinoreg::Result<()> {
    let exp = expected();
    let pipeline =
        FeaturesPipeline::from_pretrained(&model(), &FeaturesOptions::default(), &load())?;
    let image = pipeline.processor().read(photo("chelsea.png"))?;
    assert_close(
        "pixels",
        &pipeline.pixels(&image)?,
        &exp["chelsea.pixel_values"],
        2e-3,
    );
    let features = pipeline.run_path(photo("chelsea.png"))?;
    assert_close(
        "last_hidden_state",
        &features.last_hidden_state,
        &exp["chelsea.last_hidden_state"],
        TOL,
    );
    Ok(())
}

#[test]
fn dense_features_keep_the_aspect_at_multiples_of_16() -> dinoreg::Result<()> {
    let exp = expected();
    // The options' patch size (14 by default) is replaced by the model's.
    let dense = DenseOptions::default().with_short_side(Some(64));
    let options = FeaturesOptions::default().with_resolution(Resolution::Dense(dense));
    let pipeline = FeaturesPipeline::from_pretrained(&model(), &options, &load())?;
    let image = pipeline.processor().read(photo("chelsea.png"))?;
    // 300x451 at short side 64: 64x96, a 4x6 grid of 16-pixel patches.
    let pixels = pipeline.pixels(&image)?;
    assert_close("pixels", &pixels, &exp["chelsea_dense.pixel_values"], 2e-3);
    let features = pipeline.run_image(&image)?;
    assert_eq!(features.stages[0].0, "stage4");
    assert_close(
        "stage4",
        &features.stages[0].1,
        &exp["chelsea_dense.stage4"],
        TOL,
    );
    Ok(())
}

#[test]
fn classification_refuses_a_dinov3_model_in_one_line() {
    let err = ClassificationPipeline::from_pretrained(&model(), 3, &load()).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("DINOv3"), "{message}");
    assert!(message.contains("classif"), "{message}");
    assert_eq!(message.lines().count(), 1, "{message}");
}

#[test]
fn every_descriptor_is_hf_and_search_finds_each_image() -> dinoreg::Result<()> {
    let exp = expected();
    let photos: Vec<PathBuf> = ["chelsea.png", "coffee.png", "astronaut.png"]
        .iter()
        .map(|p| photo(p))
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    for (name, descriptor) in [
        ("cls", Descriptor::Cls),
        ("mean", Descriptor::Mean),
        ("cls_mean", Descriptor::ClsMean),
        ("gem3", Descriptor::Gem { p: 3.0 }),
    ] {
        let options = EmbedOptions::default().with_descriptor(descriptor);
        let pipeline = EmbeddingPipeline::from_pretrained(&model(), &options, &load())?;
        let row = pipeline.run_path(&photos[0])?;
        let want = exp[&format!("chelsea.descriptor.{name}")].squeeze(0)?;
        assert_eq!(row.len(), want.dims1()?, "{name}");
        let got = candle::Tensor::new(row.as_slice(), &candle::Device::Cpu)?;
        assert_close(name, &got, &want, TOL);

        let dir = tmp.path().join(name);
        pipeline.embed_into(&photos, &dir, &())?;
        let searcher = Searcher::open(&dir, &SearchOptions::default())?;
        let query = EmbeddingPipeline::for_index(searcher.index(), &load())?;
        assert_eq!(query.options().descriptor, descriptor);
        for (i, path) in photos.iter().enumerate() {
            let hits = searcher.search(&query.run_path(path)?, 1)?;
            assert_eq!(hits[0].row, i, "{name}");
            assert!(hits[0].score > 0.9999, "{name}: {}", hits[0].score);
        }
    }
    Ok(())
}

#[test]
fn dinov2_depth_heads_run_on_the_dinov3_backbone() -> dinoreg::Result<()> {
    let exp = expected();
    let pixels = &exp["depth.pixel_values"];
    for (name, blocks) in [
        ("depth_linear", None),
        ("depth_dpt", Some(vec![0, 1, 2, 3])),
    ] {
        let head = fixture(&format!("dinov3_dense/{name}.pth"));
        let options = match blocks {
            Some(b) => DepthOptions::default().with_blocks(b),
            None => DepthOptions::default(),
        };
        let pipeline = DepthPipeline::from_pretrained(&model(), Some(&head), &options, &load())?;
        assert_eq!(pipeline.preprocessing(), DepthPreprocessing::CenterPadding);
        assert_eq!(pipeline.model().info().patch_size, P);
        // 40x70 pixels are centre-padded to 48x80 for the backbone, and the depth comes back at 40x70.
        let maps = pipeline.run_pixels(pixels)?;
        assert_eq!(maps[0].size(), (40, 70));
        assert_close(
            name,
            &DepthMap::stack(&maps)?,
            &exp[&format!("{name}.depth")],
            TOL,
        );
        let image = picture(50, 75);
        let padded = pipeline.pixels(&image)?;
        assert_eq!(padded.dims(), &[1, 3, 64, 80], "{name}");
        assert_eq!(pipeline.run_image(&image)?.size(), (50, 75));
    }
    Ok(())
}

#[test]
fn a_depth_anything_head_sizes_its_input_in_16_pixel_patches() -> dinoreg::Result<()> {
    // Depth-Anything-V2's DPT head (width 32, head only) on the DINOv3 backbone's four blocks.
    let head = fixture("depth/da_relative/depth_anything_v2_tiny.pth");
    let options = DepthOptions::default()
        .with_input_size(64)
        .with_blocks([0, 1, 2, 3]);
    let pipeline = DepthPipeline::from_pretrained(&model(), Some(&head), &options, &load())?;
    assert_eq!(
        pipeline.preprocessing(),
        DepthPreprocessing::DepthAnything { lower_bound: 64 }
    );
    let image = picture(50, 75);
    // Both sides at least 64, aspect kept, multiples of 16: 64x96.
    assert_eq!(pipeline.pixels(&image)?.dims(), &[1, 3, 64, 96]);
    let map = pipeline.run_image(&image)?;
    assert_eq!(map.size(), (50, 75));
    let (lo, hi) = map.min_max()?;
    assert!(lo.is_finite() && hi.is_finite() && lo <= hi);
    Ok(())
}

#[test]
fn pca_and_attention_pictures_on_a_16_pixel_grid() -> dinoreg::Result<()> {
    let pca = PcaPipeline::from_pretrained(
        &model(),
        &PcaPipelineOptions::default().with_short_side(Some(64)),
        &load(),
    )?;
    let image = pca.processor().read(photo("chelsea.png"))?;
    let pixels = pca.pixels(&image)?;
    let (_, _, h, w) = pixels.dims4()?;
    assert!(
        h.is_multiple_of(P) && w.is_multiple_of(P) && h.min(w).abs_diff(64) < P,
        "{h}x{w}"
    );
    let picture = pca.run_path(photo("chelsea.png"))?;
    assert_eq!(picture.dimensions(), image.dimensions());

    let attention = AttentionPipeline::from_pretrained(
        &model(),
        &AttentionPipelineOptions::default().with_short_side(Some(64)),
        &load(),
    )?;
    let result = attention.run_path(photo("chelsea.png"))?;
    assert_eq!(result.summary.grid, [h / P, w / P]);
    assert_eq!(result.summary.patch_tokens, (h / P) * (w / P));
    assert_eq!(result.pictures.heads.len(), 4);
    assert_eq!(result.pictures.maps.registers.dim().0, 4);
    assert_eq!(result.pictures.mean.dimensions(), image.dimensions());
    Ok(())
}

#[test]
fn lost_and_tokencut_box_whole_16_pixel_patches() -> dinoreg::Result<()> {
    let image = picture(72, 104);
    for method in [
        DiscoveryMethod::Lost(LostOptions::default()),
        DiscoveryMethod::TokenCut(TokenCutOptions::default()),
    ] {
        let name = method.name();
        let options = DiscoveryOptions::default().with_method(method);
        let pipeline = DiscoveryPipeline::from_pretrained(&model(), &options, &load())?;
        assert_eq!(pipeline.patch_size(), P);
        // 72x104 is padded bottom/right to 80x112: a 5x7 grid.
        assert_eq!(pipeline.pixels(&image)?.dims(), &[1, 3, 80, 112]);
        let found = pipeline.run_image(&image, dinoreg::pipelines::InputName::Image)?;
        assert_eq!(found.discovery.grid, [5, 7], "{name}");
        assert_eq!(found.mask().len(), 35, "{name}");
        let [x1, y1, x2, y2] = found.bbox();
        assert!(
            x1 < x2 && y1 < y2 && x2 <= 104 && y2 <= 72,
            "{name}: {:?}",
            found.bbox()
        );
        assert!(
            x1.is_multiple_of(P) && y1.is_multiple_of(P),
            "{name}: box not on the grid"
        );
        let [row, col] = found.seed();
        assert!(
            found.mask()[row * 7 + col],
            "{name}: the seed is in the object"
        );
    }
    Ok(())
}

#[test]
fn corloc_scores_dinov3_discoveries() -> dinoreg::Result<()> {
    let tmp = tempfile::tempdir().unwrap();
    voc_folder(tmp.path());
    let discovery =
        DiscoveryPipeline::from_pretrained(&model(), &DiscoveryOptions::default(), &load())?;
    let report = CorLocPipeline::new(discovery, &CorLocOptions::default())?
        .run(&CorLocDataset::voc(tmp.path(), VocOptions::default()), &())?;
    assert_eq!(report.total, 2);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    for row in &report.images {
        assert_eq!(row.image_size, [64, 96]);
        let iou = row.result.best_iou.expect("a box");
        assert_eq!(row.result.found, iou >= 0.5);
    }
    Ok(())
}

#[test]
fn a_probe_trained_on_dinov3_segments() -> dinoreg::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = square_dataset(dir.path());
    let data_options = ProbeDataOptions::default().with_validation(Validation::Fraction(0.0));
    let data = ProbeData::load(&images, &labels, &data_options, &())?;
    assert_eq!(data.num_classes(), 2);
    let options = ProbeTrainingOptions::default()
        .with_short_side(None)
        .with_train(
            TrainOptions::default()
                .with_epochs(2)
                .with_batch_size(2)
                .with_seed(3),
        );
    let trainer = ProbeTrainingPipeline::from_pretrained(&model(), &options, &load())?;
    // 40x56 is centre-padded to 48x64 for the backbone.
    let pixels = trainer.pixels(&image::open(images.join("s0.png")).unwrap().to_rgb8())?;
    assert_eq!(pixels.dims(), &[1, 3, 48, 64]);
    let sample = trainer.sample(&data.train()[0])?;
    assert_eq!(sample.features().dims()[1..], [48 / P, 64 / P]);
    let trained = trainer.train(&data, &())?;
    assert_eq!(trained.history.len(), 2);
    let head = dir.path().join("head.safetensors");
    trained.save(&head)?;

    let options = SegmentationOptions::default()
        .with_scale(Scale::Keep)
        .with_window(Window::Whole);
    let seg = SegmentationPipeline::from_pretrained(&model(), &head, &options, &load())?;
    assert_eq!(seg.image_options().center_padding, Some(P));
    let map = seg.run_path(images.join("s3.png"))?;
    assert_eq!(map.logits().dims(), &[2, 64, 56]);
    // Sliding windows that are not multiples of 16 are padded to them.
    let slide = SegmentationPipeline::from_pretrained(
        &model(),
        &head,
        &SegmentationOptions::default()
            .with_scale(Scale::Keep)
            .with_crop(40, Some(20)),
        &load(),
    )?;
    assert_eq!(
        slide.run_path(images.join("s3.png"))?.logits().dims(),
        &[2, 64, 56]
    );
    Ok(())
}
