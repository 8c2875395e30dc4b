use reqwest::Method;

use crate::helpers::env;

/// Every operation of the gateway's OpenAPI document is routed on the gateway: the router never
/// answers it with its own 404/405. (The other direction, every route documented, is checked
/// by the apiserver's tests, which serve this document merged into theirs.)
#[tokio::test]
async fn every_documented_chat_operation_is_routed() {
    let env = env(1, &[]).await;
    let doc = serde_json::to_value(onair_chat_gateway::openapi()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    let zero = "00000000-0000-0000-0000-000000000000";
    let mut checked = 0;
    for (path, item) in paths {
        let concrete = ["{stream_id}", "{channel_id}", "{user_id}", "{filter_id}"]
            .iter()
            .fold(path.clone(), |p, param| p.replace(param, zero));
        assert!(!concrete.contains('{'), "{path} has a parameter this test does not fill in");
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let res = env
                .client
                .request(m, format!("{}{concrete}", env.gateways[0].base))
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let status = res.status();
            let body: serde_json::Value = res.json().await.unwrap_or_default();
            let unrouted = body["error"]["code"] == "not_found" || body["error"]["code"] == "method_not_allowed";
            assert!(!unrouted, "{method} {path} is documented but not routed ({status})");
            checked += 1;
        }
    }
    assert!(checked >= 12, "only {checked} operations checked");
}
