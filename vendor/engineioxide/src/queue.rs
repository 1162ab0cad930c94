//! The queue of packets waiting to be sent to one client (patched in; see
//! Switchboard's `docs/engineioxide-patch.md`).
//!
//! It replaces a `tokio::sync::mpsc` channel and a `watch` channel: tokio allocates
//! the first block of 32 slots of a bounded channel up front, about 5 KB with
//! [`PacketBuf`]s, for every session. This queue holds no memory while it is empty.
//! It keeps the channel's behaviour: a bound on queued plus reserved packets,
//! [`TrySendError::Closed`] once closed, and the receiver still drains what was
//! queued before the close.
//!
//! Past the bound it does not keep the session with a hole in its stream: the
//! packet that does not fit gets [`TrySendError::Full`], once, and the queue
//! *overflows*: it is closed and emptied, so that the session's transport ends
//! without writing what was left (see [`PacketQueue::overflowed`]). A client that
//! reads too slowly is disconnected and reconnects; it never misses a message
//! on a connection that stays open.
//!
//! There is one receiver at a time: the transport task holding the socket's
//! `internal_rx` lock.
use std::{
    collections::VecDeque,
    sync::{Mutex, MutexGuard, PoisonError},
    task::{Context, Poll, Waker},
};

use engineioxide_core::PacketBuf;
use tokio::sync::{Notify, mpsc::error::TrySendError};

#[derive(Debug)]
pub(crate) struct PacketQueue {
    capacity: usize,
    state: Mutex<State>,
    /// Wakes the tasks waiting in [`PacketQueue::closed`].
    closed: Notify,
}

#[derive(Debug, Default)]
struct State {
    packets: VecDeque<PacketBuf>,
    /// Places held by permits not used yet.
    reserved: usize,
    /// The latest volatile packets; each replaces the previous one. Boxed: a
    /// `PacketBuf` is 168 bytes, in every socket.
    volatile: Option<Box<PacketBuf>>,
    closed: bool,
    /// Closed because a packet did not fit: what was queued is dropped with the
    /// connection rather than written.
    overflowed: bool,
    rx_waker: Option<Waker>,
}

/// A place reserved in the queue for one [`PacketBuf`].
pub(crate) struct Permit<'a> {
    queue: &'a PacketQueue,
}

impl PacketQueue {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            state: Mutex::default(),
            closed: Notify::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // No code panics while holding the lock; a poisoned state is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[allow(
        clippy::result_large_err,
        reason = "the result of tokio's `Sender::try_send`"
    )]
    pub(crate) fn try_send(&self, packets: PacketBuf) -> Result<(), TrySendError<PacketBuf>> {
        let state = self.state();
        if state.closed {
            Err(TrySendError::Closed(packets))
        } else if state.packets.len() + state.reserved >= self.capacity {
            self.overflow(state);
            Err(TrySendError::Full(packets))
        } else {
            Self::push(state, packets);
            Ok(())
        }
    }

    pub(crate) fn try_reserve(&self) -> Result<Permit<'_>, TrySendError<()>> {
        let mut state = self.state();
        if state.closed {
            Err(TrySendError::Closed(()))
        } else if state.packets.len() + state.reserved >= self.capacity {
            self.overflow(state);
            Err(TrySendError::Full(()))
        } else {
            state.reserved += 1;
            Ok(Permit { queue: self })
        }
    }

    /// Queues `packets` even when the queue is full, without overflowing it: for the
    /// NOOP packet that ends a pending polling request during an upgrade, which must
    /// not wait for room, and for the engine's own small packets (ping, pong, close),
    /// which must not close a session that the messages did not fill.
    /// `false` if the queue is closed.
    pub(crate) fn send_ignoring_bound(&self, packets: PacketBuf) -> bool {
        let state = self.state();
        if state.closed {
            return false;
        }
        Self::push(state, packets);
        true
    }

    /// Keeps `packets` as the latest volatile packets, replacing unsent ones.
    pub(crate) fn send_volatile(&self, packets: PacketBuf) -> bool {
        let mut state = self.state();
        if state.closed {
            return false;
        }
        state.volatile = Some(Box::new(packets));
        Self::wake_rx(state);
        true
    }

    fn push(mut state: MutexGuard<'_, State>, packets: PacketBuf) {
        state.packets.push_back(packets);
        Self::wake_rx(state);
    }

    fn wake_rx(mut state: MutexGuard<'_, State>) {
        let waker = state.rx_waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Next packets to send: queued ones first, then volatile ones. `None` once the
    /// queue is closed and drained. Only the holder of the `internal_rx` lock calls it.
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<PacketBuf>> {
        let mut state = self.state();
        let next = state.next();
        if next.is_pending() {
            match &mut state.rx_waker {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                waker => *waker = Some(cx.waker().clone()),
            }
        }
        next
    }

    /// [`PacketQueue::poll_recv`] without registering for a wake-up.
    pub(crate) fn try_recv(&self) -> Poll<Option<PacketBuf>> {
        self.state().next()
    }

    /// Refuses new packets; the receiver still gets the queued ones.
    pub(crate) fn close(&self) {
        let mut state = self.state();
        state.closed = true;
        state.volatile = None;
        Self::wake_rx(state);
        self.closed.notify_waiters();
    }

    /// A packet did not fit: closes the queue and drops what it held (the
    /// memory of a client that stopped reading goes back at once).
    fn overflow(&self, mut state: MutexGuard<'_, State>) {
        state.overflowed = true;
        state.closed = true;
        let dropped = (std::mem::take(&mut state.packets), state.volatile.take());
        Self::wake_rx(state);
        drop(dropped);
        self.closed.notify_waiters();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state().closed
    }

    /// Whether the queue was closed by a packet that did not fit: the transport
    /// must end without writing more (its client is not reading).
    pub(crate) fn overflowed(&self) -> bool {
        self.state().overflowed
    }

    pub(crate) async fn closed(&self) {
        loop {
            // Created before the check so that a close in between is not missed.
            let notified = self.closed.notified();
            if self.is_closed() {
                return;
            }
            notified.await;
        }
    }
}

impl State {
    fn next(&mut self) -> Poll<Option<PacketBuf>> {
        if let Some(packets) = self.packets.pop_front() {
            if self.packets.is_empty() {
                // Give the memory back: an idle session keeps none.
                self.packets = VecDeque::new();
            }
            Poll::Ready(Some(packets))
        } else if self.closed {
            Poll::Ready(None)
        } else if let Some(packets) = self.volatile.take() {
            Poll::Ready(Some(*packets))
        } else {
            Poll::Pending
        }
    }
}

impl Permit<'_> {
    pub(crate) fn send(self, packets: PacketBuf) {
        let mut state = self.queue.state();
        state.reserved -= 1;
        if !state.closed {
            PacketQueue::push(state, packets);
        }
        std::mem::forget(self);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.queue.state().reserved -= 1;
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use engineioxide_core::Packet;
    use smallvec::smallvec;

    use super::*;

    fn recv(queue: &PacketQueue) -> Poll<Option<PacketBuf>> {
        queue.poll_recv(&mut Context::from_waker(Waker::noop()))
    }

    fn msg(s: &'static str) -> PacketBuf {
        smallvec![Packet::Message(s.into())]
    }

    #[test]
    fn bound_counts_queued_and_reserved_packets() {
        let queue = PacketQueue::new(3);
        let permit = queue.try_reserve().unwrap();
        queue.try_send(msg("a")).unwrap();
        drop(permit);
        queue.try_send(msg("b")).unwrap();
        assert!(matches!(recv(&queue), Poll::Ready(Some(p)) if p == msg("a")));
        let permit = queue.try_reserve().unwrap();
        permit.send(msg("c"));
        assert!(matches!(recv(&queue), Poll::Ready(Some(p)) if p == msg("b")));
        assert!(matches!(recv(&queue), Poll::Ready(Some(p)) if p == msg("c")));
        assert!(recv(&queue).is_pending());
        assert_eq!(queue.state().packets.capacity(), 0);
        assert!(!queue.overflowed());
    }

    #[test]
    fn a_packet_past_the_bound_overflows_the_queue_once() {
        let queue = PacketQueue::new(2);
        let permit = queue.try_reserve().unwrap();
        queue.try_send(msg("a")).unwrap();
        assert!(matches!(
            queue.try_send(msg("b")),
            Err(TrySendError::Full(_))
        ));
        assert!(queue.overflowed());
        assert!(queue.is_closed());
        // Later packets find it closed: the overflow is reported once.
        assert!(matches!(queue.try_reserve(), Err(TrySendError::Closed(()))));
        assert!(matches!(
            queue.try_send(msg("c")),
            Err(TrySendError::Closed(_))
        ));
        permit.send(msg("d"));
        // What was queued is dropped, not written.
        assert!(matches!(recv(&queue), Poll::Ready(None)));
        assert_eq!(queue.state().packets.capacity(), 0);
    }

    #[test]
    fn a_reservation_past_the_bound_overflows_the_queue() {
        let queue = PacketQueue::new(1);
        queue.try_send(msg("a")).unwrap();
        assert!(matches!(queue.try_reserve(), Err(TrySendError::Full(()))));
        assert!(queue.overflowed());
        assert!(matches!(recv(&queue), Poll::Ready(None)));
    }

    #[test]
    fn engine_packets_go_past_the_bound_without_overflowing() {
        let queue = PacketQueue::new(1);
        queue.try_send(msg("a")).unwrap();
        assert!(queue.send_ignoring_bound(msg("ping")));
        assert!(!queue.overflowed());
        assert!(matches!(recv(&queue), Poll::Ready(Some(p)) if p == msg("a")));
        assert!(matches!(recv(&queue), Poll::Ready(Some(p)) if p == msg("ping")));
    }

    #[test]
    fn volatile_packets_come_after_queued_ones_and_replace_each_other() {
        let queue = PacketQueue::new(4);
        assert!(queue.send_volatile(msg("v1")));
        assert!(queue.send_volatile(msg("v2")));
        queue.try_send(msg("a")).unwrap();
        assert!(matches!(recv(&queue), Poll::Ready(Some(p)) if p == msg("a")));
        assert!(matches!(recv(&queue), Poll::Ready(Some(p)) if p == msg("v2")));
        assert!(recv(&queue).is_pending());
    }

    #[test]
    fn closed_queue_refuses_packets_but_drains_queued_ones() {
        let queue = PacketQueue::new(4);
        queue.try_send(msg("a")).unwrap();
        let permit = queue.try_reserve().unwrap();
        queue.close();
        assert!(queue.is_closed());
        assert!(matches!(
            queue.try_send(msg("b")),
            Err(TrySendError::Closed(_))
        ));
        assert!(matches!(queue.try_reserve(), Err(TrySendError::Closed(()))));
        assert!(!queue.send_ignoring_bound(msg("b")));
        assert!(!queue.send_volatile(msg("v")));
        permit.send(msg("c"));
        assert!(matches!(recv(&queue), Poll::Ready(Some(p)) if p == msg("a")));
        assert!(matches!(recv(&queue), Poll::Ready(None)));
    }

    #[tokio::test]
    async fn closed_resolves_on_close() {
        let queue = std::sync::Arc::new(PacketQueue::new(1));
        let waiter = tokio::spawn({
            let queue = queue.clone();
            async move { queue.closed().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        queue.close();
        waiter.await.unwrap();
    }

    #[tokio::test]
    async fn receiver_is_woken_by_a_packet() {
        let queue = std::sync::Arc::new(PacketQueue::new(1));
        let rx = tokio::spawn({
            let queue = queue.clone();
            async move { std::future::poll_fn(|cx| queue.poll_recv(cx)).await }
        });
        tokio::task::yield_now().await;
        queue.try_send(msg("a")).unwrap();
        assert_eq!(rx.await.unwrap(), Some(msg("a")));
    }
}
