//! Micro-benchmarks of the hot paths: the viewer registry's operations,
//! payload parsing and validation, and encoding one broadcast.
//!
//!     cargo bench --bench hot_paths
//!
//! The load benchmarks (whole server, both transports, against the Node
//! original) are `scripts/bench-compare`; these isolate the code that runs
//! for every event, where a regression would otherwise hide in the noise.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use socketioxide::socket::Sid;
use switchboard::bench::*;

fn rules() -> PresenceRules {
    PresenceRules {
        typing_timeout_ms: 10_000,
        stale_after_ms: 1_800_000,
        max_tickets_per_socket: 100,
        idle_after_ms: 300_000,
    }
}

fn ticket(i: u64) -> TicketId {
    TicketId::parse(Some(&json!(i))).unwrap()
}

/// A registry as a busy node holds it: 1,000 tickets with two viewers each.
fn busy_registry() -> ViewerRegistry {
    let mut registry = ViewerRegistry::new(rules());
    for t in 0..1000 {
        for a in 0..2 {
            let op = PresenceOp::View {
                sid: Sid::new(),
                ticket: ticket(t),
                agent: AgentId::parse(Some(&json!(format!("agent-{t}-{a}")))).unwrap(),
                name: AgentName::parse(Some(&json!("Agent"))).unwrap(),
                at: 1_000,
                device: Device::default(),
            };
            registry.apply(&op, Origin::Local).unwrap();
        }
    }
    registry
}

fn registry(c: &mut Criterion) {
    let mut registry = busy_registry();
    let sid = Sid::new();
    let agent = AgentId::parse(Some(&json!("ada"))).unwrap();
    let name = AgentName::parse(Some(&json!("Ada"))).unwrap();
    let t = ticket(500);
    let mut at = 2_000;
    c.bench_function(
        "registry: view, typing, stop_typing, leave (third viewer of a ticket)",
        |b| {
            b.iter(|| {
                at += 1;
                let ops = [
                    PresenceOp::View {
                        sid,
                        ticket: t.clone(),
                        agent: agent.clone(),
                        name: name.clone(),
                        at,
                        device: Device::default(),
                    },
                    PresenceOp::Typing {
                        sid,
                        ticket: t.clone(),
                        agent: agent.clone(),
                        at,
                    },
                    PresenceOp::StopTyping {
                        sid,
                        ticket: t.clone(),
                        agent: agent.clone(),
                        at,
                    },
                    PresenceOp::Leave {
                        sid,
                        ticket: t.clone(),
                        agent: agent.clone(),
                    },
                ];
                for op in &ops {
                    black_box(registry.apply(op, Origin::Local).unwrap());
                }
            })
        },
    );
}

fn parsing(c: &mut Criterion) {
    let text = r#"{"ticketId":4711,"agentId":"7","agentName":"Ada Lovelace","extra":[1,2,3]}"#;
    c.bench_function("payload: ticket:view JSON text to a validated request", |b| {
        b.iter(|| {
            let payload: ClientPayload = serde_json::from_str(black_box(text)).unwrap();
            black_box(Request::parse(EventName::View, &payload.0, None).unwrap())
        })
    });
    let value: Value = serde_json::from_str(text).unwrap();
    c.bench_function("payload: validation only (ticket:view)", |b| {
        b.iter(|| black_box(Request::parse(EventName::View, black_box(&value), None).unwrap()))
    });
}

fn broadcast(c: &mut Criterion) {
    let key = TimelineKey {
        entity_type: EntityType::parse(Some(&json!("client"))).unwrap(),
        entity_id: EntityId::parse(Some(&json!(9))).unwrap(),
    };
    let item =
        json!({"id": 123, "text": "Call booked for Tuesday", "by": {"id": 7, "name": "Ada"}, "at": 1764115200000u64});
    let event = TimelineEvent::new_item(key, Some(&item)).unwrap();
    let position = Position {
        offset: 4711,
        epoch: "Kx2Qm9aTfW0bL1cD-1f".into(),
    };
    c.bench_function("broadcast: a new_item event to its wire packet", |b| {
        b.iter(|| {
            let Delivery::ToRoom { event, payload, .. } = timeline_delivery(black_box(&event), Some(&position)) else {
                unreachable!()
            };
            // What socketioxide writes once per broadcast: `42["event",payload]`.
            black_box(format!("42{}", serde_json::to_string(&(event, payload)).unwrap()))
        })
    });
}

criterion_group!(hot_paths, registry, parsing, broadcast);
criterion_main!(hot_paths);
