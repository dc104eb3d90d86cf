use actix_web::{HttpResponse, web};
use huoke_shared::auth::{Caller, Role};
use huoke_shared::contact::Email;
use huoke_shared::error::FieldError;
use huoke_shared::http::Json;
use huoke_shared::paging::{PageQuery, Paged};
use huoke_shared::repo::{staff, tenants};
use huoke_shared::schedule::Schedule;
use huoke_shared::{ApiError, ApiResult, Infra};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Clone, Deserialize, Serialize)]
pub struct NewStaffRequest {
    name: String,
    email: String,
    roles: Vec<String>,
    team_id: Option<String>,
    capacity: Option<i64>,
    /// Most leads offered to this person in one local day.
    daily_cap: Option<i64>,
    timezone: Option<String>,
    /// Weekly hours in the staff member's time zone (the live-code schedule format):
    /// routing offers leads only inside them.
    working_hours: Option<serde_json::Value>,
    /// Optional: staff without a password cannot sign in (e.g. card-only employees).
    /// Not part of the idempotency hash: a stored hash of it could be guessed offline.
    #[serde(skip_serializing)]
    password: Option<String>,
}

pub async fn create_staff(
    infra: web::Data<Infra>,
    caller: Caller,
    req: actix_web::HttpRequest,
    body: Json<NewStaffRequest>,
) -> ApiResult<HttpResponse> {
    huoke_shared::idempotency::keyed(infra, caller, req, body, "staff.create", create_staff_once).await
}

async fn create_staff_once(
    infra: web::Data<Infra>,
    caller: Caller,
    body: Json<NewStaffRequest>,
) -> ApiResult<HttpResponse> {
    caller.require_any(&[Role::Admin])?;
    let req = body.0;
    let mut errors = Vec::new();
    let name = req.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 100 {
        errors.push(FieldError::new("name", "1–100 characters"));
    }
    let email = Email::parse(&req.email)
        .map_err(|e| errors.push(FieldError::new("email", e)))
        .ok();
    let roles = huoke_shared::auth::parse_roles(&req.roles, "roles", &mut errors);
    if req.roles.is_empty() {
        errors.push(FieldError::new("roles", "at least one role"));
    }
    if req.capacity.is_some_and(|c| !(0..=10_000).contains(&c)) {
        errors.push(FieldError::new("capacity", "between 0 and 10000"));
    }
    if let Some(p) = &req.password
        && p.chars().count() < 8
    {
        errors.push(FieldError::new("password", "at least 8 characters"));
    }
    if req.daily_cap.is_some_and(|c| !(0..=100_000).contains(&c)) {
        errors.push(FieldError::new("daily_cap", "between 0 and 100000"));
    }
    if let Some(hours) = &req.working_hours {
        match serde_json::from_value::<Schedule>(hours.clone()) {
            Ok(schedule) => errors.extend(schedule.check_as("working_hours")),
            Err(err) => errors.push(FieldError::new(
                "working_hours",
                format!("{{\"weekly\": {{\"mon\": [{{\"start\": \"09:00\", \"end\": \"18:00\"}}]}}, \"dates_off\": [\"YYYY-MM-DD\"]}} ({err})"),
            )),
        }
    }
    let timezone = req.timezone.clone().unwrap_or_else(|| "Asia/Shanghai".into());
    if timezone.is_empty() || timezone.len() > 64 {
        errors.push(FieldError::new("timezone", "an IANA time zone name"));
    }
    if let Some(team_id) = &req.team_id
        && !crate::teams::exists(&infra, &caller.tenant_id, team_id).await?
    {
        errors.push(FieldError::new("team_id", "no such team"));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let email = email.ok_or_else(|| ApiError::invalid("email", "required"))?;
    let password_hash = match req.password {
        Some(p) => Some(
            web::block(move || huoke_shared::auth::hash_password(&p))
                .await
                .map_err(|e| ApiError::Internal(anyhow::anyhow!("hashing: {e}")))??,
        ),
        None => None,
    };
    let mut tx = infra.store.begin().await?;
    let row = staff::insert_staff(
        &mut tx,
        &caller.tenant_id,
        staff::NewStaff {
            name,
            email: email.as_str().to_string(),
            password_hash,
            roles,
            team_id: req.team_id,
            capacity: req.capacity,
            daily_cap: req.daily_cap,
            timezone,
            working_hours: req.working_hours,
        },
    )
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            ApiError::Conflict("a staff member with this e-mail already exists".into())
        }
        _ => e.into(),
    })?;
    tx.commit().await?;
    Ok(HttpResponse::Created().json(row.view()))
}

#[derive(Deserialize)]
pub struct StaffChanges {
    name: Option<String>,
    active: Option<bool>,
    capacity: Option<i64>,
    /// The member's WeCom user id, needed for WeCom "contact me" codes.
    wecom_userid: Option<String>,
}

/// `PATCH /v1/staff/{id}` (admin): switch someone off, rename them, link WeCom. A
/// manager may set capacity (how many open leads a person holds), nothing else.
pub async fn update_staff(
    infra: web::Data<Infra>,
    caller: Caller,
    id: web::Path<String>,
    body: Json<StaffChanges>,
) -> ApiResult<HttpResponse> {
    let only_capacity = body.0.name.is_none() && body.0.active.is_none() && body.0.wecom_userid.is_none();
    if only_capacity {
        caller.require_any(&[Role::Admin, Role::Manager])?;
    } else {
        caller.require_any(&[Role::Admin])?;
    }
    let current = staff::by_id(&infra.store, &caller.tenant_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("staff member"))?;
    let c = body.0;
    let name = c.name.map(|n| n.trim().to_string()).unwrap_or(current.name.clone());
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::invalid("name", "1–100 characters"));
    }
    if c.capacity.is_some_and(|v| !(0..=10_000).contains(&v)) {
        return Err(ApiError::invalid("capacity", "between 0 and 10000"));
    }
    if c.wecom_userid
        .as_ref()
        .is_some_and(|u| u.len() > 64 || u.trim().is_empty())
    {
        return Err(ApiError::invalid("wecom_userid", "1–64 characters"));
    }
    let active = c.active.map_or(current.active, i64::from);
    // Switching someone off revokes every token they hold, at once.
    let switched_off = current.active != 0 && active == 0;
    let mut tx = infra.store.begin().await?;
    if switched_off {
        sqlx::query("UPDATE staff SET tokens_revoked_at = $1 WHERE tenant_id = $2 AND id = $3")
            .bind(huoke_shared::clock::now_ms() / 1000)
            .bind(&caller.tenant_id)
            .bind(&current.id)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(
        "UPDATE staff SET name = $1, active = $2, capacity = $3, wecom_userid = $4 WHERE tenant_id = $5 AND id = $6",
    )
    .bind(&name)
    .bind(active)
    .bind(c.capacity.or(current.capacity))
    .bind(c.wecom_userid.or(current.wecom_userid.clone()))
    .bind(&caller.tenant_id)
    .bind(&current.id)
    .execute(&mut *tx)
    .await?;
    // Their open leads go to others by the rules, in the same transaction: nobody's
    // lead waits on someone who will not come back.
    let handed_over = if switched_off {
        huoke_shared::lifecycle::hand_over(&mut tx, &caller.tenant_id, &current.id, &caller.staff_id)
            .await
            .map_err(|e| match e {
                huoke_shared::lifecycle::LifecycleError::Store(err) => ApiError::from(err),
                other => ApiError::Conflict(other.to_string()),
            })?
    } else {
        Vec::new()
    };
    tx.commit().await?;
    if !handed_over.is_empty() {
        infra.kick_outbox();
        tracing::info!(staff = %current.id, leads = handed_over.len(), "switched off; open leads handed over");
    }
    // Read back from the store, then written through to the cache every replica reads.
    if let Some(s) = huoke_shared::revocation::standing_from_store(&infra.store, &caller.tenant_id, &current.id).await?
    {
        huoke_shared::revocation::remember(&*infra.cache, &current.id, s).await;
    }
    let row = staff::by_id(&infra.store, &caller.tenant_id, &current.id)
        .await?
        .ok_or_else(|| ApiError::not_found("staff member"))?;
    Ok(HttpResponse::Ok().json(row.view()))
}

pub async fn list_staff(
    infra: web::Data<Infra>,
    caller: Caller,
    query: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    // Marketers pick the members of live codes.
    caller.require_any(&[Role::Admin, Role::Manager, Role::Marketer])?;
    let page = query.parse()?;
    let rows = staff::list(&infra.store, &caller.tenant_id, page.after.as_deref(), page.limit).await?;
    let views: Vec<_> = rows.iter().map(huoke_shared::repo::staff::StaffRow::view).collect();
    Ok(HttpResponse::Ok().json(Paged::from_rows(views, &page, |v| v.id.clone())))
}

pub async fn get_staff(infra: web::Data<Infra>, caller: Caller, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    if id != caller.staff_id {
        caller.require_any(&[Role::Admin, Role::Manager])?;
    }
    let row = staff::by_id(&infra.store, &caller.tenant_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("staff member"))?;
    Ok(HttpResponse::Ok().json(row.view()))
}

pub async fn me(infra: web::Data<Infra>, caller: Caller) -> ApiResult<HttpResponse> {
    let row = staff::by_id(&infra.store, &caller.tenant_id, &caller.staff_id)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("this token's staff member no longer exists".into()))?;
    let mut view = serde_json::to_value(row.view()).map_err(anyhow::Error::from)?;
    view["tenant"] = tenant_view(&infra, &caller.tenant_id).await?;
    Ok(HttpResponse::Ok().json(view))
}

async fn tenant_view(infra: &Infra, tenant_id: &str) -> ApiResult<serde_json::Value> {
    let t = tenants::by_id(&infra.store, tenant_id)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    let region = tenants::phone_region(&infra.store, &*infra.cache, tenant_id).await?;
    Ok(json!({"id": t.id, "slug": t.slug, "name": t.name, "timezone": t.timezone, "phone_region": region}))
}

/// `GET /v1/tenant`: the caller's tenant.
pub async fn get_tenant(infra: web::Data<Infra>, caller: Caller) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(tenant_view(&infra, &caller.tenant_id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantChanges {
    /// Where numbers without a country code are read (ISO 3166 alpha-2).
    phone_region: Option<String>,
}

/// `PATCH /v1/tenant` (admin): the region the tenant's phone numbers are read in.
pub async fn update_tenant(
    infra: web::Data<Infra>,
    caller: Caller,
    body: Json<TenantChanges>,
) -> ApiResult<HttpResponse> {
    caller.require_any(&[Role::Admin])?;
    if let Some(region) = body.0.phone_region {
        let region = region.trim().to_ascii_uppercase();
        if !huoke_shared::contact::is_region(&region) {
            return Err(ApiError::invalid(
                "phone_region",
                "a region code such as CN, HK, SG or US",
            ));
        }
        tenants::set_phone_region(&infra.store, &*infra.cache, &caller.tenant_id, &region).await?;
    }
    Ok(HttpResponse::Ok().json(tenant_view(&infra, &caller.tenant_id).await?))
}

pub async fn landing(infra: web::Data<Infra>) -> HttpResponse {
    let _ = infra;
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(include_str!("landing.html"))
}
