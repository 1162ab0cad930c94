//! Two nodes wired back to back without Redis: what one queues for the
//! channel is handed to the other's receiver.

use serde_json::json;
use socketioxide::SocketIo;
use socketioxide::socket::Sid;

use super::bus::PublisherQueue;
use super::*;
use crate::config::Config;
use crate::delivery::Outbox;
use crate::ids::{AgentId, AgentName, TicketId};

struct Node {
    hub: Hub,
    queue: PublisherQueue,
}

fn node(name: &str) -> Node {
    let config = Config::from_args_and_env(["switchboard", "--redis-url", "redis://127.0.0.1:1"], |_| None).unwrap();
    let (_layer, io) = SocketIo::builder().build_layer();
    let (outbox, _task) = Outbox::start(io);
    let (link, start) = ClusterLink::new(name.to_string(), "redis://127.0.0.1:1").unwrap();
    Node {
        hub: Hub::new(config, name.to_string(), outbox, Some(link)),
        queue: start.queue,
    }
}

/// Hands everything `from` queued to `to`, as the channel would.
async fn relay(from: &mut Node, to: &Node) {
    for text in from.queue.drain() {
        receive(&to.hub, text.as_bytes());
    }
}

fn view(sid: Sid, ticket: &str, agent: &str, name: &str) -> PresenceOp {
    PresenceOp::View {
        sid,
        ticket: TicketId::parse(Some(&json!(ticket))).unwrap(),
        agent: AgentId::parse(Some(&json!(agent))).unwrap(),
        name: AgentName::parse(Some(&json!(name))).unwrap(),
        at: 1000,
    }
}

fn viewers(node: &Node, ticket: &str) -> Vec<String> {
    let ticket = TicketId::parse(Some(&json!(ticket))).unwrap();
    node.hub
        .viewers(&ticket)
        .into_iter()
        .map(|v| v.agent_id.to_string())
        .collect()
}

#[tokio::test]
async fn changes_made_on_one_node_are_replayed_on_the_other() {
    let (mut a, mut b) = (node("a"), node("b"));
    let (ada, bob) = (Sid::new(), Sid::new());
    a.hub.apply_local(view(ada, "1", "7", "Ada")).unwrap();
    b.hub.apply_local(view(bob, "1", "8", "Bob")).unwrap();
    relay(&mut a, &b).await;
    relay(&mut b, &a).await;
    assert_eq!(viewers(&a, "1"), ["7", "8"]);
    assert_eq!(viewers(&b, "1"), ["7", "8"]);
    assert_eq!(b.hub.cluster().unwrap().counts(NodeCounts::default()).nodes, 2);

    a.hub.apply_local(PresenceOp::Disconnect { sid: ada }).unwrap();
    relay(&mut a, &b).await;
    assert_eq!(viewers(&b, "1"), ["8"]);
}

#[tokio::test]
async fn a_node_that_says_bye_is_forgotten_with_its_sockets() {
    let (mut a, b) = (node("a"), node("b"));
    a.hub.apply_local(view(Sid::new(), "1", "7", "Ada")).unwrap();
    a.hub.cluster().unwrap().send(Message::Bye);
    relay(&mut a, &b).await;
    assert!(viewers(&b, "1").is_empty());
    assert_eq!(b.hub.cluster().unwrap().counts(NodeCounts::default()).nodes, 1);
}

#[tokio::test]
async fn a_snapshot_replaces_what_was_known_of_its_sender() {
    let (mut a, b) = (node("a"), node("b"));
    let (kept, gone) = (Sid::new(), Sid::new());
    a.hub.socket_connected(kept, None, || true);
    a.hub.socket_connected(gone, None, || true);
    a.hub.apply_local(view(kept, "1", "7", "Ada")).unwrap();
    a.hub.apply_local(view(gone, "2", "9", "Cy")).unwrap();
    relay(&mut a, &b).await;
    assert_eq!(viewers(&b, "2"), ["9"]);
    // Messages lost in an outage: b never hears of `gone` leaving, nor of a
    // new view; a's snapshot puts b right.
    a.hub.socket_disconnected(gone);
    a.hub.apply_local(view(kept, "3", "7", "Ada")).unwrap();
    a.queue.drain();
    a.hub.send_snapshot();
    relay(&mut a, &b).await;
    assert!(viewers(&b, "2").is_empty());
    assert_eq!(viewers(&b, "3"), ["7"]);
    assert_eq!(viewers(&b, "1"), ["7"]);
}

#[tokio::test(start_paused = true)]
async fn a_silent_node_is_lost_after_node_timeout() {
    let (mut a, b) = (node("a"), node("b"));
    a.hub.apply_local(view(Sid::new(), "1", "7", "Ada")).unwrap();
    relay(&mut a, &b).await;
    let stop = CancellationToken::new();
    let task = tokio::spawn(liveness(
        b.hub.clone(),
        heartbeat_interval(b.hub.config().node_timeout),
        stop.clone(),
    ));
    tokio::time::sleep(b.hub.config().node_timeout - Duration::from_secs(1)).await;
    assert_eq!(viewers(&b, "1"), ["7"], "not lost before node_timeout");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        viewers(&b, "1").is_empty(),
        "lost within node_timeout plus a liveness check"
    );
    stop.cancel();
    task.await.unwrap();
}
