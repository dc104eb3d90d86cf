//! Cards, shares and card events in the store. Every query names the tenant,
//! except the public slug lookup, which is how a public request finds its tenant.

use huoke_shared::bus::Envelope;
use huoke_shared::clock::{new_id, now_ms};
use huoke_shared::messages::CardEngaged;
use huoke_shared::store::Outbox;
use huoke_shared::{ApiError, Infra};
use serde::Serialize;
use sqlx::FromRow;

use crate::model::{Card, CardFields, Link, mint_slug, mint_token};

/// The columns of `cards`, in `CardRow` order.
macro_rules! card_columns {
    () => {
        "id, tenant_id, staff_id, slug, display_name, title, company, avatar_url, phone, show_phone, email, \
         live_code_id, bio, company_intro, links, theme, created_at, updated_at"
    };
}

#[derive(FromRow)]
struct CardRow {
    id: String,
    tenant_id: String,
    staff_id: String,
    slug: String,
    display_name: String,
    title: Option<String>,
    company: Option<String>,
    avatar_url: Option<String>,
    phone: Option<String>,
    show_phone: i64,
    email: Option<String>,
    live_code_id: Option<String>,
    bio: Option<String>,
    company_intro: Option<String>,
    links: String,
    theme: String,
    created_at: i64,
    updated_at: i64,
}

impl From<CardRow> for Card {
    fn from(r: CardRow) -> Card {
        let links: Vec<Link> = serde_json::from_str(&r.links).unwrap_or_default();
        Card {
            id: r.id,
            tenant_id: r.tenant_id,
            staff_id: r.staff_id,
            slug: r.slug,
            fields: CardFields {
                display_name: r.display_name,
                title: r.title,
                company: r.company,
                avatar_url: r.avatar_url,
                phone: r.phone,
                show_phone: r.show_phone != 0,
                email: r.email,
                live_code_id: r.live_code_id,
                bio: r.bio,
                company_intro: r.company_intro,
                links,
                theme: r.theme,
            },
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

pub async fn by_staff(infra: &Infra, tenant_id: &str, staff_id: &str) -> sqlx::Result<Option<Card>> {
    let row: Option<CardRow> = sqlx::query_as(concat!(
        "SELECT ",
        card_columns!(),
        " FROM cards WHERE tenant_id = $1 AND staff_id = $2"
    ))
    .bind(tenant_id)
    .bind(staff_id)
    .fetch_optional(infra.store.pool())
    .await?;
    Ok(row.map(Card::from))
}

/// The public entry point: slugs are unique across tenants, and the card found
/// names the tenant every later query filters on.
pub async fn by_slug(infra: &Infra, slug: &str) -> sqlx::Result<Option<Card>> {
    let row: Option<CardRow> = sqlx::query_as(concat!("SELECT ", card_columns!(), " FROM cards WHERE slug = $1"))
        .bind(slug)
        .fetch_optional(infra.store.pool())
        .await?;
    Ok(row.map(Card::from))
}

/// Whether `id` is a live code of the tenant (deleted ones are gone for good).
pub async fn live_code_exists(infra: &Infra, tenant_id: &str, id: &str) -> sqlx::Result<bool> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT id FROM live_codes WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL")
            .bind(tenant_id)
            .bind(id)
            .fetch_optional(infra.store.pool())
            .await?;
    Ok(row.is_some())
}

/// The public short code of an active live code of the tenant, by id.
pub async fn live_code_public(infra: &Infra, tenant_id: &str, id: &str) -> sqlx::Result<Option<String>> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT code FROM live_codes WHERE tenant_id = $1 AND id = $2 AND active = 1 AND deleted_at IS NULL",
    )
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(infra.store.pool())
    .await?;
    Ok(row.map(|r| r.0))
}

/// Whether `code` is the public short code of one of the tenant's live codes.
pub async fn live_code_by_code(infra: &Infra, tenant_id: &str, code: &str) -> sqlx::Result<bool> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT id FROM live_codes WHERE tenant_id = $1 AND code = $2 AND deleted_at IS NULL")
            .bind(tenant_id)
            .bind(code)
            .fetch_optional(infra.store.pool())
            .await?;
    Ok(row.is_some())
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Creates or replaces a staff member's card; the slug is minted on creation
/// only. Returns the card and whether it was created.
pub async fn save(
    infra: &Infra,
    tenant_id: &str,
    staff_id: &str,
    fields: &CardFields,
) -> Result<(Card, bool), ApiError> {
    // A unique violation means a concurrent first save won (the retry updates its
    // card) or, very rarely, a slug collision (the retry mints another).
    let mut attempts = 0;
    loop {
        attempts += 1;
        match try_save(infra, tenant_id, staff_id, fields).await {
            Err(err) if attempts < 4 && is_unique_violation(&err) => continue,
            other => return Ok(other?),
        }
    }
}

async fn try_save(infra: &Infra, tenant_id: &str, staff_id: &str, f: &CardFields) -> sqlx::Result<(Card, bool)> {
    let links = serde_json::to_string(&f.links).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let now = now_ms();
    let mut tx = infra.store.begin().await?;
    let existing: Option<(String, String, i64)> =
        sqlx::query_as("SELECT id, slug, created_at FROM cards WHERE tenant_id = $1 AND staff_id = $2")
            .bind(tenant_id)
            .bind(staff_id)
            .fetch_optional(&mut *tx)
            .await?;
    let (id, slug, created_at, created) = match existing {
        Some((id, slug, created_at)) => {
            sqlx::query(
                "UPDATE cards SET display_name = $1, title = $2, company = $3, avatar_url = $4, phone = $5,
                        show_phone = $6, email = $7, live_code_id = $8, bio = $9, company_intro = $10,
                        links = $11, theme = $12, updated_at = $13
                 WHERE tenant_id = $14 AND id = $15",
            )
            .bind(&f.display_name)
            .bind(&f.title)
            .bind(&f.company)
            .bind(&f.avatar_url)
            .bind(&f.phone)
            .bind(i64::from(f.show_phone))
            .bind(&f.email)
            .bind(&f.live_code_id)
            .bind(&f.bio)
            .bind(&f.company_intro)
            .bind(&links)
            .bind(&f.theme)
            .bind(now)
            .bind(tenant_id)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
            (id, slug, created_at, false)
        }
        None => {
            let (id, slug) = (new_id(), mint_slug());
            sqlx::query(concat!(
                "INSERT INTO cards (",
                card_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17)"
            ))
            .bind(&id)
            .bind(tenant_id)
            .bind(staff_id)
            .bind(&slug)
            .bind(&f.display_name)
            .bind(&f.title)
            .bind(&f.company)
            .bind(&f.avatar_url)
            .bind(&f.phone)
            .bind(i64::from(f.show_phone))
            .bind(&f.email)
            .bind(&f.live_code_id)
            .bind(&f.bio)
            .bind(&f.company_intro)
            .bind(&links)
            .bind(&f.theme)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            (id, slug, now, true)
        }
    };
    tx.commit().await?;
    let card = Card {
        id,
        tenant_id: tenant_id.to_string(),
        staff_id: staff_id.to_string(),
        slug,
        fields: f.clone(),
        created_at,
        updated_at: now,
    };
    Ok((card, created))
}

/// Whether `token` is a share of this card.
pub async fn share_exists(infra: &Infra, card: &Card, token: &str) -> sqlx::Result<bool> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT token FROM card_shares WHERE tenant_id = $1 AND card_id = $2 AND token = $3")
            .bind(&card.tenant_id)
            .bind(&card.id)
            .bind(token)
            .fetch_optional(infra.store.pool())
            .await?;
    Ok(row.is_some())
}

/// The share token, if `candidate` is a well-formed share of this card.
pub async fn checked_share(infra: &Infra, card: &Card, candidate: Option<&str>) -> sqlx::Result<Option<String>> {
    match candidate.map(str::trim).filter(|t| crate::model::looks_like_id(t)) {
        Some(token) if share_exists(infra, card, token).await? => Ok(Some(token.to_string())),
        _ => Ok(None),
    }
}

/// Mints a share token of the card for `sharer` (a visitor hash or `staff:{id}`).
pub async fn add_share(infra: &Infra, card: &Card, sharer: &str, parent: Option<&str>) -> sqlx::Result<String> {
    let token = mint_token();
    let mut tx = infra.store.begin().await?;
    sqlx::query(
        "INSERT INTO card_shares (token, tenant_id, card_id, sharer, parent_token, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&token)
    .bind(&card.tenant_id)
    .bind(&card.id)
    .bind(sharer)
    .bind(parent)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(token)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    View,
    Vcard,
    Lead,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::View => "view",
            EventKind::Vcard => "vcard",
            EventKind::Lead => "lead",
        }
    }
}

pub async fn record_event(
    infra: &Infra,
    card: &Card,
    kind: EventKind,
    visitor: &str,
    share_token: Option<&str>,
) -> sqlx::Result<()> {
    let now = now_ms();
    let mut tx = infra.store.begin().await?;
    sqlx::query(
        "INSERT INTO card_events (id, tenant_id, card_id, kind, visitor, share_token, at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(new_id())
    .bind(&card.tenant_id)
    .bind(&card.id)
    .bind(kind.as_str())
    .bind(visitor)
    .bind(share_token)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    // Views and saves are engagement the lead's score counts (a form sent is the
    // capture itself). The same transaction: counted here, credited there.
    let engagement = match kind {
        EventKind::View => Some("card_view"),
        EventKind::Vcard => Some("card_save"),
        EventKind::Lead => None,
    };
    if let Some(kind) = engagement {
        let event = CardEngaged {
            card_id: card.id.clone(),
            visitor: visitor.to_string(),
            kind: kind.to_string(),
            at_ms: now,
        };
        Outbox::add(&mut tx, &Envelope::new(&card.tenant_id, &event)).await?;
    }
    tx.commit().await?;
    if engagement.is_some() {
        infra.kick_outbox();
    }
    Ok(())
}

/// Records an event without failing the request: the visitor's page matters more
/// than the count.
pub async fn record_event_quietly(
    infra: &Infra,
    card: &Card,
    kind: EventKind,
    visitor: &str,
    share_token: Option<&str>,
) {
    if let Err(err) = record_event(infra, card, kind, visitor, share_token).await {
        tracing::warn!(card = %card.id, kind = kind.as_str(), error = %err, "could not record a card event");
    }
}

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Stats {
    pub views: i64,
    pub unique_visitors: i64,
    pub shares: i64,
    pub vcard_saves: i64,
    pub leads: i64,
}

pub async fn stats(infra: &Infra, card: &Card) -> sqlx::Result<Stats> {
    let per_kind: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT kind, CAST(COUNT(*) AS BIGINT), CAST(COUNT(DISTINCT visitor) AS BIGINT)
         FROM card_events WHERE tenant_id = $1 AND card_id = $2 GROUP BY kind",
    )
    .bind(&card.tenant_id)
    .bind(&card.id)
    .fetch_all(infra.store.pool())
    .await?;
    let (shares,): (i64,) =
        sqlx::query_as("SELECT CAST(COUNT(*) AS BIGINT) FROM card_shares WHERE tenant_id = $1 AND card_id = $2")
            .bind(&card.tenant_id)
            .bind(&card.id)
            .fetch_one(infra.store.pool())
            .await?;
    let mut stats = Stats {
        shares,
        ..Stats::default()
    };
    for (kind, count, distinct) in per_kind {
        match kind.as_str() {
            "view" => {
                stats.views = count;
                stats.unique_visitors = distinct;
            }
            "vcard" => stats.vcard_saves = count,
            "lead" => stats.leads = count,
            _ => {}
        }
    }
    Ok(stats)
}
