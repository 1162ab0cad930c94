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
    let metrics = crate::metrics::Metrics::new();
    let (outbox, _task) = Outbox::start(io, metrics.slow_client_disconnects.clone());
    let (link, start) = ClusterLink::new(name.to_string(), &config, "redis://127.0.0.1:1").unwrap();
    Node {
        hub: Hub::new(config, name.to_string(), outbox, Some(link), metrics),
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
        device: Default::default(),
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

#[tokio::test]
async fn v2_presence_detail_is_replayed_and_snapshotted() {
    let (mut a, mut b) = (node("a"), node("b"));
    let (web, phone) = (Sid::new(), Sid::new());
    a.hub.socket_connected(phone, None, || true);
    a.hub.apply_local(view(web, "1", "7", "Ada")).unwrap();
    relay(&mut a, &b).await;
    let ticket = TicketId::parse(Some(&json!("1"))).unwrap();
    let agent = AgentId::parse(Some(&json!("7"))).unwrap();
    b.hub
        .apply_local(PresenceOp::View {
            sid: phone,
            ticket: ticket.clone(),
            agent: agent.clone(),
            name: AgentName::parse(Some(&json!("Ada"))).unwrap(),
            at: 1001,
            device: crate::ids::Device::parse(Some(&json!("mobile"))).unwrap(),
        })
        .unwrap();
    b.hub
        .apply_local(PresenceOp::Draft {
            sid: phone,
            ticket: ticket.clone(),
            agent: agent.clone(),
            editing: true,
            at: 1002,
        })
        .unwrap();
    relay(&mut b, &a).await;
    for node in [&a, &b] {
        let v = &node.hub.viewers(&ticket)[0];
        assert_eq!(
            v.devices.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
            ["mobile", "web"]
        );
        assert!(v.editing);
    }
    // b's snapshot carries the phone tab's device and draft to a fresh node.
    let mut c = node("c");
    b.hub.socket_connected(phone, None, || true);
    b.hub.send_snapshot();
    relay(&mut b, &c).await;
    let v = &c.hub.viewers(&ticket)[0];
    assert_eq!((v.editing, v.devices.len()), (true, 1));
    c.queue.drain();
}

#[tokio::test]
async fn a_ticket_update_crosses_the_channel_and_counts_only_local_agents_while_redis_is_down() {
    let (mut a, mut b) = (node("a"), node("b"));
    let (ada, bob) = (Sid::new(), Sid::new());
    a.hub.socket_connected(ada, None, || true);
    a.hub.socket_connected(bob, None, || true);
    a.hub.apply_local(view(ada, "1", "7", "Ada")).unwrap();
    a.hub.apply_local(view(bob, "1", "8", "Bob")).unwrap();
    relay(&mut a, &b).await;
    let ticket = TicketId::parse(Some(&json!("1"))).unwrap();
    let update =
        crate::ticket_updates::TicketUpdate::parse(ticket, &json!({"kind": "reply", "by": {"agentId": "8"}}), 5)
            .unwrap();
    // These links never reached Redis: a publish reaches this node only, and
    // only agents with a socket here count (Ada on a; nobody on b).
    assert_eq!(a.hub.ticket_updated(&update), (crate::hub::Reach::ThisNodeOnly, 1));
    assert_eq!(b.hub.ticket_updated(&update), (crate::hub::Reach::ThisNodeOnly, 0));
    let sent: Vec<Envelope> = b
        .queue
        .drain()
        .iter()
        .map(|t| serde_json::from_str(t).unwrap())
        .collect();
    assert!(
        sent.iter()
            .any(|e| e.message == Message::TicketUpdated { update: update.clone() }),
        "{sent:?}"
    );
    // The other node takes it (delivery to its own viewers).
    relay(&mut a, &b).await;
}

#[test]
fn refusals_of_the_history_scripts_are_logged_once_a_minute() {
    let log = RefusalLog::default();
    let moved = redis::RedisError::from((redis::ErrorKind::Client, "MOVED 1234 127.0.0.1:7001"));
    assert!(log.refused("publish", &moved), "the first one is logged");
    assert!(!log.refused("publish", &moved), "the next ones within a minute are not");
    assert!(!log.refused("read", &moved));
}
