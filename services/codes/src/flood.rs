//! A per-process guard against floods on the scan path. It is deliberately
//! generous — a hall of people behind one carrier NAT is hundreds of scans a second
//! from one address and must pass — and costs no round trip: counts live in process,
//! per one-second window and client address.

use std::collections::HashMap;
use std::sync::Mutex;

pub struct FloodGuard {
    limit: u32,
    windows: Mutex<(u64, HashMap<String, u32>)>,
}

impl FloodGuard {
    pub fn new(limit: u32) -> Self {
        FloodGuard {
            limit,
            windows: Mutex::new((0, HashMap::new())),
        }
    }

    /// Counts one scan from `client` at `now_secs`; false once over the limit.
    pub fn allow(&self, client: &str, now_secs: u64) -> bool {
        let mut guard = self.windows.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (window, counts) = &mut *guard;
        if *window != now_secs {
            *window = now_secs;
            counts.clear();
        }
        let n = counts.entry(client.to_string()).or_insert(0);
        *n += 1;
        *n <= self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crowd_passes_and_a_flood_does_not() {
        let guard = FloodGuard::new(500);
        assert!(
            (0..500).all(|_| guard.allow("10.0.0.1", 7)),
            "500 scans in a second from one address pass"
        );
        assert!(!guard.allow("10.0.0.1", 7));
        assert!(guard.allow("10.0.0.2", 7), "other addresses are unaffected");
        assert!(guard.allow("10.0.0.1", 8), "the next second starts afresh");
    }
}
