//! Issue 13, commands that behave as users expect: progress bars on a terminal only and `--quiet`,
//! Ctrl-C that says how far it got and resumes, outputs checked before any work, outputs that say
//! what they are (permissions, input paths, formats by extension, JSON), pictures at the image's size,
//! shards from the scheduler's variables, and one-line messages.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::cli::{bin, dinoreg, example_image, fails_with, ok, s, stderr};
use common::fixture;

fn reg4() -> String {
    fixture("model/reg4").display().to_string()
}

/// The reg4 model in `dir` (created) with a processor that resizes to 36 and crops 32 (64 patches
/// instead of 3136): for the embedding tests, whose subject is the job, not the resolution, and
/// which would otherwise spend minutes in an unoptimised build.
fn reg4_at_32(dir: &Path) -> String {
    std::fs::create_dir_all(dir).unwrap();
    for file in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture("model/reg4").join(file), dir.join(file)).unwrap();
    }
    let processor = r#"{
  "image_processor_type": "BitImageProcessor",
  "do_resize": true, "size": {"shortest_edge": 36}, "resample": 3,
  "do_center_crop": true, "crop_size": {"height": 32, "width": 32},
  "do_rescale": true, "rescale_factor": 0.00392156862745098,
  "do_normalize": true, "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225],
  "do_convert_rgb": true
}"#;
    std::fs::write(dir.join("preprocessor_config.json"), processor).unwrap();
    dir.display().to_string()
}

fn image(name: &str) -> PathBuf {
    example_image(name)
}

/// `n` small distinct PNGs in `dir` (created), named `img000.png`, ….
fn small_images(dir: &Path, n: usize) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        let img = image::RgbImage::from_fn(40, 32, |x, y| {
            image::Rgb([
                (x * 6 + i as u32) as u8,
                (y * 7) as u8,
                (i * 13 % 256) as u8,
            ])
        });
        img.save(dir.join(format!("img{i:03}.png"))).unwrap();
    }
    dir.to_path_buf()
}

/// A small PNG `name` of `w x h` in `dir` (a photo's stand-in where only names and sizes matter,
/// so that the debug-built model runs on a few patches).
fn small_image(dir: &Path, name: &str, (w, h): (u32, u32)) -> PathBuf {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 5) as u8, (y * 7) as u8, 90]));
    let path = dir.join(name);
    img.save(&path).unwrap();
    path
}

// 1. Progress.

/// Runs `dinoreg args` under a pseudo-terminal (`script`), returning everything it drew.
fn on_a_terminal(args: &[&str]) -> Option<String> {
    let mut line = String::from(env!("CARGO_BIN_EXE_dinoreg"));
    for a in args {
        line.push_str(&format!(" '{a}'"));
    }
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("HF_HUB_OFFLINE", "1")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn progress_bars_on_a_terminal_only_and_quiet_hides_them() {
    let dir = tempfile::tempdir().unwrap();
    let images = small_images(&dir.path().join("imgs"), 6);
    let out = dir.path().join("idx");
    let model = reg4_at_32(&dir.path().join("model"));
    let args = [
        "embed",
        "--model",
        &model,
        "--images",
        s(&images),
        "--batch-size",
        "1",
    ];
    // Not a terminal: no bar, only the summary.
    let mut piped: Vec<&str> = args.to_vec();
    piped.extend(["--output", s(&out)]);
    let run = dinoreg(&piped);
    ok(&run);
    assert!(!stderr(&run).contains("images,"), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("6 images: 6 embedded now"),
        "{}",
        stderr(&run)
    );
    // A terminal: the bar is drawn.
    let out2 = dir.path().join("idx2");
    let mut tty: Vec<&str> = args.to_vec();
    tty.extend(["--output", s(&out2)]);
    let Some(drawn) = on_a_terminal(&tty) else {
        eprintln!("skipped: `script` is not available");
        return;
    };
    assert!(drawn.contains("/6 images,"), "no progress bar in {drawn:?}");
    // --quiet: neither the bar nor the status lines.
    let out3 = dir.path().join("idx3");
    let mut quiet: Vec<&str> = vec!["--quiet"];
    quiet.extend(args);
    quiet.extend(["--output", s(&out3)]);
    let drawn = on_a_terminal(&quiet).unwrap();
    assert!(
        !drawn.contains("images,"),
        "a bar despite --quiet: {drawn:?}"
    );
    assert!(!drawn.contains("wrote"), "{drawn:?}");
    assert!(out3.join("embeddings.npy").is_file());
}

// 2. Ctrl-C.

#[cfg(unix)]
#[test]
fn ctrl_c_says_how_far_embed_got_and_the_rerun_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let images = small_images(&dir.path().join("imgs"), 8);
    let out = dir.path().join("idx");
    let args = [
        "embed",
        "--model",
        &reg4(),
        "--images",
        s(&images),
        "--batch-size",
        "1",
        "--output",
        s(&out),
    ];
    let child = bin()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first finished batch in the journal, then press Ctrl-C.
    let chunks = out.join("chunks");
    let start = std::time::Instant::now();
    while std::fs::read_dir(&chunks).map_or(0, |d| d.count()) < 2 {
        assert!(start.elapsed().as_secs() < 120, "embed made no progress");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let run = child.wait_with_output().unwrap();
    let err = stderr(&run);
    assert_eq!(run.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted: "), "{err}");
    assert!(
        err.contains(" of 8 done; rerun the same command to resume"),
        "{err}"
    );
    // The rerun resumes: some images were done before.
    let again = dinoreg(&args);
    ok(&again);
    let summary = stderr(&again);
    assert!(summary.contains("8 images: "), "{summary}");
    assert!(!summary.contains(" 0 done before"), "{summary}");
    assert!(summary.contains("done before"), "{summary}");
    let paths = std::fs::read_to_string(out.join("paths.txt")).unwrap();
    assert_eq!(paths.lines().count(), 8);
}

// 3. Check before working.

#[test]
fn outputs_are_checked_before_the_model_is_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let chelsea = image("chelsea.png");
    let no_model = "/no/such/model";
    let cases: [(&[&str], &str, &str); 7] = [
        (&["features"], "f.txt", ".safetensors, .npy"),
        (&["classify"], "c.txt", ".npy, .json"),
        (&["depth"], "d.jpg", ".npy, .png"),
        (&["segment", "--head", "h.pth"], "s.txt", ".npy, .png"),
        (&["discover"], "d.txt", ".json"),
        (&["pca"], "we.jpg", "a .png file or a folder"),
        (&["features"], "sub", "expected a file"),
    ];
    for (cmd, output, needle) in cases {
        let target = dir.path().join(output);
        let mut args: Vec<&str> = cmd.to_vec();
        args.extend([
            "--model",
            no_model,
            "--image",
            s(&chelsea),
            "--output",
            s(&target),
        ]);
        let err = fails_with(&dinoreg(&args), needle);
        assert!(!err.contains(no_model), "the model was loaded first: {err}");
        assert!(!target.exists(), "{} was created", target.display());
    }
    // A parent that is a file cannot be created.
    let file = dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let bad = file.join("f.safetensors");
    fails_with(
        &dinoreg(&[
            "features",
            "--model",
            no_model,
            "--image",
            s(&chelsea),
            "--output",
            s(&bad),
        ]),
        "is a file, expected a folder",
    );
}

#[test]
fn missing_folders_are_created_and_npy_depth_of_different_sizes_is_one_file_each() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("new/sub/f.safetensors");
    ok(&dinoreg(&[
        "features",
        "--model",
        &reg4(),
        "--image",
        s(&image("chelsea.png")),
        "--output",
        s(&out),
    ]));
    assert!(out.is_file());
    // Depth with a .npy output and images of two sizes: one file per image, named as the pictures.
    let head = dir.path().join("dinov2_vits14_nyu_linear_head.safetensors");
    write_depth_head(&head);
    let npy = dir.path().join("more/depth.npy");
    ok(&dinoreg(&[
        "depth",
        "--model",
        &reg4(),
        "--head",
        s(&head),
        "--image",
        s(&small_image(dir.path(), "chelsea.png", (45, 30))),
        s(&small_image(dir.path(), "coffee.png", (40, 40))),
        "--output",
        s(&npy),
    ]));
    for name in ["depth_chelsea.npy", "depth_coffee.npy"] {
        let p = dir.path().join("more").join(name);
        let a = dinoreg::io::npy::read_array(&p).unwrap();
        assert_eq!(a.shape()[0], 1, "{name}");
    }
    assert!(!npy.exists());
}

/// A random dinov2 linear depth head (1 block, 256 bins) for reg4 (width 32), mmcv naming.
fn write_depth_head(path: &Path) {
    use candle::{DType, Device, Tensor};
    let dev = Device::Cpu;
    let weight = Tensor::randn(0f32, 0.05, (256, 64, 1, 1), &dev).unwrap();
    let bias = Tensor::zeros(256, DType::F32, &dev).unwrap();
    let tensors = std::collections::HashMap::from([
        ("decode_head.conv_depth.weight".to_string(), weight),
        ("decode_head.conv_depth.bias".to_string(), bias),
    ]);
    candle::safetensors::save(&tensors, path).unwrap();
}

// 4. Outputs that say what they are.

/// The mode a plain create gets under this process's umask.
#[cfg(unix)]
fn umask_mode(dir: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    let probe = dir.join("probe");
    std::fs::write(&probe, "").unwrap();
    std::fs::metadata(&probe).unwrap().permissions().mode() & 0o777
}

#[test]
fn features_record_their_inputs_respect_the_umask_and_write_what_the_extension_says() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (image("chelsea.png"), image("coffee.png"));
    let out = dir.path().join("f.safetensors");
    let stdout = ok(&dinoreg(&[
        "features",
        "--model",
        &reg4(),
        "--image",
        s(&a),
        s(&b),
        "--output",
        s(&out),
    ]));
    assert!(
        stdout.contains(&format!("row 0: {}", a.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("row 1: {}", b.display())),
        "{stdout}"
    );
    let bytes = std::fs::read(&out).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let paths = meta.metadata().as_ref().unwrap()["paths"].clone();
    let paths: Vec<String> = serde_json::from_str(&paths).unwrap();
    assert_eq!(paths, [a.display().to_string(), b.display().to_string()]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, umask_mode(dir.path()), "features file mode {mode:o}");
    }
    // .npy: a real .npy of the last stage (reg4's default: stage3, (B, 32, 56, 56)).
    let npy = dir.path().join("f.npy");
    ok(&dinoreg(&[
        "features",
        "--model",
        &reg4(),
        "--image",
        s(&a),
        s(&b),
        "--output",
        s(&npy),
    ]));
    let array = dinoreg::io::npy::read_array(&npy).unwrap();
    assert_eq!(array.shape(), &[2, 32, 56, 56]);
}

#[test]
fn features_dense_mode_keeps_the_aspect() {
    let dir = tempfile::tempdir().unwrap();
    let npy = dir.path().join("f.npy");
    // Chelsea is 451 × 300: short side 56 → 56 × 84, a 14 × 21 grid of 4-pixel patches.
    ok(&dinoreg(&[
        "features",
        "--model",
        &reg4(),
        "--image",
        s(&image("chelsea.png")),
        "--short-side",
        "56",
        "--output",
        s(&npy),
    ]));
    let array = dinoreg::io::npy::read_array(&npy).unwrap();
    assert_eq!(array.shape(), &[1, 32, 14, 21]);
}

#[test]
fn classify_and_discover_print_json() {
    let dir = tempfile::tempdir().unwrap();
    let classifier = fixture("model/classifier").display().to_string();
    let (a, b) = (image("chelsea.png"), image("coffee.png"));
    let out = dir.path().join("c.json");
    let stdout = ok(&dinoreg(&[
        "classify",
        "--model",
        &classifier,
        "--image",
        s(&a),
        s(&b),
        "--top",
        "2",
        "--json",
        "--output",
        s(&out),
    ]));
    let printed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(printed.as_array().unwrap().len(), 2);
    assert_eq!(printed[1]["image"], b.display().to_string());
    assert_eq!(printed[0]["top"].as_array().unwrap().len(), 2);
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(written, printed);

    let found = dir.path().join("found.json");
    let run = dinoreg(&[
        "discover",
        "--model",
        &reg4(),
        "--image",
        s(&a),
        "--short-side",
        "64",
        "--json",
        "--output",
        s(&found),
    ]);
    let stdout = ok(&run);
    let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary[0]["box"].as_array().unwrap().len(), 4);
    assert!(stderr(&run).contains("wrote"), "status goes to stderr");
}

#[test]
fn index_paths_resolve_from_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let images = small_images(&dir.path().join("photos"), 3);
    let index = dir.path().join("out/idx");
    let model = reg4_at_32(&dir.path().join("model"));
    // embed runs in `dir` with relative paths.
    let run = bin()
        .current_dir(dir.path())
        .args([
            "embed", "--model", &model, "--images", "photos", "--output", "out/idx",
        ])
        .output()
        .unwrap();
    ok(&run);
    let lines = std::fs::read_to_string(index.join("paths.txt")).unwrap();
    assert_eq!(
        lines.lines().next(),
        Some("../../photos/img000.png"),
        "{lines}"
    );
    // search from elsewhere prints paths that exist.
    let run = bin()
        .current_dir("/")
        .args(["search", "--index", s(&index), "--row", "0", "--json"])
        .output()
        .unwrap();
    let hits: serde_json::Value = serde_json::from_str(&ok(&run)).unwrap();
    for hit in hits["results"].as_array().unwrap() {
        let p = PathBuf::from(hit["path"].as_str().unwrap());
        assert!(p.is_file(), "{} does not resolve", p.display());
        assert!(p.starts_with(&images) || p.is_absolute());
    }
}

// 6. Shards.

#[test]
fn shards_as_separate_processes_merge_into_the_unsharded_index() {
    let dir = tempfile::tempdir().unwrap();
    let images = small_images(&dir.path().join("imgs"), 7);
    let model = reg4_at_32(&dir.path().join("model"));
    let embed = |out: &Path, shard: Option<&str>, env: &[(&str, &str)]| {
        let mut c = bin();
        c.args([
            "embed",
            "--model",
            &model,
            "--images",
            s(&images),
            "--output",
            s(out),
        ]);
        if let Some(spec) = shard {
            c.args(["--shard", spec]);
        }
        for (k, v) in env {
            c.env(k, v);
        }
        c.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Three shards at once: two as a Kubernetes Indexed Job would start them, one as Slurm would.
    let parts: Vec<PathBuf> = (0..3)
        .map(|i| dir.path().join(format!("part{i}")))
        .collect();
    let children = vec![
        embed(&parts[0], Some("auto/3"), &[("JOB_COMPLETION_INDEX", "0")]),
        embed(
            &parts[1],
            Some("auto"),
            &[("JOB_COMPLETION_INDEX", "1"), ("DINOREG_SHARD_COUNT", "3")],
        ),
        embed(
            &parts[2],
            Some("auto"),
            &[
                ("SLURM_ARRAY_TASK_ID", "3"),
                ("SLURM_ARRAY_TASK_MIN", "1"),
                ("SLURM_ARRAY_TASK_COUNT", "3"),
            ],
        ),
    ];
    for child in children {
        ok(&child.wait_with_output().unwrap());
    }
    for (i, part) in parts.iter().enumerate() {
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(part.join("index.json")).unwrap())
                .unwrap();
        assert_eq!(meta["shard"], serde_json::json!({"index": i, "count": 3}));
    }
    let merged = dir.path().join("merged");
    let mut args = vec!["embed", "--output", s(&merged), "--merge"];
    args.extend(parts.iter().rev().map(|p| s(p)));
    ok(&dinoreg(&args));
    let whole = dir.path().join("whole");
    ok(&embed(&whole, None, &[]).wait_with_output().unwrap());
    let read = |d: &Path| dinoreg::retrieval::Embeddings::read(d).unwrap();
    let (m, w) = (read(&merged), read(&whole));
    assert_eq!(m.paths, w.paths);
    assert_eq!(m.paths.len(), 7);
    let diff = (&m.vectors - &w.vectors)
        .mapv(f32::abs)
        .fold(0f32, |a, &b| a.max(b));
    assert!(diff < 1e-5, "merged rows differ by {diff}");
    // auto without a count says how to give one.
    fails_with(
        &bin()
            .args([
                "embed",
                "--model",
                &model,
                "--images",
                s(&images),
                "--output",
            ])
            .arg(dir.path().join("x"))
            .args(["--shard", "auto"])
            .env("JOB_COMPLETION_INDEX", "0")
            .output()
            .unwrap(),
        "auto/N",
    );
}

// 7. Messages.

#[test]
fn messages_are_one_clean_line() {
    let dir = tempfile::tempdir().unwrap();
    // The OS error once.
    let missing = dir.path().join("notindex");
    let err = fails_with(
        &dinoreg(&["search", "--index", s(&missing), "--row", "0"]),
        "No such file or directory",
    );
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    // search without a query names both ways to give one.
    let run = dinoreg(&["search", "--index", s(&missing)]);
    assert!(!run.status.success());
    let err = stderr(&run);
    assert!(err.contains("--image") && err.contains("--row"), "{err}");
    // A shard mismatch in words, not Rust's debug format.
    let images = small_images(&dir.path().join("imgs"), 2);
    let out = dir.path().join("idx");
    let model = reg4_at_32(&dir.path().join("model"));
    let embed = |extra: &[&str]| {
        let mut args = vec!["embed", "--model", &*model, "--images", s(&images)]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>();
        args.extend(["--output".to_string(), s(&out).to_string()]);
        args.extend(extra.iter().map(|a| a.to_string()));
        bin().args(&args).output().unwrap()
    };
    ok(&embed(&["--shard", "0/2"]));
    let err = fails_with(&embed(&[]), "shard 0/2");
    assert!(err.contains("all images") && !err.contains("None"), "{err}");
}

#[test]
fn one_collision_rule_for_every_command() {
    let dir = tempfile::tempdir().unwrap();
    // Two images named img000.png in two folders.
    let a = small_images(&dir.path().join("a"), 1).join("img000.png");
    let b = small_images(&dir.path().join("b"), 1).join("img000.png");
    let pca = dir.path().join("pca");
    ok(&dinoreg(&[
        "pca",
        "--model",
        &reg4(),
        "--image",
        s(&a),
        s(&b),
        "--short-side",
        "32",
        "--output",
        s(&pca),
    ]));
    assert!(pca.join("img000_0_pca.png").is_file());
    assert!(pca.join("img000_1_pca.png").is_file());
    let head = dir.path().join("dinov2_vits14_nyu_linear_head.safetensors");
    write_depth_head(&head);
    let depth = dir.path().join("depth/d.png");
    ok(&dinoreg(&[
        "depth",
        "--model",
        &reg4(),
        "--head",
        s(&head),
        "--image",
        s(&a),
        s(&b),
        "--output",
        s(&depth),
    ]));
    assert!(dir.path().join("depth/d_img000_0.png").is_file());
    assert!(dir.path().join("depth/d_img000_1.png").is_file());
}

// 5. Pictures.

/// A random 3-class BNHead for reg4 (width 32, last block), saved as `dinoreg train-seg` saves one.
fn write_segmentation_head(path: &Path) {
    use candle::{DType, Device, Tensor};
    use dinoreg::heads::segmentation::{BnHead, BnHeadParams};
    let dev = Device::Cpu;
    let params = BnHeadParams {
        bn_weight: Tensor::ones(32, DType::F32, &dev).unwrap(),
        bn_bias: Tensor::zeros(32, DType::F32, &dev).unwrap(),
        running_mean: Tensor::zeros(32, DType::F32, &dev).unwrap(),
        running_var: Tensor::ones(32, DType::F32, &dev).unwrap(),
        conv_weight: Tensor::randn(0f32, 1.0, (3, 32, 1, 1), &dev).unwrap(),
        conv_bias: Tensor::zeros(3, DType::F32, &dev).unwrap(),
    };
    let head = BnHead::from_params(params, 32, vec![-1]).unwrap();
    head.save(path, &head.metadata()).unwrap();
}

#[test]
fn segment_overlay_keeps_the_image_size_and_the_legend_is_an_option() {
    let dir = tempfile::tempdir().unwrap();
    let head = dir.path().join("head.safetensors");
    write_segmentation_head(&head);
    let chelsea = image("chelsea.png");
    let (w, h) = image::image_dimensions(&chelsea).unwrap();
    let model = reg4();
    let run = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "segment",
            "--model",
            &*model,
            "--head",
            s(&head),
            "--image",
            s(&chelsea),
            "--short-side",
            "64",
            "--crop",
            "0",
            "--output",
            s(out),
        ];
        args.extend(extra);
        ok(&dinoreg(&args))
    };
    let plain = dir.path().join("plain.png");
    let stdout = run(&plain, &[]);
    assert_eq!(image::image_dimensions(&plain).unwrap(), (w, h));
    assert!(!stdout.contains(" 0.0%"), "{stdout}");
    let legend = dir.path().join("legend.png");
    run(&legend, &["--legend"]);
    let (lw, lh) = image::image_dimensions(&legend).unwrap();
    assert!(lw > w && lh == h, "{lw}x{lh}");
}

#[test]
fn norm_map_uses_a_robust_range_with_a_colour_bar_and_depth_can_have_one() {
    use dinoreg::viz::colorbar::ValueRange;
    // Float noise around a constant stays one flat colour.
    let flat = ValueRange::robust([19.5959, 19.59591, 19.59589, 19.5959]);
    for v in [19.5959f32, 19.59591, 19.59589] {
        assert!(
            (flat.scale(v) - 0.5).abs() < 0.01,
            "{v} -> {}",
            flat.scale(v)
        );
    }
    // One outlier does not squash the rest.
    let mut values: Vec<f32> = (0..200).map(|i| i as f32 / 200.0).collect();
    values.push(1000.0);
    let range = ValueRange::robust(values);
    assert!(range.hi < 2.0, "{range:?}");

    let dir = tempfile::tempdir().unwrap();
    let chelsea = image("chelsea.png");
    let (w, h) = image::image_dimensions(&chelsea).unwrap();
    let out = dir.path().join("att");
    ok(&dinoreg(&[
        "attention",
        "--model",
        &reg4(),
        "--image",
        s(&chelsea),
        "--short-side",
        "56",
        "--output",
        s(&out),
    ]));
    let (nw, nh) = image::image_dimensions(out.join("chelsea_norms.png")).unwrap();
    assert!(
        nw > w && nh == h,
        "no colour bar: {nw}x{nh} for a {w}x{h} photo"
    );
    let (mw, _) = image::image_dimensions(out.join("chelsea_attn_mean.png")).unwrap();
    assert_eq!(mw, w);

    let head = dir.path().join("dinov2_vits14_nyu_linear_head.safetensors");
    write_depth_head(&head);
    let (plain, bar) = (dir.path().join("d.png"), dir.path().join("d_bar.png"));
    let model = reg4();
    let (w, h) = (45, 30);
    let chelsea = small_image(dir.path(), "small.png", (w, h));
    for (out, extra) in [(&plain, None), (&bar, Some("--colorbar"))] {
        let mut args = vec![
            "depth",
            "--model",
            &*model,
            "--head",
            s(&head),
            "--image",
            s(&chelsea),
            "--output",
            s(out),
        ];
        args.extend(extra);
        ok(&dinoreg(&args));
    }
    assert_eq!(image::image_dimensions(&plain).unwrap(), (w, h));
    let (bw, bh) = image::image_dimensions(&bar).unwrap();
    assert!(bw > w && bh == h);
}

#[test]
fn sixteen_bit_gray_pngs_are_warned_about_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let gray = dir.path().join("gray16.png");
    common::scenes::gray16_png(&gray, 32, 32, 2000);
    let plain = small_images(&dir.path().join("plain"), 1).join("img000.png");
    let out = dir.path().join("f.safetensors");
    let run = dinoreg(&[
        "features",
        "--model",
        &reg4(),
        "--image",
        s(&gray),
        s(&plain),
        "--output",
        s(&out),
    ]);
    ok(&run);
    let err = stderr(&run);
    assert_eq!(err.matches("16-bit grayscale").count(), 1, "{err}");
    assert!(err.contains("gray16.png"), "{err}");
}
