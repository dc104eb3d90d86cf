//! Every subscribable event → one `webhook.delivery` per live subscription of the
//! tenant that wants it, written with a `webhook_deliveries` row in one
//! transaction. Splitting here keeps one slow or broken receiver from holding up —
//! or, on a retry, repeating — the deliveries to the others.

use huoke_shared::bus::{Envelope, HandlerError};
use huoke_shared::clock::{new_id, now_ms};
use huoke_shared::consumer::Effect;
use huoke_shared::messages::WebhookDelivery;
use huoke_shared::store::{Outbox, Tx};

pub struct FanOut;

#[async_trait::async_trait]
impl Effect for FanOut {
    type Scratch = ();

    fn consumer(&self) -> &'static str {
        "notify.fanout"
    }

    async fn apply(&self, tx: &mut Tx, envelope: &Envelope, _: &mut ()) -> Result<(), HandlerError> {
        let subscriptions: Vec<(String, String)> =
            sqlx::query_as("SELECT id, events FROM webhook_subscriptions WHERE tenant_id = $1 AND revoked_at IS NULL")
                .bind(&envelope.tenant_id)
                .fetch_all(&mut **tx)
                .await?;
        let now = now_ms();
        for (subscription_id, events) in subscriptions {
            let wanted: Vec<String> = serde_json::from_str(&events).unwrap_or_default();
            if !wanted.iter().any(|e| e == "*" || *e == envelope.kind) {
                continue;
            }
            let delivery_id = new_id();
            // Unique per subscription and event: a redelivered event adds nothing.
            let added = sqlx::query(
                "INSERT INTO webhook_deliveries (id, tenant_id, subscription_id, event_id, event_type, status, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, 'pending', $6, $6) ON CONFLICT (subscription_id, event_id) DO NOTHING",
            )
            .bind(&delivery_id)
            .bind(&envelope.tenant_id)
            .bind(&subscription_id)
            .bind(&envelope.id)
            .bind(&envelope.kind)
            .bind(now)
            .execute(&mut **tx)
            .await?;
            if added.rows_affected() == 0 {
                continue;
            }
            let delivery = WebhookDelivery {
                delivery_id,
                subscription_id,
                event_id: envelope.id.clone(),
                event_type: envelope.kind.clone(),
                occurred_at: envelope.occurred_at.clone(),
                data: envelope.data.clone(),
            };
            Outbox::add(tx, &Envelope::new(&envelope.tenant_id, &delivery)).await?;
        }
        Ok(())
    }
}
