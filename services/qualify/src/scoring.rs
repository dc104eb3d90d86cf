//! The first score: explainable fit and engagement points, graded A–D. Every
//! point comes with the rule that gave it, so a manager can see why.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default)]
pub struct Profile {
    pub has_phone: bool,
    pub has_email: bool,
    pub has_wechat: bool,
    pub has_name: bool,
    pub has_company: bool,
    pub has_title: bool,
    /// Captures seen for this person, across channels.
    pub touches: u32,
    /// Distinct channels among them.
    pub channels: Vec<String>,
    pub consent: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Reason {
    pub rule: String,
    pub points: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    pub points: i64,
    pub grade: &'static str,
    pub is_mql: bool,
    pub reasons: Vec<Reason>,
}

/// Channels where the prospect reached out to a person, which convert best.
fn channel_points(channel: &str) -> i64 {
    match channel {
        "employee_live_code" | "smart_card" | "referral" | "wecom" | "card_scan" => 15,
        "seminar" | "live_stream" | "call_center" | "web_form" | "website" => 10,
        "ads" | "fission_poster" | "mini_program" | "qr_code" | "channel_code" | "group_live_code" => 5,
        _ => 0,
    }
}

pub const MQL_THRESHOLD: i64 = 50;

pub fn score(p: &Profile) -> Score {
    let mut reasons = Vec::new();
    let mut add = |rule: &str, points: i64| {
        if points != 0 {
            reasons.push(Reason {
                rule: rule.to_string(),
                points,
            });
        }
    };
    add("reachable by phone", if p.has_phone { 20 } else { 0 });
    add("reachable by e-mail", if p.has_email { 10 } else { 0 });
    add("reachable on WeChat", if p.has_wechat { 10 } else { 0 });
    add("gave a name", if p.has_name { 5 } else { 0 });
    add("named a company", if p.has_company { 15 } else { 0 });
    add("named a job title", if p.has_title { 10 } else { 0 });
    add("consented to contact", if p.consent { 5 } else { 0 });
    let best_channel = p.channels.iter().map(|c| (channel_points(c), c)).max();
    if let Some((points, channel)) = best_channel {
        add(&format!("came through {channel}"), points);
    }
    // Each repeat touch shows intent; capped so spam cannot buy an A.
    add("came back again", (p.touches.saturating_sub(1) as i64 * 5).min(15));
    let points: i64 = reasons.iter().map(|r| r.points).sum::<i64>().clamp(0, 100);
    let grade = match points {
        70.. => "A",
        50..=69 => "B",
        30..=49 => "C",
        _ => "D",
    };
    Score {
        points,
        grade,
        is_mql: points >= MQL_THRESHOLD,
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_phone_is_a_d() {
        let s = score(&Profile {
            has_phone: true,
            touches: 1,
            channels: vec!["api".into()],
            ..Default::default()
        });
        assert_eq!((s.points, s.grade, s.is_mql), (20, "D", false));
        assert_eq!(
            s.reasons,
            vec![Reason {
                rule: "reachable by phone".into(),
                points: 20
            }]
        );
    }

    #[test]
    fn a_full_profile_from_a_personal_channel_is_an_a() {
        let s = score(&Profile {
            has_phone: true,
            has_email: true,
            has_name: true,
            has_company: true,
            has_title: true,
            touches: 1,
            channels: vec!["smart_card".into()],
            ..Default::default()
        });
        assert_eq!(s.points, 75);
        assert_eq!(s.grade, "A");
        assert!(s.is_mql);
        assert_eq!(s.reasons.iter().map(|r| r.points).sum::<i64>(), 75);
    }

    #[test]
    fn repeat_touches_help_but_are_capped() {
        let base = Profile {
            has_phone: true,
            channels: vec!["api".into()],
            ..Default::default()
        };
        let once = score(&Profile {
            touches: 1,
            ..base.clone()
        })
        .points;
        let twice = score(&Profile {
            touches: 2,
            ..base.clone()
        })
        .points;
        let many = score(&Profile { touches: 50, ..base }).points;
        assert_eq!(twice - once, 5);
        assert_eq!(many - once, 15);
    }

    #[test]
    fn scores_stay_within_bounds() {
        let everything = Profile {
            has_phone: true,
            has_email: true,
            has_wechat: true,
            has_name: true,
            has_company: true,
            has_title: true,
            touches: 99,
            channels: vec!["referral".into()],
            consent: true,
        };
        assert_eq!(score(&everything).points, 100);
    }
}
