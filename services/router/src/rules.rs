//! Routing rules: an ordered list, the first whose conditions all hold decides where
//! a lead goes — a team, a person, or the public pool — and how one person is chosen
//! within a team. Pure: parsing, validation and matching, no I/O.
//!
//! ```json
//! {"rules": [
//!   {"name": "East China, hot",
//!    "when": {"province": ["上海", "江苏"], "grade": ["A", "B"], "score": {"min": 60}},
//!    "target": {"team_id": "…"}, "strategy": "least_loaded"},
//!   {"name": "Trade shows", "when": {"channel": ["event"]}, "target": {"staff_id": "…"}},
//!   {"name": "Cold", "when": {"grade": ["D"]}, "target": {"pool": true}}],
//!  "default": {"target": {"all_sdrs": true}, "strategy": "round_robin"}}
//! ```
//! A rule without `when` matches everything. Without `default`, a lead no rule takes
//! goes to all active SDRs in round-robin.

use std::collections::{BTreeMap, BTreeSet};

use huoke_shared::error::FieldError;
use serde::{Deserialize, Serialize};

use crate::facts::LeadFacts;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RuleSet {
    #[serde(default)]
    pub rules: Vec<Rule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Route>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    #[serde(default)]
    pub when: Conditions,
    pub target: Target,
    #[serde(default)]
    pub strategy: Strategy,
    /// Weights per staff id for `weighted` (missing: 1).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub weights: BTreeMap<String, u32>,
}

/// Where leads no rule takes go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub target: Target,
    #[serde(default)]
    pub strategy: Strategy,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub weights: BTreeMap<String, u32>,
}

impl Default for Route {
    fn default() -> Self {
        Route {
            target: Target::AllSdrs { all_sdrs: true },
            strategy: Strategy::RoundRobin,
            weights: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum Target {
    Team { team_id: String },
    Person { staff_id: String },
    Pool { pool: bool },
    AllSdrs { all_sdrs: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    #[default]
    RoundRobin,
    Weighted,
    LeastLoaded,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::RoundRobin => "round_robin",
            Strategy::Weighted => "weighted",
            Strategy::LeastLoaded => "least_loaded",
        }
    }
}

/// Every condition given must hold; a list holds when the lead's value is in it
/// (text compared case-insensitively), `tags` when the lead has any of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Conditions {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub region: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub province: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub city: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub industry: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub company_size: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channel: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub campaign_id: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub live_code_id: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grade: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<ScoreRange>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreRange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<i64>,
}

fn one_of(wanted: &[String], value: Option<&str>) -> bool {
    wanted.is_empty() || value.is_some_and(|v| wanted.iter().any(|w| w.trim().eq_ignore_ascii_case(v.trim())))
}

impl Conditions {
    pub fn matches(&self, lead: &LeadFacts) -> bool {
        one_of(&self.region, lead.region.as_deref())
            && one_of(&self.province, lead.province.as_deref())
            && one_of(&self.city, lead.city.as_deref())
            && one_of(&self.industry, lead.industry.as_deref())
            && one_of(&self.company_size, lead.company_size.as_deref())
            && one_of(&self.channel, Some(&lead.channel))
            && one_of(&self.campaign_id, lead.campaign_id.as_deref())
            && one_of(&self.live_code_id, lead.live_code_id.as_deref())
            && one_of(&self.grade, Some(&lead.grade))
            && self
                .score
                .is_none_or(|r| r.min.is_none_or(|m| lead.score >= m) && r.max.is_none_or(|m| lead.score <= m))
            && (self.tags.is_empty()
                || self
                    .tags
                    .iter()
                    .any(|t| lead.tags.iter().any(|l| l.eq_ignore_ascii_case(t))))
    }
}

/// The route a lead takes, and which rule (index, name) chose it.
#[derive(Debug, Clone, PartialEq)]
pub struct Chosen<'a> {
    pub rule: Option<(usize, &'a str)>,
    pub route: Route,
}

impl RuleSet {
    /// The first rule that matches, else the default.
    pub fn route_for(&self, lead: &LeadFacts) -> Chosen<'_> {
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.when.matches(lead) {
                return Chosen {
                    rule: Some((i, &rule.name)),
                    route: Route {
                        target: rule.target.clone(),
                        strategy: rule.strategy,
                        weights: rule.weights.clone(),
                    },
                };
            }
        }
        Chosen {
            rule: None,
            route: self.default.clone().unwrap_or_default(),
        }
    }

    /// Problems that need no store; `known_teams` and `known_staff` are the tenant's.
    pub fn check(&self, known_teams: &BTreeSet<String>, known_staff: &BTreeSet<String>) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.rules.len() > 200 {
            errors.push(FieldError::new("rules", "at most 200 rules"));
        }
        let mut names = BTreeSet::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let at = format!("rules[{i}]");
            if rule.name.trim().is_empty() || rule.name.chars().count() > 100 {
                errors.push(FieldError::new(format!("{at}.name"), "1 to 100 characters"));
            } else if !names.insert(rule.name.trim().to_lowercase()) {
                errors.push(FieldError::new(format!("{at}.name"), "names are unique"));
            }
            if let Some(range) = rule.when.score
                && let (Some(min), Some(max)) = (range.min, range.max)
                && min > max
            {
                errors.push(FieldError::new(format!("{at}.when.score"), "min is at most max"));
            }
            check_route(&at, &rule.target, &rule.weights, known_teams, known_staff, &mut errors);
        }
        if let Some(default) = &self.default {
            check_route(
                "default",
                &default.target,
                &default.weights,
                known_teams,
                known_staff,
                &mut errors,
            );
        }
        errors
    }
}

fn check_route(
    at: &str,
    target: &Target,
    weights: &BTreeMap<String, u32>,
    teams: &BTreeSet<String>,
    staff: &BTreeSet<String>,
    errors: &mut Vec<FieldError>,
) {
    match target {
        Target::Team { team_id } if !teams.contains(team_id) => {
            errors.push(FieldError::new(format!("{at}.target.team_id"), "no such team"));
        }
        Target::Person { staff_id } if !staff.contains(staff_id) => {
            errors.push(FieldError::new(format!("{at}.target.staff_id"), "no such staff member"));
        }
        Target::Pool { pool: false } | Target::AllSdrs { all_sdrs: false } => {
            errors.push(FieldError::new(
                format!("{at}.target"),
                "one of {team_id}, {staff_id}, {pool: true}, {all_sdrs: true}",
            ));
        }
        _ => {}
    }
    for (id, weight) in weights {
        if !staff.contains(id) {
            errors.push(FieldError::new(format!("{at}.weights.{id}"), "no such staff member"));
        } else if *weight == 0 || *weight > 1000 {
            errors.push(FieldError::new(format!("{at}.weights.{id}"), "1 to 1000"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lead() -> LeadFacts {
        LeadFacts {
            channel: "web_form".into(),
            grade: "B".into(),
            score: 55,
            province: Some("江苏".into()),
            city: Some("Suzhou".into()),
            tags: vec!["VIP".into()],
            ..LeadFacts::default()
        }
    }

    fn rules(json: &str) -> RuleSet {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_first_matching_rule_wins() {
        let set = rules(
            r#"{"rules": [
                {"name": "events", "when": {"channel": ["event"]}, "target": {"pool": true}},
                {"name": "jiangsu", "when": {"province": ["江苏"], "city": ["suzhou"]}, "target": {"team_id": "t1"}, "strategy": "least_loaded"},
                {"name": "everything", "target": {"team_id": "t2"}}
            ]}"#,
        );
        let chosen = set.route_for(&lead());
        assert_eq!(chosen.rule, Some((1, "jiangsu")));
        assert_eq!(chosen.route.target, Target::Team { team_id: "t1".into() });
        assert_eq!(chosen.route.strategy, Strategy::LeastLoaded);
    }

    #[test]
    fn every_condition_must_hold() {
        let set = rules(
            r#"{"rules": [{"name": "hot vip", "when": {"grade": ["A"], "tags": ["vip"]}, "target": {"pool": true}}],
                "default": {"target": {"staff_id": "s9"}}}"#,
        );
        let chosen = set.route_for(&lead());
        assert_eq!(chosen.rule, None, "grade B is not A");
        assert_eq!(chosen.route.target, Target::Person { staff_id: "s9".into() });
    }

    #[test]
    fn score_ranges_are_inclusive() {
        let range = |min, max| Conditions {
            score: Some(ScoreRange { min, max }),
            ..Conditions::default()
        };
        assert!(range(Some(55), Some(55)).matches(&lead()));
        assert!(!range(Some(56), None).matches(&lead()));
        assert!(!range(None, Some(54)).matches(&lead()));
    }

    #[test]
    fn a_missing_field_fails_a_condition_on_it() {
        let c = Conditions {
            industry: vec!["saas".into()],
            ..Conditions::default()
        };
        assert!(!c.matches(&lead()));
    }

    #[test]
    fn without_rules_everything_goes_to_all_sdrs() {
        let rules = RuleSet::default();
        assert_eq!(rules.route_for(&lead()).route, Route::default());
    }

    #[test]
    fn bad_rule_sets_are_explained() {
        let set = rules(
            r#"{"rules": [
                {"name": "a", "when": {"score": {"min": 9, "max": 1}}, "target": {"team_id": "nope"}},
                {"name": "A", "target": {"staff_id": "s1"}, "weights": {"s1": 0, "ghost": 2}},
                {"name": "", "target": {"pool": false}}
            ]}"#,
        );
        let teams = BTreeSet::new();
        let staff = BTreeSet::from(["s1".to_string()]);
        let fields: Vec<String> = set.check(&teams, &staff).into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "rules[0].when.score",
                "rules[0].target.team_id",
                "rules[1].name",
                "rules[1].weights.ghost",
                "rules[1].weights.s1",
                "rules[2].name",
                "rules[2].target"
            ]
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(
            serde_json::from_str::<RuleSet>(
                r#"{"rules": [{"name": "x", "when": {"colour": ["red"]}, "target": {"pool": true}}]}"#
            )
            .is_err()
        );
    }
}
