//! Which connection a call goes on: round-robin over the connections that are up and below
//! their in-flight limit. Part of the call engine ([`super::calls`]).

#[derive(Debug, Clone, Copy, Default)]
struct ConnLoad {
    up: bool,
    inflight: usize,
}

/// Per-connection liveness and calls in flight, and the round-robin cursor.
#[derive(Debug, Clone)]
pub struct ConnBalancer {
    conns: Vec<ConnLoad>,
    next: usize,
    inflight_max: usize,
}

impl ConnBalancer {
    /// `conns` connections, all down, each allowed `inflight_max` calls in flight.
    pub fn new(conns: usize, inflight_max: usize) -> Self {
        ConnBalancer {
            conns: vec![ConnLoad::default(); conns],
            next: 0,
            inflight_max: inflight_max.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    pub fn inflight_max(&self) -> usize {
        self.inflight_max
    }

    /// Connection `conn` is up (out-of-range numbers are ignored).
    pub fn set_up(&mut self, conn: usize) {
        if let Some(c) = self.conns.get_mut(conn) {
            c.up = true;
        }
    }

    /// Connection `conn` is down: nothing is in flight on it any more.
    pub fn set_down(&mut self, conn: usize) {
        if let Some(c) = self.conns.get_mut(conn) {
            *c = ConnLoad::default();
        }
    }

    /// Connections that are up.
    pub fn up_count(&self) -> usize {
        self.conns.iter().filter(|c| c.up).count()
    }

    /// Whether some connection could take a call now.
    pub fn has_room(&self) -> bool {
        self.conns
            .iter()
            .any(|c| c.up && c.inflight < self.inflight_max)
    }

    /// The next connection, in turn, that is up and has room.
    pub fn pick(&mut self) -> Option<usize> {
        let n = self.conns.len();
        for i in 0..n {
            let c = (self.next + i) % n;
            let st = &self.conns[c];
            if st.up && st.inflight < self.inflight_max {
                self.next = (c + 1) % n;
                return Some(c);
            }
        }
        None
    }

    /// A call went out on `conn`.
    pub fn on_sent(&mut self, conn: usize) {
        if let Some(c) = self.conns.get_mut(conn) {
            c.inflight += 1;
        }
    }

    /// A call on `conn` ended (reply or timeout).
    pub fn on_done(&mut self, conn: usize) {
        if let Some(c) = self.conns.get_mut(conn) {
            c.inflight = c.inflight.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_in_turn_among_connections_with_room() {
        let mut b = ConnBalancer::new(3, 2);
        assert_eq!(b.pick(), None, "all down");
        b.set_up(0);
        b.set_up(2);
        assert_eq!(b.up_count(), 2);
        let picks: Vec<_> = (0..4)
            .map(|_| b.pick().inspect(|&c| b.on_sent(c)))
            .collect();
        assert_eq!(picks, vec![Some(0), Some(2), Some(0), Some(2)]);
        assert!(!b.has_room());
        assert_eq!(b.pick(), None, "both full");
        b.on_done(2);
        assert_eq!(b.pick(), Some(2));
        b.set_down(0);
        b.set_up(0);
        assert_eq!(b.pick(), Some(0), "a reconnected connection starts empty");
    }
}
