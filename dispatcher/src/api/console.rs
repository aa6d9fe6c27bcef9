//! The seat-agent and expert console: static files from `console/static/`, embedded in
//! the binary at build time and served at `/console/`. The console needs no internet (no
//! CDN, no tile server) and talks to the public API with the session cookie.
//!
//! Caching: every file of ours is revalidated (`Cache-Control: no-cache` with a strong
//! `ETag` of its content), so a new server version is picked up at once and an unchanged
//! file costs a 304. Third-party files live under a versioned path (`vendor/leaflet-1.9.4/`,
//! copied unchanged from the npm package, which a console test checks) and are cached for a
//! year as immutable. A content-security policy keeps the pages to our own origin.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use crate::api::error::ApiError;

/// Where the console is served.
pub const CONSOLE_PATH: &str = "/console";

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// Path below `/console/`.
    pub path: &'static str,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The bytes.
    pub body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $content_type:literal) => {
        Asset {
            path: $path,
            content_type: $content_type,
            body: include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../console/static/",
                $path
            )),
        }
    };
}

/// Every file of `console/static/` (a test checks the list against the folder).
pub const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("i18n.js", "text/javascript; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("map.js", "text/javascript; charset=utf-8"),
    asset!(
        "vendor/leaflet-1.9.4/leaflet.js",
        "text/javascript; charset=utf-8"
    ),
    asset!(
        "vendor/leaflet-1.9.4/leaflet.css",
        "text/css; charset=utf-8"
    ),
    asset!("vendor/leaflet-1.9.4/LICENSE", "text/plain; charset=utf-8"),
];

/// Files below this prefix never change under the same path (the version is in it).
const VERSIONED_PREFIX: &str = "vendor/";

/// The strong entity tag of each asset, in `ASSETS` order.
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| {
            let digest = crate::security::sha256(asset.body);
            HeaderValue::from_str(&format!("\"{}\"", hex::encode(&digest[..16])))
                .expect("hex is a valid header value")
        })
        .collect()
});

const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
                   connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; \
                   form-action 'self'";

/// `GET /console`: to the console's index, with the trailing slash its relative links need.
pub async fn redirect() -> Redirect {
    Redirect::permanent("/console/")
}

/// `GET /console/`: the console's page.
pub async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

/// `GET /console/{*path}`: a console file, or a JSON 404.
pub async fn file(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&path, &headers)
}

fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(index) = ASSETS.iter().position(|asset| asset.path == path) else {
        return ApiError::not_found("console file").into_response();
    };
    let asset = &ASSETS[index];
    let etag = &ETAGS[index];
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .any(|tag| tag.trim() == "*" || tag.trim().trim_start_matches("W/") == etag)
        });
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            )],
            asset.body,
        )
            .into_response()
    };
    let response_headers = response.headers_mut();
    response_headers.insert(header::ETAG, etag.clone());
    response_headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if asset.path.starts_with(VERSIONED_PREFIX) {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        }),
    );
    response_headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response_headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response_headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response_headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    response
}
