//! The one consumer skeleton every service uses: begin → skip what was already
//! handled → apply each message → outgoing events through the outbox → processed
//! markers → commit → (the bus) ack.
//!
//! A batch of deliveries shares one transaction, so a burst costs one commit per
//! batch instead of one per message. When anything in the batch fails, the whole
//! transaction rolls back and every message is tried again alone, each in its own
//! transaction: one poison message never holds up the others, and each gets its
//! own retry or dead letter.

use std::collections::HashSet;
use std::sync::Arc;

use sqlx::AssertSqlSafe;

use crate::bus::{Envelope, Handler, HandlerError};
use crate::clock::now_ms;
use crate::infra::Infra;
use crate::store::Tx;

/// What a consumer does with one message, inside the transaction the skeleton opened.
#[async_trait::async_trait]
pub trait Effect: Send + Sync + 'static {
    /// Look-ups shared by the messages of one transaction (e.g. the eligible SDRs of
    /// a tenant). Dropped with the transaction, so it never outlives a rollback.
    type Scratch: Default + Send;

    /// The name deliveries are recorded under in `processed_messages`.
    fn consumer(&self) -> &'static str;

    /// Applies one message. Writes outgoing events with `Outbox::add` on `tx`; an
    /// error rolls back everything the transaction did.
    async fn apply(&self, tx: &mut Tx, envelope: &Envelope, scratch: &mut Self::Scratch) -> Result<(), HandlerError>;

    /// Applies several messages (each seen for the first time), in order. The
    /// default applies them one by one; a consumer on the hot path overrides it with
    /// multi-row statements. Must leave the same result as `apply` on each in turn.
    async fn apply_batch(
        &self,
        tx: &mut Tx,
        envelopes: &[&Envelope],
        scratch: &mut Self::Scratch,
    ) -> Result<(), HandlerError> {
        for envelope in envelopes {
            self.apply(tx, envelope, scratch).await?;
        }
        Ok(())
    }
}

/// Turns an [`Effect`] into a bus [`Handler`].
pub struct Transactional<E> {
    infra: Infra,
    effect: E,
}

impl<E: Effect> Transactional<E> {
    pub fn new(infra: &Infra, effect: E) -> Arc<Self> {
        Arc::new(Self {
            infra: infra.clone(),
            effect,
        })
    }

    /// All of `envelopes` in one transaction, or none of them.
    async fn run(&self, envelopes: &[Envelope]) -> Result<(), HandlerError> {
        let mut tx = self.infra.store.begin().await?;
        let ids: Vec<&str> = envelopes.iter().map(|e| e.id.as_str()).collect();
        let mut fresh = first_deliveries(&mut tx, self.effect.consumer(), &ids).await?;
        let mut scratch = E::Scratch::default();
        // `remove`: a message delivered twice within one batch is applied once.
        let todo: Vec<&Envelope> = envelopes.iter().filter(|e| fresh.remove(e.id.as_str())).collect();
        match todo.as_slice() {
            [] => {}
            [one] => self.effect.apply(&mut tx, one, &mut scratch).await?,
            many => self.effect.apply_batch(&mut tx, many, &mut scratch).await?,
        }
        tx.commit().await?;
        self.infra.kick_outbox();
        Ok(())
    }
}

#[async_trait::async_trait]
impl<E: Effect> Handler for Transactional<E> {
    async fn handle(&self, envelope: &Envelope) -> Result<(), HandlerError> {
        self.run(std::slice::from_ref(envelope)).await
    }

    async fn handle_batch(&self, envelopes: &[Envelope]) -> Vec<Result<(), HandlerError>> {
        if envelopes.len() > 1 {
            match self.run(envelopes).await {
                Ok(()) => return vec![Ok(()); envelopes.len()],
                Err(err) => {
                    metrics::counter!("huoke_consumer_batch_splits_total", "consumer" => self.effect.consumer())
                        .increment(1);
                    tracing::debug!(consumer = self.effect.consumer(), size = envelopes.len(), error = %err,
                        "batch failed; trying its messages one by one");
                }
            }
        }
        let mut outcomes = Vec::with_capacity(envelopes.len());
        for envelope in envelopes {
            outcomes.push(self.run(std::slice::from_ref(envelope)).await);
        }
        outcomes
    }
}

/// Records that `consumer` handled these messages, inside the caller's transaction,
/// and answers the ids seen for the first time: delivery is at-least-once, so only
/// those may change anything.
pub async fn first_deliveries<'a>(
    tx: &mut Tx,
    consumer: &str,
    message_ids: &[&'a str],
) -> sqlx::Result<HashSet<&'a str>> {
    let mut fresh = HashSet::with_capacity(message_ids.len());
    let now = now_ms();
    for chunk in message_ids.chunks(400) {
        let values: Vec<String> = (0..chunk.len()).map(|i| format!("($1, ${}, $2)", i + 3)).collect();
        let sql = format!(
            "INSERT INTO processed_messages (consumer, message_id, processed_at) VALUES {}
             ON CONFLICT (consumer, message_id) DO NOTHING RETURNING message_id",
            values.join(", ")
        );
        let mut query = sqlx::query_scalar::<_, String>(AssertSqlSafe(sql))
            .bind(consumer)
            .bind(now);
        for id in chunk {
            query = query.bind(*id);
        }
        let inserted: HashSet<String> = query.fetch_all(&mut **tx).await?.into_iter().collect();
        fresh.extend(chunk.iter().copied().filter(|id| inserted.contains(*id)));
    }
    Ok(fresh)
}
