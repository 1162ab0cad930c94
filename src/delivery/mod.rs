//! The one way out: everything the server tells sockets goes through here.
//!
//! Rules decide under the registries' locks, in the order events arrive, and
//! queue what they decided as [`Delivery`]s on the [`Outbox`] (still under
//! the lock, so the queue has the order of the decisions). One task takes
//! them off the queue and does them: room joins and leaves, emits to one
//! socket or a room, acks, disconnects. It is the only code that calls
//! socketioxide's `emit`. So every client sees joins, emits and acks in the
//! order the server decided them, and no lock is held across an `.await`.
//!
//! Slow clients (contract §4.2): an emit that finds a socket with
//! `client_queue_max` messages still unsent closes that socket's transport
//! instead (the patched engineioxide's queue overflows, see
//! `docs/engineioxide-patch.md`); socketioxide reports that emit as
//! `InternalChannelFull`, once per socket, and this module counts it. The
//! close is done by engineioxide in a task of its own, never inline here: a
//! broadcast holds the namespace's lock that removing a socket takes.
//!
//! [`wire`] turns domain outcomes (presence events, timeline events) into
//! the contract's wire messages.

pub mod wire;

use prometheus::IntCounter;
use serde_json::Value;
use socketioxide::extract::AckSender;
use socketioxide::socket::Sid;
use socketioxide::{BroadcastError, SendError, SocketError, SocketIo};
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
    /// To every socket in any of `rooms` (each socket once: socketioxide
    /// dedupes a broadcast to several rooms), except `except`.
    ToRoom {
        rooms: Vec<String>,
        except: Vec<Sid>,
        event: &'static str,
        payload: Value,
    },
    Ack {
        ack: AckSender,
        payload: Value,
    },
    /// Closes the socket (server-side disconnect), e.g. when its token expired.
    Disconnect {
        sid: Sid,
    },
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Join { sid, room } => write!(f, "Join({sid}, {room})"),
            Self::Leave { sid, room } => write!(f, "Leave({sid}, {room})"),
            Self::ToSocket { sid, event, payload } => write!(f, "ToSocket({sid}, {event}, {payload})"),
            Self::ToRoom {
                rooms,
                except,
                event,
                payload,
            } => write!(f, "ToRoom({rooms:?} except {except:?}, {event}, {payload})"),
            Self::Ack { payload, .. } => write!(f, "Ack({payload})"),
            Self::Disconnect { sid } => write!(f, "Disconnect({sid})"),
        }
    }
}

/// What the queue carries: deliveries, and the two markers that let callers
/// wait on the queue.
enum Queued {
    Deliver(Delivery),
    /// Answered once everything queued before it is done.
    Flush(oneshot::Sender<()>),
    /// Ends the task once everything queued before it is done.
    Close,
}

/// The sending side; cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Queued>,
}

impl Outbox {
    /// Starts the delivery task; it ends after [`Outbox::close`], or when
    /// every `Outbox` is dropped. `slow_clients` counts the transports its
    /// emits closed because they found a full queue.
    pub fn start(io: SocketIo, slow_clients: IntCounter) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let sockets = Sockets { io, slow_clients };
        (Self { tx }, tokio::spawn(run(sockets, rx)))
    }

    pub fn push(&self, delivery: Delivery) {
        // Fails only once the delivery task has ended, after shutdown.
        let _ = self.tx.send(Queued::Deliver(delivery));
    }

    /// Waits until everything queued so far has been delivered.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        let _ = self.tx.send(Queued::Flush(tx));
        let _ = rx.await;
    }

    /// Lets the task finish what is queued, then end.
    pub fn close(&self) {
        let _ = self.tx.send(Queued::Close);
    }
}

/// What the delivery task works with.
struct Sockets {
    io: SocketIo,
    slow_clients: IntCounter,
}

impl Sockets {
    /// Counts the sockets an emit found full: each of them had its transport
    /// closed by that emit (§4.2). Any other failure is a socket already gone.
    fn count_slow(&self, errors: &[SocketError]) -> usize {
        let slow = errors
            .iter()
            .filter(|e| matches!(e, SocketError::InternalChannelFull))
            .count();
        self.slow_clients.inc_by(slow as u64);
        slow
    }

    fn broadcast_failed(&self, error: &BroadcastError) -> usize {
        match error {
            BroadcastError::Socket(errors) => self.count_slow(errors),
            _ => 0,
        }
    }
}

async fn run(sockets: Sockets, mut rx: mpsc::UnboundedReceiver<Queued>) {
    while let Some(queued) = rx.recv().await {
        match queued {
            Queued::Deliver(delivery) => deliver(&sockets, delivery).await,
            Queued::Flush(done) => {
                let _ = done.send(());
            }
            Queued::Close => return,
        }
    }
}

async fn deliver(sockets: &Sockets, delivery: Delivery) {
    // `io.of` rather than `io.to`: the namespace is gone once the server
    // closes, and the shorthand panics then.
    let Some(ns) = sockets.io.of("/") else { return };
    match delivery {
        Delivery::Join { sid, room } => {
            // Only a socket still in the namespace: socketioxide takes a
            // leaving socket out of all its rooms after its disconnect
            // handler (which waits for this queue), so a join done before
            // that is undone, and one after it finds no socket. Not
            // `connected()`: that is still false for a moment after the
            // client was told it is connected, when its first events may
            // already be here.
            if let Some(socket) = ns.get_socket(sid) {
                socket.join(room);
            }
        }
        Delivery::Leave { sid, room } => {
            if let Some(socket) = ns.get_socket(sid) {
                socket.leave(room);
            }
        }
        Delivery::ToSocket { sid, event, payload } => {
            // Through the socket's own room rather than `Socket::emit`, which
            // refuses a socket whose first events arrived before socketioxide
            // marked it connected (the race is real under load).
            if let Err(e) = ns.to(sid.to_string()).emit(event, &payload).await {
                if sockets.broadcast_failed(&e) > 0 {
                    tracing::info!(%sid, event, "slow client: unsent queue full, transport closed");
                } else {
                    tracing::debug!(%sid, event, error = %e, "could not emit to socket");
                }
            }
        }
        Delivery::ToRoom {
            rooms,
            except,
            event,
            payload,
        } => {
            let except: Vec<String> = except.iter().map(Sid::to_string).collect();
            // One broadcast to all the rooms: a socket in two of them (a
            // viewer that also watches the ticket) gets the message once.
            if let Err(e) = ns.to(rooms).except(except).emit(event, &payload).await {
                let slow = sockets.broadcast_failed(&e);
                if slow > 0 {
                    tracing::info!(event, slow, "slow clients: unsent queue full, transports closed");
                } else {
                    tracing::debug!(event, error = %e, "broadcast failed for some sockets");
                }
            }
        }
        Delivery::Ack { ack, payload } => {
            if let Err(e) = ack.send(&payload) {
                if let SendError::Socket(error) = &e {
                    sockets.count_slow(std::slice::from_ref(error));
                }
                tracing::debug!(error = %e, "could not send ack");
            }
        }
        Delivery::Disconnect { sid } => {
            if let Some(socket) = ns.get_socket(sid)
                && let Err(e) = socket.disconnect()
            {
                sockets.count_slow(std::slice::from_ref(&e));
            }
        }
    }
}
