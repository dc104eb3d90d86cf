//! Weekly availability in a time zone, plus dates off and adjusted working days:
//! a live code's schedule, a staff member's working hours.
//!
//! ```json
//! {"timezone": "Asia/Shanghai",
//!  "weekly": {"mon": [{"start": "09:00", "end": "18:00"}], "sat": []},
//!  "dates_off": ["2026-10-01"],
//!  "workdays": ["2026-10-11"]}
//! ```
//! A weekday missing from `weekly` is closed. Windows are `[start, end)`; an end of
//! `24:00` means midnight. A date in `workdays` (China's adjusted working days, 调休,
//! when a weekend day is worked) is open with Monday's windows.

use std::collections::BTreeMap;

use crate::error::FieldError;
use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub start: String,
    pub end: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default)]
    pub weekly: BTreeMap<String, Vec<Window>>,
    #[serde(default)]
    pub dates_off: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workdays: Vec<String>,
}

pub const DEFAULT_TZ: Tz = chrono_tz::Asia::Shanghai;

const DAYS: [(&str, Weekday); 7] = [
    ("mon", Weekday::Mon),
    ("tue", Weekday::Tue),
    ("wed", Weekday::Wed),
    ("thu", Weekday::Thu),
    ("fri", Weekday::Fri),
    ("sat", Weekday::Sat),
    ("sun", Weekday::Sun),
];

/// Minutes after midnight; "24:00" is 1440.
fn minutes(hhmm: &str) -> Option<u32> {
    if hhmm == "24:00" {
        return Some(1440);
    }
    NaiveTime::parse_from_str(hhmm, "%H:%M")
        .ok()
        .map(|t| t.hour() * 60 + t.minute())
}

pub fn parse_tz(name: Option<&str>) -> Option<Tz> {
    match name {
        None => Some(DEFAULT_TZ),
        Some(n) => n.parse().ok(),
    }
}

/// The local calendar day (`YYYYMMDD`) of `now` in `tz`: the unit daily caps count in.
pub fn local_day(now: DateTime<Utc>, tz: Tz) -> String {
    use chrono::Datelike;
    // Plain integer formatting: this runs on every scan, and strftime parses its
    // pattern each time.
    let day = now.with_timezone(&tz).date_naive();
    format!("{:04}{:02}{:02}", day.year(), day.month(), day.day())
}

impl Schedule {
    pub fn check(&self) -> Vec<FieldError> {
        self.check_as("schedule")
    }

    /// Problems, with field names under `field` (e.g. `working_hours`).
    pub fn check_as(&self, field: &str) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if parse_tz(self.timezone.as_deref()).is_none() {
            errors.push(FieldError::new(
                format!("{field}.timezone"),
                "an IANA time zone such as Asia/Shanghai",
            ));
        }
        for (day, windows) in &self.weekly {
            if !DAYS.iter().any(|(d, _)| d == day) {
                errors.push(FieldError::new(
                    format!("{field}.weekly.{day}"),
                    "weekdays are mon, tue, wed, thu, fri, sat, sun",
                ));
            }
            for (i, w) in windows.iter().enumerate() {
                match (minutes(&w.start), minutes(&w.end)) {
                    (Some(s), Some(e)) if s < e => {}
                    _ => errors.push(FieldError::new(
                        format!("{field}.weekly.{day}[{i}]"),
                        "HH:MM start before HH:MM end",
                    )),
                }
            }
        }
        for (list, dates) in [("dates_off", &self.dates_off), ("workdays", &self.workdays)] {
            for (i, d) in dates.iter().enumerate() {
                if NaiveDate::parse_from_str(d, "%Y-%m-%d").is_err() {
                    errors.push(FieldError::new(format!("{field}.{list}[{i}]"), "a date as YYYY-MM-DD"));
                }
            }
        }
        errors
    }

    /// The open windows of a local date, as minutes after midnight `[start, end)`:
    /// none on a date off; Monday's on an adjusted working day.
    pub fn windows_on(&self, date: NaiveDate) -> Vec<(u32, u32)> {
        let key = date.format("%Y-%m-%d").to_string();
        if self.dates_off.contains(&key) {
            return Vec::new();
        }
        let weekday = if self.workdays.contains(&key) {
            Weekday::Mon
        } else {
            date.weekday()
        };
        let Some((name, _)) = DAYS.iter().find(|(_, w)| *w == weekday) else {
            return Vec::new();
        };
        let mut windows: Vec<(u32, u32)> = self
            .weekly
            .get(*name)
            .map(|ws| {
                ws.iter()
                    .filter_map(|w| match (minutes(&w.start), minutes(&w.end)) {
                        (Some(s), Some(e)) if s < e => Some((s, e)),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        windows.sort_unstable();
        windows
    }

    /// Whether `now` falls in an open window (checked values only).
    pub fn is_open(&self, now: DateTime<Utc>, tenant_tz: Tz) -> bool {
        let tz = self
            .timezone
            .as_deref()
            .and_then(|n| n.parse().ok())
            .unwrap_or(tenant_tz);
        let local = now.with_timezone(&tz);
        let date = local.date_naive().format("%Y-%m-%d").to_string();
        if self.dates_off.contains(&date) {
            return false;
        }
        let weekday = if self.workdays.contains(&date) {
            Weekday::Mon
        } else {
            local.weekday()
        };
        let Some((name, _)) = DAYS.iter().find(|(_, w)| *w == weekday) else {
            return false;
        };
        let minute = local.hour() * 60 + local.minute();
        self.weekly.get(*name).is_some_and(|windows| {
            windows.iter().any(
                |w| matches!((minutes(&w.start), minutes(&w.end)), (Some(s), Some(e)) if s <= minute && minute < e),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn office_hours() -> Schedule {
        serde_json::from_str(
            r#"{"weekly": {"mon": [{"start": "09:00", "end": "12:00"}, {"start": "13:00", "end": "18:00"}]}, "dates_off": ["2026-11-30"]}"#,
        )
        .unwrap()
    }

    #[test]
    fn windows_are_in_shanghai_time_by_default() {
        let s = office_hours();
        // Monday 2026-11-23 10:00 in Shanghai is 02:00 UTC.
        assert!(s.is_open(Utc.with_ymd_and_hms(2026, 11, 23, 2, 0, 0).unwrap(), DEFAULT_TZ));
        // 12:30 Shanghai: lunch break.
        assert!(!s.is_open(Utc.with_ymd_and_hms(2026, 11, 23, 4, 30, 0).unwrap(), DEFAULT_TZ));
        // 18:00 Shanghai: the end is exclusive.
        assert!(!s.is_open(Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap(), DEFAULT_TZ));
        // Tuesday is not listed: closed.
        assert!(!s.is_open(Utc.with_ymd_and_hms(2026, 11, 24, 2, 0, 0).unwrap(), DEFAULT_TZ));
    }

    #[test]
    fn dates_off_close_the_day() {
        // Monday 2026-11-30 is a date off.
        assert!(!office_hours().is_open(Utc.with_ymd_and_hms(2026, 11, 30, 2, 0, 0).unwrap(), DEFAULT_TZ));
    }

    #[test]
    fn an_adjusted_working_day_opens_with_mondays_hours() {
        let mut s = office_hours();
        // Saturday 2026-11-28, 10:00 in Shanghai.
        let saturday = Utc.with_ymd_and_hms(2026, 11, 28, 2, 0, 0).unwrap();
        assert!(!s.is_open(saturday, DEFAULT_TZ));
        s.workdays.push("2026-11-28".into());
        assert!(s.is_open(saturday, DEFAULT_TZ));
    }

    #[test]
    fn the_local_day_turns_at_local_midnight() {
        // 16:30 UTC is 00:30 the next day in Shanghai.
        assert_eq!(
            local_day(Utc.with_ymd_and_hms(2026, 11, 28, 16, 30, 0).unwrap(), DEFAULT_TZ),
            "20261129"
        );
        assert_eq!(
            local_day(Utc.with_ymd_and_hms(2026, 11, 28, 15, 59, 0).unwrap(), DEFAULT_TZ),
            "20261128"
        );
    }

    #[test]
    fn bad_schedules_are_explained() {
        let s: Schedule = serde_json::from_str(r#"{"timezone": "Mars/Base", "weekly": {"funday": [], "mon": [{"start": "18:00", "end": "09:00"}]}, "dates_off": ["soon"]}"#).unwrap();
        let fields: Vec<_> = s.check().into_iter().map(|e| e.field).collect();
        assert_eq!(fields.len(), 4, "{fields:?}");
    }
}
