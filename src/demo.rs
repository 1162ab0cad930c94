//! The agent console (`demo = true`, contract §6): a page at `/demo/` on the
//! public listener that speaks the contract through the stock
//! socket.io-client browser bundle.
//!
//! The page's own three files (`demo/page/`) are compiled in. The bundle is
//! not in the repository: npm installs it (`npm ci --prefix demo`, pinned by
//! `demo/package-lock.json`), and it is read once at startup, so that a
//! missing bundle stops the server at once, naming `demo`, instead of
//! serving a page that cannot connect.

use std::path::{Path, PathBuf};

use axum::Router;
use axum::body::Bytes;
use axum::extract::RawQuery;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

const PAGE: &str = include_str!("../demo/page/index.html");
const SCRIPT: &str = include_str!("../demo/page/console.js");
const STYLE: &str = include_str!("../demo/page/console.css");

/// The bundle inside the npm project `demo/`.
const BUNDLE_IN_NPM_PROJECT: &str = "node_modules/socket.io-client/dist/socket.io.min.js";

/// Where an installed binary finds the bundle, relative to its own directory
/// (`/usr/local/bin` → `/usr/local/share/switchboard/demo/`, as the
/// Dockerfile lays it out).
const BUNDLE_BESIDE_BINARY: &str = "../share/switchboard/demo/socket.io.min.js";

/// The page may load only its own files and talk only to its own server.
/// `ws:`/`wss:` are named because older browsers do not count a websocket
/// to the same host as `'self'`.
const PAGE_POLICY: &str = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; \
                           base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// `demo = true` without the bundle: what to run, and where it was looked for.
#[derive(Debug, thiserror::Error)]
#[error(
    "demo = true needs the socket.io-client browser bundle: run `npm ci --prefix demo` in the source tree \
     (looked for {looked})"
)]
pub struct BundleMissing {
    looked: String,
}

/// The console's files, the bundle read from disk once.
#[derive(Clone)]
pub struct Console {
    bundle: Bytes,
}

impl Console {
    /// Reads the bundle from the first place it is found: beside an
    /// installed binary, the npm project `demo/` under the working
    /// directory, then the one of the source tree the binary was built from
    /// (`cargo run`, the tests).
    pub fn load() -> Result<Self, BundleMissing> {
        let mut candidates = Vec::new();
        if let Some(dir) = std::env::current_exe().ok().as_deref().and_then(Path::parent) {
            candidates.push(dir.join(BUNDLE_BESIDE_BINARY));
        }
        candidates.push(Path::new("demo").join(BUNDLE_IN_NPM_PROJECT));
        candidates.push(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("demo")
                .join(BUNDLE_IN_NPM_PROJECT),
        );
        Self::load_from(&candidates)
    }

    fn load_from(candidates: &[PathBuf]) -> Result<Self, BundleMissing> {
        candidates
            .iter()
            .find_map(|path| std::fs::read(path).ok())
            .map(|bundle| Console { bundle: bundle.into() })
            .ok_or_else(|| BundleMissing {
                looked: candidates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// `/demo/` and its files; anything else under `/demo/` is left to the
    /// listener's 404.
    pub fn router(self) -> Router {
        let bundle = self.bundle;
        Router::new()
            .route("/demo", get(to_page))
            .route("/demo/", get(|| async { page() }))
            .route(
                "/demo/console.js",
                get(|| async { file("text/javascript; charset=utf-8", SCRIPT) }),
            )
            .route(
                "/demo/console.css",
                get(|| async { file("text/css; charset=utf-8", STYLE) }),
            )
            .route(
                "/demo/socket.io.min.js",
                get(move || {
                    let bundle = bundle.clone();
                    async move { file("text/javascript; charset=utf-8", bundle) }
                }),
            )
    }
}

/// `/demo` → `/demo/`, keeping the query (the page's relative URLs need the slash).
async fn to_page(RawQuery(query): RawQuery) -> Redirect {
    match query {
        Some(q) => Redirect::permanent(&format!("/demo/?{q}")),
        None => Redirect::permanent("/demo/"),
    }
}

fn page() -> Response {
    let mut response = file("text/html; charset=utf-8", PAGE);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_POLICY));
    // A `token` in the page's query must not travel on in a Referer.
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

fn file(content_type: &'static str, body: impl Into<Bytes>) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // Always revalidated: a restarted server may bring a new page.
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body.into(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_bundle_names_demo_the_command_and_every_place_looked() {
        let candidates = [PathBuf::from("/nonexistent/a.js"), PathBuf::from("/nonexistent/b.js")];
        let Err(e) = Console::load_from(&candidates) else {
            panic!("loaded a bundle that does not exist");
        };
        let text = e.to_string();
        assert!(text.starts_with("demo = true"), "{text}");
        assert!(text.contains("npm ci --prefix demo"), "{text}");
        assert!(text.contains("/nonexistent/a.js, /nonexistent/b.js"), "{text}");
    }

    #[test]
    fn the_first_bundle_found_is_served() {
        let found = std::env::temp_dir().join(format!("switchboard-demo-bundle-{}.js", std::process::id()));
        std::fs::write(&found, "/* bundle */").unwrap();
        let console = Console::load_from(&[PathBuf::from("/nonexistent/a.js"), found.clone()]);
        let _ = std::fs::remove_file(&found);
        assert_eq!(&console.unwrap().bundle[..], b"/* bundle */");
    }

    #[test]
    fn the_page_renders_no_payload_as_markup() {
        // Contract data reaches the DOM as text only (docs/behaviour.md).
        assert!(!SCRIPT.contains("innerHTML"));
        assert!(!SCRIPT.contains("outerHTML"));
        assert!(!SCRIPT.contains("insertAdjacentHTML"));
        assert!(!SCRIPT.contains("document.write"));
    }
}
