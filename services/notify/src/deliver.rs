//! One `webhook.delivery` → one signed POST. A 2xx answer delivers it; anything else
//! (or no answer within 10 s) is retried with the bus's growing delays, and after
//! `HUOKE_WEBHOOK_MAX_ATTEMPTS` tries the delivery is parked as a dead letter, from
//! which an admin replays it (`/v1/admin/dead-letters/{id}/replay`).
//!
//! The request: `POST <url>` with the JSON body
//! `{"id", "type", "occurred_at", "tenant_id", "data"}` and the headers
//! `X-Huoke-Event`, `X-Huoke-Delivery` (the same on every retry: receivers dedupe on
//! it), `X-Huoke-Timestamp` (Unix seconds) and
//! `X-Huoke-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>` — the
//! scheme of inbound webhooks, so one verifier serves both.

use std::time::Duration;

use hmac::{Hmac, Mac};
use huoke_shared::Infra;
use huoke_shared::bus::{Envelope, Handler, HandlerError};
use huoke_shared::clock::now_ms;
use huoke_shared::messages::WebhookDelivery;
use huoke_shared::outbound::check_public_url;
use serde_json::json;
use sha2::Sha256;

const TIMEOUT: Duration = Duration::from_secs(10);

pub struct Deliver {
    infra: Infra,
    client: reqwest::Client,
}

impl Deliver {
    pub fn new(infra: &Infra) -> Self {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            // A receiver's redirect could lead anywhere, past the address check.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Deliver {
            infra: infra.clone(),
            client,
        }
    }

    /// Records how a try went. No transaction is held across the POST: a slow
    /// receiver must not hold the store (SQLite has one writer).
    async fn note(&self, delivery_id: &str, status: &str, code: Option<i64>, error: Option<&str>) {
        let now = now_ms();
        let noted = sqlx::query(
            "UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1, last_status = $2, last_error = $3,
                    updated_at = $4, delivered_at = CASE WHEN $1 = 'delivered' THEN $4 ELSE delivered_at END
             WHERE id = $5",
        )
        .bind(status)
        .bind(code)
        .bind(error)
        .bind(now)
        .bind(delivery_id)
        .execute(self.infra.store.pool())
        .await;
        if let Err(err) = noted {
            tracing::warn!(delivery = %delivery_id, error = %err, "could not record a webhook try");
        }
    }
}

/// `sha256=<hex>` over `"<timestamp>.<body>"`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; this arm cannot be reached.
        Err(_) => return String::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[async_trait::async_trait]
impl Handler for Deliver {
    /// Not transactional: the delivery row says what happened, and a delivery
    /// already delivered (redelivered after its ack was lost) is not sent again.
    async fn handle(&self, envelope: &Envelope) -> Result<(), HandlerError> {
        let delivery: WebhookDelivery = envelope.decode()?;
        let pool = self.infra.store.pool();
        let status: Option<String> = sqlx::query_scalar("SELECT status FROM webhook_deliveries WHERE id = $1")
            .bind(&delivery.delivery_id)
            .fetch_optional(pool)
            .await?;
        if status.as_deref() == Some("delivered") {
            return Ok(());
        }
        let subscription: Option<(String, String, Option<i64>)> = sqlx::query_as(
            "SELECT url, secret, revoked_at FROM webhook_subscriptions WHERE tenant_id = $1 AND id = $2",
        )
        .bind(&envelope.tenant_id)
        .bind(&delivery.subscription_id)
        .fetch_optional(pool)
        .await?;
        let Some((url, secret, None)) = subscription else {
            self.note(
                &delivery.delivery_id,
                "skipped",
                None,
                Some("the subscription was revoked"),
            )
            .await;
            return Ok(());
        };
        if let Err(why) = check_public_url(&url, &self.infra.settings.webhook_allowed_hosts) {
            self.note(&delivery.delivery_id, "failing", None, Some(&why)).await;
            return Err(HandlerError::Reject(format!("webhook URL refused: {why}")));
        }
        let body = json!({
            "id": delivery.event_id, "type": delivery.event_type, "occurred_at": delivery.occurred_at,
            "tenant_id": envelope.tenant_id, "data": delivery.data,
        })
        .to_string();
        let timestamp = now_ms() / 1000;
        let sent = self
            .client
            .post(&url)
            .header("content-type", "application/json")
            .header("user-agent", "huoke-webhooks/1")
            .header("x-huoke-event", &delivery.event_type)
            .header("x-huoke-delivery", &delivery.delivery_id)
            .header("x-huoke-timestamp", timestamp.to_string())
            .header("x-huoke-signature", signature(&secret, timestamp, body.as_bytes()))
            .body(body)
            .send()
            .await;
        match sent {
            Ok(resp) if resp.status().is_success() => {
                self.note(
                    &delivery.delivery_id,
                    "delivered",
                    Some(i64::from(resp.status().as_u16())),
                    None,
                )
                .await;
                metrics::counter!("huoke_webhook_deliveries_total", "outcome" => "delivered").increment(1);
                Ok(())
            }
            Ok(resp) => {
                let code = resp.status().as_u16();
                self.note(
                    &delivery.delivery_id,
                    "failing",
                    Some(i64::from(code)),
                    Some("the receiver did not answer 2xx"),
                )
                .await;
                metrics::counter!("huoke_webhook_deliveries_total", "outcome" => "failed").increment(1);
                Err(HandlerError::Retry(format!("webhook receiver answered {code}")))
            }
            Err(err) => {
                // Without the URL: it may carry a token in its query.
                let why = if err.is_timeout() {
                    "no answer within 10 s"
                } else if err.is_connect() {
                    "could not connect"
                } else {
                    "the request failed"
                };
                self.note(&delivery.delivery_id, "failing", None, Some(why)).await;
                metrics::counter!("huoke_webhook_deliveries_total", "outcome" => "failed").increment(1);
                Err(HandlerError::Retry(format!("webhook receiver: {why}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_covers_timestamp_and_body() {
        let a = signature("whsec_x", 1_700_000_000, b"{}");
        assert!(a.starts_with("sha256=") && a.len() == 7 + 64);
        assert_ne!(a, signature("whsec_x", 1_700_000_001, b"{}"));
        assert_ne!(a, signature("whsec_y", 1_700_000_000, b"{}"));
        assert_ne!(a, signature("whsec_x", 1_700_000_000, b"{ }"));
    }
}
