use actix_web::{HttpResponse, web};
use huoke_shared::auth::{Caller, Role};
use huoke_shared::clock::{new_id, now_ms, rfc3339};
use huoke_shared::http::Json;
use huoke_shared::repo::staff;
use huoke_shared::{ApiError, ApiResult, Infra};
use serde::{Deserialize, Serialize};

#[derive(Clone, Deserialize, Serialize)]
pub struct NewTeam {
    name: String,
    manager_id: Option<String>,
    #[serde(default)]
    members: Vec<String>,
}

#[derive(Serialize, sqlx::FromRow)]
struct TeamRow {
    id: String,
    name: String,
    manager_id: Option<String>,
    created_at: i64,
}

pub async fn exists(infra: &Infra, tenant_id: &str, team_id: &str) -> sqlx::Result<bool> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM teams WHERE tenant_id = $1 AND id = $2")
        .bind(tenant_id)
        .bind(team_id)
        .fetch_one(infra.store.pool())
        .await?;
    Ok(n > 0)
}

pub async fn create_team(
    infra: web::Data<Infra>,
    caller: Caller,
    req: actix_web::HttpRequest,
    body: Json<NewTeam>,
) -> ApiResult<HttpResponse> {
    huoke_shared::idempotency::keyed(infra, caller, req, body, "teams.create", create_team_once).await
}

async fn create_team_once(infra: web::Data<Infra>, caller: Caller, body: Json<NewTeam>) -> ApiResult<HttpResponse> {
    caller.require_any(&[Role::Admin, Role::Manager])?;
    let req = body.0;
    let name = req.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::invalid("name", "1–100 characters"));
    }
    for (field, id) in req
        .manager_id
        .iter()
        .map(|m| ("manager_id", m))
        .chain(req.members.iter().map(|m| ("members", m)))
    {
        if staff::by_id(&infra.store, &caller.tenant_id, id).await?.is_none() {
            return Err(ApiError::invalid(field, format!("no staff member {id}")));
        }
    }
    let team = TeamRow {
        id: new_id(),
        name,
        manager_id: req.manager_id,
        created_at: now_ms(),
    };
    let mut tx = infra.store.begin().await?;
    sqlx::query("INSERT INTO teams (id, tenant_id, name, manager_id, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&team.id)
        .bind(&caller.tenant_id)
        .bind(&team.name)
        .bind(&team.manager_id)
        .bind(team.created_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                ApiError::Conflict("a team with this name exists".into())
            }
            _ => e.into(),
        })?;
    for member in &req.members {
        sqlx::query("UPDATE staff SET team_id = $1 WHERE tenant_id = $2 AND id = $3")
            .bind(&team.id)
            .bind(&caller.tenant_id)
            .bind(member)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(HttpResponse::Created().json(serde_json::json!({
        "id": team.id, "name": team.name, "manager_id": team.manager_id,
        "members": req.members, "created_at": rfc3339(team.created_at),
    })))
}

pub async fn list_teams(infra: web::Data<Infra>, caller: Caller) -> ApiResult<HttpResponse> {
    let rows: Vec<TeamRow> =
        sqlx::query_as("SELECT id, name, manager_id, created_at FROM teams WHERE tenant_id = $1 ORDER BY name")
            .bind(&caller.tenant_id)
            .fetch_all(infra.store.pool())
            .await?;
    let items: Vec<_> = rows
        .into_iter()
        .map(|t| serde_json::json!({"id": t.id, "name": t.name, "manager_id": t.manager_id, "created_at": rfc3339(t.created_at)}))
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({"items": items, "next_cursor": null})))
}
