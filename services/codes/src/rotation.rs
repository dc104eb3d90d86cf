//! The order in which a code's eligible members are offered a scan, per mode.
//! Pure: the caller supplies the cursor (advanced once per scan) and a random draw.

use crate::model::{Member, Mode};

/// Indexes into `members`, best first. `eligible` are indexes of members that may
/// take a scan now; the caller tries them in order until one has room under its cap.
pub fn order(mode: Mode, members: &[Member], eligible: &[usize], cursor: u64, random: u64) -> Vec<usize> {
    let n = eligible.len();
    if n == 0 {
        return Vec::new();
    }
    let start = match mode {
        Mode::Fill => 0,
        Mode::RoundRobin => (cursor % n as u64) as usize,
        Mode::Random => (random % n as u64) as usize,
        Mode::Weighted => {
            // Each member owns a stretch of [0, total) as long as its weight; the cursor
            // walks it, so over every `total` scans each gets exactly its share.
            let total: u64 = eligible.iter().map(|&i| members[i].weight.max(1) as u64).sum();
            let mut position = cursor % total;
            let mut chosen = 0;
            for (k, &i) in eligible.iter().enumerate() {
                let w = members[i].weight.max(1) as u64;
                if position < w {
                    chosen = k;
                    break;
                }
                position -= w;
            }
            chosen
        }
    };
    (0..n).map(|k| eligible[(start + k) % n]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(weights: &[u32]) -> Vec<Member> {
        weights
            .iter()
            .enumerate()
            .map(|(i, w)| Member {
                staff_id: format!("s{i}"),
                weight: *w,
                daily_limit: None,
                online: true,
            })
            .collect()
    }

    fn firsts(mode: Mode, weights: &[u32], scans: u64) -> Vec<usize> {
        let m = members(weights);
        let eligible: Vec<usize> = (0..m.len()).collect();
        (0..scans).map(|c| order(mode, &m, &eligible, c, c * 7919)[0]).collect()
    }

    #[test]
    fn round_robin_takes_turns() {
        assert_eq!(firsts(Mode::RoundRobin, &[1, 1, 1], 6), [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn weighted_gives_each_its_share() {
        let picks = firsts(Mode::Weighted, &[3, 1], 8);
        assert_eq!(picks.iter().filter(|&&i| i == 0).count(), 6);
        assert_eq!(picks.iter().filter(|&&i| i == 1).count(), 2);
    }

    #[test]
    fn fill_always_starts_with_the_first_and_falls_through() {
        let m = members(&[1, 1, 1]);
        assert_eq!(order(Mode::Fill, &m, &[0, 1, 2], 5, 9), [0, 1, 2]);
        assert_eq!(order(Mode::Fill, &m, &[1, 2], 5, 9), [1, 2]);
    }

    #[test]
    fn every_order_lists_every_eligible_member_once() {
        let m = members(&[2, 5, 1, 1]);
        for mode in [Mode::RoundRobin, Mode::Weighted, Mode::Random, Mode::Fill] {
            for c in 0..20 {
                let mut o = order(mode, &m, &[0, 2, 3], c, c * 31);
                o.sort();
                assert_eq!(o, [0, 2, 3], "{mode:?}");
            }
        }
    }

    #[test]
    fn random_spreads() {
        let picks = firsts(Mode::Random, &[1, 1], 10);
        assert!(picks.contains(&0) && picks.contains(&1));
    }
}
