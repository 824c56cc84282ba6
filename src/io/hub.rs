//! Finding a model's files: a local folder (or weights file), or a Hugging Face Hub id such as
//! `facebook/dinov2-with-registers-small` (optionally `id@revision`) read from / downloaded into the
//! standard Hugging Face cache.
//!
//! Mirrors what `from_pretrained` resolves: `config.json`; the weights (`model.safetensors`, or
//! `model.safetensors.index.json` and all the shards it lists, or `pytorch_model.bin`; in a local folder
//! also a single `*.safetensors` / `*.pth` / `*.pt` / `*.bin`); and `preprocessor_config.json` when there
//! is one. The cache is `huggingface_hub`'s layout: `<cache>/models--org--name/refs/<revision>` holds a
//! commit hash, files live in `snapshots/<commit>/`. The cache folder is `HF_HUB_CACHE`, else
//! `HF_HOME/hub`, else `~/.cache/huggingface/hub`; `HF_HUB_OFFLINE=1` allows the cache only.
//! The cache is always looked at first; downloading needs the `hub` cargo feature (hf-hub, ureq).
//!
//! Gated and private repos (the DINOv3 checkpoints are gated) need the user's access token, found as
//! `huggingface_hub` finds it: `HF_TOKEN`, else the token file (`HF_TOKEN_PATH`, else
//! `$HF_HOME/token`, else `~/.cache/huggingface/token`, where `huggingface-cli login` writes it). It
//! is sent as a bearer header and never printed ([`HubToken`]'s `Debug` hides it). A 401 or 403
//! answer becomes one line saying the repo is gated and how to get access.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The model configuration file.
pub const CONFIG: &str = "config.json";
/// Single-file safetensors weights.
pub const SAFETENSORS: &str = "model.safetensors";
/// The index of sharded safetensors weights.
pub const SAFETENSORS_INDEX: &str = "model.safetensors.index.json";
/// PyTorch pickle weights as HF names them.
pub const PYTORCH_BIN: &str = "pytorch_model.bin";
/// The preprocessing settings.
pub const PREPROCESSOR: &str = "preprocessor_config.json";

/// The files of one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFiles {
    /// The folder holding the files (a snapshot folder for a Hub model).
    pub dir: PathBuf,
    /// `config.json`.
    pub config: PathBuf,
    /// The weights: one file, or all the shards of a sharded checkpoint in index order.
    pub weights: Vec<PathBuf>,
    /// `preprocessor_config.json`, when the model has one.
    pub preprocessor: Option<PathBuf>,
}

/// A Hugging Face access token. Its `Debug` output hides the value; nothing in dinoreg prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct HubToken(String);

impl std::fmt::Debug for HubToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HubToken(<hidden>)")
    }
}

impl HubToken {
    /// A token from its text (surrounding whitespace removed); `None` when empty.
    pub fn new(text: &str) -> Option<Self> {
        let t = text.trim();
        (!t.is_empty()).then(|| Self(t.to_string()))
    }

    /// The token as `huggingface_hub` finds it: `HF_TOKEN` (or the older
    /// `HUGGING_FACE_HUB_TOKEN`), else the token file: `HF_TOKEN_PATH`, else `$HF_HOME/token`,
    /// else `$XDG_CACHE_HOME/huggingface/token`, else `~/.cache/huggingface/token`.
    pub fn from_env() -> Option<Self> {
        let var = |name: &str| std::env::var(name).ok().and_then(|v| Self::new(&v));
        var("HF_TOKEN")
            .or_else(|| var("HUGGING_FACE_HUB_TOKEN"))
            .or_else(|| {
                let file = token_path()?;
                Self::new(&std::fs::read_to_string(file).ok()?)
            })
    }

    /// The value, for the request header only.
    #[cfg_attr(not(feature = "hub"), allow(dead_code))]
    fn secret(&self) -> &str {
        &self.0
    }
}

/// Where `huggingface-cli login` keeps the token.
fn token_path() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    var("HF_TOKEN_PATH").map(PathBuf::from).or_else(|| {
        let home = var("HF_HOME")
            .map(PathBuf::from)
            .or_else(|| var("XDG_CACHE_HOME").map(|c| PathBuf::from(c).join("huggingface")))
            .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface")))?;
        Some(home.join("token"))
    })
}

/// Where and how Hub models are looked up. [`HubOptions::from_env`] reads the usual variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubOptions {
    /// The cache folder (`HF_HUB_CACHE`, `HF_HOME/hub`, `~/.cache/huggingface/hub`).
    pub cache_dir: PathBuf,
    /// Never download, use the cache only (`HF_HUB_OFFLINE=1`).
    pub offline: bool,
    /// Show download progress bars.
    pub progress: bool,
    /// The access token sent with every request, for gated and private repos
    /// ([`HubToken::from_env`]).
    pub token: Option<HubToken>,
}

impl Default for HubOptions {
    fn default() -> Self {
        Self::from_env()
    }
}

impl HubOptions {
    /// Options from `HF_HUB_CACHE` / `HF_HOME` / `HF_HUB_OFFLINE` (and `XDG_CACHE_HOME`, `HOME`), and
    /// the token from `HF_TOKEN` or the token file.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let cache_dir = var("HF_HUB_CACHE")
            .or_else(|| var("HUGGINGFACE_HUB_CACHE"))
            .map(PathBuf::from)
            .or_else(|| var("HF_HOME").map(|h| PathBuf::from(h).join("hub")))
            .or_else(|| var("XDG_CACHE_HOME").map(|c| PathBuf::from(c).join("huggingface/hub")))
            .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface/hub")))
            .unwrap_or_else(|| PathBuf::from(".cache/huggingface/hub"));
        let offline = std::env::var("HF_HUB_OFFLINE")
            .map(|v| {
                matches!(
                    v.trim().to_ascii_lowercase().as_str(),
                    "1" | "on" | "yes" | "true"
                )
            })
            .unwrap_or(false);
        HubOptions {
            cache_dir,
            offline,
            progress: true,
            token: HubToken::from_env(),
        }
    }

    /// Sets the cache folder.
    pub fn with_cache_dir(mut self, cache_dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = cache_dir.into();
        self
    }

    /// Sets offline mode (cache only).
    pub fn with_offline(mut self, offline: bool) -> Self {
        self.offline = offline;
        self
    }

    /// Shows or hides download progress bars.
    pub fn with_progress(mut self, progress: bool) -> Self {
        self.progress = progress;
        self
    }

    /// Sets the access token (`None` sends none).
    pub fn with_token(mut self, token: Option<HubToken>) -> Self {
        self.token = token;
        self
    }
}

/// Resolves `--model`: an existing folder or weights file, otherwise a Hub id (`org/name[@revision]`)
/// with the environment's [`HubOptions`].
pub fn resolve_model(arg: &str) -> Result<ModelFiles> {
    resolve_model_with(arg, &HubOptions::from_env())
}

/// [`resolve_model`] with explicit Hub options.
pub fn resolve_model_with(arg: &str, options: &HubOptions) -> Result<ModelFiles> {
    let path = Path::new(arg);
    if path.exists() {
        return resolve_local(path);
    }
    let Some((repo_id, revision)) = parse_hub_id(arg) else {
        return Err(model_error(
            arg,
            "no such file or folder, and not a Hub id of the form org/name[@revision]",
        ));
    };
    if let Some(files) = cached(&repo_id, &revision, &options.cache_dir)? {
        return Ok(files);
    }
    if options.offline {
        let missing = missing_in_cache(&repo_id, &revision, &options.cache_dir);
        return Err(model_error(
            arg,
            format!(
                "{missing} is not in the Hugging Face cache {} and HF_HUB_OFFLINE is set (not a local folder either)",
                options.cache_dir.display()
            ),
        ));
    }
    download(arg, &repo_id, &revision, options)
}

/// The files of a local model folder, or of a weights file with `config.json` beside it.
pub fn resolve_local(path: &Path) -> Result<ModelFiles> {
    let arg = path.display().to_string();
    let (dir, weights) = if path.is_file() {
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        (dir, Some(vec![path.to_path_buf()]))
    } else {
        (path.to_path_buf(), None)
    };
    let config = dir.join(CONFIG);
    if !config.is_file() {
        return Err(model_error(
            &arg,
            format!("no {CONFIG} in {}", dir.display()),
        ));
    }
    let weights = match weights {
        Some(w) => w,
        None => find_weights(&arg, &dir, true)?,
    };
    Ok(ModelFiles {
        preprocessor: Some(dir.join(PREPROCESSOR)).filter(|p| p.is_file()),
        dir,
        config,
        weights,
    })
}

/// The weights in `dir` in order of preference; `any` also accepts a single loosely named file.
fn find_weights(arg: &str, dir: &Path, any: bool) -> Result<Vec<PathBuf>> {
    let single = dir.join(SAFETENSORS);
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join(SAFETENSORS_INDEX);
    if index.is_file() {
        let shards = shard_names(&index)?;
        let paths: Vec<PathBuf> = shards.iter().map(|s| dir.join(s)).collect();
        if let Some(missing) = paths.iter().find(|p| !p.is_file()) {
            return Err(model_error(
                arg,
                format!(
                    "shard {} listed in {SAFETENSORS_INDEX} is missing",
                    missing.display()
                ),
            ));
        }
        return Ok(paths);
    }
    let bin = dir.join(PYTORCH_BIN);
    if bin.is_file() {
        return Ok(vec![bin]);
    }
    if any {
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && matches!(
                        p.extension().and_then(|e| e.to_str()),
                        Some("safetensors" | "pth" | "pt" | "bin")
                    )
            })
            .collect();
        found.sort();
        match found.len() {
            1 => return Ok(found),
            0 => {}
            _ => {
                let names: Vec<String> = found
                    .iter()
                    .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                    .collect();
                return Err(model_error(
                    arg,
                    format!(
                        "several weight files ({}); pass the one to use as --model",
                        names.join(", ")
                    ),
                ));
            }
        }
    }
    Err(model_error(
        arg,
        format!(
            "no weights in {} (expected {SAFETENSORS}, {SAFETENSORS_INDEX} with its shards, {PYTORCH_BIN}, or one .safetensors/.pth/.pt/.bin file)",
            dir.display()
        ),
    ))
}

/// The distinct shard file names of a `model.safetensors.index.json`, in order of first appearance.
pub fn shard_names(index: &Path) -> Result<Vec<String>> {
    let fail = |reason: String| Error::Config {
        path: index.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(index).map_err(|e| Error::io(index, e))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| fail(format!("not valid JSON: {e}")))?;
    let map = value
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| fail("no \"weight_map\" object".to_string()))?;
    let mut shards: Vec<String> = Vec::new();
    for (tensor, file) in map {
        let file = file
            .as_str()
            .ok_or_else(|| fail(format!("weight_map[{tensor}] is not a file name")))?;
        if file.contains("..") || Path::new(file).is_absolute() {
            return Err(fail(format!("shard name {file} leaves the model folder")));
        }
        if !shards.iter().any(|s| s == file) {
            shards.push(file.to_string());
        }
    }
    if shards.is_empty() {
        return Err(fail("weight_map lists no shard".to_string()));
    }
    Ok(shards)
}

/// Splits `org/name[@revision]`; `None` when `arg` cannot be a Hub id.
pub fn parse_hub_id(arg: &str) -> Option<(String, String)> {
    let (id, revision) = match arg.split_once('@') {
        Some((id, rev)) if !rev.is_empty() => (id, rev),
        Some(_) => return None,
        None => (arg, "main"),
    };
    let parts: Vec<&str> = id.split('/').collect();
    let part_ok = |p: &&str| {
        !p.is_empty()
            && !p.starts_with(['.', '-'])
            && !p.ends_with('.')
            && !p.contains("..")
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    if parts.len() > 2 || !parts.iter().all(part_ok) || revision.contains("..") {
        return None;
    }
    Some((id.to_string(), revision.to_string()))
}

/// `<cache>/models--org--name`.
fn repo_folder(cache_dir: &Path, repo_id: &str) -> PathBuf {
    cache_dir.join(format!("models--{}", repo_id.replace('/', "--")))
}

/// The snapshot folder of `revision` when the cache knows it: `refs/<revision>` names the commit, or
/// `revision` is itself a commit with a snapshot.
fn snapshot(cache_dir: &Path, repo_id: &str, revision: &str) -> Option<PathBuf> {
    let repo = repo_folder(cache_dir, repo_id);
    let commit = std::fs::read_to_string(repo.join("refs").join(revision))
        .ok()
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| revision.to_string());
    let dir = repo.join("snapshots").join(commit);
    dir.is_dir().then_some(dir)
}

/// The model's files when all of them are in the cache.
pub fn cached(repo_id: &str, revision: &str, cache_dir: &Path) -> Result<Option<ModelFiles>> {
    let Some(dir) = snapshot(cache_dir, repo_id, revision) else {
        return Ok(None);
    };
    let config = dir.join(CONFIG);
    if !config.is_file() {
        return Ok(None);
    }
    let Ok(weights) = find_weights(repo_id, &dir, false) else {
        return Ok(None);
    };
    Ok(Some(ModelFiles {
        preprocessor: Some(dir.join(PREPROCESSOR)).filter(|p| p.is_file()),
        dir,
        config,
        weights,
    }))
}

/// Names what is missing from the cache, for the offline error.
fn missing_in_cache(repo_id: &str, revision: &str, cache_dir: &Path) -> String {
    match snapshot(cache_dir, repo_id, revision) {
        None => format!("revision {revision} of {repo_id}"),
        Some(dir) if !dir.join(CONFIG).is_file() => format!("{CONFIG} of {repo_id}@{revision}"),
        Some(dir) => match find_weights(repo_id, &dir, false) {
            Err(Error::Model { reason, .. }) if reason.starts_with("shard") => reason,
            _ => format!("the weights ({SAFETENSORS}, {SAFETENSORS_INDEX} or {PYTORCH_BIN}) of {repo_id}@{revision}"),
        },
    }
}

fn model_error(model: &str, reason: impl Into<String>) -> Error {
    Error::Model {
        model: model.to_string(),
        reason: reason.into(),
    }
}

/// The one line for a 401/403 answer: the repo is gated (or private) and how to get access.
#[cfg_attr(not(feature = "hub"), allow(dead_code))]
fn gated_message(repo_id: &str, code: &str, token_sent: bool) -> String {
    let sent = if token_sent {
        "the access token sent (HF_TOKEN or the token file) has no access to it"
    } else {
        "no access token was found"
    };
    format!(
        "the Hugging Face Hub refused access (HTTP {code}): {repo_id} is a gated or private repo and {sent}; accept its licence on https://huggingface.co/{repo_id} while logged in, then set HF_TOKEN to an access token from https://huggingface.co/settings/tokens (or run `huggingface-cli login`)"
    )
}

#[cfg(not(feature = "hub"))]
fn download(
    arg: &str,
    _repo_id: &str,
    _revision: &str,
    options: &HubOptions,
) -> Result<ModelFiles> {
    Err(model_error(
        arg,
        format!(
            "not a local folder and not in the Hugging Face cache {}; this build has no `hub` feature to download it",
            options.cache_dir.display()
        ),
    ))
}

#[cfg(feature = "hub")]
fn download(arg: &str, repo_id: &str, revision: &str, options: &HubOptions) -> Result<ModelFiles> {
    use hf_hub::api::sync::{ApiBuilder, ApiError};
    use hf_hub::{Repo, RepoType};

    let fail = |file: &str, e: ApiError| {
        let text = e.to_string().replace('\n', " ");
        let refused = ["401", "403"]
            .into_iter()
            .find(|code| text.contains(&format!("status: {code}")));
        match refused {
            Some(code) => model_error(arg, gated_message(repo_id, code, options.token.is_some())),
            None => model_error(
                arg,
                format!("cannot download {file} from the Hugging Face Hub: {text}"),
            ),
        }
    };
    let not_found =
        |e: &ApiError| matches!(e, ApiError::RequestError(_)) && e.to_string().contains("404");
    let api = ApiBuilder::from_env()
        .with_cache_dir(options.cache_dir.clone())
        .with_progress(options.progress)
        .with_token(options.token.as_ref().map(|t| t.secret().to_string()))
        .build()
        .map_err(|e| fail(CONFIG, e))?;
    let repo = api.repo(Repo::with_revision(
        repo_id.to_string(),
        RepoType::Model,
        revision.to_string(),
    ));
    let config = repo.get(CONFIG).map_err(|e| fail(CONFIG, e))?;
    let weights = match repo.get(SAFETENSORS) {
        Ok(p) => vec![p],
        Err(e) if not_found(&e) => match repo.get(SAFETENSORS_INDEX) {
            Ok(index) => shard_names(&index)?
                .iter()
                .map(|s| repo.get(s).map_err(|e| fail(s, e)))
                .collect::<Result<Vec<_>>>()?,
            Err(e) if not_found(&e) => {
                vec![repo.get(PYTORCH_BIN).map_err(|e| fail(PYTORCH_BIN, e))?]
            }
            Err(e) => return Err(fail(SAFETENSORS_INDEX, e)),
        },
        Err(e) => return Err(fail(SAFETENSORS, e)),
    };
    let preprocessor = match repo.get(PREPROCESSOR) {
        Ok(p) => Some(p),
        Err(e) if not_found(&e) => None,
        Err(e) => return Err(fail(PREPROCESSOR, e)),
    };
    let dir = config.parent().unwrap_or(Path::new(".")).to_path_buf();
    Ok(ModelFiles {
        dir,
        config,
        weights,
        preprocessor,
    })
}
