//! `GET /v1/inbox/stream`: the caller's inbox as Server-Sent Events. A new offer is
//! an `offer` event (its id is the assignment's, time-ordered), a change of one of
//! the caller's assignments an `assignment` event; a `: ping` comment every
//! `HUOKE_SSE_HEARTBEAT_MS` keeps proxies from closing the connection. The events
//! come from the bus's live feed, which every process receives (on RabbitMQ through a
//! queue of its own), so the replica holding the connection hears of an offer made
//! by any other. Reconnecting with `Last-Event-ID` first replays the offers made
//! after that one, from the store: nothing is missed across a reconnect.

use std::collections::VecDeque;
use std::sync::Arc;

use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::stream;
use huoke_shared::auth::{Caller, Role};
use huoke_shared::bus::{Envelope, Live};
use huoke_shared::clock::rfc3339;
use huoke_shared::messages::LeadAssigned;
use huoke_shared::{ApiResult, Infra};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

/// Offers replayed on a reconnect at most; a client further behind reloads the inbox.
const REPLAY_LIMIT: i64 = 200;

fn frame(event: &str, id: Option<&str>, data: &Value) -> Bytes {
    let mut out = String::new();
    if let Some(id) = id {
        out.push_str(&format!("id: {id}\n"));
    }
    out.push_str(&format!("event: {event}\ndata: {data}\n\n"));
    Bytes::from(out)
}

/// The frame for a live event, if it concerns `staff_id` of `tenant_id`.
fn for_caller(envelope: &Envelope, tenant_id: &str, staff_id: &str) -> Option<Bytes> {
    if envelope.tenant_id != tenant_id || envelope.data["staff_id"].as_str() != Some(staff_id) {
        return None;
    }
    let assignment = envelope.data["assignment_id"].as_str()?;
    if envelope.kind == <LeadAssigned as huoke_shared::bus::Message>::TOPIC {
        let data = json!({
            "assignment_id": assignment,
            "lead_id": envelope.data["lead_id"],
            "reason": envelope.data["reason"],
            "sla_due_at": envelope.data["sla_due_at_ms"].as_i64().map(rfc3339),
        });
        return Some(frame("offer", Some(assignment), &data));
    }
    let state = match envelope.kind.as_str() {
        "assignment.accepted" => "accepted",
        "assignment.rejected" => "rejected",
        "sla.breached" => "expired",
        "assignment.handed_over" => "withdrawn",
        _ => return None,
    };
    let data = json!({"assignment_id": assignment, "lead_id": envelope.data["lead_id"], "state": state});
    Some(frame("assignment", None, &data))
}

struct Open {
    pending: VecDeque<Bytes>,
    live: Live,
    heartbeat: tokio::time::Interval,
    tenant_id: String,
    staff_id: String,
}

pub async fn stream(infra: web::Data<Infra>, caller: Caller, req: HttpRequest) -> ApiResult<HttpResponse> {
    caller.require_any(&[Role::Sdr])?;
    // Subscribed before the replay is read: an offer made in between is in one or
    // both, never in neither (the client dedupes on the id). The stream says it is
    // connected once the process's live feed is receiving.
    let live = infra.bus.live();
    if !infra.bus.live_ready(std::time::Duration::from_secs(5)).await {
        tracing::warn!("the live feed is not receiving; the stream opens anyway and relies on Last-Event-ID");
    }
    let mut pending = VecDeque::new();
    pending.push_back(Bytes::from_static(b": connected\n\n"));
    let last = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 64);
    if let Some(last) = last {
        let missed: Vec<(String, String, String, Option<i64>)> = sqlx::query_as(
            "SELECT id, lead_id, COALESCE(reason, ''), sla_due_at FROM assignments
             WHERE tenant_id = $1 AND staff_id = $2 AND id > $3 AND kind <> 'claim'
             ORDER BY id LIMIT $4",
        )
        .bind(&caller.tenant_id)
        .bind(&caller.staff_id)
        .bind(last)
        .bind(REPLAY_LIMIT)
        .fetch_all(infra.store.pool())
        .await?;
        for (id, lead_id, reason, due) in missed {
            let data = json!({"assignment_id": id, "lead_id": lead_id, "reason": reason, "sla_due_at": due.map(rfc3339), "replayed": true});
            pending.push_back(frame("offer", Some(&id), &data));
        }
    }
    let mut heartbeat = tokio::time::interval(infra.settings.sse_heartbeat);
    heartbeat.tick().await;
    let open = Open {
        pending,
        live,
        heartbeat,
        tenant_id: caller.tenant_id.clone(),
        staff_id: caller.staff_id.clone(),
    };
    let body = stream::unfold(open, |mut open| async move {
        loop {
            if let Some(next) = open.pending.pop_front() {
                return Some((Ok::<Bytes, actix_web::Error>(next), open));
            }
            tokio::select! {
                received = open.live.recv() => match received {
                    Ok(envelope) => {
                        let envelope: Arc<Envelope> = envelope;
                        if let Some(bytes) = for_caller(&envelope, &open.tenant_id, &open.staff_id) {
                            return Some((Ok(bytes), open));
                        }
                    }
                    // Fell behind: the client reloads its inbox (or reconnects with
                    // its last id) rather than miss something silently.
                    Err(RecvError::Lagged(_)) => return Some((Ok(frame("resync", None, &json!({}))), open)),
                    Err(RecvError::Closed) => return None,
                },
                _ = open.heartbeat.tick() => return Some((Ok(Bytes::from_static(b": ping\n\n")), open)),
            }
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(kind: &str, tenant: &str, data: Value) -> Envelope {
        let mut e = Envelope::new(
            tenant,
            &LeadAssigned {
                assignment_id: "a1".into(),
                lead_id: "l1".into(),
                staff_id: "s1".into(),
                reason: "rule".into(),
                sla_due_at_ms: Some(0),
            },
        );
        e.kind = kind.into();
        e.data = data;
        e
    }

    #[test]
    fn only_the_callers_own_events_reach_them() {
        let data =
            json!({"assignment_id": "a1", "lead_id": "l1", "staff_id": "s1", "reason": "rule", "sla_due_at_ms": 0});
        let offer = for_caller(&envelope("lead.assigned", "t1", data.clone()), "t1", "s1").unwrap();
        let text = String::from_utf8(offer.to_vec()).unwrap();
        assert!(text.starts_with("id: a1\nevent: offer\ndata: {"), "{text}");
        assert!(text.ends_with("\n\n"));
        assert!(for_caller(&envelope("lead.assigned", "t1", data.clone()), "t1", "s2").is_none());
        assert!(for_caller(&envelope("lead.assigned", "t2", data.clone()), "t1", "s1").is_none());
        let accepted = for_caller(&envelope("assignment.accepted", "t1", data), "t1", "s1").unwrap();
        assert!(
            String::from_utf8(accepted.to_vec())
                .unwrap()
                .contains("\"state\":\"accepted\"")
        );
    }
}
