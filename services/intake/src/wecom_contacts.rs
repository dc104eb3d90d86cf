//! `wecom.contact_changed` → a capture. The callback recorded the event and answered
//! WeCom at once; here the customer's details are fetched (`externalcontact/get`,
//! with the cached access token) and the capture is made from both: the name WeCom
//! shows, their company and position, the `unionid` that links them to the same
//! person seen through an official account, and what the member noted (the remark
//! phone, remark, description, tags). The `State` names the live code and member
//! whose "contact me" QR the customer used: the code gets the attribution, the member
//! the owner hint.
//!
//! The lead never waits on WeCom for long: when WeCom refuses (an `errcode`), the
//! capture is made without details at once; when it cannot be reached, the event is
//! retried with the bus's backoff until `HUOKE_WECOM_DETAILS_WAIT_SECS` after the
//! callback, then made without details. Details that fail our checks (a remark phone
//! that is no phone) are dropped the same way. Redeliveries make one capture: the
//! idempotency key is the callback's event key.

use std::collections::BTreeMap;

use huoke_shared::bus::{Envelope, Handler, HandlerError};
use huoke_shared::capture::{CaptureInput, Submission, accept};
use huoke_shared::clock::now_ms;
use huoke_shared::messages::{WechatIds, WecomContactChanged};
use huoke_shared::wecom::{self, ExternalContact, WecomClient, WecomRefused};
use huoke_shared::{ApiError, Infra};
use serde_json::{Map, Value};

/// Longest text kept from one of the member's notes.
const MAX_NOTE_CHARS: usize = 500;

pub struct WecomContacts {
    infra: Infra,
    client: WecomClient,
}

impl WecomContacts {
    pub fn new(infra: &Infra) -> Self {
        WecomContacts {
            infra: infra.clone(),
            client: WecomClient::with_allowed_hosts(infra.settings.wecom_allowed_hosts.clone()),
        }
    }

    /// The customer's details, `None` when they are not to be had; a retry while
    /// WeCom is unreachable and the wait has not run out.
    async fn details(
        &self,
        envelope: &Envelope,
        event: &WecomContactChanged,
    ) -> Result<Option<ExternalContact>, HandlerError> {
        let Some(settings) = wecom::settings(&self.infra.store, &envelope.tenant_id).await? else {
            // The integration was removed after the callback: the event still counts.
            return Ok(None);
        };
        match self
            .client
            .external_contact(&*self.infra.cache, &settings, &event.external_userid)
            .await
        {
            Ok(contact) => Ok(Some(contact)),
            Err(err) if err.downcast_ref::<WecomRefused>().is_some() => {
                metrics::counter!("huoke_wecom_contact_details_missing_total", "reason" => "refused").increment(1);
                tracing::warn!(error = %format!("{err:#}"), "WeCom gave no customer details; capturing without them");
                Ok(None)
            }
            Err(err) => {
                let waited = now_ms() - occurred_at_ms(envelope).unwrap_or(0);
                let wait = i64::try_from(self.infra.settings.wecom_details_wait.as_millis()).unwrap_or(i64::MAX);
                if waited < wait {
                    return Err(HandlerError::Retry(format!("WeCom customer details: {err:#}")));
                }
                metrics::counter!("huoke_wecom_contact_details_missing_total", "reason" => "unreachable").increment(1);
                tracing::warn!(error = %format!("{err:#}"), "WeCom unreachable past the wait; capturing without details");
                Ok(None)
            }
        }
    }
}

fn occurred_at_ms(envelope: &Envelope) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(&envelope.occurred_at)
        .ok()
        .map(|t| t.timestamp_millis())
}

fn as_handler_error(err: ApiError) -> HandlerError {
    match err {
        ApiError::Internal(e) => HandlerError::Retry(format!("{e:#}")),
        ApiError::Unavailable(e) => HandlerError::Retry(e),
        other => HandlerError::Reject(other.to_string()),
    }
}

#[async_trait::async_trait]
impl Handler for WecomContacts {
    async fn handle(&self, envelope: &Envelope) -> Result<(), HandlerError> {
        let event: WecomContactChanged = envelope.decode()?;
        let tenant_id = envelope.tenant_id.as_str();
        let details = self.details(envelope, &event).await?;
        let found = attribution(&self.infra, tenant_id, &event.state, &event.member_userid)
            .await
            .map_err(HandlerError::from)?;
        let key = format!("wecom:{}", event.dedupe);
        let who = || Submission {
            tenant_id,
            created_by: "wecom",
            idempotency_key: Some(&key),
            visitor: None,
        };
        let input = capture_input(&event, found.clone(), details.as_ref());
        match accept(&self.infra, who(), &input).await {
            Ok(_) => Ok(()),
            Err(ApiError::Validation(errors)) if details.is_some() => {
                metrics::counter!("huoke_wecom_contact_details_missing_total", "reason" => "invalid").increment(1);
                let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
                tracing::warn!(
                    ?fields,
                    "WeCom's customer details did not pass the checks; capturing without them"
                );
                accept(&self.infra, who(), &capture_input(&event, found, None))
                    .await
                    .map(|_| ())
                    .map_err(as_handler_error)
            }
            Err(err) => Err(as_handler_error(err)),
        }
    }
}

/// The live code (its public code) and the member a capture is credited to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attribution {
    pub live_code: Option<String>,
    pub owner: Option<String>,
}

/// The capture for one event, with WeCom's details when there are any.
pub fn capture_input(
    event: &WecomContactChanged,
    found: Attribution,
    details: Option<&ExternalContact>,
) -> CaptureInput {
    let mut attributes = Map::new();
    let mut note = |key: &str, value: Option<&str>| {
        if let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) {
            attributes.insert(key.to_string(), Value::String(v.chars().take(MAX_NOTE_CHARS).collect()));
        }
    };
    note("wecom_user_id", Some(&event.member_userid));
    note("wecom_state", Some(&event.state));
    note("wecom_change_type", Some(&event.change_type));
    let mut input = CaptureInput {
        channel: Some("wecom".into()),
        owner_hint: found.owner,
        live_code: found.live_code,
        ..CaptureInput::default()
    };
    let mut wechat = WechatIds {
        external_userid: Some(event.external_userid.clone()),
        corpid: Some(event.corp_id.clone()),
        ..WechatIds::default()
    };
    if let Some(contact) = details {
        let customer = &contact.external_contact;
        let noted = contact.noted_by(&event.member_userid);
        let kind = match customer.kind {
            Some(1) => Some("wechat"),
            Some(2) => Some("wecom"),
            _ => None,
        };
        let gender = match customer.gender {
            Some(1) => Some("male"),
            Some(2) => Some("female"),
            _ => None,
        };
        note("wecom_contact_type", kind);
        note("wecom_gender", gender);
        note("wecom_avatar", customer.avatar.as_deref());
        note("wecom_remark", noted.and_then(|n| n.remark.as_deref()));
        note("wecom_description", noted.and_then(|n| n.description.as_deref()));
        let tags: Vec<Value> = noted
            .map(|n| {
                n.tags
                    .iter()
                    .filter_map(|t| t.tag_name.clone())
                    .map(Value::String)
                    .collect()
            })
            .unwrap_or_default();
        if !tags.is_empty() {
            attributes.insert("wecom_tags".into(), Value::Array(tags));
        }
        let present = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        input.name = present(&customer.name).or_else(|| noted.and_then(|n| present(&n.remark)));
        input.title = present(&customer.position);
        input.company = present(&customer.corp_full_name)
            .or_else(|| present(&customer.corp_name))
            .or_else(|| noted.and_then(|n| present(&n.remark_corp_name)));
        input.phone = noted.and_then(|n| {
            n.remark_mobiles
                .iter()
                .map(|m| m.trim())
                .find(|m| !m.is_empty())
                .map(str::to_string)
        });
        wechat.unionid = present(&customer.unionid);
    }
    input.wechat = Some(wechat);
    input.attributes = Some(attributes);
    input
}

/// The live code and member a `State` names — the contact way the scan path made
/// for them — else the member whose WeCom user id added the customer.
async fn attribution(infra: &Infra, tenant_id: &str, state: &str, member_userid: &str) -> sqlx::Result<Attribution> {
    let ways: Vec<(String, String, Option<String>)> = if state.is_empty() {
        Vec::new()
    } else {
        sqlx::query_as(
            "SELECT c.code, w.staff_id, s.wecom_userid FROM wecom_contact_ways w
             JOIN live_codes c ON c.tenant_id = w.tenant_id AND c.id = w.code_id
             LEFT JOIN staff s ON s.tenant_id = w.tenant_id AND s.id = w.staff_id
             WHERE w.tenant_id = $1 AND w.state = $2",
        )
        .bind(tenant_id)
        .bind(state)
        .fetch_all(infra.store.pool())
        .await?
    };
    // A channel code shares one state among its members: the one who was added.
    let by_member: BTreeMap<bool, &(String, String, Option<String>)> = ways
        .iter()
        .map(|w| (w.2.as_deref() == Some(member_userid), w))
        .collect();
    if let Some((code, staff, _)) = by_member.get(&true).or_else(|| by_member.get(&false)) {
        return Ok(Attribution {
            live_code: Some(code.clone()),
            owner: Some(staff.clone()),
        });
    }
    let owner: Option<String> =
        sqlx::query_scalar("SELECT id FROM staff WHERE tenant_id = $1 AND wecom_userid = $2 AND active = 1")
            .bind(tenant_id)
            .bind(member_userid)
            .fetch_optional(infra.store.pool())
            .await?;
    Ok(Attribution { live_code: None, owner })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> WecomContactChanged {
        WecomContactChanged {
            corp_id: "ww-corp".into(),
            change_type: "add_external_contact".into(),
            member_userid: "lisi".into(),
            external_userid: "wm-1".into(),
            state: "s1".into(),
            created: "1733040000".into(),
            dedupe: "k".into(),
        }
    }

    fn details() -> ExternalContact {
        serde_json::from_value(serde_json::json!({
            "external_contact": {"name": " 王五 ", "position": "采购经理", "corp_name": "腾讯",
                "corp_full_name": "腾讯科技有限公司", "type": 2, "gender": 2, "unionid": "o-union-1"},
            "follow_user": [
                {"userid": "other", "remark": "someone else's note", "remark_mobiles": ["13900000000"]},
                {"userid": "lisi", "remark": "王总", "description": "展会认识", "remark_mobiles": ["", "138 0013 8000"],
                 "tags": [{"tag_name": "重点"}, {"group_name": "no name"}]}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn without_details_the_capture_names_the_customer_by_their_ids() {
        let found = Attribution {
            live_code: Some("c1".into()),
            owner: Some("staff-1".into()),
        };
        let input = capture_input(&event(), found, None);
        assert_eq!(input.channel.as_deref(), Some("wecom"));
        assert_eq!(
            (input.live_code.as_deref(), input.owner_hint.as_deref()),
            (Some("c1"), Some("staff-1"))
        );
        let wechat = input.wechat.unwrap();
        assert_eq!(
            (wechat.external_userid.as_deref(), wechat.corpid.as_deref()),
            (Some("wm-1"), Some("ww-corp"))
        );
        assert!(wechat.unionid.is_none() && input.name.is_none() && input.phone.is_none());
        assert_eq!(input.attributes.unwrap()["wecom_state"], "s1");
    }

    #[test]
    fn details_fill_the_person_and_the_adding_members_notes() {
        let input = capture_input(&event(), Attribution::default(), Some(&details()));
        assert_eq!(input.name.as_deref(), Some("王五"));
        assert_eq!(input.company.as_deref(), Some("腾讯科技有限公司"));
        assert_eq!(input.title.as_deref(), Some("采购经理"));
        assert_eq!(
            input.phone.as_deref(),
            Some("138 0013 8000"),
            "lisi's first non-empty remark phone"
        );
        assert_eq!(input.wechat.unwrap().unionid.as_deref(), Some("o-union-1"));
        let attributes = input.attributes.unwrap();
        assert_eq!(attributes["wecom_remark"], "王总");
        assert_eq!(attributes["wecom_description"], "展会认识");
        assert_eq!(attributes["wecom_tags"], serde_json::json!(["重点"]));
        assert_eq!(attributes["wecom_gender"], "female");
        assert_eq!(attributes["wecom_contact_type"], "wecom");
    }

    #[test]
    fn a_wechat_user_without_a_name_takes_the_members_remark() {
        let mut contact = details();
        contact.external_contact.name = None;
        contact.external_contact.corp_name = None;
        contact.external_contact.corp_full_name = None;
        contact.follow_user[1].remark_corp_name = Some("某某公司".into());
        let input = capture_input(&event(), Attribution::default(), Some(&contact));
        assert_eq!(input.name.as_deref(), Some("王总"));
        assert_eq!(input.company.as_deref(), Some("某某公司"));
    }
}
