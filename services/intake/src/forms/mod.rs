//! Hosted web forms: a marketer configures one (`/v1/forms`), prospects fill it in at
//! `/f/{form_id}` (a server-rendered page) or a company site posts it as JSON to
//! `/f/{form_id}/submit` from the origins the form allows (CORS).

pub mod model;
pub mod public;

use actix_web::{HttpResponse, web};
use huoke_shared::auth::{Caller, Role};
use huoke_shared::clock::{new_id, now_ms, rfc3339};
use huoke_shared::http::Json;
use huoke_shared::{ApiError, ApiResult, Infra};
use serde::Deserialize;
use serde_json::{Value, json};

use model::FormConfig;

const MARKETING: &[Role] = &[Role::Admin, Role::Marketer];

pub struct Form {
    pub id: String,
    pub tenant_id: String,
    pub config: FormConfig,
    pub created_at: i64,
    pub updated_at: i64,
}

fn view(form: &Form) -> Value {
    let mut v = serde_json::to_value(&form.config).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut v {
        map.insert("id".into(), json!(form.id));
        map.insert("url".into(), json!(format!("/f/{}", form.id)));
        map.insert("submit_url".into(), json!(format!("/f/{}/submit", form.id)));
        map.insert("created_at".into(), json!(rfc3339(form.created_at)));
        map.insert("updated_at".into(), json!(rfc3339(form.updated_at)));
    }
    v
}

/// A form by id, in any tenant (public pages) or in `tenant_id`.
pub async fn find(infra: &Infra, id: &str, tenant_id: Option<&str>) -> ApiResult<Option<Form>> {
    let row: Option<(String, String, String, i64, i64)> = sqlx::query_as(
        "SELECT id, tenant_id, config, created_at, updated_at FROM forms WHERE id = $1 AND ($2 = '' OR tenant_id = $2)",
    )
    .bind(id)
    .bind(tenant_id.unwrap_or_default())
    .fetch_optional(infra.store.pool())
    .await?;
    let Some((id, tenant_id, config, created_at, updated_at)) = row else {
        return Ok(None);
    };
    let config = serde_json::from_str(&config).map_err(anyhow::Error::from)?;
    Ok(Some(Form {
        id,
        tenant_id,
        config,
        created_at,
        updated_at,
    }))
}

async fn save(infra: &Infra, form: &Form, insert: bool) -> ApiResult<()> {
    let config = serde_json::to_string(&form.config).map_err(anyhow::Error::from)?;
    let sql = if insert {
        "INSERT INTO forms (id, tenant_id, config, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)"
    } else {
        "UPDATE forms SET config = $3, updated_at = $5 WHERE id = $1 AND tenant_id = $2 AND created_at = $4"
    };
    sqlx::query(sql)
        .bind(&form.id)
        .bind(&form.tenant_id)
        .bind(config)
        .bind(form.created_at)
        .bind(form.updated_at)
        .execute(infra.store.pool())
        .await?;
    Ok(())
}

pub async fn create(
    infra: web::Data<Infra>,
    caller: Caller,
    req: actix_web::HttpRequest,
    body: Json<FormConfig>,
) -> ApiResult<HttpResponse> {
    caller.require_any(MARKETING)?;
    let config = body.0;
    let tenant = caller.tenant_id.clone();
    huoke_shared::idempotency::once(&infra, &req, &tenant, "forms.create", &config.clone(), &[], || {
        create_form(&infra, &caller, config)
    })
    .await
}

async fn create_form(infra: &Infra, caller: &Caller, config: FormConfig) -> ApiResult<HttpResponse> {
    let problems = config.check();
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    let now = now_ms();
    let form = Form {
        id: new_id(),
        tenant_id: caller.tenant_id.clone(),
        config,
        created_at: now,
        updated_at: now,
    };
    save(infra, &form, true).await?;
    Ok(HttpResponse::Created().json(view(&form)))
}

pub async fn list(infra: web::Data<Infra>, caller: Caller) -> ApiResult<HttpResponse> {
    caller.require_any(MARKETING)?;
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT id FROM forms WHERE tenant_id = $1 ORDER BY created_at DESC LIMIT 500")
            .bind(&caller.tenant_id)
            .fetch_all(infra.store.pool())
            .await?;
    let mut items = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(form) = find(&infra, &id, Some(&caller.tenant_id)).await? {
            items.push(view(&form));
        }
    }
    Ok(HttpResponse::Ok().json(json!({"items": items, "next_cursor": null})))
}

pub async fn get(infra: web::Data<Infra>, caller: Caller, id: web::Path<String>) -> ApiResult<HttpResponse> {
    caller.require_any(MARKETING)?;
    let form = find(&infra, &id, Some(&caller.tenant_id))
        .await?
        .ok_or_else(|| ApiError::not_found("form"))?;
    Ok(HttpResponse::Ok().json(view(&form)))
}

/// Any of the configuration's fields; the rest stay as they are.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormPatch {
    name: Option<String>,
    channel: Option<String>,
    campaign_id: Option<Option<String>>,
    fields: Option<Vec<String>>,
    required: Option<Vec<String>>,
    thank_you: Option<Option<String>>,
    consent_text: Option<Option<String>>,
    allowed_origins: Option<Vec<String>>,
    active: Option<bool>,
}

pub async fn update(
    infra: web::Data<Infra>,
    caller: Caller,
    id: web::Path<String>,
    body: Json<FormPatch>,
) -> ApiResult<HttpResponse> {
    caller.require_any(MARKETING)?;
    let mut form = find(&infra, &id, Some(&caller.tenant_id))
        .await?
        .ok_or_else(|| ApiError::not_found("form"))?;
    let p = body.0;
    let c = &mut form.config;
    if let Some(v) = p.name {
        c.name = v;
    }
    if let Some(v) = p.channel {
        c.channel = v;
    }
    if let Some(v) = p.campaign_id {
        c.campaign_id = v;
    }
    if let Some(v) = p.fields {
        c.fields = v;
    }
    if let Some(v) = p.required {
        c.required = v;
    }
    if let Some(v) = p.thank_you {
        c.thank_you = v;
    }
    if let Some(v) = p.consent_text {
        c.consent_text = v;
    }
    if let Some(v) = p.allowed_origins {
        c.allowed_origins = v;
    }
    if let Some(v) = p.active {
        c.active = v;
    }
    let problems = form.config.check();
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    form.updated_at = now_ms();
    save(&infra, &form, false).await?;
    Ok(HttpResponse::Ok().json(view(&form)))
}
