//! `huoke dev` helpers: a JWT secret kept in the data directory (so `huoke token`
//! and restarts agree with the running server) and the demo tenant.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Context;
use huoke_shared::auth::{Role, hash_password};
use huoke_shared::clock::{new_id, now_ms};
use huoke_shared::repo::{staff, tenants};
use huoke_shared::store::Store;

pub const DEMO_SLUG: &str = "demo";
pub const DEMO_ADMIN: &str = "admin@demo.local";
pub const DEMO_SDRS: [&str; 3] = ["sdr1@demo.local", "sdr2@demo.local", "sdr3@demo.local"];
pub const DEMO_TEAM: &str = "Inbound";

/// Reads `DIR/jwt-secret`, creating it with a random secret on first use.
pub fn dev_jwt_secret(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    let path = data_dir.join("jwt-secret");
    if let Ok(secret) = std::fs::read_to_string(&path) {
        let secret = secret.trim().to_string();
        if secret.len() >= 32 {
            return Ok(secret.into_bytes());
        }
    }
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let secret = random_token(48);
    std::fs::write(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    Ok(secret.into_bytes())
}

pub fn random_token(len: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

pub struct Demo {
    pub tenant_id: String,
    pub created: bool,
}

/// Creates the demo tenant (admin, team `Inbound`, three SDRs) if it is missing.
/// When it exists and `password` is given, the demo accounts take that password,
/// so `HUOKE_DEV_PASSWORD` always works after a restart.
pub async fn seed_demo(store: &Store, password: &str, password_given: bool) -> anyhow::Result<Demo> {
    if let Some(tenant) = tenants::by_slug(store, DEMO_SLUG).await? {
        if password_given {
            let hash = hash_password(password)?;
            for email in std::iter::once(DEMO_ADMIN).chain(DEMO_SDRS) {
                sqlx::query("UPDATE staff SET password_hash = $1 WHERE tenant_id = $2 AND email = $3")
                    .bind(&hash)
                    .bind(&tenant.id)
                    .bind(email)
                    .execute(store.pool())
                    .await?;
            }
        }
        return Ok(Demo {
            tenant_id: tenant.id,
            created: false,
        });
    }
    let (tenant, _admin) = tenants::create_tenant(store, DEMO_SLUG, "Demo Co.", DEMO_ADMIN, password)
        .await
        .context("creating the demo tenant")?;
    let hash = hash_password(password)?;
    let team_id = new_id();
    let mut tx = store.begin().await?;
    sqlx::query("INSERT INTO teams (id, tenant_id, name, created_at) VALUES ($1, $2, $3, $4)")
        .bind(&team_id)
        .bind(&tenant.id)
        .bind(DEMO_TEAM)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
    for (i, email) in DEMO_SDRS.iter().enumerate() {
        staff::insert_staff(
            &mut tx,
            &tenant.id,
            staff::NewStaff {
                name: format!("SDR {}", i + 1),
                email: email.to_string(),
                password_hash: Some(hash.clone()),
                roles: BTreeSet::from([Role::Sdr]),
                team_id: Some(team_id.clone()),
                // No open-lead limit: demos and tests post leads by the thousand.
                capacity: None,
                daily_cap: None,
                timezone: tenant.timezone.clone(),
                working_hours: None,
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Demo {
        tenant_id: tenant.id,
        created: true,
    })
}
