//! Choosing an owner, as a pure function of who is eligible.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pick {
    pub staff_id: String,
    pub reason: &'static str,
}

/// `eligible` are the active SDRs in a stable order; `cursor` is a counter that
/// advances once per routed lead.
pub fn pick_owner(owner_hint: Option<&str>, eligible: &[String], cursor: u64) -> Option<Pick> {
    if let Some(hint) = owner_hint
        && eligible.iter().any(|s| s == hint)
    {
        return Some(Pick {
            staff_id: hint.to_string(),
            reason: "owner_hint",
        });
    }
    if eligible.is_empty() {
        return None;
    }
    let i = (cursor % eligible.len() as u64) as usize;
    Some(Pick {
        staff_id: eligible[i].clone(),
        reason: "round_robin",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sdrs() -> Vec<String> {
        vec!["a".into(), "b".into(), "c".into()]
    }

    #[test]
    fn round_robin_visits_everyone_in_turn() {
        let picks: Vec<_> = (0..6).map(|c| pick_owner(None, &sdrs(), c).unwrap().staff_id).collect();
        assert_eq!(picks, ["a", "b", "c", "a", "b", "c"]);
    }

    #[test]
    fn an_eligible_hint_wins() {
        assert_eq!(
            pick_owner(Some("c"), &sdrs(), 0).unwrap(),
            Pick {
                staff_id: "c".into(),
                reason: "owner_hint"
            }
        );
    }

    #[test]
    fn an_ineligible_hint_falls_back_to_rotation() {
        assert_eq!(pick_owner(Some("zed"), &sdrs(), 1).unwrap().staff_id, "b");
    }

    #[test]
    fn nobody_eligible_means_no_owner() {
        assert_eq!(pick_owner(Some("a"), &[], 0), None);
    }
}
