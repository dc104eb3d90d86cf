//! `lead.assigned` → a WeCom app message (`message/send`) to the person it was
//! offered to: the SDR, or on an escalation the team's manager, with the lead and the
//! accept deadline in the tenant's time zone. Nothing is sent when the tenant has no
//! WeCom app (`agent_id`) or the person no `wecom_userid`. A failed send is retried
//! with the bus's backoff and parked after the attempts run out; a send that went
//! through is remembered for a day, so a redelivered event is not sent twice.

use std::time::Duration;

use chrono::{DateTime, Utc};
use huoke_shared::Infra;
use huoke_shared::bus::{Envelope, Handler, HandlerError};
use huoke_shared::messages::LeadAssigned;
use huoke_shared::schedule::DEFAULT_TZ;
use huoke_shared::wecom::{self, WecomClient};

pub struct WecomMessages {
    infra: Infra,
    client: WecomClient,
}

impl WecomMessages {
    pub fn new(infra: &Infra) -> Self {
        WecomMessages {
            infra: infra.clone(),
            client: WecomClient::with_allowed_hosts(infra.settings.wecom_allowed_hosts.clone()),
        }
    }
}

/// The message text.
pub fn text(escalation: bool, name: &str, company: Option<&str>, grade: &str, due: Option<&str>) -> String {
    let who = match company {
        Some(c) => format!("{name}（{c}）"),
        None => name.to_string(),
    };
    let deadline = due.map(|d| format!("请在 {d} 前接受。")).unwrap_or_default();
    if escalation {
        format!("升级提醒：线索 {who}（{grade} 级）未在时限内被接受，已转给你。{deadline}")
    } else {
        format!("新线索：{who}（{grade} 级）已分配给你。{deadline}")
    }
}

#[async_trait::async_trait]
impl Handler for WecomMessages {
    async fn handle(&self, envelope: &Envelope) -> Result<(), HandlerError> {
        let offer: LeadAssigned = envelope.decode()?;
        let tenant = envelope.tenant_id.as_str();
        let sent_key = format!("wecom:sent:{}", offer.assignment_id);
        let cache = &*self.infra.cache;
        if cache.get(&sent_key).await.ok().flatten().is_some() {
            return Ok(());
        }
        let Some(settings) = wecom::settings(&self.infra.store, tenant).await? else {
            return Ok(());
        };
        if settings.agent_id.is_none() {
            return Ok(());
        }
        let pool = self.infra.store.pool();
        let userid: Option<Option<String>> =
            sqlx::query_scalar("SELECT wecom_userid FROM staff WHERE tenant_id = $1 AND id = $2")
                .bind(tenant)
                .bind(&offer.staff_id)
                .fetch_optional(pool)
                .await?;
        let Some(Some(userid)) = userid else {
            return Ok(());
        };
        let lead: Option<(Option<String>, Option<String>, String)> =
            sqlx::query_as("SELECT name, company, grade FROM leads WHERE tenant_id = $1 AND id = $2")
                .bind(tenant)
                .bind(&offer.lead_id)
                .fetch_optional(pool)
                .await?;
        let Some((name, company, grade)) = lead else {
            return Ok(());
        };
        let tz_name: Option<String> = sqlx::query_scalar("SELECT timezone FROM tenants WHERE id = $1")
            .bind(tenant)
            .fetch_optional(pool)
            .await?;
        let tz = tz_name.and_then(|n| n.parse().ok()).unwrap_or(DEFAULT_TZ);
        let due = offer
            .sla_due_at_ms
            .and_then(DateTime::<Utc>::from_timestamp_millis)
            .map(|d| d.with_timezone(&tz).format("%m-%d %H:%M").to_string());
        let content = text(
            offer.reason == "escalation",
            name.as_deref().unwrap_or("（未留名）"),
            company.as_deref(),
            &grade,
            due.as_deref(),
        );
        match self.client.send_text(cache, &settings, &userid, &content).await {
            Ok(()) => {
                let _ = cache.set(&sent_key, "1", Some(Duration::from_secs(86_400))).await;
                metrics::counter!("huoke_wecom_messages_total", "outcome" => "sent").increment(1);
                Ok(())
            }
            Err(err) => {
                metrics::counter!("huoke_wecom_messages_total", "outcome" => "failed").increment(1);
                Err(HandlerError::Retry(format!("{err:#}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_who_and_by_when() {
        let offer = text(false, "李雷", Some("Acme"), "A", Some("12-01 18:30"));
        assert_eq!(
            offer,
            "新线索：李雷（Acme）（A 级）已分配给你。请在 12-01 18:30 前接受。"
        );
        let up = text(true, "李雷", None, "B", None);
        assert!(up.starts_with("升级提醒：线索 李雷（B 级）"), "{up}");
    }
}
