//! The real download path (hf-hub's blocking client) against a Hub stand-in on loopback: the HF
//! resolve protocol (`GET {endpoint}/{repo}/resolve/{revision}/{file}` with `Range`, answered with
//! `ETag`, `X-Repo-Commit` and `Content-Range`), a 404 for the optional `preprocessor_config.json`,
//! then the files in the standard cache layout, found again offline, and the model they load; and a
//! gated repo (a DINOv3 model) that answers 401 without the access token and 403 with a wrong one:
//! the token from the token file or `HF_TOKEN` arrives as a bearer header, and the refusals become
//! one line saying how to get access, never showing the token. `HF_ENDPOINT`, `HF_HOME` and
//! `HF_TOKEN` are process-wide, so this file holds a single test.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::{assert_close, fixture, load_expected, TOL};
use dinoreg::io::hub::{resolve_model_with, HubOptions, HubToken};
use dinoreg::Vit;
use dinoreg::{DinoModel, Dinov2Model, LoadOptions};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
/// The token the gated repo accepts.
const TOKEN: &str = "hf_test_0123456789";

/// Serves `tests/fixtures/model/reg4/*` as `test-org/tiny-reg4` and, gated behind [`TOKEN`],
/// `tests/fixtures/dinov3/reg4/*` as `test-org/gated-v3`, as the Hub would, until the listener is
/// dropped. The `Authorization` header of each request is recorded in `auth`.
fn serve(listener: TcpListener, requests: Arc<AtomicUsize>, auth: Arc<Mutex<Vec<String>>>) {
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { break };
        requests.fetch_add(1, Ordering::SeqCst);
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut request_line = String::new();
        reader.read_line(&mut request_line).unwrap();
        // `Range: bytes=S-E` (metadata asks for bytes=0-0) or `bytes=S-` (the download).
        let mut range: (usize, Option<usize>) = (0, None);
        let mut authorization = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
                let (a, b) = v.trim().split_once('-').unwrap();
                range = (a.parse().unwrap(), b.parse().ok());
            }
            if line.to_ascii_lowercase().starts_with("authorization:") {
                authorization = line["authorization:".len()..].trim().to_string();
            }
        }
        auth.lock().unwrap().push(authorization.clone());
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("/")
            .to_string();
        let file = path.rsplit('/').next().unwrap_or("");
        let gated = path.starts_with("/test-org/gated-v3/resolve/main/");
        let folder = if gated {
            "dinov3/reg4"
        } else if path.starts_with("/test-org/tiny-reg4/resolve/main/") {
            "model/reg4"
        } else {
            ""
        };
        let body = (!folder.is_empty())
            .then(|| std::fs::read(fixture(&format!("{folder}/{file}"))).ok())
            .flatten();
        let refusal = match authorization.as_str() {
            _ if !gated => None,
            "" => Some("401 Unauthorized"),
            a if a == format!("Bearer {TOKEN}") => None,
            _ => Some("403 Forbidden"),
        };
        let response = match body {
            _ if refusal.is_some() => format!(
                "HTTP/1.1 {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                refusal.unwrap_or_default()
            )
            .into_bytes(),
            None => {
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
            }
            Some(bytes) => {
                let size = bytes.len();
                let start = range.0.min(size);
                let end = range.1.map_or(size, |e| (e + 1).min(size));
                let chunk = &bytes[start..end.max(start)];
                let mut head = format!(
                    "HTTP/1.1 206 Partial Content\r\nETag: \"etag-{file}\"\r\nX-Repo-Commit: {COMMIT}\r\nContent-Range: bytes {start}-{}/{size}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    start + chunk.len().saturating_sub(1),
                    chunk.len()
                )
                .into_bytes();
                head.extend_from_slice(chunk);
                head
            }
        };
        let _ = stream.write_all(&response);
    }
}

#[test]
fn downloads_into_the_cache_then_works_offline() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(AtomicUsize::new(0));
    let auth = Arc::new(Mutex::new(Vec::new()));
    let (counter, seen) = (requests.clone(), auth.clone());
    std::thread::spawn(move || serve(listener, counter, seen));
    std::env::set_var("HF_ENDPOINT", format!("http://127.0.0.1:{port}"));
    // No token anywhere to begin with.
    let hf_home = tempfile::tempdir().unwrap();
    std::env::set_var("HF_HOME", hf_home.path());
    std::env::remove_var("HF_TOKEN");
    std::env::remove_var("HUGGING_FACE_HUB_TOKEN");
    std::env::remove_var("HF_TOKEN_PATH");

    let cache = tempfile::tempdir().unwrap();
    let online = HubOptions::from_env()
        .with_cache_dir(cache.path())
        .with_offline(false)
        .with_progress(false);
    assert_eq!(online.token, None);
    let files = resolve_model_with("test-org/tiny-reg4", &online).unwrap();
    assert!(requests.load(Ordering::SeqCst) >= 3);
    // The standard layout: snapshots/<commit>/<file>, refs/main holding the commit.
    let repo = cache.path().join("models--test-org--tiny-reg4");
    assert_eq!(
        std::fs::read_to_string(repo.join("refs/main"))
            .unwrap()
            .trim(),
        COMMIT
    );
    assert!(files
        .config
        .starts_with(repo.join("snapshots").join(COMMIT)));
    assert_eq!(files.weights.len(), 1);
    assert!(
        files.preprocessor.is_none(),
        "the 404 for preprocessor_config.json is not an error"
    );
    let same = std::fs::read(&files.weights[0]).unwrap()
        == std::fs::read(fixture("model/reg4/model.safetensors")).unwrap();
    assert!(same, "the downloaded weights differ from the served file");

    // Offline, the same id resolves from the cache without a request.
    let before = requests.load(Ordering::SeqCst);
    let offline = online.clone().with_offline(true);
    let again = resolve_model_with("test-org/tiny-reg4", &offline).unwrap();
    assert_eq!(again.weights, files.weights);
    assert_eq!(requests.load(Ordering::SeqCst), before);
    let e = resolve_model_with("test-org/absent", &offline).unwrap_err();
    assert!(e.to_string().contains("HF_HUB_OFFLINE"), "{e}");

    let model = Dinov2Model::load(&again.config, &again.weights, &LoadOptions::default()).unwrap();
    let exp = load_expected("model/reg4/expected.safetensors");
    let out = model.forward(&exp["updown.pixel_values"]).unwrap();
    assert_close(
        "downloaded model",
        &out.last_hidden_state,
        &exp["updown.last_hidden_state"],
        TOL,
    );

    gated_repo(&online, &auth);
}

/// The gated repo: refused without a token, then downloaded with the token file's, then refused
/// with `HF_TOKEN`'s wrong one (which takes precedence over the file).
fn gated_repo(online: &HubOptions, auth: &Mutex<Vec<String>>) {
    let e = resolve_model_with("test-org/gated-v3", online)
        .unwrap_err()
        .to_string();
    for needle in [
        "HTTP 401",
        "gated",
        "no access token",
        "HF_TOKEN",
        "huggingface.co/test-org/gated-v3",
    ] {
        assert!(e.contains(needle), "{needle:?} in {e}");
    }
    assert!(!e.contains('\n'), "one line: {e}");

    let home = std::env::var("HF_HOME").unwrap();
    std::fs::write(
        std::path::Path::new(&home).join("token"),
        format!("{TOKEN}\n"),
    )
    .unwrap();
    let with_file = online.clone().with_token(HubToken::from_env());
    assert_eq!(with_file.token, HubToken::new(TOKEN));
    assert!(
        !format!("{with_file:?}").contains(TOKEN),
        "Debug hides the token"
    );
    auth.lock().unwrap().clear();
    let files = resolve_model_with("test-org/gated-v3", &with_file).unwrap();
    let sent = auth.lock().unwrap().clone();
    assert!(
        !sent.is_empty() && sent.iter().all(|a| *a == format!("Bearer {TOKEN}")),
        "{sent:?}"
    );
    let model = DinoModel::from_pretrained(files.dir.to_str().unwrap(), &LoadOptions::default())
        .unwrap()
        .model;
    assert!(model.as_dinov3().is_some());

    std::env::set_var("HF_TOKEN", "hf_wrong_token");
    let wrong = online.clone().with_token(HubToken::from_env());
    let cache = tempfile::tempdir().unwrap();
    let e = resolve_model_with("test-org/gated-v3", &wrong.with_cache_dir(cache.path()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("HTTP 403") && e.contains("has no access"), "{e}");
    assert!(
        !e.contains("hf_wrong_token") && !e.contains(TOKEN),
        "never prints the token: {e}"
    );
    std::env::remove_var("HF_TOKEN");
}
