//! SLA policies: per lead grade, how long an owner has to accept an offer (and to
//! make first contact), counted in wall time or in the tenant's business hours; and
//! how many owners a lead is offered to before it is escalated. Pure.
//!
//! ```json
//! {"grades": {"A": {"accept_within_seconds": 300, "clock": "wall"},
//!             "B": {"accept_within_seconds": 7200, "clock": "business"}},
//!  "default": {"accept_within_seconds": 86400},
//!  "max_hops": 2}
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Days, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use huoke_shared::error::FieldError;
use huoke_shared::schedule::Schedule;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaPolicies {
    #[serde(default)]
    pub grades: BTreeMap<String, Policy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Policy>,
    /// Further SDRs a lead is offered to after the first offer is rejected or
    /// breached, before it is escalated to a manager.
    #[serde(default = "default_hops")]
    pub max_hops: i64,
}

fn default_hops() -> i64 {
    2
}

impl Default for SlaPolicies {
    fn default() -> Self {
        SlaPolicies {
            grades: BTreeMap::new(),
            default: None,
            max_hops: default_hops(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub accept_within_seconds: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_contact_within_seconds: Option<u64>,
    #[serde(default)]
    pub clock: Clock,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Clock {
    #[default]
    Wall,
    /// Only the tenant calendar's open hours count.
    Business,
}

const MAX_SECONDS: u64 = 90 * 24 * 3600;

impl SlaPolicies {
    /// The policy for a grade: its own, else the default, else `fallback` wall time.
    pub fn for_grade(&self, grade: &str, fallback: Duration) -> Policy {
        self.grades
            .get(grade)
            .or(self.default.as_ref())
            .copied()
            .unwrap_or(Policy {
                accept_within_seconds: fallback.as_secs().max(1),
                first_contact_within_seconds: None,
                clock: Clock::Wall,
            })
    }

    pub fn check(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let policies = self
            .grades
            .iter()
            .map(|(g, p)| (format!("grades.{g}"), p))
            .chain(self.default.iter().map(|p| ("default".to_string(), p)));
        for (at, p) in policies {
            if !(1..=MAX_SECONDS).contains(&p.accept_within_seconds) {
                errors.push(FieldError::new(
                    format!("{at}.accept_within_seconds"),
                    "1 second to 90 days",
                ));
            }
            if p.first_contact_within_seconds
                .is_some_and(|s| !(1..=MAX_SECONDS).contains(&s))
            {
                errors.push(FieldError::new(
                    format!("{at}.first_contact_within_seconds"),
                    "1 second to 90 days",
                ));
            }
        }
        if self.grades.keys().any(|g| g.trim().is_empty() || g.len() > 8) {
            errors.push(FieldError::new("grades", "grades are 1 to 8 characters"));
        }
        if !(0..=10).contains(&self.max_hops) {
            errors.push(FieldError::new("max_hops", "0 to 10"));
        }
        errors
    }
}

/// When an offer made at `now` must be accepted. Business time counts only the
/// calendar's open windows; a calendar without weekly hours counts wall time.
/// When the owner of an offer made `now` must have first contacted the lead, on the
/// same clock as the accept window; `None` when the policy sets no such limit.
pub fn first_contact_due_at(
    now: DateTime<Utc>,
    policy: &Policy,
    calendar: Option<&Schedule>,
    tz: Tz,
) -> Option<DateTime<Utc>> {
    let seconds = policy.first_contact_within_seconds?;
    let window = Policy {
        accept_within_seconds: seconds,
        ..*policy
    };
    Some(due_at(now, &window, calendar, tz))
}

pub fn due_at(now: DateTime<Utc>, policy: &Policy, calendar: Option<&Schedule>, tz: Tz) -> DateTime<Utc> {
    let wall = now + chrono::Duration::seconds(policy.accept_within_seconds as i64);
    let Some(calendar) = calendar.filter(|c| policy.clock == Clock::Business && !c.weekly.is_empty()) else {
        return wall;
    };
    let tz = calendar.timezone.as_deref().and_then(|n| n.parse().ok()).unwrap_or(tz);
    let mut remaining = policy.accept_within_seconds as i64;
    let local_now = now.with_timezone(&tz);
    let mut date = local_now.date_naive();
    for _ in 0..400 {
        for (start, end) in calendar.windows_on(date) {
            let at = |minute: u32| {
                let time =
                    NaiveTime::from_num_seconds_from_midnight_opt(minute.min(1439) * 60, 0).unwrap_or(NaiveTime::MIN);
                let local = tz.from_local_datetime(&date.and_time(time)).earliest();
                // 24:00 is the next midnight.
                local.map(|l| l.with_timezone(&Utc) + chrono::Duration::seconds(if minute >= 1440 { 60 } else { 0 }))
            };
            let (Some(open), Some(close)) = (at(start), at(end)) else {
                continue;
            };
            let from = open.max(now);
            if from >= close {
                continue;
            }
            let available = (close - from).num_seconds();
            if remaining <= available {
                return from + chrono::Duration::seconds(remaining);
            }
            remaining -= available;
        }
        match date.checked_add_days(Days::new(1)) {
            Some(next) => date = next,
            None => break,
        }
    }
    wall
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calendar() -> Schedule {
        serde_json::from_str(
            r#"{"weekly": {"mon": [{"start": "09:00", "end": "12:00"}, {"start": "13:00", "end": "18:00"}],
                           "tue": [{"start": "09:00", "end": "18:00"}]},
                "dates_off": ["2026-11-24"]}"#,
        )
        .unwrap()
    }

    fn shanghai(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        chrono_tz::Asia::Shanghai
            .with_ymd_and_hms(2026, 11, d, h, m, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn business(seconds: u64) -> Policy {
        Policy {
            accept_within_seconds: seconds,
            first_contact_within_seconds: None,
            clock: Clock::Business,
        }
    }

    #[test]
    fn wall_time_is_plain_addition() {
        let policy = Policy {
            clock: Clock::Wall,
            ..business(90)
        };
        let now = shanghai(23, 23, 0);
        assert_eq!(
            due_at(now, &policy, Some(&calendar()), chrono_tz::Asia::Shanghai),
            now + chrono::Duration::seconds(90)
        );
    }

    #[test]
    fn business_time_skips_breaks_nights_and_dates_off() {
        let tz = chrono_tz::Asia::Shanghai;
        // Monday 11:30 + 1 h of business time: 30 min before lunch, 30 after.
        assert_eq!(
            due_at(shanghai(23, 11, 30), &business(3600), Some(&calendar()), tz),
            shanghai(23, 13, 30)
        );
        // Monday 17:30 + 1 h: Tuesday is a date off, Wednesday has no hours, so the
        // following Monday at 09:30.
        assert_eq!(
            due_at(shanghai(23, 17, 30), &business(3600), Some(&calendar()), tz),
            shanghai(30, 9, 30)
        );
        // Sunday night: starts counting Monday 09:00.
        assert_eq!(
            due_at(shanghai(22, 22, 0), &business(60), Some(&calendar()), tz),
            shanghai(23, 9, 1)
        );
    }

    #[test]
    fn grades_fall_back_to_the_default_then_the_setting() {
        let policies: SlaPolicies = serde_json::from_str(
            r#"{"grades": {"A": {"accept_within_seconds": 5}}, "default": {"accept_within_seconds": 50}}"#,
        )
        .unwrap();
        assert_eq!(policies.max_hops, 2);
        assert_eq!(policies.for_grade("A", Duration::from_secs(1)).accept_within_seconds, 5);
        assert_eq!(
            policies.for_grade("C", Duration::from_secs(1)).accept_within_seconds,
            50
        );
        assert_eq!(
            SlaPolicies::default()
                .for_grade("C", Duration::from_secs(900))
                .accept_within_seconds,
            900
        );
    }

    #[test]
    fn bad_policies_are_explained() {
        let policies: SlaPolicies = serde_json::from_str(
            r#"{"grades": {"A": {"accept_within_seconds": 0, "first_contact_within_seconds": 99999999}}, "max_hops": 11}"#,
        )
        .unwrap();
        let fields: Vec<String> = policies.check().into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "grades.A.accept_within_seconds",
                "grades.A.first_contact_within_seconds",
                "max_hops"
            ]
        );
    }
}
