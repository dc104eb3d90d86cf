use std::collections::BTreeSet;

use sqlx::FromRow;

use super::staff::{NewStaff, insert_staff};
use crate::auth::Role;
use crate::clock::{new_id, now_ms};
use crate::store::Store;

#[derive(Debug, Clone, FromRow)]
pub struct Tenant {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub timezone: String,
    pub created_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error("a tenant with slug `{0}` already exists")]
    SlugTaken(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Slugs appear in URLs and logins: lower-case letters, digits and dashes.
pub fn valid_slug(slug: &str) -> bool {
    (2..=40).contains(&slug.len())
        && slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !slug.starts_with('-')
        && !slug.ends_with('-')
}

/// Creates a tenant and its first admin in one transaction.
pub async fn create_tenant(
    store: &Store,
    slug: &str,
    name: &str,
    admin_email: &str,
    admin_password: &str,
) -> Result<(Tenant, String), TenantError> {
    if !valid_slug(slug) {
        return Err(TenantError::Invalid(
            "slug: 2–40 lower-case letters, digits or dashes".into(),
        ));
    }
    if name.trim().is_empty() {
        return Err(TenantError::Invalid("name must not be empty".into()));
    }
    let email =
        crate::contact::Email::parse(admin_email).map_err(|e| TenantError::Invalid(format!("admin e-mail: {e}")))?;
    if admin_password.chars().count() < 8 {
        return Err(TenantError::Invalid("admin password: at least 8 characters".into()));
    }
    let tenant = Tenant {
        id: new_id(),
        slug: slug.to_string(),
        name: name.trim().to_string(),
        timezone: "Asia/Shanghai".into(),
        created_at: now_ms(),
    };
    let password_hash = crate::auth::hash_password(admin_password)?;
    let mut tx = store.begin().await?;
    let inserted =
        sqlx::query("INSERT INTO tenants (id, slug, name, timezone, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&tenant.id)
            .bind(&tenant.slug)
            .bind(&tenant.name)
            .bind(&tenant.timezone)
            .bind(tenant.created_at)
            .execute(&mut *tx)
            .await;
    match inserted {
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
            return Err(TenantError::SlugTaken(slug.into()));
        }
        other => other?,
    };
    let admin = insert_staff(
        &mut tx,
        &tenant.id,
        NewStaff {
            name: "Administrator".into(),
            email: email.as_str().into(),
            password_hash: Some(password_hash),
            roles: BTreeSet::from([Role::Admin]),
            team_id: None,
            capacity: None,
            daily_cap: None,
            timezone: tenant.timezone.clone(),
            working_hours: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok((tenant, admin.id))
}

pub async fn by_slug(store: &Store, slug: &str) -> sqlx::Result<Option<Tenant>> {
    sqlx::query_as("SELECT id, slug, name, timezone, created_at FROM tenants WHERE slug = $1")
        .bind(slug)
        .fetch_optional(store.pool())
        .await
}

pub async fn by_id(store: &Store, id: &str) -> sqlx::Result<Option<Tenant>> {
    sqlx::query_as("SELECT id, slug, name, timezone, created_at FROM tenants WHERE id = $1")
        .bind(id)
        .fetch_optional(store.pool())
        .await
}

/// Where `phone_region` is remembered for a while: read on every capture.
fn region_key(tenant_id: &str) -> String {
    format!("tenant:phone-region:{tenant_id}")
}

/// The region the tenant's numbers without a country code are read in. From the
/// cache when it has it (five minutes), else from the store; a tenant that is gone
/// reads as the default region.
pub async fn phone_region(store: &Store, cache: &dyn crate::cache::Cache, tenant_id: &str) -> sqlx::Result<String> {
    if let Ok(Some(region)) = cache.get(&region_key(tenant_id)).await {
        return Ok(region);
    }
    let region: Option<String> = sqlx::query_scalar("SELECT phone_region FROM tenants WHERE id = $1")
        .bind(tenant_id)
        .fetch_optional(store.pool())
        .await?;
    let region = region.unwrap_or_else(|| crate::contact::DEFAULT_REGION.to_string());
    let _ = cache
        .set(
            &region_key(tenant_id),
            &region,
            Some(std::time::Duration::from_secs(300)),
        )
        .await;
    Ok(region)
}

/// Sets the tenant's phone region (already checked) and forgets the cached one.
pub async fn set_phone_region(
    store: &Store,
    cache: &dyn crate::cache::Cache,
    tenant_id: &str,
    region: &str,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE tenants SET phone_region = $1 WHERE id = $2")
        .bind(region)
        .bind(tenant_id)
        .execute(store.pool())
        .await?;
    let _ = cache.del(&region_key(tenant_id)).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn slugs() {
        assert!(super::valid_slug("demo"));
        assert!(super::valid_slug("acme-2"));
        assert!(!super::valid_slug("Acme"));
        assert!(!super::valid_slug("-x"));
        assert!(!super::valid_slug("a"));
        assert!(!super::valid_slug("a/b"));
    }
}
