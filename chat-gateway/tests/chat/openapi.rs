use crate::helpers::env;

/// Every operation of the gateway's OpenAPI document is routed on the gateway: the router never
/// answers it with its own 404/405. (The other direction, every route documented, is checked
/// by the apiserver's tests, which serve this document merged into theirs.)
#[tokio::test]
async fn every_documented_chat_operation_is_routed() {
    let env = env(1, &[]).await;
    let doc = serde_json::to_value(onair_chat_gateway::openapi()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    let checked = onair_testkit::assert_documented_operations_routed(&env.client, &env.gateways[0].base, paths).await;
    assert!(checked >= 12, "only {checked} operations checked");
}
