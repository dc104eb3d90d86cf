//! A capture, from any surface (API, card form, webhook): everything a client may
//! send, checked at once so the client gets every problem in one answer, then made
//! durable — capture row and outbox event in one transaction — before anyone is told
//! it was accepted. intake's API and the cards' forms both come through here.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::bus::Envelope;
use crate::channels;
use crate::clock::{new_id, now_ms};
use crate::contact::{Email, Phone};
use crate::error::{ApiError, FieldError};
use crate::infra::Infra;
use crate::messages::{CaptureReceived, WechatIds};
use crate::store::Outbox;

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct CaptureInput {
    pub name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub company: Option<String>,
    pub title: Option<String>,
    /// The company's unified social credit code (统一社会信用代码).
    pub uscc: Option<String>,
    pub wechat: Option<WechatIds>,
    pub channel: Option<String>,
    pub campaign_id: Option<String>,
    pub owner_hint: Option<String>,
    pub attributes: Option<serde_json::Map<String, serde_json::Value>>,
    pub consent: Option<bool>,
    /// The live code the prospect came through, for attribution.
    pub live_code: Option<String>,
}

impl CaptureInput {
    /// Sets the WeChat ids and attributes, leaving each unset when empty.
    pub fn with_extras(mut self, wechat: WechatIds, attributes: serde_json::Map<String, serde_json::Value>) -> Self {
        self.wechat = (!wechat.is_empty()).then_some(wechat);
        self.attributes = (!attributes.is_empty()).then_some(attributes);
        self
    }
}

const MAX_TEXT: usize = 200;
const MAX_ATTRIBUTES_BYTES: usize = 8 * 1024;

fn text(field: &str, value: &Option<String>, errors: &mut Vec<FieldError>) -> Option<String> {
    let v = value.as_ref().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())?;
    if v.chars().count() > MAX_TEXT {
        errors.push(FieldError::new(field, format!("at most {MAX_TEXT} characters")));
        return None;
    }
    if v.chars().any(char::is_control) {
        errors.push(FieldError::new(field, "must not contain control characters"));
        return None;
    }
    Some(v)
}

/// Checks and normalises a capture. `capture_id` and `received_at_ms` are the
/// server's; everything else comes from the client.
pub fn validate(
    input: &CaptureInput,
    capture_id: &str,
    received_at_ms: i64,
) -> Result<CaptureReceived, Vec<FieldError>> {
    validate_in(input, capture_id, received_at_ms, crate::contact::DEFAULT_REGION)
}

/// As [`validate`], reading numbers without a country code in `region` (the
/// tenant's `phone_region`).
pub fn validate_in(
    input: &CaptureInput,
    capture_id: &str,
    received_at_ms: i64,
    region: &str,
) -> Result<CaptureReceived, Vec<FieldError>> {
    let mut errors = Vec::new();
    let name = text("name", &input.name, &mut errors);
    let company = text("company", &input.company, &mut errors);
    let title = text("title", &input.title, &mut errors);
    let campaign_id = text("campaign_id", &input.campaign_id, &mut errors);
    let owner_hint = text("owner_hint", &input.owner_hint, &mut errors);

    let phone = match input.phone.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        Some(raw) => match Phone::parse_in(raw, region) {
            Ok(p) => Some(p.as_str().to_string()),
            Err(msg) => {
                errors.push(FieldError::new("phone", msg));
                None
            }
        },
        None => None,
    };
    let email = match input.email.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
        Some(raw) => match Email::parse(raw) {
            Ok(e) => Some(e.as_str().to_string()),
            Err(msg) => {
                errors.push(FieldError::new("email", msg));
                None
            }
        },
        None => None,
    };
    let uscc = match input.uscc.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
        Some(raw) => match crate::company::parse_uscc(raw) {
            Ok(code) => Some(code),
            Err(msg) => {
                errors.push(FieldError::new("uscc", msg));
                None
            }
        },
        None => None,
    };
    let mut wechat = WechatIds::default();
    if let Some(w) = &input.wechat {
        wechat.unionid = text("wechat.unionid", &w.unionid, &mut errors);
        wechat.openid = text("wechat.openid", &w.openid, &mut errors);
        wechat.external_userid = text("wechat.external_userid", &w.external_userid, &mut errors);
        wechat.appid = text("wechat.appid", &w.appid, &mut errors);
        wechat.corpid = text("wechat.corpid", &w.corpid, &mut errors);
    }
    let has_contact = phone.is_some() || email.is_some() || !wechat.is_empty();
    let contact_given = input.phone.as_deref().is_some_and(|p| !p.trim().is_empty())
        || input.email.as_deref().is_some_and(|e| !e.trim().is_empty());
    if !has_contact && !contact_given {
        errors.push(FieldError::new(
            "phone",
            "give at least one of phone, email or a WeChat id",
        ));
    }

    let channel = match input.channel.as_deref().map(str::trim) {
        None | Some("") => {
            errors.push(FieldError::new("channel", "required"));
            String::new()
        }
        Some(c) if channels::is_known(c) => c.to_string(),
        Some(c) => {
            errors.push(FieldError::new(
                "channel",
                format!("unknown channel `{}`", c.chars().take(40).collect::<String>()),
            ));
            String::new()
        }
    };
    let attributes = input.attributes.clone().unwrap_or_default();
    if serde_json::to_vec(&attributes).map(|v| v.len()).unwrap_or(usize::MAX) > MAX_ATTRIBUTES_BYTES {
        errors.push(FieldError::new(
            "attributes",
            format!("at most {MAX_ATTRIBUTES_BYTES} bytes of JSON"),
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(CaptureReceived {
        capture_id: capture_id.to_string(),
        channel,
        campaign_id,
        owner_hint,
        name,
        phone,
        email,
        company,
        title,
        uscc,
        wechat,
        attributes,
        consent: input.consent,
        visitor: None,
        received_at_ms,
    })
}

/// Who submitted a capture and how to recognise a retry of it.
pub struct Submission<'a> {
    pub tenant_id: &'a str,
    /// Staff id, API key id or the public surface (`card:{slug}`).
    pub created_by: &'a str,
    pub idempotency_key: Option<&'a str>,
    /// The public page's visitor (salted hash) who filled the form, so the lead's
    /// later visits to such pages count as engagement.
    pub visitor: Option<&'a str>,
}

/// Validates and stores a capture with its `capture.received` event; returns the
/// capture id. A repeated idempotency key with the same body answers the first id;
/// with another body it is a conflict.
pub async fn accept(infra: &Infra, who: Submission<'_>, input: &CaptureInput) -> Result<String, ApiError> {
    if who.idempotency_key.is_some_and(|k| k.len() > 200) {
        return Err(ApiError::invalid("Idempotency-Key", "at most 200 characters"));
    }
    // The hash covers the parsed request, so formatting differences do not matter.
    let request_hash = hex::encode(Sha256::digest(serde_json::to_vec(input).map_err(anyhow::Error::from)?));
    if let Some(key) = who.idempotency_key
        && let Some(existing) = by_idempotency_key(infra, who.tenant_id, key).await?
    {
        return replay(existing, &request_hash);
    }
    let now = now_ms();
    let capture_id = new_id();
    let region = crate::repo::tenants::phone_region(&infra.store, &*infra.cache, who.tenant_id).await?;
    let mut capture = validate_in(input, &capture_id, now, &region).map_err(ApiError::Validation)?;
    capture.visitor = who.visitor.map(str::to_string);
    let live_code = input
        .live_code
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty() && c.len() <= 64);
    let envelope = Envelope::new(who.tenant_id, &capture);
    let payload = serde_json::to_string(&capture).map_err(anyhow::Error::from)?;

    let mut tx = infra.store.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO captures (id, tenant_id, channel, payload, status, idempotency_key, request_hash, created_by, live_code, created_at, updated_at)
         VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $8, $9, $9)",
    )
    .bind(&capture_id)
    .bind(who.tenant_id)
    .bind(&capture.channel)
    .bind(&payload)
    .bind(who.idempotency_key)
    .bind(&request_hash)
    .bind(who.created_by)
    .bind(live_code)
    .bind(now)
    .execute(&mut *tx)
    .await;
    if let Err(sqlx::Error::Database(db)) = &inserted
        && db.is_unique_violation()
    {
        // A concurrent request with the same key won the race: answer as it did.
        drop(tx);
        let key = who.idempotency_key.unwrap_or_default();
        let existing = by_idempotency_key(infra, who.tenant_id, key)
            .await?
            .ok_or_else(|| ApiError::Conflict("idempotency key in use".into()))?;
        return replay(existing, &request_hash);
    }
    inserted?;
    Outbox::add(&mut tx, &envelope).await?;
    tx.commit().await?;
    infra.kick_outbox();

    metrics::counter!("huoke_captures_accepted_total", "channel" => capture.channel.clone()).increment(1);
    tracing::info!(
        capture = %capture_id,
        channel = %capture.channel,
        phone = capture.phone.as_deref().map(crate::contact::mask_phone).unwrap_or_default(),
        email = capture.email.as_deref().map(crate::contact::mask_email).unwrap_or_default(),
        "capture accepted"
    );
    Ok(capture_id)
}

/// Many captures of one submitter in one transaction (a bulk import's batch): each
/// row has its own idempotency key, an invalid row answers its problems. When any key
/// was stored before (an import taken up again after a crash) the insert fails as a
/// whole and the batch is redone a row at a time through [`accept`], which answers
/// the first capture of a known key — so the common case pays no look-up.
pub async fn accept_many(
    infra: &Infra,
    tenant_id: &str,
    created_by: &str,
    rows: &[(String, CaptureInput)],
) -> Result<Vec<Result<String, Vec<FieldError>>>, ApiError> {
    use crate::store::bulk::{self, Value};
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let now = now_ms();
    let region = crate::repo::tenants::phone_region(&infra.store, &*infra.cache, tenant_id).await?;
    let (mut answers, mut inserts, mut events) = (Vec::with_capacity(rows.len()), Vec::new(), Vec::new());
    for (key, input) in rows {
        let capture_id = new_id();
        let capture = match validate_in(input, &capture_id, now, &region) {
            Ok(capture) => capture,
            Err(errors) => {
                answers.push(Err(errors));
                continue;
            }
        };
        let request_hash = hex::encode(Sha256::digest(serde_json::to_vec(input).map_err(anyhow::Error::from)?));
        let payload = serde_json::to_string(&capture).map_err(anyhow::Error::from)?;
        inserts.push(vec![
            Value::from(&capture_id),
            Value::from(tenant_id),
            Value::from(&capture.channel),
            Value::from(payload),
            Value::from("pending"),
            Value::from(key),
            Value::from(request_hash),
            Value::from(created_by),
            Value::from(now),
            Value::from(now),
        ]);
        events.push(Envelope::new(tenant_id, &capture));
        answers.push(Ok(capture_id));
    }
    let mut tx = infra.store.begin().await?;
    let stored = bulk::insert(
        &mut tx,
        "captures",
        &[
            "id",
            "tenant_id",
            "channel",
            "payload",
            "status",
            "idempotency_key",
            "request_hash",
            "created_by",
            "created_at",
            "updated_at",
        ],
        &inserts,
        "",
    )
    .await;
    match stored {
        Ok(_) => {}
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
            drop(tx);
            let mut one_by_one = Vec::with_capacity(rows.len());
            for (key, input) in rows {
                let who = Submission {
                    tenant_id,
                    created_by,
                    idempotency_key: Some(key),
                    visitor: None,
                };
                one_by_one.push(match accept(infra, who, input).await {
                    Ok(id) => Ok(id),
                    Err(ApiError::Validation(errors)) => Err(errors),
                    Err(other) => return Err(other),
                });
            }
            return Ok(one_by_one);
        }
        Err(err) => return Err(err.into()),
    }
    Outbox::add_many(&mut tx, &events).await?;
    tx.commit().await?;
    infra.kick_outbox();
    metrics::counter!("huoke_captures_accepted_total", "channel" => "import").increment(events.len() as u64);
    Ok(answers)
}

async fn by_idempotency_key(
    infra: &Infra,
    tenant_id: &str,
    key: &str,
) -> sqlx::Result<Option<(String, Option<String>)>> {
    sqlx::query_as("SELECT id, request_hash FROM captures WHERE tenant_id = $1 AND idempotency_key = $2")
        .bind(tenant_id)
        .bind(key)
        .fetch_optional(infra.store.pool())
        .await
}

fn replay((id, hash): (String, Option<String>), request_hash: &str) -> Result<String, ApiError> {
    if hash.as_deref() != Some(request_hash) {
        return Err(ApiError::Conflict(
            "this Idempotency-Key was used with a different body".into(),
        ));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(phone: &str, channel: &str) -> CaptureInput {
        CaptureInput {
            phone: Some(phone.into()),
            channel: Some(channel.into()),
            ..Default::default()
        }
    }

    #[test]
    fn phones_are_normalised() {
        let c = validate(&input("+86 138-0013-8000", "api"), "c1", 0).unwrap();
        assert_eq!(c.phone.as_deref(), Some("+8613800138000"));
    }

    #[test]
    fn a_contact_is_required() {
        let errs = validate(
            &CaptureInput {
                name: Some("Li".into()),
                channel: Some("api".into()),
                ..Default::default()
            },
            "c",
            0,
        )
        .unwrap_err();
        assert!(errs.iter().any(|e| e.message.contains("at least one")));
        let ok = CaptureInput {
            wechat: Some(WechatIds {
                unionid: Some("u1".into()),
                ..Default::default()
            }),
            channel: Some("wecom".into()),
            ..Default::default()
        };
        assert!(validate(&ok, "c", 0).is_ok());
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let bad = CaptureInput {
            phone: Some("12".into()),
            email: Some("nope".into()),
            channel: Some("carrier_pigeon".into()),
            name: Some("x".repeat(300)),
            ..Default::default()
        };
        let fields: Vec<_> = validate(&bad, "c", 0)
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        for f in ["phone", "email", "channel", "name"] {
            assert!(fields.iter().any(|x| x == f), "{f} missing from {fields:?}");
        }
    }

    #[test]
    fn channel_is_required() {
        let errs = validate(
            &CaptureInput {
                phone: Some("13800138000".into()),
                ..Default::default()
            },
            "c",
            0,
        )
        .unwrap_err();
        assert_eq!(errs[0].field, "channel");
    }
}
