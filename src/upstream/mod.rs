//! Upstream servers: which one a new pair tries first, and the order of
//! the others when a connect fails. Each worker keeps its own rotation, so
//! picking a server touches no shared state.

/// A worker's round-robin position over the configured servers.
#[derive(Debug)]
pub struct RoundRobin {
    next: usize,
}

impl RoundRobin {
    /// Worker `start` begins at a different server than worker 0, so the
    /// first connections of all workers do not land on one server.
    pub fn new(start: usize) -> RoundRobin {
        RoundRobin { next: start }
    }

    /// The server for the next pair, out of `servers`.
    pub fn pick(&mut self, servers: usize) -> usize {
        debug_assert!(servers > 0);
        let pick = self.next % servers;
        self.next = pick + 1;
        pick
    }
}

/// One pair's walk through the servers: the first pick, then each other
/// server once, in order, until one accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempt {
    first: u16,
    tried: u16,
}

impl Attempt {
    pub fn new(first: usize) -> Attempt {
        Attempt {
            first: u16::try_from(first).expect("server index fits in u16"),
            tried: 0,
        }
    }

    /// The server this attempt connects to.
    pub fn server(self, servers: usize) -> usize {
        (usize::from(self.first) + usize::from(self.tried)) % servers
    }

    /// The attempt after this one failed, or `None` when every server was tried.
    pub fn next(self, servers: usize) -> Option<Attempt> {
        let tried = self.tried + 1;
        (usize::from(tried) < servers).then_some(Attempt { tried, ..self })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_cycles_from_its_start() {
        let mut rr = RoundRobin::new(0);
        let picks: Vec<usize> = (0..5).map(|_| rr.pick(2)).collect();
        assert_eq!(picks, [0, 1, 0, 1, 0]);
        let mut rr = RoundRobin::new(1);
        let picks: Vec<usize> = (0..4).map(|_| rr.pick(3)).collect();
        assert_eq!(picks, [1, 2, 0, 1]);
        let mut rr = RoundRobin::new(7);
        assert_eq!(rr.pick(1), 0);
        assert_eq!(rr.pick(1), 0);
    }

    #[test]
    fn attempts_visit_every_server_once() {
        let table = [
            (0, 1, vec![0]),
            (1, 3, vec![1, 2, 0]),
            (2, 3, vec![2, 0, 1]),
            (0, 2, vec![0, 1]),
        ];
        for (first, servers, want) in table {
            let mut seen = Vec::new();
            let mut attempt = Some(Attempt::new(first));
            while let Some(a) = attempt {
                seen.push(a.server(servers));
                attempt = a.next(servers);
            }
            assert_eq!(seen, want, "first {first} of {servers}");
        }
    }
}
