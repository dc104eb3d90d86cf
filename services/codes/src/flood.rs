//! A per-process guard against floods on the scan path. It is deliberately
//! generous — a hall of people behind one carrier NAT is hundreds of scans a second
//! from one address and must pass — and costs no round trip: counts live in process,
//! per one-second window and client address.
//!
//! On the hot path it takes one of several locks (chosen by the address, so the
//! HTTP workers rarely meet) and allocates nothing once the shard's table has grown
//! to the number of addresses seen in a second: windows are cleared, not dropped.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;

const SHARDS: usize = 16;

pub struct FloodGuard {
    limit: u32,
    hasher: RandomState,
    shards: [Mutex<Window>; SHARDS],
}

#[derive(Default)]
struct Window {
    second: u64,
    counts: HashMap<IpAddr, u32>,
}

impl FloodGuard {
    pub fn new(limit: u32) -> Self {
        FloodGuard {
            limit,
            hasher: RandomState::new(),
            shards: std::array::from_fn(|_| Mutex::new(Window::default())),
        }
    }

    /// Counts one scan from `client` at `now_secs`; false once over the limit. Scans
    /// whose address is unknown share one count.
    pub fn allow(&self, client: Option<IpAddr>, now_secs: u64) -> bool {
        let client = client.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let shard = (self.hasher.hash_one(client) as usize) % SHARDS;
        let mut window = self.shards[shard]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if window.second != now_secs {
            window.second = now_secs;
            // A burst of addresses must not pin its memory for good.
            if window.counts.capacity() > 4096 {
                window.counts = HashMap::new();
            } else {
                window.counts.clear();
            }
        }
        let n = window.counts.entry(client).or_insert(0);
        *n = n.saturating_add(1);
        *n <= self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn a_crowd_passes_and_a_flood_does_not() {
        let guard = FloodGuard::new(500);
        assert!(
            (0..500).all(|_| guard.allow(ip("10.0.0.1"), 7)),
            "500 scans in a second from one address pass"
        );
        assert!(!guard.allow(ip("10.0.0.1"), 7));
        assert!(guard.allow(ip("10.0.0.2"), 7), "other addresses are unaffected");
        assert!(guard.allow(ip("10.0.0.1"), 8), "the next second starts afresh");
        assert!(guard.allow(ip("2001:db8::1"), 8));
    }

    #[test]
    fn unknown_addresses_share_one_count() {
        let guard = FloodGuard::new(2);
        assert!(guard.allow(None, 1) && guard.allow(None, 1));
        assert!(!guard.allow(None, 1));
    }
}
