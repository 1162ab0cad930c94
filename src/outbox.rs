//! Ordered delivery of what the rules decided.
//!
//! State changes happen synchronously under the registries' locks, in the
//! order events arrive; what they must tell sockets is queued here in that
//! same order and sent by one task. So every client sees joins, emits and
//! acks in the order the server decided them, and no lock is held across an
//! `.await` (a broadcast through a cluster adapter is asynchronous).

use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::extract::AckSender;
use socketioxide::socket::Sid;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// One thing to do to sockets.
pub enum Delivery {
    Join {
        sid: Sid,
        room: String,
    },
    Leave {
        sid: Sid,
        room: String,
    },
    ToSocket {
        sid: Sid,
        event: &'static str,
        payload: Value,
    },
    ToRoom {
        room: String,
        except: Vec<Sid>,
        event: &'static str,
        payload: Value,
    },
    Ack {
        ack: AckSender,
        payload: Value,
    },
    /// Answers once everything queued before it is done.
    Flush(oneshot::Sender<()>),
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Join { sid, room } => write!(f, "Join({sid}, {room})"),
            Self::Leave { sid, room } => write!(f, "Leave({sid}, {room})"),
            Self::ToSocket { sid, event, payload } => write!(f, "ToSocket({sid}, {event}, {payload})"),
            Self::ToRoom {
                room,
                except,
                event,
                payload,
            } => {
                write!(f, "ToRoom({room} except {except:?}, {event}, {payload})")
            }
            Self::Ack { payload, .. } => write!(f, "Ack({payload})"),
            Self::Flush(_) => f.write_str("Flush"),
        }
    }
}

/// The sending side; cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Delivery>,
}

impl Outbox {
    /// Starts the delivery task; it ends when every `Outbox` is dropped.
    pub fn start(io: SocketIo) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, tokio::spawn(deliver(io, rx)))
    }

    pub fn push(&self, delivery: Delivery) {
        // Fails only once the delivery task is gone, during shutdown.
        let _ = self.tx.send(delivery);
    }

    /// Waits until everything queued so far has been delivered.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        self.push(Delivery::Flush(tx));
        let _ = rx.await;
    }
}

async fn deliver(io: SocketIo, mut rx: mpsc::UnboundedReceiver<Delivery>) {
    while let Some(delivery) = rx.recv().await {
        if let Delivery::Flush(done) = delivery {
            let _ = done.send(());
            continue;
        }
        // `io.of` rather than `io.to`: the namespace is gone once the server
        // closes, and the shorthand panics then.
        let Some(ns) = io.of("/") else { continue };
        match delivery {
            Delivery::Join { sid, room } => {
                // A socket that is already gone must not re-enter a room:
                // nothing would ever take it out again.
                if let Some(socket) = ns.get_socket(sid).filter(|s| s.connected()) {
                    socket.join(room);
                }
            }
            Delivery::Leave { sid, room } => {
                if let Some(socket) = ns.get_socket(sid) {
                    socket.leave(room);
                }
            }
            Delivery::ToSocket { sid, event, payload } => {
                let sent = ns.get_socket(sid).map(|socket| socket.emit(event, &payload));
                if let Some(Err(e)) = sent {
                    tracing::warn!(%sid, event, error = %e, "could not emit to socket");
                }
            }
            Delivery::ToRoom {
                room,
                except,
                event,
                payload,
            } => {
                let except: Vec<String> = except.iter().map(Sid::to_string).collect();
                if let Err(e) = ns.to(room).except(except).emit(event, &payload).await {
                    tracing::warn!(event, error = %e, "broadcast failed for some sockets");
                }
            }
            Delivery::Ack { ack, payload } => {
                if let Err(e) = ack.send(&payload) {
                    tracing::debug!(error = %e, "could not send ack");
                }
            }
            Delivery::Flush(_) => {}
        }
    }
}
