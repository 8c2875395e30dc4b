use std::collections::HashMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{collect_events, env, next_json, send, wait_for};

/// Three replicas, a socket on each: a message sent to any one reaches every socket exactly
/// once, the sender's own included, in the same order everywhere.
#[tokio::test]
async fn three_replicas_deliver_every_message_exactly_once_in_one_order() {
    let env = env(3, &[]).await;
    let owner = env.register("owner").await;
    let alice = env.register("alice").await;
    let bob = env.register("bob").await;
    let stream = env.live_stream(&owner).await;

    let mut a = env.connect(0, &stream, Some(&alice.token)).await;
    let mut b = env.connect(1, &stream, Some(&bob.token)).await;
    let mut viewer = env.connect(2, &stream, None).await;

    for i in 0..10 {
        send(&mut a, &format!("from alice {i}"), &format!("a{i}")).await;
        send(&mut b, &format!("from bob {i}"), &format!("b{i}")).await;
    }
    let mut orders = Vec::new();
    for ws in [&mut a, &mut b, &mut viewer] {
        let events = collect_events(ws, 40, Duration::from_secs(3)).await;
        let messages: Vec<&Value> = events.iter().filter(|e| e["type"] == "message").collect();
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for m in &messages {
            *seen.entry(m["id"].as_str().unwrap()).or_default() += 1;
        }
        assert_eq!(messages.len(), 20, "every message arrives: {events:?}");
        assert!(seen.values().all(|n| *n == 1), "exactly once");
        orders.push(messages.iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>());
    }
    assert_eq!(orders[0], orders[1]);
    assert_eq!(orders[1], orders[2], "one order for everyone");
    // Acks came to the senders only.
    let (ack_a, ack_b) = (
        collect_events(&mut a, 1, Duration::from_millis(300)).await,
        collect_events(&mut b, 1, Duration::from_millis(300)).await,
    );
    assert!(ack_a.iter().chain(ack_b.iter()).all(|e| e["type"] != "message"), "no extra deliveries");

    // Rooms exist only where sockets are: the viewer's replica drops its interest on close.
    assert_eq!(env.gateways[2].state.hub.len(), 1);
    drop(viewer);
    crate::helpers::eventually_empty(&env.gateways[2].state).await;
}

#[tokio::test]
async fn senders_get_acks_and_history_persists_through_the_persister() {
    let env = env(1, &[]).await;
    let owner = env.register("host").await;
    let carol = env.register("carol").await;
    let stream = env.live_stream(&owner).await;
    let mut ws = env.connect(0, &stream, Some(&carol.token)).await;
    send(&mut ws, "first!", "r1").await;
    let mut got_ack = false;
    let mut got_msg = None;
    for ev in collect_events(&mut ws, 2, Duration::from_secs(3)).await {
        match ev["type"].as_str() {
            Some("ack") => {
                assert_eq!(ev["ref"], "r1");
                got_ack = true;
            }
            Some("message") => got_msg = Some(ev),
            _ => {}
        }
    }
    assert!(got_ack);
    let msg = got_msg.expect("own message delivered");
    assert_eq!((msg["text"].as_str(), msg["user"]["name"].as_str()), (Some("first!"), Some("carol")));

    for i in 0..4 {
        let (status, body) = env
            .rest(
                0,
                reqwest::Method::POST,
                &format!("/api/streams/{stream}/chat"),
                Some(&carol.token),
                Some(json!({"text": format!("rest {i}")})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let history = crate::helpers::eventually_history(&env, &stream, 5).await;
    let texts: Vec<&str> = history.iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts, vec!["rest 3", "rest 2", "rest 1", "rest 0", "first!"], "newest first");

    let (_, page) = env.rest(0, reqwest::Method::GET, &format!("/api/streams/{stream}/chat?limit=2"), None, None).await;
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (_, page2) = env
        .rest(0, reqwest::Method::GET, &format!("/api/streams/{stream}/chat?limit=2&cursor={cursor}"), None, None)
        .await;
    assert_eq!(page2["items"][0]["text"], "rest 1");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM chat_messages WHERE stream_id = $1::uuid")
        .bind(&stream)
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(n, 5, "persisted once each");
}

#[tokio::test]
async fn a_reconnecting_client_gets_what_it_missed() {
    let env = env(2, &[]).await;
    let owner = env.register("streamer").await;
    let dan = env.register("dan").await;
    let stream = env.live_stream(&owner).await;
    let mut ws = env.connect(0, &stream, Some(&dan.token)).await;
    send(&mut ws, "before the drop", "1").await;
    let first = wait_for(&mut ws, "message").await;
    drop(ws);
    for i in 0..3 {
        env.rest(
            1,
            reqwest::Method::POST,
            &format!("/api/streams/{stream}/chat"),
            Some(&owner.token),
            Some(json!({"text": format!("missed {i}")})),
        )
        .await;
    }
    crate::helpers::eventually_history(&env, &stream, 4).await;
    let mut ws = env.connect(1, &stream, None).await;
    ws_send_json(&mut ws, json!({"type": "hello", "last_id": first["id"]})).await;
    let frame = next_json(&mut ws).await;
    assert_eq!(frame["type"], "batch", "{frame}");
    let texts: Vec<&str> = frame["events"].as_array().unwrap().iter().map(|e| e["text"].as_str().unwrap()).collect();
    assert_eq!(texts, vec!["missed 0", "missed 1", "missed 2"]);
}

/// A replica shutting down tells its sockets to reconnect (close 1012) instead of vanishing,
/// finishes within its drain time, and a client that reconnects to another replica with its
/// last id misses nothing sent meanwhile.
#[tokio::test]
async fn a_draining_replica_tells_sockets_to_reconnect_and_nothing_is_missed() {
    use futures::StreamExt as _;
    let mut env = env(2, &[]).await;
    let owner = env.register("drainer").await;
    let eve = env.register("eve").await;
    let stream = env.live_stream(&owner).await;
    let mut ws = env.connect(1, &stream, Some(&eve.token)).await;
    send(&mut ws, "on the replica going away", "1").await;
    let last = wait_for(&mut ws, "message").await;

    let leaving = env.gateways.remove(1);
    let shutdown = tokio::spawn(leaving.shut_down());
    let close = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match ws.next().await {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                other => panic!("the socket ended without a close frame: {other:?}"),
            }
        }
    })
    .await
    .expect("told at once");
    let frame = close.expect("a close frame with a code");
    assert_eq!(u16::from(frame.code), 1012, "{frame:?}");
    assert!(frame.reason.contains("reconnect"), "{frame:?}");
    let took = shutdown.await.unwrap();
    assert!(took < Duration::from_secs(8), "drained in {took:?}");

    // Meanwhile the room goes on; reconnecting elsewhere with the last id gets it all.
    for i in 0..3 {
        let (status, _) = env
            .rest(
                0,
                reqwest::Method::POST,
                &format!("/api/streams/{stream}/chat"),
                Some(&owner.token),
                Some(json!({"text": format!("while away {i}")})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    crate::helpers::eventually_history(&env, &stream, 4).await;
    let mut ws = env.connect(0, &stream, Some(&eve.token)).await;
    ws_send_json(&mut ws, json!({"type": "hello", "last_id": last["id"]})).await;
    let frame = next_json(&mut ws).await;
    let texts: Vec<&str> = frame["events"].as_array().unwrap().iter().map(|e| e["text"].as_str().unwrap()).collect();
    assert_eq!(texts, vec!["while away 0", "while away 1", "while away 2"], "{frame}");
}

/// A gateway stopped while messages flow loses none that were acknowledged: the persister of
/// another replica (durable consumer) writes them all.
#[tokio::test]
async fn acknowledged_messages_survive_a_gateway_restart() {
    let mut env = env(2, &[]).await;
    let owner = env.register("durable").await;
    let stream = env.live_stream(&owner).await;
    let mut acked: Vec<String> = Vec::new();
    for round in 0..3 {
        for i in 0..10 {
            let (status, body) = env
                .rest(
                    0,
                    reqwest::Method::POST,
                    &format!("/api/streams/{stream}/chat"),
                    Some(&owner.token),
                    Some(json!({"text": format!("r{round} m{i}")})),
                )
                .await;
            if status == StatusCode::CREATED {
                acked.push(body["id"].as_str().unwrap().to_owned());
            }
        }
        // Replace replica 1 (a persister) mid-flow.
        let old = env.gateways.remove(1);
        old.stop().await;
        let fresh = env.start_gateway(&[]).await;
        env.gateways.push(fresh);
    }
    assert_eq!(acked.len(), 30);
    let history = crate::helpers::eventually_history(&env, &stream, 30).await;
    let mut stored: Vec<String> = history.iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect();
    stored.sort();
    acked.sort();
    assert_eq!(stored, acked, "every acknowledged message is in history, once");
}

async fn ws_send_json(ws: &mut crate::helpers::Socket, v: Value) {
    use futures::SinkExt as _;
    ws.send(tokio_tungstenite::tungstenite::Message::Text(v.to_string().into())).await.unwrap();
}
