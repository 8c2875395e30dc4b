//! The web app (`web/dist`), compiled into the binary so `onair up` serves it from any directory
//! and after `cargo install`. `web/dist` is committed; `web/scripts/stamp.mjs --check` (run by
//! `scripts/browser-test.sh`) fails when it is older than the sources.

use std::borrow::Cow;

use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use onair_web::HttpError;

#[derive(rust_embed::RustEmbed)]
#[folder = "../web/dist"]
struct Dist;

/// `index.html` must be revalidated on every load so a deploy shows at once; it names the
/// content-hashed assets, which therefore never change and can be cached for a year.
const REVALIDATE: &str = "no-cache";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// `/` and `/assets/*`. The app routes by URL fragment (`/#/watch/...`), so it needs no
/// catch-all: other paths stay JSON 404s like any unknown route.
pub(crate) fn router() -> Router {
    Router::new().route("/", get(|headers: HeaderMap| async move { file("index.html", REVALIDATE, &headers) })).route(
        "/assets/{*path}",
        get(|Path(path): Path<String>, headers: HeaderMap| async move {
            file(&format!("assets/{path}"), IMMUTABLE, &headers)
        }),
    )
}

/// One embedded file with its content type and cache policy; `304` when the browser's copy
/// (`If-None-Match`) is current. The lookup is by exact name, so `..` cannot leave `web/dist`.
fn file(name: &str, cache: &'static str, headers: &HeaderMap) -> Response {
    let Some(file) = Dist::get(name) else {
        return HttpError::new(StatusCode::NOT_FOUND, "not_found", "no such file").into_response();
    };
    let etag = format!("\"{}\"", file.metadata.sha256_hash().iter().map(|b| format!("{b:02x}")).collect::<String>());
    let etag = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\""));
    let cache = HeaderValue::from_static(cache);
    if headers.get(header::IF_NONE_MATCH).is_some_and(|tag| tag == etag) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag), (header::CACHE_CONTROL, cache)]).into_response();
    }
    let content_type =
        HeaderValue::from_str(file.metadata.mimetype()).unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let body = match file.data {
        Cow::Borrowed(bytes) => Bytes::from_static(bytes),
        Cow::Owned(bytes) => Bytes::from(bytes),
    };
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, cache), (header::ETAG, etag)], body).into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tower::ServiceExt as _;

    async fn get(path: &str, if_none_match: Option<&HeaderValue>) -> Response {
        let mut req = http::Request::builder().uri(path);
        if let Some(tag) = if_none_match {
            req = req.header(header::IF_NONE_MATCH, tag);
        }
        router().oneshot(req.body(axum::body::Body::empty()).unwrap()).await.unwrap()
    }

    #[tokio::test]
    async fn the_built_app_is_embedded_with_types_and_cache_policy() {
        let res = get("/", None).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "text/html");
        assert_eq!(res.headers()[header::CACHE_CONTROL], REVALIDATE);
        let etag = res.headers()[header::ETAG].clone();
        let html = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
        let html = String::from_utf8(html.to_vec()).unwrap();
        assert_eq!(get("/", Some(&etag)).await.status(), StatusCode::NOT_MODIFIED, "revalidation is cheap");

        // Every asset index.html names is there, typed, and cached for good.
        let mut seen = 0;
        for (i, _) in html.match_indices("/assets/") {
            let path = &html[i..i + html[i..].find('"').unwrap()];
            let res = get(path, None).await;
            assert_eq!(res.status(), StatusCode::OK, "{path}");
            assert_eq!(res.headers()[header::CACHE_CONTROL], IMMUTABLE);
            let want = if path.ends_with(".js") { "text/javascript" } else { "text/css" };
            assert_eq!(res.headers()[header::CONTENT_TYPE], want, "{path}");
            seen += 1;
        }
        assert!(seen >= 2, "a script and a stylesheet: {html}");
        assert_eq!(get("/assets/nope.js", None).await.status(), StatusCode::NOT_FOUND);
        assert_eq!(get("/assets/../index.html", None).await.status(), StatusCode::NOT_FOUND);
        assert_eq!(get("/SOURCE_HASH", None).await.status(), StatusCode::NOT_FOUND);
    }
}
