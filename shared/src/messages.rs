//! The message catalogue: every event type on the bus, and the queues that
//! consume them. Services meet here and nowhere else.

use serde::{Deserialize, Serialize};

use crate::bus::{Message, QueueSpec};

pub mod queues {
    pub const QUALIFY_CAPTURES: &str = "qualify.captures";
    pub const ROUTER_LEADS: &str = "router.leads";
    pub const ROUTER_REROUTES: &str = "router.reroutes";
    pub const POOL_ASSIGNMENTS: &str = "pool.assignments";
    pub const QUALIFY_ENGAGEMENT: &str = "qualify.engagement";
    pub const NOTIFY_FANOUT: &str = "notify.fanout";
    pub const NOTIFY_DELIVERIES: &str = "notify.deliveries";
    pub const NOTIFY_WECOM: &str = "notify.wecom";
    pub const INTAKE_WECOM_CONTACTS: &str = "intake.wecom_contacts";
}

/// The events every process sees a copy of ([`Bus::live`](crate::bus::Bus::live)): what an
/// SDR's open inbox stream shows as it happens.
pub const LIVE_TOPICS: &[&str] = &[
    LeadAssigned::TOPIC,
    AssignmentAccepted::TOPIC,
    AssignmentRejected::TOPIC,
    AssignmentHandedOver::TOPIC,
    SlaBreached::TOPIC,
];

/// The events a tenant may subscribe a webhook to.
pub const WEBHOOK_EVENTS: &[&str] = &[
    LeadQualified::TOPIC,
    LeadAssigned::TOPIC,
    AssignmentAccepted::TOPIC,
    AssignmentRejected::TOPIC,
    AssignmentHandedOver::TOPIC,
    SlaBreached::TOPIC,
    FirstContactBreached::TOPIC,
    LeadEscalated::TOPIC,
    LeadReleased::TOPIC,
    LeadClaimed::TOPIC,
    LeadStatusChanged::TOPIC,
    LeadMerged::TOPIC,
];

/// Every durable queue and its bindings, declared by every process at start-up.
pub const TOPOLOGY: &[QueueSpec] = &[
    QueueSpec {
        name: queues::QUALIFY_CAPTURES,
        bindings: &[CaptureReceived::TOPIC],
        dead_letter_queue: "qualify.captures.dlq",
    },
    QueueSpec {
        name: queues::ROUTER_LEADS,
        bindings: &[LeadQualified::TOPIC],
        dead_letter_queue: "router.leads.dlq",
    },
    QueueSpec {
        name: queues::ROUTER_REROUTES,
        bindings: &[
            AssignmentRejected::TOPIC,
            SlaBreached::TOPIC,
            AssignmentHandedOver::TOPIC,
        ],
        dead_letter_queue: "router.reroutes.dlq",
    },
    QueueSpec {
        name: queues::QUALIFY_ENGAGEMENT,
        bindings: &[CardEngaged::TOPIC],
        dead_letter_queue: "qualify.engagement.dlq",
    },
    QueueSpec {
        name: queues::NOTIFY_FANOUT,
        bindings: WEBHOOK_EVENTS,
        dead_letter_queue: "notify.fanout.dlq",
    },
    QueueSpec {
        name: queues::NOTIFY_DELIVERIES,
        bindings: &[WebhookDelivery::TOPIC],
        dead_letter_queue: "notify.deliveries.dlq",
    },
    QueueSpec {
        name: queues::NOTIFY_WECOM,
        bindings: &[LeadAssigned::TOPIC],
        dead_letter_queue: "notify.wecom.dlq",
    },
    QueueSpec {
        name: queues::INTAKE_WECOM_CONTACTS,
        bindings: &[WecomContactChanged::TOPIC],
        dead_letter_queue: "intake.wecom_contacts.dlq",
    },
    QueueSpec {
        name: queues::POOL_ASSIGNMENTS,
        bindings: &[LeadAssigned::TOPIC],
        dead_letter_queue: "pool.assignments.dlq",
    },
];

/// A verified WeCom customer-contact event, recorded by the callback before it
/// answers WeCom; intake's consumer fetches the customer's details and makes the
/// capture from both.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WecomContactChanged {
    pub corp_id: String,
    /// `add_external_contact`, `add_half_external_contact` or `edit_external_contact`.
    pub change_type: String,
    /// The member (WeCom user id) who added or edited the customer.
    pub member_userid: String,
    pub external_userid: String,
    #[serde(default)]
    pub state: String,
    /// WeCom's `CreateTime`, as sent.
    #[serde(default)]
    pub created: String,
    /// Over corp, change type, member, customer, state and time: WeCom's repeated
    /// deliveries of one event share it, and so make one capture.
    pub dedupe: String,
}

impl Message for WecomContactChanged {
    const TOPIC: &'static str = "wecom.contact_changed";
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct WechatIds {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unionid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_userid: Option<String>,
    /// The official account or mini program an `openid` belongs to: an openid means
    /// nothing outside its app, so two are compared only within one app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appid: Option<String>,
    /// The WeCom corp an `external_userid` belongs to, for the same reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corpid: Option<String>,
}

impl WechatIds {
    pub fn is_empty(&self) -> bool {
        self.unionid.is_none() && self.openid.is_none() && self.external_userid.is_none()
    }
}

/// A capture accepted by intake: validated and normalised (phone in E.164,
/// e-mail lower-cased). Published from intake's outbox.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CaptureReceived {
    pub capture_id: String,
    pub channel: String,
    pub campaign_id: Option<String>,
    pub owner_hint: Option<String>,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub company: Option<String>,
    pub title: Option<String>,
    /// The company's unified social credit code, check digit verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uscc: Option<String>,
    #[serde(default)]
    pub wechat: WechatIds,
    #[serde(default)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
    pub consent: Option<bool>,
    /// The salted visitor hash of the public page the capture came from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visitor: Option<String>,
    pub received_at_ms: i64,
}

impl Message for CaptureReceived {
    const TOPIC: &'static str = "capture.received";
}

/// A capture resolved to a lead (new or existing) and scored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LeadQualified {
    pub lead_id: String,
    pub capture_id: String,
    pub is_new_lead: bool,
    pub score: i64,
    pub grade: String,
    pub channel: String,
    pub owner_hint: Option<String>,
}

impl Message for LeadQualified {
    const TOPIC: &'static str = "lead.qualified";
}

/// A lead offered to an owner under an SLA.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LeadAssigned {
    pub assignment_id: String,
    pub lead_id: String,
    pub staff_id: String,
    pub reason: String,
    pub sla_due_at_ms: Option<i64>,
}

impl Message for LeadAssigned {
    const TOPIC: &'static str = "lead.assigned";
}

/// An assignee accepted their assignment (the SLA clock stops).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AssignmentAccepted {
    pub assignment_id: String,
    pub lead_id: String,
    pub staff_id: String,
}

impl Message for AssignmentAccepted {
    const TOPIC: &'static str = "assignment.accepted";
}

/// An assignee gave a lead up; the router offers it to the next owner.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AssignmentRejected {
    pub assignment_id: String,
    pub lead_id: String,
    pub staff_id: String,
    pub reason: String,
    /// Offers made for the lead before this one since it was routed afresh.
    pub hop: i64,
    /// `offer` or `escalation`.
    pub kind: String,
}

impl Message for AssignmentRejected {
    const TOPIC: &'static str = "assignment.rejected";
}

/// The assignee was switched off: their open assignment ended and the lead goes to
/// the next owner by the rules, like a rejection.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AssignmentHandedOver {
    pub assignment_id: String,
    pub lead_id: String,
    pub staff_id: String,
    pub hop: i64,
    pub kind: String,
}

impl Message for AssignmentHandedOver {
    const TOPIC: &'static str = "assignment.handed_over";
}

/// The owner of an accepted offer made no first contact (no activity logged) within
/// the SLA policy's `first_contact_within_seconds`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FirstContactBreached {
    pub assignment_id: String,
    pub lead_id: String,
    pub staff_id: String,
    pub due_at_ms: i64,
}

impl Message for FirstContactBreached {
    const TOPIC: &'static str = "sla.first_contact_breached";
}

/// A lead moved along the sales funnel (contacted → SQL → converted → won/lost, or
/// disqualified), `after_ms` after it entered its previous status.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LeadStatusChanged {
    pub lead_id: String,
    pub from: String,
    pub to: String,
    pub reason: Option<String>,
    pub staff_id: Option<String>,
    pub after_ms: Option<i64>,
}

impl Message for LeadStatusChanged {
    const TOPIC: &'static str = "lead.status_changed";
}

/// An SDR took a lead from the public pool.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LeadClaimed {
    pub lead_id: String,
    pub staff_id: String,
    pub assignment_id: String,
}

impl Message for LeadClaimed {
    const TOPIC: &'static str = "lead.claimed";
}

/// An offer's accept window closed unanswered; the offer expired and the router
/// offers the lead to the next owner, escalates it or releases it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SlaBreached {
    pub assignment_id: String,
    pub lead_id: String,
    pub staff_id: String,
    pub due_at_ms: i64,
    pub hop: i64,
    /// `offer` or `escalation`.
    pub kind: String,
}

impl Message for SlaBreached {
    const TOPIC: &'static str = "sla.breached";
}

/// Nobody took the lead in time: it is offered to a manager.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LeadEscalated {
    pub lead_id: String,
    pub manager_id: String,
    pub assignment_id: String,
}

impl Message for LeadEscalated {
    const TOPIC: &'static str = "lead.escalated";
}

/// A lead went to the public pool (公海) with nobody owning it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LeadReleased {
    pub lead_id: String,
    pub reason: String,
}

impl Message for LeadReleased {
    const TOPIC: &'static str = "lead.released";
}

/// Two leads found to be one person: `merged_id` now points at `survivor_id`, which
/// holds both histories. `undone` when a person took the merge back.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LeadMerged {
    pub survivor_id: String,
    pub merged_id: String,
    pub merge_id: String,
    #[serde(default)]
    pub undone: bool,
}

impl Message for LeadMerged {
    const TOPIC: &'static str = "lead.merged";
}

/// A visitor of a smart card did something worth counting: `card_view` (opened the
/// card) or `card_save` (saved the contact). qualify credits it to the lead the
/// visitor became, if any.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CardEngaged {
    pub card_id: String,
    /// Salted visitor hash, as stored with the card's events.
    pub visitor: String,
    pub kind: String,
    pub at_ms: i64,
}

impl Message for CardEngaged {
    const TOPIC: &'static str = "card.engaged";
}

/// One event to POST to one webhook subscription.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WebhookDelivery {
    pub delivery_id: String,
    pub subscription_id: String,
    /// The event as it travelled on the bus: id, type, time and data.
    pub event_id: String,
    pub event_type: String,
    pub occurred_at: String,
    pub data: serde_json::Value,
}

impl Message for WebhookDelivery {
    const TOPIC: &'static str = "webhook.delivery";
}

/// Scans of one code, landing on one member (or none) with one outcome, within one
/// minute (`minute_ms`, epoch milliseconds, the start of the minute).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScanCount {
    pub code_id: String,
    pub staff_id: Option<String>,
    pub outcome: String,
    pub minute_ms: i64,
    pub scans: u32,
    /// Scans by visitors seen for the first time (they were given a cookie).
    pub first_visits: u32,
}

/// What one flush of the scan buffer wrote for one tenant, counted per code, member,
/// outcome and minute — engagement for scoring without a message per scan (a busy
/// code sees thousands a second). The stored tallies are in `scan_minutes`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScansCounted {
    pub counts: Vec<ScanCount>,
}

impl Message for ScansCounted {
    const TOPIC: &'static str = "scan.counted";
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::topic_matches;

    #[test]
    fn dead_letter_queues_are_named_after_their_queue() {
        for spec in TOPOLOGY {
            assert_eq!(spec.dead_letter_queue, crate::bus::dead_letter_queue(spec.name));
        }
    }

    #[test]
    fn every_consumed_topic_has_a_queue() {
        for topic in [CaptureReceived::TOPIC, LeadQualified::TOPIC, LeadAssigned::TOPIC] {
            assert!(
                TOPOLOGY
                    .iter()
                    .any(|q| q.bindings.iter().any(|b| topic_matches(b, topic))),
                "{topic} is consumed by nobody"
            );
        }
    }
}
