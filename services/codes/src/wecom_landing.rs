//! The member's WeCom "contact me" QR code for a (code, member) pair: from the cache,
//! else from the store, else created once through WeCom and remembered in both.

use huoke_shared::Infra;
use huoke_shared::clock::now_ms;
use huoke_shared::wecom;
use sha2::{Digest, Sha256};

use crate::snapshot::{Person, Snapshot};
use crate::state::CodesState;

/// The `state` WeCom hands back when the prospect adds the member: which code and
/// which member (≤ 30 characters, as WeCom requires). Channel codes use their own.
pub fn state_for(snap: &Snapshot, staff_id: &str) -> String {
    if let Some(state) = &snap.state {
        return state.clone();
    }
    let member = hex::encode(&Sha256::digest(staff_id.as_bytes())[..4]);
    format!("{}.{}", &snap.code[..snap.code.len().min(20)], member)
}

pub async fn contact_way(
    infra: &Infra,
    state: &CodesState,
    snap: &Snapshot,
    person: &Person,
) -> anyhow::Result<Option<String>> {
    let Some(userid) = &person.wecom_userid else {
        return Ok(None);
    };
    let key = format!("codes:contact-way:{}:{}", snap.id, person.staff_id);
    if let Some(qr) = infra.cache.get(&key).await? {
        return Ok(Some(qr));
    }
    let stored: Option<String> = sqlx::query_scalar(
        "SELECT qr_code FROM wecom_contact_ways WHERE tenant_id = $1 AND code_id = $2 AND staff_id = $3",
    )
    .bind(&snap.tenant_id)
    .bind(&snap.id)
    .bind(&person.staff_id)
    .fetch_optional(infra.store.pool())
    .await?;
    if let Some(qr) = stored {
        infra.cache.set(&key, &qr, None).await?;
        return Ok(Some(qr));
    }
    let Some(settings) = wecom::settings(&infra.store, &snap.tenant_id).await? else {
        return Ok(None);
    };
    let wecom_state = state_for(snap, &person.staff_id);
    let way = state
        .wecom
        .add_contact_way(&*infra.cache, &settings, userid, &wecom_state)
        .await?;
    // Two concurrent first scans may both ask WeCom; the first row stored wins.
    sqlx::query(
        "INSERT INTO wecom_contact_ways (tenant_id, code_id, staff_id, config_id, qr_code, state, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id, code_id, staff_id) DO NOTHING",
    )
    .bind(&snap.tenant_id)
    .bind(&snap.id)
    .bind(&person.staff_id)
    .bind(&way.config_id)
    .bind(&way.qr_code)
    .bind(&wecom_state)
    .bind(now_ms())
    .execute(infra.store.pool())
    .await?;
    let qr: String = sqlx::query_scalar(
        "SELECT qr_code FROM wecom_contact_ways WHERE tenant_id = $1 AND code_id = $2 AND staff_id = $3",
    )
    .bind(&snap.tenant_id)
    .bind(&snap.id)
    .bind(&person.staff_id)
    .fetch_one(infra.store.pool())
    .await?;
    infra.cache.set(&key, &qr, None).await?;
    Ok(Some(qr))
}
