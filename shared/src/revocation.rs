//! Tokens stop working the moment their holder is switched off, not when they
//! expire. Each request checks the member's standing — active, and the time before
//! which their tokens were revoked — from the cache, reading the store only when
//! the cache does not know (flushed, expired or unreachable). Nothing is lost when
//! Redis is flushed: the store is the record.

use std::time::Duration;

use crate::cache::Cache;
use crate::store::Store;

/// How long a member's standing is cached; a change writes it through at once.
const CACHED_FOR: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub active: bool,
    /// Tokens issued at or before this second are refused.
    pub revoked_at: i64,
}

impl Standing {
    pub fn accepts(&self, issued_at: i64) -> bool {
        self.active && issued_at > self.revoked_at
    }

    fn encode(&self) -> String {
        format!("{}:{}", u8::from(self.active), self.revoked_at)
    }

    fn decode(text: &str) -> Option<Standing> {
        let (active, revoked_at) = text.split_once(':')?;
        Some(Standing {
            active: active == "1",
            revoked_at: revoked_at.parse().ok()?,
        })
    }
}

fn key(staff_id: &str) -> String {
    format!("auth:standing:{staff_id}")
}

/// The member's standing; `None` when no such member exists.
pub async fn standing(
    cache: &dyn Cache,
    store: &Store,
    tenant_id: &str,
    staff_id: &str,
) -> sqlx::Result<Option<Standing>> {
    if let Ok(Some(text)) = cache.get(&key(staff_id)).await
        && let Some(s) = Standing::decode(&text)
    {
        return Ok(Some(s));
    }
    let Some(s) = standing_from_store(store, tenant_id, staff_id).await? else {
        return Ok(None);
    };
    remember(cache, staff_id, s).await;
    Ok(Some(s))
}

/// The member's standing as the store records it.
pub async fn standing_from_store(store: &Store, tenant_id: &str, staff_id: &str) -> sqlx::Result<Option<Standing>> {
    let row: Option<(i64, i64)> =
        sqlx::query_as("SELECT active, tokens_revoked_at FROM staff WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(staff_id)
            .fetch_optional(store.pool())
            .await?;
    Ok(row.map(|(active, revoked_at)| Standing {
        active: active != 0,
        revoked_at,
    }))
}

/// Writes a member's new standing through to the cache (after the store committed it).
pub async fn remember(cache: &dyn Cache, staff_id: &str, s: Standing) {
    if let Err(err) = cache.set(&key(staff_id), &s.encode(), Some(CACHED_FOR)).await {
        // The next request reads the store instead.
        tracing::warn!(error = %err, "could not cache a member's standing");
        let _ = cache.del(&key(staff_id)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standing_round_trips_and_judges_tokens() {
        let s = Standing {
            active: true,
            revoked_at: 100,
        };
        assert_eq!(Standing::decode(&s.encode()), Some(s));
        assert!(s.accepts(101));
        assert!(!s.accepts(100));
        assert!(
            !Standing {
                active: false,
                revoked_at: 0
            }
            .accepts(101)
        );
    }
}
