//! The real download path (hf-hub's blocking client) against a Hub stand-in on loopback: the HF
//! resolve protocol (`GET {endpoint}/{repo}/resolve/{revision}/{file}` with `Range`, answered with
//! `ETag`, `X-Repo-Commit` and `Content-Range`), a 404 for the optional `preprocessor_config.json`,
//! then the files in the standard cache layout, found again offline, and the model they load.
//! `HF_ENDPOINT` is process-wide, so this file holds a single test.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{assert_close, fixture, load_expected, TOL};
use dinoreg::io::hub::{resolve_model_with, HubOptions};
use dinoreg::Vit;
use dinoreg::{Dinov2Model, LoadOptions};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// Serves `tests/fixtures/model/reg4/*` as the Hub would, until the listener is dropped.
fn serve(listener: TcpListener, requests: Arc<AtomicUsize>) {
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { break };
        requests.fetch_add(1, Ordering::SeqCst);
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut request_line = String::new();
        reader.read_line(&mut request_line).unwrap();
        // `Range: bytes=S-E` (metadata asks for bytes=0-0) or `bytes=S-` (the download).
        let mut range: (usize, Option<usize>) = (0, None);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
                let (a, b) = v.trim().split_once('-').unwrap();
                range = (a.parse().unwrap(), b.parse().ok());
            }
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("/")
            .to_string();
        let file = path.rsplit('/').next().unwrap_or("");
        let expected_prefix = "/test-org/tiny-reg4/resolve/main/";
        let body = path
            .starts_with(expected_prefix)
            .then(|| std::fs::read(fixture(&format!("model/reg4/{file}"))).ok())
            .flatten();
        let response = match body {
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
    let counter = requests.clone();
    std::thread::spawn(move || serve(listener, counter));
    std::env::set_var("HF_ENDPOINT", format!("http://127.0.0.1:{port}"));

    let cache = tempfile::tempdir().unwrap();
    let online = HubOptions {
        cache_dir: cache.path().to_path_buf(),
        offline: false,
        progress: false,
    };
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
    let offline = HubOptions {
        offline: true,
        ..online
    };
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
}
