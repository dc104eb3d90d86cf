//! What the scan path needs to know about a code, assembled from the store once and
//! kept in process, refreshed in the background every `TTL`, so a scan normally
//! touches no database. Edits through this process drop the entry at once; other
//! replicas see them within `TTL` (plus one reload).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono_tz::Tz;
use huoke_shared::store::Store;
use sqlx::FromRow;

use crate::model::{CodeConfig, Group, Kind, Member, Mode};
use crate::schedule::{Schedule, parse_tz};

const TTL: Duration = Duration::from_secs(5);
const MAX_ENTRIES: usize = 50_000;
/// When full, entries are dropped down to this many at once, so the sweep runs
/// once per few thousand new codes rather than on every one.
const REFILL_TO: usize = MAX_ENTRIES * 9 / 10;
/// Store look-ups for codes not in memory at once, per process: a flood of made-up
/// codes waits here instead of queueing on the database.
const COLD_LOADS_AT_ONCE: usize = 8;
const COLD_LOAD_WAIT: Duration = Duration::from_secs(1);

/// A person a scan can land on.
#[derive(Debug, Clone)]
pub struct Person {
    pub staff_id: String,
    pub name: String,
    pub active: bool,
    pub wecom_userid: Option<String>,
    pub card_slug: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Snapshot {
    pub id: String,
    pub tenant_id: String,
    pub code: String,
    pub kind: Kind,
    pub mode: Mode,
    pub active: bool,
    pub deleted: bool,
    pub members: Vec<Member>,
    /// Same order as `members`.
    pub people: Vec<Option<Person>>,
    pub backup: Option<Person>,
    pub schedule: Option<Schedule>,
    pub tz: Tz,
    pub groups: Vec<Group>,
    pub welcome_text: Option<String>,
    pub state: Option<String>,
    pub wecom_configured: bool,
}

#[cfg(test)]
impl Snapshot {
    /// An active live code without members.
    pub fn for_tests(tenant_id: &str, id: &str) -> Snapshot {
        Snapshot {
            id: id.into(),
            tenant_id: tenant_id.into(),
            code: format!("code{id}"),
            kind: Kind::Live,
            mode: Mode::RoundRobin,
            active: true,
            deleted: false,
            members: Vec::new(),
            people: Vec::new(),
            backup: None,
            schedule: None,
            tz: chrono_tz::Asia::Shanghai,
            groups: Vec::new(),
            welcome_text: None,
            state: None,
            wecom_configured: false,
        }
    }
}

#[derive(FromRow)]
pub struct CodeRow {
    pub id: String,
    pub tenant_id: String,
    pub code: String,
    pub kind: String,
    pub name: String,
    pub campaign_id: Option<String>,
    pub channel_id: Option<String>,
    pub mode: String,
    pub members: String,
    pub schedule: Option<String>,
    pub backup_staff_id: Option<String>,
    pub tags: String,
    pub welcome_text: Option<String>,
    pub state: Option<String>,
    pub groups: String,
    pub active: i64,
    pub deleted_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

pub const CODE_COLUMNS: &str = "id, tenant_id, code, kind, name, campaign_id, channel_id, mode, members, schedule, backup_staff_id, tags, welcome_text, state, groups, active, deleted_at, created_at, updated_at";

impl CodeRow {
    pub fn config(&self) -> anyhow::Result<CodeConfig> {
        Ok(CodeConfig {
            name: self.name.clone(),
            kind: serde_json::from_value(serde_json::Value::String(self.kind.clone()))?,
            campaign_id: self.campaign_id.clone(),
            channel_id: self.channel_id.clone(),
            mode: serde_json::from_value(serde_json::Value::String(self.mode.clone()))?,
            members: serde_json::from_str(&self.members)?,
            schedule: self.schedule.as_deref().map(serde_json::from_str).transpose()?,
            backup_staff_id: self.backup_staff_id.clone(),
            tags: serde_json::from_str(&self.tags)?,
            welcome_text: self.welcome_text.clone(),
            state: self.state.clone(),
            groups: serde_json::from_str(&self.groups)?,
            active: self.active != 0,
        })
    }
}

struct Entry {
    loaded: Instant,
    snap: Option<Arc<Snapshot>>,
    refreshing: bool,
}

/// Snapshots by public code. A stale entry keeps serving while one background task
/// reloads it, so expiry never sends a crowd of concurrent scans to the database
/// at once (that stampede showed as a latency spike every `TTL`).
pub struct SnapshotCache {
    entries: Arc<Mutex<HashMap<String, Entry>>>,
    cold_loads: tokio::sync::Semaphore,
}

impl Default for SnapshotCache {
    fn default() -> Self {
        Self {
            entries: Arc::default(),
            cold_loads: tokio::sync::Semaphore::new(COLD_LOADS_AT_ONCE),
        }
    }
}

impl SnapshotCache {
    /// The snapshot for a public code, `None` when no such code exists.
    pub async fn get(&self, store: &Store, code: &str) -> anyhow::Result<Option<Arc<Snapshot>>> {
        {
            let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(entry) = entries.get_mut(code) {
                if entry.loaded.elapsed() >= TTL && !entry.refreshing {
                    entry.refreshing = true;
                    self.refresh_in_background(store.clone(), code.to_string());
                }
                return Ok(entry.snap.clone());
            }
        }
        // Never seen (or just edited here): load now, a bounded number at a time.
        let _slot = tokio::time::timeout(COLD_LOAD_WAIT, self.cold_loads.acquire())
            .await
            .map_err(|_| anyhow::anyhow!("too many unknown codes being looked up at once"))??;
        // A crowd scanning a fresh code queues here behind the first scan: whoever
        // gets a slot after it finds the snapshot already loaded.
        if let Some(entry) = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(code)
        {
            return Ok(entry.snap.clone());
        }
        let snap = load(store, code).await?.map(Arc::new);
        self.put(code, snap.clone());
        Ok(snap)
    }

    fn refresh_in_background(&self, store: Store, code: String) {
        let entries = self.entries.clone();
        tokio::spawn(async move {
            let loaded = load(&store, &code).await;
            let mut entries = entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match loaded {
                Ok(snap) => {
                    entries.insert(
                        code,
                        Entry {
                            loaded: Instant::now(),
                            snap: snap.map(Arc::new),
                            refreshing: false,
                        },
                    );
                }
                Err(err) => {
                    tracing::warn!(error = %err, "refreshing a code snapshot failed; serving the previous one");
                    if let Some(entry) = entries.get_mut(&code) {
                        entry.refreshing = false;
                    }
                }
            }
        });
    }

    fn put(&self, code: &str, snap: Option<Arc<Snapshot>>) {
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= MAX_ENTRIES {
            // Expired entries go first, then unknown codes, then whatever is left,
            // down to REFILL_TO: the cache never grows past its bound, however many
            // fresh codes a flood brings.
            entries.retain(|_, e| e.loaded.elapsed() < TTL);
            if entries.len() > REFILL_TO {
                entries.retain(|_, e| e.snap.is_some());
            }
            let excess = entries.len().saturating_sub(REFILL_TO);
            if excess > 0 {
                let victims: Vec<String> = entries.keys().take(excess).cloned().collect();
                for k in victims {
                    entries.remove(&k);
                }
            }
        }
        entries.insert(
            code.to_string(),
            Entry {
                loaded: Instant::now(),
                snap,
                refreshing: false,
            },
        );
    }

    pub fn forget(&self, code: &str) {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(code);
    }
}

async fn load(store: &Store, code: &str) -> anyhow::Result<Option<Snapshot>> {
    let row: Option<CodeRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CODE_COLUMNS} FROM live_codes WHERE code = $1"
    )))
    .bind(code)
    .fetch_optional(store.pool())
    .await?;
    let Some(row) = row else { return Ok(None) };
    let config = row.config()?;
    let tenant_tz: Option<String> = sqlx::query_scalar("SELECT timezone FROM tenants WHERE id = $1")
        .bind(&row.tenant_id)
        .fetch_optional(store.pool())
        .await?;
    let mut people = Vec::with_capacity(config.members.len());
    for m in &config.members {
        people.push(person(store, &row.tenant_id, &m.staff_id).await?);
    }
    let backup = match &config.backup_staff_id {
        Some(id) => person(store, &row.tenant_id, id).await?,
        None => None,
    };
    let wecom: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM wecom_settings WHERE tenant_id = $1")
        .bind(&row.tenant_id)
        .fetch_one(store.pool())
        .await?;
    Ok(Some(Snapshot {
        id: row.id.clone(),
        tenant_id: row.tenant_id.clone(),
        code: row.code.clone(),
        kind: config.kind,
        mode: config.mode,
        active: config.active,
        deleted: row.deleted_at.is_some(),
        members: config.members,
        people,
        backup,
        schedule: config.schedule,
        tz: parse_tz(tenant_tz.as_deref()).unwrap_or(crate::schedule::DEFAULT_TZ),
        groups: config.groups,
        welcome_text: config.welcome_text,
        state: config.state,
        wecom_configured: wecom > 0,
    }))
}

async fn person(store: &Store, tenant_id: &str, staff_id: &str) -> anyhow::Result<Option<Person>> {
    let row: Option<(String, String, i64, Option<String>)> =
        sqlx::query_as("SELECT id, name, active, wecom_userid FROM staff WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(staff_id)
            .fetch_optional(store.pool())
            .await?;
    let Some((id, name, active, wecom_userid)) = row else {
        return Ok(None);
    };
    let card_slug: Option<String> = sqlx::query_scalar("SELECT slug FROM cards WHERE tenant_id = $1 AND staff_id = $2")
        .bind(tenant_id)
        .bind(&id)
        .fetch_optional(store.pool())
        .await?;
    Ok(Some(Person {
        staff_id: id,
        name,
        active: active != 0,
        wecom_userid,
        card_slug,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flood of made-up codes (all fresh, all unknown) used to grow the cache
    /// without bound, with a full sweep under the lock on every insert.
    #[test]
    fn the_cache_stays_bounded_under_a_flood_of_fresh_codes() {
        let cache = SnapshotCache::default();
        let mut sweeps = 0;
        let mut last = 0;
        for i in 0..(MAX_ENTRIES * 2 + 17) {
            cache.put(&format!("made-up-{i}"), None);
            let len = cache.entries.lock().unwrap().len();
            assert!(len <= MAX_ENTRIES, "{len} entries after {i} inserts");
            if len < last {
                sweeps += 1;
            }
            last = len;
        }
        // Unknown codes go first when full, so a flood of them clears out in one pass
        // each time the cache fills, not on every insert.
        assert!(sweeps <= 3, "{sweeps} sweeps");
    }
}
