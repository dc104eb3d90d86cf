//! `PUT/GET /v1/integrations/wecom`: a tenant's WeCom settings. Secrets are
//! write-only: the GET shows whether they are set, never their values.

use actix_web::{HttpResponse, web};
use huoke_shared::auth::{Caller, Role};
use huoke_shared::clock::rfc3339;
use huoke_shared::error::FieldError;
use huoke_shared::http::Json;
use huoke_shared::wecom::{self, DEFAULT_API_BASE, WecomSettings};
use huoke_shared::{ApiError, ApiResult, Infra};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
pub struct WecomInput {
    corp_id: String,
    secret: String,
    agent_id: Option<String>,
    callback_token: String,
    encoding_aes_key: String,
    api_base: Option<String>,
}

pub async fn put(infra: web::Data<Infra>, caller: Caller, body: Json<WecomInput>) -> ApiResult<HttpResponse> {
    caller.require_any(&[Role::Admin])?;
    let i = body.0;
    let mut errors = Vec::new();
    let filled = |v: &str, max: usize| !v.trim().is_empty() && v.len() <= max;
    if !filled(&i.corp_id, 64) {
        errors.push(FieldError::new("corp_id", "required, at most 64 characters"));
    }
    if !filled(&i.secret, 256) {
        errors.push(FieldError::new("secret", "required"));
    }
    if !filled(&i.callback_token, 64) {
        errors.push(FieldError::new("callback_token", "required, at most 64 characters"));
    }
    // WeCom's EncodingAESKey is 43 base64 characters (32 bytes once '=' is added).
    if i.encoding_aes_key.len() != 43
        || !i
            .encoding_aes_key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/')
    {
        errors.push(FieldError::new("encoding_aes_key", "43 base64 characters"));
    }
    if let Some(base) = &i.api_base
        && let Err(why) = wecom::check_api_base(base.trim(), &infra.settings.wecom_allowed_hosts)
    {
        errors.push(FieldError::new("api_base", why));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let settings = WecomSettings {
        tenant_id: caller.tenant_id.clone(),
        corp_id: i.corp_id.trim().into(),
        secret: i.secret.trim().into(),
        agent_id: i.agent_id,
        callback_token: i.callback_token.trim().into(),
        encoding_aes_key: i.encoding_aes_key,
        api_base: i.api_base.map(|b| b.trim_end_matches('/').to_string()),
        updated_at: 0,
    };
    wecom::save_settings(&infra.store, &settings).await?;
    get(infra, caller).await
}

pub async fn get(infra: web::Data<Infra>, caller: Caller) -> ApiResult<HttpResponse> {
    caller.require_any(&[Role::Admin])?;
    let s = wecom::settings(&infra.store, &caller.tenant_id)
        .await?
        .ok_or_else(|| ApiError::not_found("WeCom settings"))?;
    Ok(HttpResponse::Ok().json(json!({
        "corp_id": s.corp_id,
        "agent_id": s.agent_id,
        "api_base": s.api_base.as_deref().unwrap_or(DEFAULT_API_BASE),
        "secret_set": !s.secret.is_empty(),
        "callback_token_set": !s.callback_token.is_empty(),
        "encoding_aes_key_set": !s.encoding_aes_key.is_empty(),
        "updated_at": rfc3339(s.updated_at),
    })))
}
