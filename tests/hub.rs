//! Model file resolution: local folders and files, and Hub ids against a Hugging Face cache laid out in a
//! temporary folder (offline: these tests never touch the network).

use std::fs;
use std::path::{Path, PathBuf};

use dinoreg::io::hub::{parse_hub_id, resolve_model, resolve_model_with, HubOptions, ModelFiles};
use dinoreg::Error;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn touch(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// A cached snapshot of `org/name` at refs/main with `files` (name, contents); returns the snapshot dir.
fn cache_model(cache: &Path, repo: &str, files: &[(&str, &str)]) -> PathBuf {
    let folder = cache.join(format!("models--{}", repo.replace('/', "--")));
    touch(&folder.join("refs/main"), &format!("{COMMIT}\n"));
    let snapshot = folder.join("snapshots").join(COMMIT);
    for (name, text) in files {
        touch(&snapshot.join(name), text);
    }
    snapshot
}

const INDEX: &str = r#"{"metadata": {"total_size": 8}, "weight_map": {
    "a.weight": "model-00001-of-00002.safetensors",
    "b.weight": "model-00002-of-00002.safetensors",
    "c.weight": "model-00001-of-00002.safetensors"}}"#;

fn offline(cache: &Path) -> HubOptions {
    HubOptions::from_env()
        .with_cache_dir(cache)
        .with_offline(true)
        .with_progress(false)
}

fn model_reason(err: &Error) -> &str {
    match err {
        Error::Model { reason, .. } => reason,
        other => panic!("not a model error: {other}"),
    }
}

#[test]
fn cached_models_resolve_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path();
    let single = cache_model(
        cache,
        "facebook/dinov2-with-registers-small",
        &[
            ("config.json", "{}"),
            ("model.safetensors", ""),
            ("preprocessor_config.json", "{}"),
        ],
    );
    let files =
        resolve_model_with("facebook/dinov2-with-registers-small", &offline(cache)).unwrap();
    assert_eq!(
        files,
        ModelFiles {
            dir: single.clone(),
            config: single.join("config.json"),
            weights: vec![single.join("model.safetensors")],
            preprocessor: Some(single.join("preprocessor_config.json")),
        }
    );
    // A revision that is a commit hash finds its snapshot without a ref.
    let by_commit = format!("facebook/dinov2-with-registers-small@{COMMIT}");
    assert_eq!(
        resolve_model_with(&by_commit, &offline(cache)).unwrap(),
        files
    );

    // Sharded: every shard of the index, in order of first appearance; no preprocessor is fine.
    let sharded = cache_model(
        cache,
        "org/sharded",
        &[
            ("config.json", "{}"),
            ("model.safetensors.index.json", INDEX),
            ("model-00001-of-00002.safetensors", ""),
            ("model-00002-of-00002.safetensors", ""),
        ],
    );
    let files = resolve_model_with("org/sharded", &offline(cache)).unwrap();
    assert_eq!(
        files.weights,
        vec![
            sharded.join("model-00001-of-00002.safetensors"),
            sharded.join("model-00002-of-00002.safetensors"),
        ]
    );
    assert_eq!(files.preprocessor, None);
}

#[test]
fn uncached_models_give_clear_offline_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path();
    let err = resolve_model_with("org/absent", &offline(cache)).unwrap_err();
    let reason = model_reason(&err);
    assert!(reason.contains("HF_HUB_OFFLINE"), "{err}");
    assert!(reason.contains(&cache.display().to_string()), "{err}");
    assert!(!err.to_string().contains('\n'));

    cache_model(cache, "org/noweights", &[("config.json", "{}")]);
    let err = resolve_model_with("org/noweights", &offline(cache)).unwrap_err();
    assert!(model_reason(&err).contains("model.safetensors"), "{err}");

    cache_model(cache, "org/noconfig", &[("model.safetensors", "")]);
    let err = resolve_model_with("org/noconfig", &offline(cache)).unwrap_err();
    assert!(model_reason(&err).contains("config.json"), "{err}");

    let shards = [
        ("config.json", "{}"),
        ("model.safetensors.index.json", INDEX),
        ("model-00001-of-00002.safetensors", ""),
    ];
    cache_model(cache, "org/halfsharded", &shards);
    let err = resolve_model_with("org/halfsharded", &offline(cache)).unwrap_err();
    assert!(
        model_reason(&err).contains("model-00002-of-00002.safetensors"),
        "{err}"
    );

    let err = resolve_model_with("./no/such/dir", &offline(cache)).unwrap_err();
    assert!(
        model_reason(&err).contains("no such file or folder"),
        "{err}"
    );
}

#[test]
fn local_folders_and_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("model");
    touch(&dir.join("config.json"), "{}");
    let arg = dir.to_str().unwrap();
    let options = offline(tmp.path());

    let err = resolve_model_with(arg, &options).unwrap_err();
    assert!(model_reason(&err).contains("no weights"), "{err}");

    touch(&dir.join("dinov2_vits14_reg4_pretrain.pth"), "");
    let files = resolve_model_with(arg, &options).unwrap();
    assert_eq!(
        files.weights,
        vec![dir.join("dinov2_vits14_reg4_pretrain.pth")]
    );
    assert_eq!(files.preprocessor, None);

    touch(&dir.join("other.bin"), "");
    let err = resolve_model_with(arg, &options).unwrap_err();
    assert!(model_reason(&err).contains("several weight files"), "{err}");
    // Naming the file picks it, with config.json beside it.
    let file = dir.join("other.bin");
    let files = resolve_model_with(file.to_str().unwrap(), &options).unwrap();
    assert_eq!(files.weights, vec![file]);
    assert_eq!(files.config, dir.join("config.json"));

    touch(&dir.join("model.safetensors.index.json"), INDEX);
    touch(&dir.join("model-00001-of-00002.safetensors"), "");
    touch(&dir.join("model-00002-of-00002.safetensors"), "");
    touch(&dir.join("preprocessor_config.json"), "{}");
    let files = resolve_model_with(arg, &options).unwrap();
    assert_eq!(files.weights.len(), 2);
    assert_eq!(
        files.preprocessor,
        Some(dir.join("preprocessor_config.json"))
    );

    touch(&dir.join("model.safetensors"), "");
    let files = resolve_model_with(arg, &options).unwrap();
    assert_eq!(files.weights, vec![dir.join("model.safetensors")]);

    let bare = tmp.path().join("bare");
    fs::create_dir_all(&bare).unwrap();
    let err = resolve_model_with(bare.to_str().unwrap(), &options).unwrap_err();
    assert!(model_reason(&err).contains("no config.json"), "{err}");
}

#[test]
fn hub_ids() {
    let id = parse_hub_id;
    assert_eq!(
        id("facebook/dinov2-with-registers-small"),
        Some(("facebook/dinov2-with-registers-small".into(), "main".into()))
    );
    assert_eq!(
        id("org/name@v1.0"),
        Some(("org/name".into(), "v1.0".into()))
    );
    assert_eq!(id("gpt2"), Some(("gpt2".into(), "main".into())));
    for bad in [
        "a/b/c",
        "../x",
        "/abs/path",
        "org/name@",
        "org/na me",
        "~/models",
        "./x",
    ] {
        assert_eq!(id(bad), None, "{bad}");
    }
}

/// The environment variables are process-global: every test that sets them is in this one function.
#[test]
fn environment_variables_choose_the_cache_and_offline_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let hub_cache = tmp.path().join("hub-cache");
    let home = tmp.path().join("hf-home");
    let a = cache_model(
        &hub_cache,
        "org/a",
        &[("config.json", "{}"), ("model.safetensors", "")],
    );
    let b = cache_model(
        &home.join("hub"),
        "org/b",
        &[("config.json", "{}"), ("model.safetensors", "")],
    );
    std::env::set_var("HF_HUB_OFFLINE", "1");
    std::env::set_var("HF_HUB_CACHE", &hub_cache);
    std::env::set_var("HF_HOME", &home);
    let options = HubOptions::from_env();
    assert!(options.offline);
    assert_eq!(options.cache_dir, hub_cache);
    assert_eq!(resolve_model("org/a").unwrap().dir, a);
    // HF_HUB_CACHE wins over HF_HOME: org/b is not there, and offline forbids downloading.
    let err = resolve_model("org/b").unwrap_err();
    assert!(model_reason(&err).contains("HF_HUB_OFFLINE"), "{err}");
    std::env::remove_var("HF_HUB_CACHE");
    assert_eq!(HubOptions::from_env().cache_dir, home.join("hub"));
    assert_eq!(resolve_model("org/b").unwrap().dir, b);
    std::env::set_var("HF_HUB_OFFLINE", "0");
    assert!(!HubOptions::from_env().offline);
    std::env::remove_var("HF_HUB_OFFLINE");
    std::env::remove_var("HF_HOME");
}
