//! Choosing who (or which group) a scan lands on: schedule, online flags, sticky
//! visitors, rotation and daily caps. The cache is the only I/O: caps are reserved
//! on shared counters that no replica can push past the limit (in leased blocks,
//! see `leases`), and a visitor's pick of the day travels in their own cookie.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use huoke_shared::cache::{Cache, CappedIncrement};

use crate::leases::CapLeases;
use crate::model::Kind;
use crate::rotation::order;
use crate::snapshot::{Person, Snapshot};

/// Borrows the people from the snapshot it was picked from: a scan copies no names.
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'s> {
    /// A member of the code; `sticky` when it repeats this visitor's earlier pick today.
    Member { person: &'s Person, sticky: bool },
    /// Nobody eligible or every cap full: the backup employee.
    Backup { person: &'s Person },
    /// Group codes: the group at this index.
    Group { index: usize, sticky: bool },
    /// Nobody at all (no backup).
    Nobody,
}

impl<'s> Outcome<'s> {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Member { .. } => "member",
            Outcome::Backup { .. } => "backup",
            Outcome::Group { .. } => "group",
            Outcome::Nobody => "none",
        }
    }

    pub fn staff_id(&self) -> Option<&'s str> {
        match self {
            Outcome::Member { person, .. } | Outcome::Backup { person } => Some(&person.staff_id),
            _ => None,
        }
    }
}

/// Rotation cursors per code. Kept in process: rotation is about spreading load, and
/// per-replica cursors spread it as well as a shared one without a round trip.
#[derive(Default)]
pub struct Cursors {
    next: Mutex<HashMap<String, u64>>,
}

impl Cursors {
    fn advance(&self, code_id: &str) -> u64 {
        let mut next = self.next.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(slot) = next.get_mut(code_id) {
            let current = *slot;
            *slot = current.wrapping_add(1);
            return current;
        }
        next.insert(code_id.to_string(), 1);
        0
    }
}

const CAP_TTL: Duration = Duration::from_secs(48 * 3600);

// Every key of one code carries the code id as a hash tag (`{…}`), so on Redis
// Cluster they share a slot.

pub fn cap_key(code_id: &str, staff_id: &str, day: &str) -> String {
    format!("codes:cap:{{{code_id}}}:{staff_id}:{day}")
}

fn group_key(code_id: &str, index: usize) -> String {
    format!("codes:group:{{{code_id}}}:{index}")
}

/// What a visitor's pick is remembered as (the sticky cookie's content).
pub fn remembered<'s>(outcome: &Outcome<'s>) -> Option<Cow<'s, str>> {
    match outcome {
        Outcome::Member { person, sticky: false } => Some(Cow::Borrowed(&person.staff_id)),
        Outcome::Group { index, sticky: false } => Some(Cow::Owned(format!("group:{index}"))),
        _ => None,
    }
}

/// Picks for one scan. `earlier` is the visitor's pick of today, when they bring one
/// (see `sticky`); it is honoured while that member is still eligible. Caps are the
/// only I/O, and mostly not even that (see `leases`).
pub async fn pick<'s>(
    cache: &dyn Cache,
    cursors: &Cursors,
    leases: &CapLeases,
    snap: &'s Snapshot,
    earlier: Option<&str>,
    now: DateTime<Utc>,
    day: &str,
) -> anyhow::Result<Outcome<'s>> {
    if snap.kind == Kind::Group {
        return pick_group(cache, snap, earlier).await;
    }

    let open = snap.schedule.as_ref().is_none_or(|s| s.is_open(now, snap.tz));
    let eligible: Vec<usize> = if open {
        (0..snap.members.len())
            .filter(|&i| snap.members[i].online && snap.people[i].as_ref().is_some_and(|p| p.active))
            .collect()
    } else {
        Vec::new()
    };

    if let Some(earlier) = earlier
        && let Some(&i) = eligible.iter().find(|&&i| snap.members[i].staff_id == earlier)
        && let Some(person) = &snap.people[i]
    {
        return Ok(Outcome::Member { person, sticky: true });
    }

    let cursor = cursors.advance(&snap.id);
    for i in order(snap.mode, &snap.members, &eligible, cursor, rand::random()) {
        let member = &snap.members[i];
        // Eligible members have a person (filtered above).
        let Some(person) = &snap.people[i] else {
            continue;
        };
        if let Some(limit) = member.daily_limit {
            let cap = CappedIncrement {
                key: &cap_key(&snap.id, &member.staff_id, day),
                limit: limit as i64,
                ttl: Some(CAP_TTL),
            };
            if !leases.take(cache, cap).await? {
                continue;
            }
        }
        return Ok(Outcome::Member { person, sticky: false });
    }

    Ok(backup_or_nobody(snap))
}

fn backup_or_nobody(snap: &Snapshot) -> Outcome<'_> {
    match snap.backup.as_ref().filter(|p| p.active) {
        Some(person) => Outcome::Backup { person },
        None => Outcome::Nobody,
    }
}

async fn pick_group<'s>(cache: &dyn Cache, snap: &'s Snapshot, earlier: Option<&str>) -> anyhow::Result<Outcome<'s>> {
    if let Some(index) = earlier
        .and_then(|e| e.strip_prefix("group:"))
        .and_then(|i| i.parse::<usize>().ok())
        && index < snap.groups.len()
    {
        return Ok(Outcome::Group { index, sticky: true });
    }
    // Groups fill up over their whole life, not per day, and are few: one capped
    // increment each, no leases.
    for (index, group) in snap.groups.iter().enumerate() {
        let room = group.capacity.saturating_sub(group.count) as i64;
        if room == 0 {
            continue;
        }
        if cache
            .incr_capped(&group_key(&snap.id, index), room, None)
            .await?
            .is_some()
        {
            return Ok(Outcome::Group { index, sticky: false });
        }
    }
    Ok(backup_or_nobody(snap))
}
