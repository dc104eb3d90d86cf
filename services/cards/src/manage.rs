//! The authenticated side: a staff member (or an admin for them) edits their card,
//! mints tracked share links and reads the card's numbers.

use actix_web::{HttpResponse, web};
use huoke_shared::auth::{Caller, Role};
use huoke_shared::http::Json;
use huoke_shared::repo::staff;
use huoke_shared::{ApiError, ApiResult, Infra};
use serde_json::json;

use crate::model::{self, CardInput, card_url, share_url};
use crate::repo;

/// The staff member themself, or an admin.
fn may_edit(caller: &Caller, staff_id: &str) -> ApiResult<()> {
    if caller.staff_id == staff_id {
        Ok(())
    } else {
        caller.require_any(&[Role::Admin])
    }
}

/// The staff member themself, an admin or a manager.
fn may_read(caller: &Caller, staff_id: &str) -> ApiResult<()> {
    if caller.staff_id == staff_id {
        Ok(())
    } else {
        caller.require_any(&[Role::Admin, Role::Manager])
    }
}

async fn card_of(infra: &Infra, caller: &Caller, staff_id: &str) -> ApiResult<model::Card> {
    repo::by_staff(infra, &caller.tenant_id, staff_id)
        .await?
        .ok_or_else(|| ApiError::not_found("card"))
}

/// `PUT /v1/cards/{staff_id}`: creates (201) or replaces (200) the card.
pub async fn put_card(
    infra: web::Data<Infra>,
    caller: Caller,
    staff_id: web::Path<String>,
    body: Json<CardInput>,
) -> ApiResult<HttpResponse> {
    let staff_id = staff_id.into_inner();
    may_edit(&caller, &staff_id)?;
    staff::by_id(&infra.store, &caller.tenant_id, &staff_id)
        .await?
        .ok_or_else(|| ApiError::not_found("staff member"))?;
    let input = body.0;
    let live_code_known = match input.live_code_id.as_deref().map(str::trim) {
        Some(id) if !id.is_empty() && id.len() <= model::MAX_ID => {
            repo::live_code_exists(&infra, &caller.tenant_id, id).await?
        }
        _ => false,
    };
    let fields = model::validate(&input, live_code_known).map_err(ApiError::Validation)?;
    let (card, created) = repo::save(&infra, &caller.tenant_id, &staff_id, &fields).await?;
    let answer = json!({
        "slug": card.slug,
        "url": card_url(&infra.settings.public_base(), &card.slug),
    });
    tracing::info!(card = %card.id, created, "card saved");
    Ok(if created {
        HttpResponse::Created()
            .insert_header(("Location", format!("/v1/cards/{staff_id}")))
            .json(answer)
    } else {
        HttpResponse::Ok().json(answer)
    })
}

/// `GET /v1/cards/{staff_id}`.
pub async fn get_card(infra: web::Data<Infra>, caller: Caller, staff_id: web::Path<String>) -> ApiResult<HttpResponse> {
    may_read(&caller, &staff_id)?;
    let card = card_of(&infra, &caller, &staff_id).await?;
    Ok(HttpResponse::Ok().json(card.view(&infra.settings.public_base())))
}

/// `POST /v1/cards/{staff_id}/shares`: a share link the staff member hands out.
pub async fn create_share(
    infra: web::Data<Infra>,
    caller: Caller,
    staff_id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    may_edit(&caller, &staff_id)?;
    let card = card_of(&infra, &caller, &staff_id).await?;
    let token = repo::add_share(&infra, &card, &format!("staff:{}", card.staff_id), None).await?;
    let url = share_url(&infra.settings.public_base(), &card.slug, &token);
    Ok(HttpResponse::Created().json(json!({"token": token, "url": url})))
}

/// `GET /v1/cards/{staff_id}/stats`.
pub async fn stats(infra: web::Data<Infra>, caller: Caller, staff_id: web::Path<String>) -> ApiResult<HttpResponse> {
    may_read(&caller, &staff_id)?;
    let card = card_of(&infra, &caller, &staff_id).await?;
    Ok(HttpResponse::Ok().json(repo::stats(&infra, &card).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(id: &str, roles: &[Role]) -> Caller {
        Caller {
            staff_id: id.into(),
            tenant_id: "t".into(),
            roles: roles.iter().copied().collect(),
        }
    }

    #[test]
    fn only_the_owner_or_an_admin_edits() {
        assert!(may_edit(&caller("s1", &[Role::Sdr]), "s1").is_ok());
        assert!(may_edit(&caller("a", &[Role::Admin]), "s1").is_ok());
        assert!(matches!(
            may_edit(&caller("s2", &[Role::Sdr]), "s1"),
            Err(ApiError::Forbidden(_))
        ));
        assert!(may_edit(&caller("m", &[Role::Manager]), "s1").is_err());
    }

    #[test]
    fn managers_may_read() {
        assert!(may_read(&caller("m", &[Role::Manager]), "s1").is_ok());
        assert!(may_read(&caller("s2", &[Role::Sdr]), "s1").is_err());
        assert!(may_read(&caller("mk", &[Role::Marketer]), "s1").is_err());
    }
}
