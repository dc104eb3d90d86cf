//! `GET/POST /hooks/wecom/{tenant_id}`: WeCom's callback. `GET` is the URL check
//! (answer the decrypted `echostr`); `POST` carries an encrypted event. Both are
//! checked against `msg_signature` (SHA-1 over token, timestamp, nonce and the
//! encrypted text) and decrypted with the tenant's EncodingAESKey, and the message
//! must name the tenant's corp id.
//!
//! Customer-contact events (`change_external_contact`: `add_external_contact`,
//! `add_half_external_contact`, `edit_external_contact`) are written to the outbox
//! as `wecom.contact_changed` and answered `success` as soon as that is durable — a
//! few milliseconds, well inside WeCom's 5 s. The slow part (asking WeCom who the
//! customer is) happens after, in [`crate::wecom_contacts`]. A delivery WeCom
//! repeats carries the same key over corp, change type, member, customer, state and
//! time, and so becomes the same capture. `del_external_contact` and every other
//! event are acknowledged and ignored.

use actix_web::{HttpResponse, web};
use huoke_shared::bus::Envelope;
use huoke_shared::messages::WecomContactChanged;
use huoke_shared::store::Outbox;
use huoke_shared::wecom::{self, WecomSettings};
use huoke_shared::wecom_crypto::{self, xml_field};
use huoke_shared::{ApiError, ApiResult, Infra};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

#[derive(Deserialize)]
pub struct Signed {
    msg_signature: String,
    timestamp: String,
    nonce: String,
    echostr: Option<String>,
}

fn refused(reason: &'static str, err: ApiError) -> ApiError {
    metrics::counter!("huoke_wecom_callbacks_refused_total", "reason" => reason).increment(1);
    err
}

async fn settings_of(infra: &Infra, tenant_id: &str) -> ApiResult<(WecomSettings, [u8; 32])> {
    let settings = wecom::settings(&infra.store, tenant_id)
        .await?
        .ok_or_else(|| refused("unknown_tenant", ApiError::not_found("WeCom callback")))?;
    let key = wecom_crypto::aes_key(&settings.encoding_aes_key)
        .map_err(|_| ApiError::Conflict("the tenant's EncodingAESKey is not usable".into()))?;
    Ok((settings, key))
}

/// Verifies the signature over `encrypted` and decrypts it.
fn open(settings: &WecomSettings, key: &[u8; 32], q: &Signed, encrypted: &str) -> ApiResult<String> {
    let expected = wecom_crypto::signature(&settings.callback_token, &q.timestamp, &q.nonce, encrypted);
    if !wecom_crypto::signature_matches(&expected, &q.msg_signature) {
        return Err(refused(
            "forged",
            ApiError::Unauthorized("msg_signature does not verify".into()),
        ));
    }
    wecom_crypto::decrypt(key, encrypted, &settings.corp_id)
        .map_err(|e| refused("undecryptable", ApiError::BadRequest(e.to_string())))
}

/// The URL check WeCom makes when the callback is configured.
pub async fn verify_url(
    infra: web::Data<Infra>,
    tenant_id: web::Path<String>,
    q: web::Query<Signed>,
) -> ApiResult<HttpResponse> {
    let (settings, key) = settings_of(&infra, &tenant_id).await?;
    let echostr = q
        .echostr
        .as_deref()
        .ok_or_else(|| ApiError::invalid("echostr", "required for the URL check"))?;
    let plain = open(&settings, &key, &q, echostr)?;
    Ok(HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(plain))
}

/// One field of the decrypted event, from XML or JSON.
fn field(message: &str, json: Option<&Map<String, Value>>, name: &str) -> Option<String> {
    match json {
        Some(map) => map.get(name).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }),
        None => xml_field(message, name),
    }
}

pub async fn receive(
    infra: web::Data<Infra>,
    tenant_id: web::Path<String>,
    q: web::Query<Signed>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (settings, key) = settings_of(&infra, &tenant_id).await?;
    let text = std::str::from_utf8(&body).map_err(|_| ApiError::BadRequest("the body is not UTF-8".into()))?;
    let outer_json: Option<Map<String, Value>> = serde_json::from_str(text).ok();
    let encrypted = match &outer_json {
        Some(map) => map
            .get("Encrypt")
            .or_else(|| map.get("encrypt"))
            .and_then(Value::as_str)
            .map(str::to_string),
        None => xml_field(text, "Encrypt"),
    }
    .ok_or_else(|| ApiError::BadRequest("no Encrypt element in the body".into()))?;
    let message = open(&settings, &key, &q, &encrypted)?;
    let inner_json: Option<Map<String, Value>> = serde_json::from_str(&message).ok();
    let get = |name: &str| field(&message, inner_json.as_ref(), name).unwrap_or_default();

    let change = get("ChangeType");
    let is_contact = get("Event") == "change_external_contact"
        && [
            "add_external_contact",
            "add_half_external_contact",
            "edit_external_contact",
        ]
        .contains(&change.as_str());
    let external_userid = get("ExternalUserID");
    if !is_contact || external_userid.is_empty() {
        metrics::counter!("huoke_wecom_callbacks_ignored_total").increment(1);
        return Ok(success());
    }
    let (member_userid, state, created) = (get("UserID"), get("State"), get("CreateTime"));
    let dedupe = hex::encode(Sha256::digest(
        [
            settings.corp_id.as_str(),
            &change,
            &member_userid,
            &external_userid,
            &state,
            &created,
        ]
        .join("\u{1f}")
        .as_bytes(),
    ));
    let event = WecomContactChanged {
        corp_id: settings.corp_id.clone(),
        change_type: change,
        member_userid,
        external_userid,
        state,
        created,
        dedupe,
    };
    let mut tx = infra.store.begin().await?;
    Outbox::add(&mut tx, &Envelope::new(&settings.tenant_id, &event)).await?;
    tx.commit().await?;
    infra.kick_outbox();
    metrics::counter!("huoke_wecom_callbacks_accepted_total").increment(1);
    Ok(success())
}

fn success() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("success")
}
