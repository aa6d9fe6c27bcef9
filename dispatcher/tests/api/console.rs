//! The console's static files, over plain HTTP (no JavaScript): served with the right
//! types, revalidation headers and a content-security policy; a 304 for an unchanged file;
//! a JSON 404 for an unknown one; and every file of `console/static/` is embedded.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};

use crate::api_test;

api_test!(
    console_files_are_served_with_types_and_caching_headers,
    |app| async move {
        for (path, content_type) in [
            ("/console/", "text/html; charset=utf-8"),
            ("/console/index.html", "text/html; charset=utf-8"),
            ("/console/app.js", "text/javascript; charset=utf-8"),
            ("/console/i18n.js", "text/javascript; charset=utf-8"),
            ("/console/app.css", "text/css; charset=utf-8"),
            ("/console/map.js", "text/javascript; charset=utf-8"),
        ] {
            let reply = app.get(path, None).await;
            assert_eq!(reply.status, StatusCode::OK, "{path}");
            assert_eq!(reply.headers[CONTENT_TYPE], content_type, "{path}");
            assert_eq!(reply.headers[CACHE_CONTROL], "no-cache", "{path}");
            assert_eq!(reply.headers["x-content-type-options"], "nosniff", "{path}");
            let csp = reply.headers["content-security-policy"].to_str().unwrap();
            assert!(csp.contains("default-src 'self'"), "{path}: {csp}");
            assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
            assert!(!reply.text.is_empty(), "{path}");
            let etag = reply.headers[ETAG].to_str().unwrap().to_owned();
            assert!(etag.starts_with('"') && etag.len() > 10, "{path}: {etag}");

            // Revalidation: the same tag is a 304 without a body, another tag the full file.
            let unchanged = app
                .client
                .get(app.url(path))
                .header(IF_NONE_MATCH, &etag)
                .send()
                .await
                .unwrap();
            assert_eq!(unchanged.status(), StatusCode::NOT_MODIFIED, "{path}");
            assert_eq!(unchanged.headers()[ETAG].to_str().unwrap(), etag);
            assert!(unchanged.bytes().await.unwrap().is_empty());
            let changed = app
                .client
                .get(app.url(path))
                .header(IF_NONE_MATCH, "\"something-else\"")
                .send()
                .await
                .unwrap();
            assert_eq!(changed.status(), StatusCode::OK, "{path}");
        }

        // The page links only files that are served.
        let page = app.get("/console/", None).await.text;
        for linked in [
            "app.css",
            "app.js",
            "i18n.js",
            "map.js",
            "vendor/leaflet-1.9.4/leaflet.js",
            "vendor/leaflet-1.9.4/leaflet.css",
        ] {
            assert!(page.contains(&format!("\"{linked}\"")), "{linked}");
        }

        // The vendored library is versioned in its path, so it is cached as immutable.
        for (path, content_type) in [
            (
                "/console/vendor/leaflet-1.9.4/leaflet.js",
                "text/javascript; charset=utf-8",
            ),
            (
                "/console/vendor/leaflet-1.9.4/leaflet.css",
                "text/css; charset=utf-8",
            ),
        ] {
            let reply = app.get(path, None).await;
            assert_eq!(reply.status, StatusCode::OK, "{path}");
            assert_eq!(reply.headers[CONTENT_TYPE], content_type, "{path}");
            assert_eq!(
                reply.headers[CACHE_CONTROL], "public, max-age=31536000, immutable",
                "{path}"
            );
            assert_eq!(reply.headers["x-content-type-options"], "nosniff");
        }
        let leaflet = app
            .get("/console/vendor/leaflet-1.9.4/leaflet.js", None)
            .await;
        assert!(
            leaflet.text.contains("Leaflet 1.9.4"),
            "the npm build of 1.9.4"
        );

        // `/console` sends the browser on to `/console/`.
        let no_redirects = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let bare = no_redirects.get(app.url("/console")).send().await.unwrap();
        assert_eq!(bare.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(bare.headers()["location"], "/console/");

        // Unknown files and escapes are a JSON 404, not a file from elsewhere.
        for path in [
            "/console/nope.js",
            "/console/../Cargo.toml",
            "/console/%2e%2e/Cargo.toml",
            "/console/static/app.js",
        ] {
            let reply = app.get(path, None).await;
            assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
            assert_eq!(reply.error_code(), "not_found", "{path}: {}", reply.text);
        }

        // A wrong credential does not keep anyone from the login page.
        let page = app.get("/console/", Some("st_not-a-session")).await;
        assert_eq!(page.status, StatusCode::OK);
        app
    }
);

#[test]
fn every_file_in_console_static_is_embedded() {
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../console/static");
    let on_disk: BTreeSet<String> = walk(&folder, &folder);
    let embedded: BTreeSet<String> = dispatcher::api::console::ASSETS
        .iter()
        .map(|asset| asset.path.to_owned())
        .collect();
    assert_eq!(on_disk, embedded);
    for asset in dispatcher::api::console::ASSETS {
        let bytes = std::fs::read(folder.join(asset.path)).unwrap();
        assert_eq!(bytes, asset.body, "{} is stale", asset.path);
    }
}

fn walk(root: &std::path::Path, folder: &std::path::Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(walk(root, &path));
        } else {
            found.insert(
                path.strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/"),
            );
        }
    }
    found
}
