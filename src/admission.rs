//! This node's Socket.IO connections and the `max_connections` rule
//! (contract §6): plain and synchronous, time passed in.
//!
//! A connection is counted from its Engine.IO handshake, not only once it is
//! a Socket.IO socket: between the two, the client still has to send its
//! Socket.IO CONNECT, and an Engine.IO session that never does so lives
//! (and costs memory) for `connect_timeout` before socketioxide closes it.
//! Counting sockets alone would let a handshake flood past the limit, and
//! would let concurrent handshakes at the limit all in. So a handshake let in
//! holds a place until its socket connects, it fails, or `connect_timeout`
//! passes, whichever comes first.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use socketioxide::socket::Sid;

/// How long an Engine.IO session may wait for its Socket.IO CONNECT before
/// socketioxide closes it (its default, set explicitly in `app` so that the
/// two cannot drift apart).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(45);

#[derive(Debug)]
pub struct Connections {
    sockets: HashSet<Sid>,
    /// When each handshake let in and not yet a socket was let in, oldest
    /// first. Only kept when there is a limit.
    handshakes: VecDeque<Instant>,
    /// 0: no limit.
    max: usize,
    /// How long an Engine.IO session may wait for its Socket.IO CONNECT.
    connect_timeout: Duration,
}

impl Connections {
    pub fn new(max: usize, connect_timeout: Duration) -> Self {
        Self {
            sockets: HashSet::new(),
            handshakes: VecDeque::new(),
            max,
            connect_timeout,
        }
    }

    /// Lets a handshake in, holding a place for it, unless the node already
    /// holds `max` sockets and handshakes.
    pub fn admit(&mut self, now: Instant) -> bool {
        if self.max == 0 {
            return true;
        }
        while self
            .handshakes
            .front()
            .is_some_and(|at| now.duration_since(*at) >= self.connect_timeout)
        {
            self.handshakes.pop_front();
        }
        if self.sockets.len() + self.handshakes.len() >= self.max {
            return false;
        }
        self.handshakes.push_back(now);
        true
    }

    /// A handshake let in did not open a session, or its CONNECT was
    /// refused: its place is free again.
    pub fn handshake_failed(&mut self) {
        // Which one does not matter but for when it would have expired;
        // freeing the oldest keeps the younger ones, so the count errs on
        // the side of the limit.
        self.handshakes.pop_front();
    }

    /// A socket connected: it takes the place its handshake held.
    pub fn connected(&mut self, sid: Sid) {
        self.handshakes.pop_front();
        self.sockets.insert(sid);
    }

    pub fn disconnected(&mut self, sid: Sid) {
        self.sockets.remove(&sid);
    }

    pub fn sockets(&self) -> &HashSet<Sid> {
        &self.sockets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_limit_lets_everyone_in_and_keeps_no_places() {
        let mut c = Connections::new(0, CONNECT_TIMEOUT);
        let now = Instant::now();
        for _ in 0..1000 {
            assert!(c.admit(now));
        }
        assert!(c.handshakes.is_empty());
    }

    #[test]
    fn handshakes_on_their_way_count_against_the_limit() {
        let mut c = Connections::new(2, CONNECT_TIMEOUT);
        let now = Instant::now();
        assert!(c.admit(now));
        assert!(c.admit(now));
        assert!(!c.admit(now), "two handshakes hold both places");
        c.connected(Sid::new());
        c.connected(Sid::new());
        assert!(!c.admit(now), "two sockets hold both places");
        let gone = *c.sockets().iter().next().unwrap();
        c.disconnected(gone);
        assert!(c.admit(now));
        assert!(!c.admit(now));
    }

    #[test]
    fn a_failed_handshake_frees_its_place() {
        let mut c = Connections::new(1, CONNECT_TIMEOUT);
        let now = Instant::now();
        assert!(c.admit(now));
        c.handshake_failed();
        assert!(c.admit(now));
    }

    #[test]
    fn a_handshake_that_never_connects_frees_its_place_after_connect_timeout() {
        let mut c = Connections::new(1, CONNECT_TIMEOUT);
        let start = Instant::now();
        assert!(c.admit(start));
        assert!(!c.admit(start + CONNECT_TIMEOUT - Duration::from_millis(1)));
        assert!(c.admit(start + CONNECT_TIMEOUT));
    }
}
