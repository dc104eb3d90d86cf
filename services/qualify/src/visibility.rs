//! Who may read which lead, and how much of it. Admins and API keys with
//! `leads:read` see every lead of the tenant; a manager the leads nobody owns and
//! those owned by themselves or a member of a team they manage; an SDR the leads
//! they own or were ever offered, and the public pool's; a marketer every lead, for
//! the funnel, without contact details. Contact details are also hidden from an SDR
//! looking at a pool lead they have not claimed. A lead one may not see is "not
//! found": its existence is not confirmed either.

use huoke_shared::apikeys::Principal;
use huoke_shared::auth::Role;
use huoke_shared::contact::{mask_email, mask_phone};
use serde_json::Value;
use sqlx::AnyPool;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sight {
    Hidden,
    /// Everything but phone, e-mail and identity values.
    Masked,
    Full,
}

/// What `principal` may see of the lead owned by `owner` (in `status`).
pub async fn of(
    pool: &AnyPool,
    principal: &Principal,
    lead_id: &str,
    owner: Option<&str>,
    status: &str,
) -> sqlx::Result<Sight> {
    let caller = match principal {
        Principal::Key(_) => return Ok(Sight::Full),
        Principal::Staff(caller) => caller,
    };
    if caller.has(Role::Admin) {
        return Ok(Sight::Full);
    }
    let me = caller.staff_id.as_str();
    if owner == Some(me) {
        return Ok(Sight::Full);
    }
    if caller.has(Role::Manager) {
        let Some(owner) = owner else {
            return Ok(Sight::Full);
        };
        let manages: Option<String> = sqlx::query_scalar(
            "SELECT s.id FROM staff s JOIN teams t ON t.tenant_id = s.tenant_id AND t.id = s.team_id
             WHERE s.tenant_id = $1 AND s.id = $2 AND t.manager_id = $3",
        )
        .bind(&caller.tenant_id)
        .bind(owner)
        .bind(me)
        .fetch_optional(pool)
        .await?;
        if manages.is_some() {
            return Ok(Sight::Full);
        }
    }
    if caller.has(Role::Sdr) {
        let offered: Option<String> = sqlx::query_scalar(
            "SELECT id FROM assignments WHERE tenant_id = $1 AND lead_id = $2 AND staff_id = $3 LIMIT 1",
        )
        .bind(&caller.tenant_id)
        .bind(lead_id)
        .bind(me)
        .fetch_optional(pool)
        .await?;
        if offered.is_some() {
            return Ok(Sight::Full);
        }
        if status == "pool" {
            return Ok(Sight::Masked);
        }
    }
    if caller.has(Role::Marketer) {
        return Ok(Sight::Masked);
    }
    Ok(Sight::Hidden)
}

/// Masks the contact details of a lead view in place. The attributes go entirely:
/// they are free text from forms, webhooks and members' notes, and may hold a phone
/// number or an address that no mask would find.
pub fn mask(view: &mut Value) {
    if let Some(map) = view.as_object_mut() {
        map.remove("attributes");
    }
    if let Some(phone) = view["phone"].as_str() {
        view["phone"] = Value::String(mask_phone(phone));
    }
    if let Some(email) = view["email"].as_str() {
        view["email"] = Value::String(mask_email(email));
    }
    if let Some(ids) = view["identities"].as_array_mut() {
        for id in ids {
            let masked = match (id["kind"].as_str(), id["value"].as_str()) {
                (Some("email"), Some(v)) => mask_email(v),
                (Some(_), Some(v)) => mask_phone(v),
                _ => continue,
            };
            id["value"] = Value::String(masked);
        }
    }
}
