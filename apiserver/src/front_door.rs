//! The one front door on a single machine: requests for the chat gateway's public paths
//! (`onair_domain::contracts::front_door`, the list the Helm chart's Ingress routes by) go to the
//! chat gateway's router in this process, everything else to the apiserver's. Each router keeps
//! its own middleware, limits, CORS policy and metrics, exactly as behind the Ingress.

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::Request;
use axum::response::IntoResponse as _;
use http::StatusCode;
use onair_domain::contracts::front_door::is_chat_gateway_path;
use tower::ServiceExt as _;

/// Where the chat gateway's router is attached once it is up. It starts after the apiserver
/// (it needs the apiserver's signing keys), so until then its paths answer 503, as an Ingress
/// does while a backend has no ready endpoint.
#[derive(Clone, Default)]
pub struct ChatDoor(Arc<OnceLock<Router>>);

impl ChatDoor {
    /// Attach the chat gateway; false (and no change) when one is attached already.
    pub fn attach(&self, chat: Router) -> bool {
        self.0.set(chat).is_ok()
    }
}

/// `api` behind a door that sends chat paths through `chat`.
pub(crate) fn router(api: Router, chat: ChatDoor) -> Router {
    Router::new().fallback_service(tower::service_fn(move |req: Request| {
        let target = if is_chat_gateway_path(req.uri().path()) { chat.0.get().cloned() } else { Some(api.clone()) };
        async move {
            match target {
                Some(router) => router.oneshot(req).await,
                None => Ok(onair_web::HttpError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the chat gateway is starting",
                )
                .into_response()),
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::routing::get;

    async fn call(router: &Router, path: &str) -> (StatusCode, String) {
        let req = http::Request::builder().uri(path).body(axum::body::Body::empty()).unwrap();
        let res = router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        (status, String::from_utf8(axum::body::to_bytes(res.into_body(), 1 << 16).await.unwrap().to_vec()).unwrap())
    }

    #[tokio::test]
    async fn chat_paths_reach_the_chat_router_once_it_is_attached() {
        let api = Router::new().route("/api/streams/{id}", get(|| async { "api" }));
        let door = ChatDoor::default();
        let router = router(api, door.clone());
        assert_eq!(call(&router, "/api/streams/s1").await, (StatusCode::OK, "api".into()));
        let (status, body) = call(&router, "/api/streams/s1/chat").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains(r#""code":"unavailable""#), "{body}");

        assert!(door.attach(Router::new().route("/api/streams/{id}/chat", get(|| async { "chat" }))));
        assert!(!door.attach(Router::new()), "one chat gateway per door");
        assert_eq!(call(&router, "/api/streams/s1/chat").await, (StatusCode::OK, "chat".into()));
        assert_eq!(call(&router, "/api/streams/s1").await, (StatusCode::OK, "api".into()));
        // A chat path the gateway does not serve is its 404, not the apiserver's.
        assert_eq!(call(&router, "/ws/nothing").await.0, StatusCode::NOT_FOUND);
    }
}
