//! A tenant's scoring rules: fit rules (what the lead is), engagement rules (what the
//! lead did, worth less as it ages), caps per group of engagement rules, grade bands
//! and the MQL threshold. Stored versioned (`PUT /v1/scoring/rules`); a tenant that
//! never set any scores with [`RuleSet::default`].

use std::collections::{BTreeMap, BTreeSet};

use huoke_shared::error::FieldError;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSet {
    #[serde(default)]
    pub fit: Vec<FitRule>,
    #[serde(default)]
    pub engagement: Vec<EngagementRule>,
    /// The most a group of engagement rules may add together.
    #[serde(default)]
    pub caps: BTreeMap<String, i64>,
    pub grades: Grades,
    pub mql_threshold: i64,
}

/// Points for what the lead is: a field present, or holding one of some values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FitRule {
    pub name: String,
    /// `name`, `company`, `title`, `phone`, `email`, `uscc`, `wechat`, `consent`,
    /// `channel` (the first one) or `attributes.<key>`.
    pub field: String,
    /// The field equals one of these (case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<Vec<String>>,
    /// The field contains one of these (case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<Vec<String>>,
    pub points: i64,
}

/// Points for each event of a kind (optionally through some channels), halving every
/// `half_life_days` after it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngagementRule {
    pub name: String,
    /// One of [`EVENTS`].
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<String>>,
    pub points: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub half_life_days: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// The lowest score of each grade; below `C` is `D`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grades {
    #[serde(rename = "A")]
    pub a: i64,
    #[serde(rename = "B")]
    pub b: i64,
    #[serde(rename = "C")]
    pub c: i64,
}

/// What a lead can do that counts: every capture; a capture through a form or by
/// adding a WeCom contact also counts as `form_submission` / `wecom_add`; views of a
/// smart card and saves of its contact by the visitor who became the lead.
pub const EVENTS: &[&str] = &["capture", "form_submission", "wecom_add", "card_view", "card_save"];

const FIELDS: &[&str] = &[
    "name", "company", "title", "phone", "email", "uscc", "wechat", "consent", "channel",
];

const PERSONAL_CHANNELS: &[&str] = &["employee_live_code", "smart_card", "referral", "wecom", "card_scan"];
const EVENT_CHANNELS: &[&str] = &["seminar", "live_stream", "call_center", "web_form", "website"];
const BROAD_CHANNELS: &[&str] = &[
    "ads",
    "fission_poster",
    "mini_program",
    "qr_code",
    "channel_code",
    "group_live_code",
];

impl Default for RuleSet {
    /// Reachability and a full profile, the channel the lead came through (a person's
    /// own code or card counts most), and returning visits that fade over a month.
    fn default() -> Self {
        let present = |name: &str, field: &str, points| FitRule {
            name: name.into(),
            field: field.into(),
            equals: None,
            contains: None,
            points,
        };
        let through = |name: &str, channels: &[&str], points| EngagementRule {
            name: name.into(),
            event: "capture".into(),
            channels: Some(channels.iter().map(|c| (*c).to_string()).collect()),
            points,
            half_life_days: None,
            group: Some("channel".into()),
        };
        RuleSet {
            fit: vec![
                present("reachable by phone", "phone", 20),
                present("reachable by e-mail", "email", 10),
                present("reachable on WeChat", "wechat", 10),
                present("gave a name", "name", 5),
                present("named a company", "company", 15),
                present("named a job title", "title", 10),
                present("consented to contact", "consent", 5),
            ],
            engagement: vec![
                through("came through a person", PERSONAL_CHANNELS, 15),
                through("came through an event or form", EVENT_CHANNELS, 10),
                through("came through ads or a poster", BROAD_CHANNELS, 5),
                EngagementRule {
                    name: "came back".into(),
                    event: "capture".into(),
                    channels: None,
                    points: 5,
                    half_life_days: Some(30.0),
                    group: Some("visits".into()),
                },
                EngagementRule {
                    name: "saved a card's contact".into(),
                    event: "card_save".into(),
                    channels: None,
                    points: 5,
                    half_life_days: Some(30.0),
                    group: Some("visits".into()),
                },
                EngagementRule {
                    name: "viewed a card".into(),
                    event: "card_view".into(),
                    channels: None,
                    points: 2,
                    half_life_days: Some(14.0),
                    group: Some("visits".into()),
                },
            ],
            caps: BTreeMap::from([("channel".into(), 15), ("visits".into(), 20)]),
            grades: Grades { a: 70, b: 50, c: 30 },
            mql_threshold: 50,
        }
    }
}

impl RuleSet {
    /// Every problem at once, each with the path of the offending part.
    pub fn check(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let mut names = BTreeSet::new();
        let mut name_ok = |path: String, name: &str, errors: &mut Vec<FieldError>| {
            if name.trim().is_empty() || name.chars().count() > 100 {
                errors.push(FieldError::new(path, "a name of 1 to 100 characters"));
            } else if !names.insert(name.to_string()) {
                errors.push(FieldError::new(path, "names must be unique"));
            }
        };
        if self.fit.len() + self.engagement.len() > 200 {
            errors.push(FieldError::new("fit", "at most 200 rules in all"));
        }
        for (i, rule) in self.fit.iter().enumerate() {
            name_ok(format!("fit[{i}].name"), &rule.name, &mut errors);
            let known = FIELDS.contains(&rule.field.as_str())
                || rule
                    .field
                    .strip_prefix("attributes.")
                    .is_some_and(|k| !k.is_empty() && k.len() <= 64);
            if !known {
                errors.push(FieldError::new(
                    format!("fit[{i}].field"),
                    format!("one of {} or attributes.<key>", FIELDS.join(", ")),
                ));
            }
            if rule.equals.is_some() && rule.contains.is_some() {
                errors.push(FieldError::new(format!("fit[{i}]"), "equals or contains, not both"));
            }
            for (what, list) in [("equals", &rule.equals), ("contains", &rule.contains)] {
                if let Some(values) = list
                    && (values.is_empty() || values.len() > 100 || values.iter().any(|v| v.trim().is_empty()))
                {
                    errors.push(FieldError::new(format!("fit[{i}].{what}"), "1 to 100 non-empty values"));
                }
            }
            points_ok(format!("fit[{i}].points"), rule.points, &mut errors);
        }
        let mut groups = BTreeSet::new();
        for (i, rule) in self.engagement.iter().enumerate() {
            name_ok(format!("engagement[{i}].name"), &rule.name, &mut errors);
            if !EVENTS.contains(&rule.event.as_str()) {
                errors.push(FieldError::new(
                    format!("engagement[{i}].event"),
                    format!("one of {}", EVENTS.join(", ")),
                ));
            }
            if let Some(channels) = &rule.channels
                && (channels.is_empty() || channels.len() > 50)
            {
                errors.push(FieldError::new(format!("engagement[{i}].channels"), "1 to 50 channels"));
            }
            points_ok(format!("engagement[{i}].points"), rule.points, &mut errors);
            if let Some(days) = rule.half_life_days
                && !(days.is_finite() && days > 0.0 && days <= 3650.0)
            {
                errors.push(FieldError::new(
                    format!("engagement[{i}].half_life_days"),
                    "more than 0 and at most 3650 days",
                ));
            }
            if let Some(group) = &rule.group {
                groups.insert(group.as_str());
            }
        }
        for (group, cap) in &self.caps {
            if !groups.contains(group.as_str()) {
                errors.push(FieldError::new(
                    format!("caps.{group}"),
                    "no engagement rule is in this group",
                ));
            }
            if !(0..=1000).contains(cap) {
                errors.push(FieldError::new(format!("caps.{group}"), "0 to 1000"));
            }
        }
        let g = &self.grades;
        if !(0 <= g.c && g.c < g.b && g.b < g.a && g.a <= 100) {
            errors.push(FieldError::new("grades", "0 ≤ C < B < A ≤ 100"));
        }
        if !(0..=100).contains(&self.mql_threshold) {
            errors.push(FieldError::new("mql_threshold", "0 to 100"));
        }
        errors
    }
}

fn points_ok(path: String, points: i64, errors: &mut Vec<FieldError>) {
    if !(-100..=100).contains(&points) {
        errors.push(FieldError::new(path, "-100 to 100"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_rules_are_valid_and_round_trip() {
        let rules = RuleSet::default();
        assert!(rules.check().is_empty(), "{:?}", rules.check());
        let text = serde_json::to_string(&rules).unwrap();
        assert_eq!(serde_json::from_str::<RuleSet>(&text).unwrap(), rules);
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let mut rules = RuleSet::default();
        rules.fit[0].field = "shoe_size".into();
        rules.fit[1].name = rules.fit[0].name.clone();
        rules.engagement[0].event = "dance".into();
        rules.engagement[1].half_life_days = Some(0.0);
        rules.caps.insert("nobody".into(), 5);
        rules.grades.b = 80;
        rules.mql_threshold = 101;
        let paths: Vec<String> = rules.check().into_iter().map(|e| e.field).collect();
        for expected in [
            "fit[0].field",
            "fit[1].name",
            "engagement[0].event",
            "engagement[1].half_life_days",
            "caps.nobody",
            "grades",
            "mql_threshold",
        ] {
            assert!(paths.iter().any(|p| p == expected), "{expected} missing from {paths:?}");
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = serde_json::from_str::<RuleSet>(r#"{"grades":{"A":70,"B":50,"C":30},"mql_threshold":50,"bonus":1}"#);
        assert!(err.is_err());
    }
}
