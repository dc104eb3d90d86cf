//! Live codes as the API sees them, parsed and checked once.

use serde::{Deserialize, Serialize};

use crate::schedule::Schedule;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Rotates over members (员工活码).
    Live,
    /// One target and an attribution `state` (渠道码).
    Channel,
    /// Rotates over group QR images as they fill (群活码).
    Group,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    RoundRobin,
    Weighted,
    Random,
    /// Member 1 up to its daily cap, then member 2, …
    Fill,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Live => "live",
            Kind::Channel => "channel",
            Kind::Group => "group",
        }
    }
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::RoundRobin => "round_robin",
            Mode::Weighted => "weighted",
            Mode::Random => "random",
            Mode::Fill => "fill",
        }
    }
}

fn one() -> u32 {
    1
}
fn yes() -> bool {
    true
}
fn group_capacity() -> u32 {
    200
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub staff_id: String,
    #[serde(default = "one")]
    pub weight: u32,
    #[serde(default)]
    pub daily_limit: Option<u32>,
    /// Offline members are skipped without being removed.
    #[serde(default = "yes")]
    pub online: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub name: String,
    /// The group's own QR image (from WeCom/WeChat), shown on our landing page.
    pub qr_url: String,
    #[serde(default = "group_capacity")]
    pub capacity: u32,
    /// Members already in the group when it was added.
    #[serde(default)]
    pub count: u32,
}

/// Tells "absent" (keep) from `null` (clear) in a PATCH: a present field, even
/// null, becomes `Some(..)`.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// The create body; `PATCH` takes the same fields, all optional.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct CodeInput {
    pub name: Option<String>,
    pub kind: Option<Kind>,
    #[serde(default, deserialize_with = "present")]
    pub campaign_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub channel_id: Option<Option<String>>,
    pub mode: Option<Mode>,
    pub members: Option<Vec<Member>>,
    #[serde(default, deserialize_with = "present")]
    pub schedule: Option<Option<Schedule>>,
    #[serde(default, deserialize_with = "present")]
    pub backup_staff_id: Option<Option<String>>,
    pub tags: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    pub welcome_text: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub state: Option<Option<String>>,
    pub groups: Option<Vec<Group>>,
    pub active: Option<bool>,
}

/// A live code's configuration (everything but identity and timestamps).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodeConfig {
    pub name: String,
    pub kind: Kind,
    pub campaign_id: Option<String>,
    pub channel_id: Option<String>,
    pub mode: Mode,
    pub members: Vec<Member>,
    pub schedule: Option<Schedule>,
    pub backup_staff_id: Option<String>,
    pub tags: Vec<String>,
    pub welcome_text: Option<String>,
    pub state: Option<String>,
    pub groups: Vec<Group>,
    pub active: bool,
}

impl CodeConfig {
    /// Applies `input` over `self` (a PATCH) or over the defaults (a create).
    pub fn merged(base: Option<&CodeConfig>, input: CodeInput) -> CodeConfig {
        let d = base.cloned().unwrap_or(CodeConfig {
            name: String::new(),
            kind: Kind::Live,
            campaign_id: None,
            channel_id: None,
            mode: Mode::RoundRobin,
            members: Vec::new(),
            schedule: None,
            backup_staff_id: None,
            tags: Vec::new(),
            welcome_text: None,
            state: None,
            groups: Vec::new(),
            active: true,
        });
        CodeConfig {
            name: input.name.map(|n| n.trim().to_string()).unwrap_or(d.name),
            kind: input.kind.unwrap_or(d.kind),
            campaign_id: input.campaign_id.unwrap_or(d.campaign_id),
            channel_id: input.channel_id.unwrap_or(d.channel_id),
            mode: input.mode.unwrap_or(d.mode),
            members: input.members.unwrap_or(d.members),
            schedule: input.schedule.unwrap_or(d.schedule),
            backup_staff_id: input.backup_staff_id.unwrap_or(d.backup_staff_id),
            tags: input.tags.unwrap_or(d.tags),
            welcome_text: input.welcome_text.unwrap_or(d.welcome_text),
            state: input.state.unwrap_or(d.state),
            groups: input.groups.unwrap_or(d.groups),
            active: input.active.unwrap_or(d.active),
        }
    }

    /// Checks that need no database; staff and channel existence are checked by the caller.
    pub fn check(&self) -> Vec<huoke_shared::error::FieldError> {
        use huoke_shared::error::FieldError as E;
        let mut errors = Vec::new();
        if self.name.is_empty() || self.name.chars().count() > 100 {
            errors.push(E::new("name", "1–100 characters"));
        }
        match self.kind {
            Kind::Live if self.members.is_empty() => errors.push(E::new("members", "at least one member")),
            Kind::Channel => {
                if self.members.len() != 1 {
                    errors.push(E::new("members", "a channel code has exactly one target member"));
                }
                if self.state.as_deref().is_none_or(str::is_empty) {
                    errors.push(E::new("state", "a channel code needs an attribution state"));
                }
            }
            Kind::Group if self.groups.is_empty() => errors.push(E::new("groups", "at least one group")),
            _ => {}
        }
        if self.members.len() > 200 {
            errors.push(E::new("members", "at most 200 members"));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, m) in self.members.iter().enumerate() {
            if !seen.insert(&m.staff_id) {
                errors.push(E::new(format!("members[{i}].staff_id"), "listed twice"));
            }
            if m.weight == 0 || m.weight > 1000 {
                errors.push(E::new(format!("members[{i}].weight"), "between 1 and 1000"));
            }
            if m.daily_limit.is_some_and(|l| l > 100_000) {
                errors.push(E::new(format!("members[{i}].daily_limit"), "at most 100000"));
            }
        }
        for (i, g) in self.groups.iter().enumerate() {
            if g.name.trim().is_empty() || g.name.chars().count() > 100 {
                errors.push(E::new(format!("groups[{i}].name"), "1–100 characters"));
            }
            if !g.qr_url.starts_with("https://") || g.qr_url.len() > 1000 {
                errors.push(E::new(format!("groups[{i}].qr_url"), "an https:// image URL"));
            }
            if g.capacity == 0 || g.capacity > 100_000 {
                errors.push(E::new(format!("groups[{i}].capacity"), "between 1 and 100000"));
            }
        }
        if let Some(state) = &self.state {
            // WeCom accepts at most 30 characters of state.
            if state.chars().count() > 30 || !state.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)) {
                errors.push(E::new("state", "at most 30 letters, digits, '_', '-' or '.'"));
            }
        }
        if self.tags.len() > 20 || self.tags.iter().any(|t| t.trim().is_empty() || t.chars().count() > 40) {
            errors.push(E::new("tags", "at most 20 tags of 1–40 characters"));
        }
        if self.welcome_text.as_ref().is_some_and(|w| w.chars().count() > 1000) {
            errors.push(E::new("welcome_text", "at most 1000 characters"));
        }
        if let Some(schedule) = &self.schedule {
            errors.extend(schedule.check());
        }
        errors
    }

    /// Every staff id the configuration names.
    pub fn staff_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.members.iter().map(|m| m.staff_id.clone()).collect();
        ids.extend(self.backup_staff_id.clone());
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str) -> Member {
        Member {
            staff_id: id.into(),
            weight: 1,
            daily_limit: None,
            online: true,
        }
    }

    #[test]
    fn patching_keeps_what_is_not_sent() {
        let created = CodeConfig::merged(
            None,
            CodeInput {
                name: Some("Expo".into()),
                members: Some(vec![member("a")]),
                ..Default::default()
            },
        );
        assert_eq!(created.mode, Mode::RoundRobin);
        assert!(created.active);
        let patched = CodeConfig::merged(
            Some(&created),
            CodeInput {
                active: Some(false),
                ..Default::default()
            },
        );
        assert_eq!(patched.name, "Expo");
        assert_eq!(patched.members, vec![member("a")]);
        assert!(!patched.active);
        let cleared = CodeConfig::merged(
            Some(&created),
            CodeInput {
                backup_staff_id: Some(None),
                ..Default::default()
            },
        );
        assert!(cleared.backup_staff_id.is_none());
    }

    #[test]
    fn null_clears_and_absence_keeps() {
        let input: CodeInput = serde_json::from_str(r#"{"backup_staff_id": null}"#).unwrap();
        assert_eq!(input.backup_staff_id, Some(None));
        assert_eq!(input.welcome_text, None);
    }

    #[test]
    fn kinds_have_their_own_rules() {
        let channel = CodeConfig::merged(
            None,
            CodeInput {
                name: Some("c".into()),
                kind: Some(Kind::Channel),
                members: Some(vec![member("a"), member("b")]),
                ..Default::default()
            },
        );
        let fields: Vec<_> = channel.check().into_iter().map(|e| e.field).collect();
        assert!(fields.contains(&"members".to_string()) && fields.contains(&"state".to_string()));
        let group = CodeConfig::merged(
            None,
            CodeInput {
                name: Some("g".into()),
                kind: Some(Kind::Group),
                groups: Some(vec![Group {
                    name: "G1".into(),
                    qr_url: "javascript:x".into(),
                    capacity: 200,
                    count: 0,
                }]),
                ..Default::default()
            },
        );
        assert_eq!(group.check()[0].field, "groups[0].qr_url");
        let dup = CodeConfig::merged(
            None,
            CodeInput {
                name: Some("d".into()),
                members: Some(vec![member("a"), member("a")]),
                ..Default::default()
            },
        );
        assert_eq!(dup.check()[0].field, "members[1].staff_id");
    }
}
