//! The score of a lead at a moment, from its facts and the tenant's rules. Every
//! point comes with the rule that gave it, and the reasons add up to the score
//! exactly: each rule's decayed points are rounded once, a group over its cap gets a
//! negative "cap" reason, and a total outside 0–100 a "limit" reason.

use std::collections::BTreeMap;

use huoke_shared::clock::rfc3339;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::rules::{EngagementRule, FitRule, RuleSet};

const DAY_MS: f64 = 86_400_000.0;

/// What is known about a lead, as scoring needs it.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Named fields that are present: `name`, `company`, `title`, `phone`, `email`,
    /// `uscc`, `channel` (the first channel).
    pub fields: BTreeMap<&'static str, String>,
    pub has_wechat: bool,
    pub consent: bool,
    pub attributes: Map<String, Value>,
    pub events: Vec<Event>,
}

/// Something the lead did: a touch.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The touch's kind: `capture`, `card_view`, `card_save`.
    pub kind: String,
    pub channel: String,
    pub at_ms: i64,
}

impl Event {
    /// The rule events this touch counts as.
    fn counts_as(&self, event: &str) -> bool {
        match event {
            "form_submission" => self.kind == "capture" && matches!(self.channel.as_str(), "web_form" | "website"),
            "wecom_add" => self.kind == "capture" && self.channel == "wecom",
            other => self.kind == other,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    pub rule: String,
    /// `fit`, `engagement`, `cap` or `limit`.
    pub kind: String,
    /// What this reason adds to the score; all of them add up to it.
    pub points: i64,
    /// Engagement: how many events, their points before decay, after decay (unrounded),
    /// and when the latest happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undecayed: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decayed: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    pub points: i64,
    pub grade: &'static str,
    pub is_mql: bool,
    pub reasons: Vec<Reason>,
}

fn fit_matches(rule: &FitRule, facts: &Facts) -> bool {
    let value: Option<String> = match rule.field.as_str() {
        "wechat" => facts.has_wechat.then(String::new),
        "consent" => facts.consent.then(String::new),
        field => match field.strip_prefix("attributes.") {
            Some(key) => facts.attributes.get(key).and_then(|v| match v {
                Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(true) => Some("true".into()),
                _ => None,
            }),
            None => facts.fields.get(field).cloned(),
        },
    };
    let Some(value) = value else {
        return false;
    };
    let value = value.to_lowercase();
    match (&rule.equals, &rule.contains) {
        (Some(any), _) => any.iter().any(|v| v.trim().to_lowercase() == value),
        (_, Some(any)) => any.iter().any(|v| value.contains(&v.trim().to_lowercase())),
        _ => true,
    }
}

/// The decayed points of one engagement rule at `at_ms`, over the events before it.
fn engagement(rule: &EngagementRule, facts: &Facts, at_ms: i64) -> Option<Reason> {
    let mut count = 0u32;
    let mut decayed = 0.0f64;
    let mut latest = None;
    for event in &facts.events {
        if event.at_ms > at_ms || !event.counts_as(&rule.event) {
            continue;
        }
        if let Some(channels) = &rule.channels
            && !channels.contains(&event.channel)
        {
            continue;
        }
        count += 1;
        let factor = match rule.half_life_days {
            Some(days) => 0.5f64.powf((at_ms - event.at_ms).max(0) as f64 / DAY_MS / days),
            None => 1.0,
        };
        decayed += rule.points as f64 * factor;
        latest = latest.max(Some(event.at_ms));
    }
    (count > 0).then(|| Reason {
        rule: rule.name.clone(),
        kind: "engagement".into(),
        points: decayed.round() as i64,
        events: Some(count),
        undecayed: Some(rule.points * i64::from(count)),
        decayed: Some((decayed * 1000.0).round() / 1000.0),
        when: latest.map(rfc3339),
    })
}

/// The score at `at_ms` (events after it are not counted, older ones decayed to it).
pub fn score(rules: &RuleSet, facts: &Facts, at_ms: i64) -> Score {
    let mut reasons: Vec<Reason> = rules
        .fit
        .iter()
        .filter(|rule| rule.points != 0 && fit_matches(rule, facts))
        .map(|rule| Reason {
            rule: rule.name.clone(),
            kind: "fit".into(),
            points: rule.points,
            events: None,
            undecayed: None,
            decayed: None,
            when: None,
        })
        .collect();
    let mut by_group: BTreeMap<&str, i64> = BTreeMap::new();
    for rule in &rules.engagement {
        if let Some(reason) = engagement(rule, facts, at_ms) {
            if let Some(group) = &rule.group {
                *by_group.entry(group.as_str()).or_default() += reason.points;
            }
            if reason.points != 0 {
                reasons.push(reason);
            }
        }
    }
    for (group, total) in by_group {
        if let Some(&cap) = rules.caps.get(group)
            && total > cap
        {
            reasons.push(Reason {
                rule: format!("at most {cap} from {group}"),
                kind: "cap".into(),
                points: cap - total,
                events: None,
                undecayed: None,
                decayed: None,
                when: None,
            });
        }
    }
    let total: i64 = reasons.iter().map(|r| r.points).sum();
    let points = total.clamp(0, 100);
    if points != total {
        reasons.push(Reason {
            rule: "scores run from 0 to 100".into(),
            kind: "limit".into(),
            points: points - total,
            events: None,
            undecayed: None,
            decayed: None,
            when: None,
        });
    }
    let g = &rules.grades;
    let grade = if points >= g.a {
        "A"
    } else if points >= g.b {
        "B"
    } else if points >= g.c {
        "C"
    } else {
        "D"
    };
    Score {
        points,
        grade,
        is_mql: points >= rules.mql_threshold,
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn facts(fields: &[(&'static str, &str)], events: &[(&str, &str, i64)]) -> Facts {
        Facts {
            fields: fields.iter().map(|(k, v)| (*k, (*v).to_string())).collect(),
            events: events
                .iter()
                .map(|(kind, channel, at)| Event {
                    kind: (*kind).into(),
                    channel: (*channel).into(),
                    at_ms: *at,
                })
                .collect(),
            ..Facts::default()
        }
    }

    fn adds_up(s: &Score) {
        assert_eq!(
            s.reasons.iter().map(|r| r.points).sum::<i64>(),
            s.points,
            "{:?}",
            s.reasons
        );
    }

    #[test]
    fn a_bare_phone_through_the_api_is_a_d() {
        let s = score(
            &RuleSet::default(),
            &facts(&[("phone", "+8613800138000")], &[("capture", "api", 0)]),
            0,
        );
        assert_eq!((s.points, s.grade, s.is_mql), (25, "D", false));
        adds_up(&s);
    }

    #[test]
    fn a_full_profile_from_a_personal_channel_is_an_a() {
        let f = facts(
            &[
                ("phone", "p"),
                ("email", "e"),
                ("name", "n"),
                ("company", "c"),
                ("title", "t"),
            ],
            &[("capture", "smart_card", 0)],
        );
        let s = score(&RuleSet::default(), &f, 0);
        assert_eq!((s.points, s.grade, s.is_mql), (80, "A", true));
        adds_up(&s);
    }

    #[test]
    fn engagement_halves_every_half_life_and_later_events_do_not_count_yet() {
        let f = facts(&[], &[("capture", "api", 0), ("capture", "api", 10 * DAY)]);
        let rules = RuleSet::default();
        let came_back = |s: &Score| s.reasons.iter().find(|r| r.rule == "came back").cloned();
        // At day 5 only the first visit happened: 5 points halved by 5/30 of a half-life.
        let early = score(&rules, &f, 5 * DAY);
        let reason = came_back(&early).unwrap();
        assert_eq!(reason.events, Some(1));
        assert!((reason.decayed.unwrap() - 5.0 * 0.5f64.powf(5.0 / 30.0)).abs() < 0.001);
        // A month after the second visit: 5·½^(40/30) + 5·½^(30/30) ≈ 2.0 + 2.5.
        let later = score(&rules, &f, 40 * DAY);
        let reason = came_back(&later).unwrap();
        assert_eq!(reason.events, Some(2));
        assert_eq!(reason.points, 4);
        assert_eq!(reason.undecayed, Some(10));
        // A year on, nearly nothing is left.
        let gone = score(&rules, &f, 400 * DAY);
        assert!(came_back(&gone).is_none_or(|r| r.points == 0));
        for s in [early, later, gone] {
            adds_up(&s);
        }
    }

    #[test]
    fn groups_are_capped_with_a_reason_that_keeps_the_sum() {
        let events: Vec<(&str, &str, i64)> = (0..10).map(|i| ("capture", "smart_card", i)).collect();
        let s = score(&RuleSet::default(), &facts(&[], &events), 10);
        let cap = s
            .reasons
            .iter()
            .find(|r| r.kind == "cap" && r.rule.contains("channel"))
            .unwrap();
        assert_eq!(cap.points, 15 - 150);
        adds_up(&s);
    }

    #[test]
    fn fit_rules_test_values_and_attributes() {
        let mut rules = RuleSet::default();
        rules.fit.push(FitRule {
            name: "decision maker".into(),
            field: "title".into(),
            equals: None,
            contains: Some(vec!["总监".into(), "Director".into()]),
            points: 30,
        });
        rules.fit.push(FitRule {
            name: "target industry".into(),
            field: "attributes.industry".into(),
            equals: Some(vec!["制造".into()]),
            contains: None,
            points: 40,
        });
        let mut f = facts(&[("title", "Sales director")], &[]);
        f.attributes.insert("industry".into(), Value::String("制造".into()));
        let s = score(&rules, &f, 0);
        assert!(s.reasons.iter().any(|r| r.rule == "decision maker"));
        assert!(s.reasons.iter().any(|r| r.rule == "target industry"));
        assert_eq!(s.points, 10 + 30 + 40);
        adds_up(&s);
    }

    #[test]
    fn totals_beyond_the_scale_are_limited_with_a_reason() {
        let mut rules = RuleSet::default();
        for f in &mut rules.fit {
            f.points = 60;
        }
        let all = facts(&[("phone", "p"), ("email", "e")], &[]);
        let s = score(&rules, &all, 0);
        assert_eq!(s.points, 100);
        assert!(s.reasons.iter().any(|r| r.kind == "limit" && r.points == -20));
        adds_up(&s);
    }
}
