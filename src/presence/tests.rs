use socketioxide::socket::Sid;

use super::*;
use crate::error::ClientError;
use crate::ids::Device;
use serde_json::json;

const TYPING_MS: Millis = 10_000;
const STALE_MS: Millis = 1_800_000;
const IDLE_MS: Millis = 300_000;

fn registry() -> ViewerRegistry {
    ViewerRegistry::new(PresenceRules {
        typing_timeout_ms: TYPING_MS,
        stale_after_ms: STALE_MS,
        max_tickets_per_socket: 3,
        idle_after_ms: IDLE_MS,
    })
}

fn t(id: &str) -> TicketId {
    TicketId::parse(Some(&json!(id))).unwrap()
}
fn a(id: &str) -> AgentId {
    AgentId::parse(Some(&json!(id))).unwrap()
}
fn n(name: &str) -> AgentName {
    AgentName::parse(Some(&json!(name))).unwrap()
}
fn sid() -> Sid {
    Sid::new()
}

fn kinds(events: &[PresenceEvent]) -> Vec<&'static str> {
    events
        .iter()
        .map(|e| match e {
            PresenceEvent::JoinRoom { .. } => "join",
            PresenceEvent::LeaveRoom { .. } => "leave",
            PresenceEvent::ViewersUpdated { .. } => "viewers:updated",
            PresenceEvent::ViewersTo { .. } => "viewers:to",
            PresenceEvent::CollisionWarning { .. } => "collision:warning",
            PresenceEvent::AgentJoined { .. } => "agent:joined",
            PresenceEvent::AgentTyping { .. } => "agent:typing",
            PresenceEvent::AgentStoppedTyping { .. } => "agent:stopped_typing",
            PresenceEvent::AgentLeft { .. } => "agent:left",
            PresenceEvent::AgentLeftTo { .. } => "agent:left:to",
        })
        .collect()
}

fn left_reason(events: &[PresenceEvent]) -> Option<LeaveReason> {
    events.iter().find_map(|e| match e {
        PresenceEvent::AgentLeft { reason, .. } => Some(*reason),
        _ => None,
    })
}

#[test]
fn first_viewer_joins_without_warning() {
    let mut r = registry();
    let s = sid();
    let (viewers, events) = r.view(s, &t("1"), &a("7"), &n("Ada"), 1000).unwrap();
    assert_eq!(kinds(&events), ["join", "agent:joined", "viewers:updated"]);
    assert_eq!(viewers.len(), 1);
    assert_eq!(viewers[0].since, 1000);
    assert_eq!(viewers[0].status, ViewerStatus::Viewing);
    assert_eq!(viewers[0].typing_started_at, None);
    match &events[1] {
        PresenceEvent::AgentJoined { except, since, .. } => {
            assert_eq!(except, &vec![s]);
            assert_eq!(*since, 1000);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn second_agent_gets_collision_warning_about_the_first() {
    let mut r = registry();
    let (s1, s2) = (sid(), sid());
    r.view(s1, &t("1"), &a("7"), &n("Ada"), 1000).unwrap();
    let (viewers, events) = r.view(s2, &t("1"), &a("8"), &n("Bob"), 2000).unwrap();
    assert_eq!(
        kinds(&events),
        ["join", "collision:warning", "agent:joined", "viewers:updated"]
    );
    let PresenceEvent::CollisionWarning { sid: to, others, .. } = &events[1] else {
        panic!()
    };
    assert_eq!(*to, s2);
    assert_eq!(others.len(), 1);
    assert_eq!(others[0].agent_id, a("7"));
    assert_eq!(
        collision_message(others),
        ("warning", "Ada is viewing this ticket".to_string())
    );
    assert_eq!(
        viewers.iter().map(|v| v.agent_id.as_str()).collect::<Vec<_>>(),
        ["7", "8"]
    );
}

#[test]
fn warning_is_critical_when_another_agent_types() {
    let mut r = registry();
    let (s1, s2) = (sid(), sid());
    r.view(s1, &t("1"), &a("7"), &n("Ada"), 1000).unwrap();
    r.typing(s1, &t("1"), &a("7"), 1500).unwrap();
    let (_, events) = r.view(s2, &t("1"), &a("8"), &n("Bob"), 2000).unwrap();
    let PresenceEvent::CollisionWarning { others, .. } = &events[1] else {
        panic!()
    };
    assert_eq!(
        collision_message(others),
        ("critical", "Ada is typing a reply".to_string())
    );
}

#[test]
fn collision_message_names_several_agents() {
    let v = |name: &str, status| ViewerView {
        agent_id: a(name),
        agent_name: n(name),
        status,
        since: 1,
        typing_started_at: None,
        editing: false,
        idle: false,
        devices: vec![Device::default()],
    };
    let others = [
        v("Ada", ViewerStatus::Viewing),
        v("Bob", ViewerStatus::Viewing),
        v("Cy", ViewerStatus::Viewing),
    ];
    assert_eq!(collision_message(&others).1, "Ada, Bob and Cy are viewing this ticket");
    let others = [
        v("Ada", ViewerStatus::Typing),
        v("Bob", ViewerStatus::Viewing),
        v("Cy", ViewerStatus::Typing),
    ];
    assert_eq!(
        collision_message(&others),
        ("critical", "Ada and Cy are typing a reply".to_string())
    );
}

#[test]
fn viewers_are_ordered_by_since_then_agent_id() {
    let mut r = registry();
    r.view(sid(), &t("1"), &a("b"), &n("B"), 2000).unwrap();
    r.view(sid(), &t("1"), &a("c"), &n("C"), 1000).unwrap();
    r.view(sid(), &t("1"), &a("a"), &n("A"), 2000).unwrap();
    let ids: Vec<_> = r.list(&t("1")).into_iter().map(|v| v.agent_id.to_string()).collect();
    assert_eq!(ids, ["c", "a", "b"]);
}

#[test]
fn second_tab_of_same_agent_is_one_viewer_and_warns_only_about_others() {
    let mut r = registry();
    let (tab1, tab2, bob) = (sid(), sid(), sid());
    r.view(tab1, &t("1"), &a("7"), &n("Ada"), 1000).unwrap();
    r.view(bob, &t("1"), &a("8"), &n("Bob"), 1500).unwrap();
    let (viewers, events) = r.view(tab2, &t("1"), &a("7"), &n("Ada"), 3000).unwrap();
    assert_eq!(kinds(&events), ["join", "collision:warning", "viewers:to"]);
    let PresenceEvent::CollisionWarning { others, .. } = &events[1] else {
        panic!()
    };
    assert_eq!(others.iter().map(|v| v.agent_id.as_str()).collect::<Vec<_>>(), ["8"]);
    let PresenceEvent::ViewersTo { sid: to, .. } = &events[2] else {
        panic!()
    };
    assert_eq!(*to, tab2);
    assert_eq!(viewers.len(), 2);
    assert_eq!(viewers[0].since, 1000, "since is the earliest view");
}

#[test]
fn repeated_view_is_a_silent_heartbeat_that_keeps_since() {
    let mut r = registry();
    let s = sid();
    r.view(s, &t("1"), &a("7"), &n("Ada"), 1000).unwrap();
    let (viewers, events) = r.view(s, &t("1"), &a("7"), &n("Ada"), 5000).unwrap();
    assert!(events.is_empty());
    assert_eq!(viewers[0].since, 1000);
    // The heartbeat is activity: not stale at 1000 + STALE_MS.
    assert!(r.sweep_stale(1000 + STALE_MS, |_| true).0.is_empty());
    assert_eq!(
        left_reason(&r.sweep_stale(5000 + STALE_MS, |_| true).0),
        Some(LeaveReason::Stale)
    );
}

#[test]
fn renamed_heartbeat_tells_the_room() {
    let mut r = registry();
    let s = sid();
    r.view(s, &t("1"), &a("7"), &n("Ada"), 1000).unwrap();
    let (viewers, events) = r.view(s, &t("1"), &a("7"), &n("Ada L."), 2000).unwrap();
    assert_eq!(kinds(&events), ["viewers:updated"]);
    assert_eq!(viewers[0].agent_name.as_str(), "Ada L.");
}

#[test]
fn switching_agent_on_a_socket_leaves_as_the_old_one() {
    let mut r = registry();
    let s = sid();
    r.view(s, &t("1"), &a("7"), &n("Ada"), 1000).unwrap();
    let (viewers, events) = r.view(s, &t("1"), &a("8"), &n("Bob"), 2000).unwrap();
    assert_eq!(left_reason(&events), Some(LeaveReason::Left));
    assert_eq!(viewers.iter().map(|v| v.agent_id.as_str()).collect::<Vec<_>>(), ["8"]);
    assert!(matches!(
        r.typing(s, &t("1"), &a("7"), 2100),
        Err(ClientError::NotViewing(_))
    ));
    assert!(r.typing(s, &t("1"), &a("8"), 2100).is_ok());
}

#[test]
fn ticket_limit_per_socket() {
    let mut r = registry();
    let s = sid();
    for i in 0..3 {
        r.view(s, &t(&i.to_string()), &a("7"), &n("Ada"), 1000).unwrap();
    }
    assert!(matches!(
        r.view(s, &t("9"), &a("7"), &n("Ada"), 1000),
        Err(ClientError::LimitExceeded(_))
    ));
    // Re-viewing a ticket already counted is fine, and so is another socket.
    assert!(r.view(s, &t("0"), &a("7"), &n("Ada"), 1000).is_ok());
    assert!(r.view(sid(), &t("9"), &a("7"), &n("Ada"), 1000).is_ok());
    // Leaving frees a place.
    r.leave(s, &t("0"), &a("7")).unwrap();
    assert!(r.view(s, &t("9"), &a("7"), &n("Ada"), 1000).is_ok());
}

#[test]
fn typing_and_stop_typing_require_viewing() {
    let mut r = registry();
    let s = sid();
    assert!(matches!(
        r.typing(s, &t("1"), &a("7"), 0),
        Err(ClientError::NotViewing(_))
    ));
    assert!(matches!(
        r.stop_typing(s, &t("1"), &a("7"), 0),
        Err(ClientError::NotViewing(_))
    ));
    assert!(matches!(r.leave(s, &t("1"), &a("7")), Err(ClientError::NotViewing(_))));
    r.view(s, &t("1"), &a("7"), &n("Ada"), 0).unwrap();
    assert!(matches!(
        r.typing(s, &t("1"), &a("8"), 0),
        Err(ClientError::NotViewing(_))
    ));
    assert!(matches!(
        r.typing(sid(), &t("1"), &a("7"), 0),
        Err(ClientError::NotViewing(_))
    ));
}

#[test]
fn typing_is_broadcast_once_and_keeps_its_start() {
    let mut r = registry();
    let s = sid();
    r.view(s, &t("1"), &a("7"), &n("Ada"), 0).unwrap();
    let events = r.typing(s, &t("1"), &a("7"), 100).unwrap();
    assert_eq!(kinds(&events), ["agent:typing", "viewers:updated"]);
    let PresenceEvent::AgentTyping { except, .. } = &events[0] else {
        panic!()
    };
    assert_eq!(except, &vec![s]);
    assert!(r.typing(s, &t("1"), &a("7"), 5000).unwrap().is_empty());
    let v = &r.list(&t("1"))[0];
    assert_eq!(v.status, ViewerStatus::Typing);
    assert_eq!(v.typing_started_at, Some(100));
    // Renewed at 5000: nothing expires at 100 + TYPING_MS.
    assert!(r.expire_typing(100 + TYPING_MS).is_empty());
    assert_eq!(r.next_typing_deadline(), Some(5000 + TYPING_MS));
    let events = r.expire_typing(5000 + TYPING_MS);
    assert_eq!(kinds(&events), ["agent:stopped_typing", "viewers:updated"]);
    assert_eq!(r.list(&t("1"))[0].status, ViewerStatus::Viewing);
    assert_eq!(r.next_typing_deadline(), None);
}

#[test]
fn stop_typing_falls_back_to_viewing() {
    let mut r = registry();
    let s = sid();
    r.view(s, &t("1"), &a("7"), &n("Ada"), 0).unwrap();
    assert!(
        r.stop_typing(s, &t("1"), &a("7"), 10).unwrap().is_empty(),
        "not typing: nothing to say"
    );
    r.typing(s, &t("1"), &a("7"), 20).unwrap();
    let events = r.stop_typing(s, &t("1"), &a("7"), 30).unwrap();
    assert_eq!(kinds(&events), ["agent:stopped_typing", "viewers:updated"]);
    assert_eq!(r.next_typing_deadline(), None);
}

#[test]
fn agent_types_while_any_tab_types() {
    let mut r = registry();
    let (tab1, tab2) = (sid(), sid());
    r.view(tab1, &t("1"), &a("7"), &n("Ada"), 0).unwrap();
    r.view(tab2, &t("1"), &a("7"), &n("Ada"), 0).unwrap();
    r.typing(tab1, &t("1"), &a("7"), 100).unwrap();
    // The second tab typing too broadcasts nothing new.
    assert!(r.typing(tab2, &t("1"), &a("7"), 200).unwrap().is_empty());
    let events = r.typing(tab1, &t("1"), &a("7"), 300).unwrap();
    assert!(events.is_empty());
    assert!(
        r.stop_typing(tab1, &t("1"), &a("7"), 400).unwrap().is_empty(),
        "tab 2 still types"
    );
    assert_eq!(r.list(&t("1"))[0].typing_started_at, Some(200));
    let events = r.stop_typing(tab2, &t("1"), &a("7"), 500).unwrap();
    assert_eq!(kinds(&events), ["agent:stopped_typing", "viewers:updated"]);
    let PresenceEvent::AgentStoppedTyping { except, .. } = &events[0] else {
        panic!()
    };
    assert_eq!(except.len(), 2);
}

#[test]
fn leave_tells_the_rest_and_disconnect_waits_for_the_last_tab() {
    let mut r = registry();
    let (tab1, tab2, bob) = (sid(), sid(), sid());
    r.view(tab1, &t("1"), &a("7"), &n("Ada"), 0).unwrap();
    r.view(tab2, &t("1"), &a("7"), &n("Ada"), 0).unwrap();
    r.view(bob, &t("1"), &a("8"), &n("Bob"), 0).unwrap();
    let events = r.disconnect(tab1, LeaveReason::Disconnected);
    assert_eq!(kinds(&events), ["leave"], "the agent still views from tab 2");
    let events = r.leave(tab2, &t("1"), &a("7")).unwrap();
    assert_eq!(kinds(&events), ["leave", "agent:left", "viewers:updated"]);
    assert_eq!(left_reason(&events), Some(LeaveReason::Left));
    let events = r.disconnect(bob, LeaveReason::Disconnected);
    assert_eq!(left_reason(&events), Some(LeaveReason::Disconnected));
    assert_eq!(r.stats(), PresenceStats::default());
}

#[test]
fn leaving_a_typing_viewer_stops_its_typing_first() {
    let mut r = registry();
    let (tab1, tab2) = (sid(), sid());
    r.view(tab1, &t("1"), &a("7"), &n("Ada"), 0).unwrap();
    r.view(tab2, &t("1"), &a("7"), &n("Ada"), 0).unwrap();
    r.typing(tab1, &t("1"), &a("7"), 10).unwrap();
    let events = r.leave(tab1, &t("1"), &a("7")).unwrap();
    assert_eq!(kinds(&events), ["leave", "agent:stopped_typing", "viewers:updated"]);
    assert_eq!(r.next_typing_deadline(), None);
}

#[test]
fn stale_viewers_are_swept_and_their_sockets_told() {
    let mut r = registry();
    let (ada, bob) = (sid(), sid());
    r.view(ada, &t("1"), &a("7"), &n("Ada"), 0).unwrap();
    r.view(bob, &t("1"), &a("8"), &n("Bob"), 0).unwrap();
    r.typing(bob, &t("1"), &a("8"), 1000).unwrap();
    assert!(r.sweep_stale(STALE_MS - 1, |_| true).0.is_empty());
    let (events, removed) = r.sweep_stale(STALE_MS, |_| true);
    assert_eq!(removed.len(), 1);
    // Ada is stale: the room, her own socket included, hears it; then she leaves the room.
    assert_eq!(kinds(&events), ["agent:left", "leave", "viewers:updated"]);
    let PresenceEvent::AgentLeft { except, reason, .. } = &events[0] else {
        panic!()
    };
    assert!(except.is_empty());
    assert_eq!(*reason, LeaveReason::Stale);
    assert!(matches!(
        r.typing(ada, &t("1"), &a("7"), STALE_MS),
        Err(ClientError::NotViewing(_))
    ));
    assert_eq!(r.list(&t("1")).len(), 1);
}

#[test]
fn disconnect_of_unknown_socket_is_a_no_op() {
    let mut r = registry();
    assert!(r.disconnect(sid(), LeaveReason::Disconnected).is_empty());
}

// Replication: changes made on another node, replayed here.

fn view_op(s: Sid, ticket: &str, agent: &str, name: &str, at: Millis) -> PresenceOp {
    PresenceOp::View {
        sid: s,
        ticket: t(ticket),
        agent: a(agent),
        name: n(name),
        at,
        device: Device::default(),
    }
}

#[test]
fn one_agent_on_two_nodes_is_one_viewer_since_its_earliest_view() {
    let mut r = registry();
    let (here, there) = (sid(), sid());
    r.view(here, &t("1"), &a("7"), &n("Ada"), 2000).unwrap();
    // The other node's view happened earlier but arrives later.
    let events = r
        .apply(&view_op(there, "1", "7", "Ada", 1000), Origin::Remote)
        .unwrap()
        .events;
    assert_eq!(
        kinds(&events),
        ["join", "viewers:to"],
        "no agent:joined for a known agent"
    );
    let list = r.list(&t("1"));
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].since, 1000);
}

#[test]
fn remote_views_are_not_limited_here() {
    let mut r = registry();
    let there = sid();
    for i in 0..5 {
        assert!(
            r.apply(&view_op(there, &i.to_string(), "7", "Ada", 0), Origin::Remote)
                .is_ok()
        );
    }
    assert!(matches!(
        r.apply(&view_op(sid(), "9", "7", "Ada", 0), Origin::Local).map(|_| ()),
        Ok(())
    ));
}

#[test]
fn a_lost_node_takes_its_viewers_with_node_lost() {
    let mut r = registry();
    let (here, there) = (sid(), sid());
    r.view(here, &t("1"), &a("7"), &n("Ada"), 0).unwrap();
    r.apply(&view_op(there, "1", "8", "Bob", 0), Origin::Remote).unwrap();
    let events = r.disconnect(there, LeaveReason::NodeLost);
    assert_eq!(left_reason(&events), Some(LeaveReason::NodeLost));
    let PresenceEvent::AgentLeft { except, .. } = events
        .iter()
        .find(|e| matches!(e, PresenceEvent::AgentLeft { .. }))
        .unwrap()
    else {
        unreachable!()
    };
    assert!(except.is_empty(), "node_lost goes to the whole room");
}

#[test]
fn sync_socket_makes_a_remote_socket_what_its_snapshot_says() {
    let mut r = registry();
    let there = sid();
    r.apply(&view_op(there, "1", "8", "Bob", 0), Origin::Remote).unwrap();
    r.apply(&view_op(there, "2", "8", "Bob", 0), Origin::Remote).unwrap();
    let entry = SocketPresence {
        sid: there,
        ticket: t("2"),
        agent: a("8"),
        name: n("Bob"),
        since: 0,
        last_activity: 500,
        typing: Some((400, 400 + TYPING_MS)),
        device: Device::default(),
        draft: false,
        away: false,
        timed_out: false,
    };
    let events = r.sync_socket(there, std::slice::from_ref(&entry));
    assert_eq!(
        left_reason(&events),
        Some(LeaveReason::Left),
        "ticket 1 is no longer viewed"
    );
    assert!(events.iter().any(|e| matches!(e, PresenceEvent::AgentTyping { .. })));
    assert!(r.list(&t("1")).is_empty());
    assert_eq!(r.list(&t("2"))[0].typing_started_at, Some(400));
    assert_eq!(r.socket_presence(there), vec![entry]);
    // The same snapshot again changes nothing.
    assert!(r.sync_socket(there, &r.socket_presence(there)).is_empty());
}

#[test]
fn local_stats_count_only_viewers_with_a_local_socket() {
    let mut r = registry();
    let (here, there) = (sid(), sid());
    r.view(here, &t("1"), &a("7"), &n("Ada"), 0).unwrap();
    r.apply(&view_op(there, "1", "8", "Bob", 0), Origin::Remote).unwrap();
    r.apply(&view_op(there, "2", "8", "Bob", 0), Origin::Remote).unwrap();
    assert_eq!(r.stats(), PresenceStats { tickets: 2, viewers: 3 });
    assert_eq!(r.stats_where(|s| s == here), PresenceStats { tickets: 1, viewers: 1 });
}

#[test]
fn a_stale_viewer_with_sockets_on_another_node_keeps_them_until_that_node_sweeps() {
    let mut r = registry();
    let (here, there, watcher) = (sid(), sid(), sid());
    r.view(watcher, &t("1"), &a("8"), &n("Bob"), STALE_MS).unwrap();
    r.view(here, &t("1"), &a("7"), &n("Ada"), 0).unwrap();
    r.apply(&view_op(there, "1", "7", "Ada", 0), Origin::Remote).unwrap();
    let local = |s: Sid| s != there;
    let (events, removed) = r.sweep_stale(STALE_MS, local);
    // Only this node's socket of Ada goes, and only it hears agent:left.
    assert_eq!(kinds(&events), ["agent:left:to", "leave"]);
    assert_eq!(
        removed,
        vec![PresenceOp::Stale {
            sid: here,
            ticket: t("1"),
            agent: a("7")
        }]
    );
    assert_eq!(
        r.list(&t("1")).len(),
        2,
        "Ada stays, through her socket on the other node"
    );
    assert!(matches!(
        r.typing(here, &t("1"), &a("7"), STALE_MS),
        Err(ClientError::NotViewing(_))
    ));
    // A second sweep here has nothing left to do for Ada.
    assert!(r.sweep_stale(STALE_MS + 1, local).1.is_empty());
    // The other node sweeps its socket: Ada leaves, the room hears it.
    let events = r
        .apply(
            &PresenceOp::Stale {
                sid: there,
                ticket: t("1"),
                agent: a("7"),
            },
            Origin::Remote,
        )
        .unwrap()
        .events;
    assert_eq!(left_reason(&events), Some(LeaveReason::Stale));
    assert_eq!(r.list(&t("1")).len(), 1);
}

#[test]
fn activity_anywhere_keeps_a_viewer_from_going_stale() {
    let mut r = registry();
    let (here, there) = (sid(), sid());
    r.view(here, &t("1"), &a("7"), &n("Ada"), 0).unwrap();
    r.apply(&view_op(there, "1", "7", "Ada", 0), Origin::Remote).unwrap();
    r.apply(
        &PresenceOp::Typing {
            sid: there,
            ticket: t("1"),
            agent: a("7"),
            at: STALE_MS - 1,
        },
        Origin::Remote,
    )
    .unwrap();
    assert!(r.sweep_stale(STALE_MS, |s| s == here).1.is_empty());
}

// v2 (§3.1): devices, drafts, idle; (§3.2) watches; (§3.3) who is notified.

fn dev(name: &str) -> Device {
    Device::parse(Some(&json!(name))).unwrap()
}

/// The lists of the `viewers:updated` broadcasts among `events`.
fn broadcasts(events: &[PresenceEvent]) -> Vec<&Vec<ViewerView>> {
    events
        .iter()
        .filter_map(|e| match e {
            PresenceEvent::ViewersUpdated { viewers, .. } => Some(viewers),
            _ => None,
        })
        .collect()
}

fn draft(r: &mut ViewerRegistry, s: Sid, editing: bool, at: Millis) -> Vec<PresenceEvent> {
    r.draft(s, &t("1"), &a("7"), editing, at).unwrap()
}

fn activity(r: &mut ViewerRegistry, s: Sid, state: TabState, at: Millis) -> Vec<PresenceEvent> {
    r.activity(s, &t("1"), &a("7"), state, at).unwrap()
}

fn ada(r: &ViewerRegistry) -> ViewerView {
    r.list(&t("1")).into_iter().find(|v| v.agent_id == a("7")).unwrap()
}

#[test]
fn a_viewer_shows_the_distinct_devices_of_its_tabs_sorted() {
    let mut r = registry();
    let (web, phone) = (sid(), sid());
    let (viewers, _) = r.view(web, &t("1"), &a("7"), &n("Ada"), 0).unwrap();
    assert_eq!(viewers[0].devices, [dev("web")]);
    assert!(!viewers[0].editing && !viewers[0].idle);
    // A new tab on another device changes the list: the room hears it.
    let (_, events) = r
        .view_on(phone, &t("1"), &a("7"), &n("Ada"), &dev("mobile"), 10)
        .unwrap();
    assert_eq!(kinds(&events), ["join", "viewers:updated"]);
    assert_eq!(broadcasts(&events)[0][0].devices, [dev("mobile"), dev("web")]);
    // The same view again changes nothing and broadcasts nothing.
    let (_, events) = r
        .view_on(phone, &t("1"), &a("7"), &n("Ada"), &dev("mobile"), 20)
        .unwrap();
    assert!(broadcasts(&events).is_empty());
    // A later view of a tab replaces its device.
    let (_, events) = r.view(phone, &t("1"), &a("7"), &n("Ada"), 30).unwrap();
    assert_eq!(broadcasts(&events)[0][0].devices, [dev("web")]);
    // A new tab that adds no device: only that tab gets the list (v1).
    let (_, events) = r.view(sid(), &t("1"), &a("7"), &n("Ada"), 40).unwrap();
    assert_eq!(kinds(&events), ["join", "viewers:to"]);
    // A tab leaving with the only "mobile" takes it from the list.
    r.view_on(phone, &t("1"), &a("7"), &n("Ada"), &dev("mobile"), 50)
        .unwrap();
    let events = r.leave(phone, &t("1"), &a("7")).unwrap();
    assert_eq!(kinds(&events), ["leave", "viewers:updated"]);
    assert_eq!(broadcasts(&events)[0][0].devices, [dev("web")]);
}

#[test]
fn a_viewer_edits_while_any_tab_has_a_draft_and_only_changes_are_broadcast() {
    let mut r = registry();
    let (tab1, tab2) = (sid(), sid());
    r.view(tab1, &t("1"), &a("7"), &n("Ada"), 0).unwrap();
    r.view(tab2, &t("1"), &a("7"), &n("Ada"), 0).unwrap();
    let events = draft(&mut r, tab1, true, 10);
    assert_eq!(kinds(&events), ["viewers:updated"]);
    assert!(broadcasts(&events)[0][0].editing);
    assert!(
        draft(&mut r, tab1, true, 20).is_empty(),
        "a repeated draft broadcasts nothing"
    );
    assert!(draft(&mut r, tab2, true, 30).is_empty(), "already editing");
    assert!(draft(&mut r, tab1, false, 40).is_empty(), "tab 2 still has a draft");
    let events = draft(&mut r, tab2, false, 50);
    assert!(!broadcasts(&events)[0][0].editing);
    // A draft counts as activity; it never times out like typing.
    assert_eq!(r.next_typing_deadline(), None);
    draft(&mut r, tab1, true, 60);
    assert_eq!(r.next_idle_deadline(), Some(60 + IDLE_MS));
    assert!(r.expire_typing(60 + 10 * TYPING_MS).is_empty());
    assert!(ada(&r).editing);
}

#[test]
fn a_draft_ends_with_leave_disconnect_or_the_stale_sweep() {
    let mut r = registry();
    let (tab1, tab2, bob) = (sid(), sid(), sid());
    r.view(bob, &t("1"), &a("8"), &n("Bob"), 0).unwrap();
    r.view(tab1, &t("1"), &a("7"), &n("Ada"), 0).unwrap();
    r.view(tab2, &t("1"), &a("7"), &n("Ada"), 0).unwrap();
    draft(&mut r, tab1, true, 10);
    let events = r.leave(tab1, &t("1"), &a("7")).unwrap();
    assert_eq!(kinds(&events), ["leave", "viewers:updated"]);
    assert!(!ada(&r).editing);

    draft(&mut r, tab2, true, 20);
    let events = r.disconnect(tab2, LeaveReason::Disconnected);
    assert_eq!(left_reason(&events), Some(LeaveReason::Disconnected));
    assert_eq!(r.list(&t("1")).len(), 1, "Ada left with her draft");

    let ada_tab = sid();
    r.view(ada_tab, &t("1"), &a("7"), &n("Ada"), 100).unwrap();
    r.draft(ada_tab, &t("1"), &a("7"), true, 100).unwrap();
    r.typing(bob, &t("1"), &a("8"), 100 + STALE_MS).unwrap();
    let (events, _) = r.sweep_stale(100 + STALE_MS, |_| true);
    assert_eq!(left_reason(&events), Some(LeaveReason::Stale));
    assert_eq!(r.list(&t("1")).len(), 1, "the stale sweep ended Ada's draft with her");
}

#[test]
fn a_viewer_is_idle_when_every_tab_is_away_and_active_again_with_any_event() {
    let mut r = registry();
    let (tab1, tab2) = (sid(), sid());
    r.view(tab1, &t("1"), &a("7"), &n("Ada"), 0).unwrap();
    r.view(tab2, &t("1"), &a("7"), &n("Ada"), 0).unwrap();
    assert!(
        activity(&mut r, tab1, TabState::Away, 10).is_empty(),
        "tab 2 is still in use"
    );
    let events = activity(&mut r, tab2, TabState::Away, 20);
    assert_eq!(kinds(&events), ["viewers:updated"]);
    assert!(broadcasts(&events)[0][0].idle);
    assert!(
        activity(&mut r, tab2, TabState::Away, 30).is_empty(),
        "a repeated away broadcasts nothing"
    );
    // `away` is not activity: the idle deadline still counts from the view.
    assert_eq!(r.next_idle_deadline(), Some(IDLE_MS));
    let events = activity(&mut r, tab1, TabState::Active, 40);
    assert!(!broadcasts(&events)[0][0].idle);
    assert_eq!(r.next_idle_deadline(), Some(40 + IDLE_MS));
    // Any other ticket event of an away tab makes it active again.
    activity(&mut r, tab1, TabState::Away, 50);
    for (i, op) in ["typing", "stop_typing", "draft", "view"].into_iter().enumerate() {
        let at = 100 + i as Millis;
        activity(&mut r, tab1, TabState::Away, at);
        assert!(ada(&r).idle, "{op}: both tabs away");
        let events = match op {
            "typing" => r.typing(tab1, &t("1"), &a("7"), at).unwrap(),
            "stop_typing" => r.stop_typing(tab1, &t("1"), &a("7"), at).unwrap(),
            "draft" => r.draft(tab1, &t("1"), &a("7"), false, at).unwrap(),
            _ => r.view(tab1, &t("1"), &a("7"), &n("Ada"), at).unwrap().1,
        };
        assert!(!ada(&r).idle, "{op} makes the tab active");
        assert!(
            broadcasts(&events).iter().any(|l| !l[0].idle),
            "{op}: the room hears it"
        );
    }
}

#[test]
fn a_viewer_without_activity_for_idle_after_turns_idle_then_back_at_its_next_activity() {
    let mut r = registry();
    let (ada_tab, bob) = (sid(), sid());
    r.view(ada_tab, &t("1"), &a("7"), &n("Ada"), 1000).unwrap();
    r.view(bob, &t("1"), &a("8"), &n("Bob"), 2000).unwrap();
    assert_eq!(r.next_idle_deadline(), Some(1000 + IDLE_MS));
    assert!(r.expire_idle(1000 + IDLE_MS - 1).is_empty(), "not before idle_after");
    let events = r.expire_idle(1000 + IDLE_MS);
    assert_eq!(kinds(&events), ["viewers:updated"]);
    let list = broadcasts(&events)[0];
    assert!(list[0].idle && !list[1].idle, "only Ada is idle: {list:?}");
    assert_eq!(r.next_idle_deadline(), Some(2000 + IDLE_MS));
    // Bob's turn; Ada, already idle, is not told again.
    let events = r.expire_idle(2000 + IDLE_MS);
    assert_eq!(kinds(&events), ["viewers:updated"]);
    assert!(broadcasts(&events)[0].iter().all(|v| v.idle));
    assert!(r.expire_idle(3 * IDLE_MS).is_empty(), "nothing more until activity");
    let at = 3 * IDLE_MS;
    let events = r.typing(ada_tab, &t("1"), &a("7"), at).unwrap();
    assert!(broadcasts(&events).iter().all(|l| !l[0].idle));
    assert!(!ada(&r).idle);
    // Idle by time while already idle by away tabs changes nothing visible.
    activity(&mut r, ada_tab, TabState::Away, at + 1);
    assert!(ada(&r).idle);
    let events = r.expire_idle(at + IDLE_MS + TYPING_MS);
    assert!(
        broadcasts(&events)
            .iter()
            .all(|l| l.iter().find(|v| v.agent_id == a("7")).is_none_or(|v| v.idle))
    );
    // The viewer gone, its deadline is gone too.
    r.disconnect(ada_tab, LeaveReason::Disconnected);
    r.disconnect(bob, LeaveReason::Disconnected);
    assert_eq!(r.next_idle_deadline(), None);
}

#[test]
fn a_replicated_draft_and_away_tab_combine_with_local_tabs() {
    let mut r = registry();
    let (here, there) = (sid(), sid());
    r.view(here, &t("1"), &a("7"), &n("Ada"), 0).unwrap();
    r.apply(
        &PresenceOp::View {
            sid: there,
            ticket: t("1"),
            agent: a("7"),
            name: n("Ada"),
            at: 5,
            device: dev("mobile"),
        },
        Origin::Remote,
    )
    .unwrap();
    let op = |state| PresenceOp::Activity {
        sid: there,
        ticket: t("1"),
        agent: a("7"),
        state,
        at: 10,
    };
    let events = r
        .apply(
            &PresenceOp::Draft {
                sid: there,
                ticket: t("1"),
                agent: a("7"),
                editing: true,
                at: 10,
            },
            Origin::Remote,
        )
        .unwrap()
        .events;
    let v = &broadcasts(&events)[0][0];
    assert!(v.editing);
    assert_eq!(v.devices, [dev("mobile"), dev("web")]);
    assert!(r.apply(&op(TabState::Away), Origin::Remote).unwrap().events.is_empty());
    activity(&mut r, here, TabState::Away, 20);
    assert!(ada(&r).idle, "both tabs, on both nodes, are away");
    // A snapshot carries each socket's device, draft and tab state.
    let snapshot = r.socket_presence(there);
    assert_eq!(
        (snapshot[0].device.as_str(), snapshot[0].draft, snapshot[0].away),
        ("mobile", true, true)
    );
    let mut other = registry();
    other.sync_socket(there, &snapshot);
    let v = other.list(&t("1"))[0].clone();
    assert_eq!((v.editing, v.idle, v.devices), (true, true, vec![dev("mobile")]));
}

#[test]
fn a_snapshot_of_a_viewer_idle_by_time_is_idle_from_its_first_list() {
    let mut r = registry();
    let there = sid();
    r.apply(&view_op(there, "1", "7", "Ada", 0), Origin::Remote).unwrap();
    r.expire_idle(IDLE_MS);
    let snapshot = r.socket_presence(there);
    assert!(snapshot[0].timed_out);
    let mut fresh = registry();
    let events = fresh.sync_socket(there, &snapshot);
    let lists = broadcasts(&events);
    assert!(lists.iter().all(|l| l[0].idle), "never shown active: {lists:?}");
    assert_eq!(fresh.next_idle_deadline(), None, "idle until its next activity");
    // A node that already knew the viewer times it out too, once.
    let mut known = registry();
    known
        .apply(&view_op(there, "1", "7", "Ada", 0), Origin::Remote)
        .unwrap();
    let events = known.sync_socket(there, &snapshot);
    assert_eq!(kinds(&events), ["viewers:updated"]);
    assert!(broadcasts(&events)[0][0].idle);
    assert!(known.expire_idle(10 * IDLE_MS).is_empty());
}

#[test]
fn editing_makes_the_warning_critical() {
    let mut r = registry();
    let (s1, s2) = (sid(), sid());
    r.view(s1, &t("1"), &a("7"), &n("Ada"), 0).unwrap();
    r.draft(s1, &t("1"), &a("7"), true, 10).unwrap();
    let (_, events) = r.view(s2, &t("1"), &a("8"), &n("Bob"), 20).unwrap();
    let PresenceEvent::CollisionWarning { severity, message, .. } = &events[1] else {
        panic!("{events:?}")
    };
    assert_eq!((*severity, message.as_str()), ("critical", "Ada is editing a reply"));
    let view = |name: &str, typing: bool, editing: bool| ViewerView {
        agent_id: a(name),
        agent_name: n(name),
        status: if typing {
            ViewerStatus::Typing
        } else {
            ViewerStatus::Viewing
        },
        since: 1,
        typing_started_at: typing.then_some(1),
        editing,
        idle: false,
        devices: vec![dev("web")],
    };
    assert_eq!(
        collision_message(&[view("Ada", true, true), view("Bob", false, false)]),
        ("critical", "Ada is typing a reply".into())
    );
    assert_eq!(
        collision_message(&[view("Ada", false, true), view("Bob", false, true)]),
        ("critical", "Ada and Bob are editing a reply".into())
    );
    assert_eq!(
        collision_message(&[view("Ada", true, false), view("Bob", false, true)]),
        ("critical", "Ada and Bob are writing a reply".into())
    );
}

#[test]
fn draft_and_activity_need_the_socket_to_view_the_ticket_as_that_agent() {
    let mut r = registry();
    let s = sid();
    r.view(s, &t("1"), &a("7"), &n("Ada"), 0).unwrap();
    let code = |e: Result<Vec<PresenceEvent>, ClientError>| e.map_or_else(|e| e.code(), |_| "ok");
    assert_eq!(code(r.draft(s, &t("2"), &a("7"), true, 1)), "NOT_VIEWING");
    assert_eq!(code(r.draft(s, &t("1"), &a("8"), true, 1)), "NOT_VIEWING");
    assert_eq!(
        code(r.activity(sid(), &t("1"), &a("7"), TabState::Away, 1)),
        "NOT_VIEWING"
    );
    assert!(!ada(&r).editing && !ada(&r).idle, "a refused event changes nothing");
}

#[test]
fn a_ticket_update_notifies_every_viewer_but_its_author() {
    let mut r = registry();
    let (ada1, ada2, bob, cy) = (sid(), sid(), sid(), sid());
    r.view(ada1, &t("1"), &a("7"), &n("Ada"), 0).unwrap();
    r.view(ada2, &t("1"), &a("7"), &n("Ada"), 0).unwrap();
    r.view(bob, &t("1"), &a("8"), &n("Bob"), 0).unwrap();
    r.view(cy, &t("1"), &a("9"), &n("Cy"), 0).unwrap();
    assert_eq!(r.agents_other_than(&t("1"), Some(&a("7")), |_| true), 2);
    assert_eq!(r.agents_other_than(&t("1"), None, |_| true), 3);
    assert_eq!(r.agents_other_than(&t("1"), None, |s| s == bob), 1);
    assert_eq!(r.agents_other_than(&t("2"), None, |_| true), 0);
    let mut ada_tabs = vec![ada1, ada2];
    ada_tabs.sort();
    assert_eq!(r.sockets_of(&t("1"), &a("7")), ada_tabs);
    assert!(r.sockets_of(&t("1"), &a("10")).is_empty());
}

#[test]
fn watching_is_all_or_nothing_within_the_limit() {
    let mut w = WatchRegistry::new(3);
    let s = sid();
    assert_eq!(w.watch(s, &[t("1"), t("2"), t("1")]).unwrap(), [t("1"), t("2")]);
    // Watching again adds nothing; only new tickets count toward the limit.
    assert_eq!(w.watch(s, &[t("2"), t("3")]).unwrap(), [t("3")]);
    assert_eq!(w.watch(s, &[t("1"), t("2"), t("3")]).unwrap(), Vec::<TicketId>::new());
    let refused = w.watch(s, &[t("1"), t("4")]).unwrap_err();
    assert_eq!(refused.code(), "LIMIT_EXCEEDED");
    assert_eq!(w.count(s), 3, "none of a refused watch's ids is added");
    assert_eq!(w.unwatch(s, &[t("2"), t("9")]), [t("2")]);
    assert_eq!(w.watch(s, &[t("4")]).unwrap(), [t("4")]);
    assert_eq!(w.count(sid()), 0, "watches are per socket");
    w.disconnect(s);
    assert_eq!(w.count(s), 0);
    assert!(w.unwatch(s, &[t("1")]).is_empty());
}
