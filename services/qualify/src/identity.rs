//! The identities of a capture: what says two captures are one person. Each is a
//! (kind, value) pair, unique per tenant:
//! - `phone`: a personal number in E.164 (company lines such as 400/800 numbers are
//!   not identities — colleagues share them);
//! - `email`: trimmed and lower-cased at the edge;
//! - `unionid`: one WeChat user across the tenant's apps;
//! - `external_userid`: a WeCom external contact, meaningful within one corp, so
//!   stored as `<corpid>/<id>`;
//! - `openid`: meaningful within one app, so stored as `<appid>/<openid>` and never
//!   compared across apps.
//!
//! Ids that arrive without their corp or app are kept under `-`: one unnamed app.

use huoke_shared::contact::{Line, Phone};
use huoke_shared::messages::CaptureReceived;

pub type Identity = (&'static str, String);

/// The capture's identities, strongest first.
pub fn of(c: &CaptureReceived) -> Vec<Identity> {
    let mut ids = Vec::new();
    if let Some(v) = &c.wechat.unionid {
        ids.push(("unionid", v.clone()));
    }
    if let Some(v) = &c.wechat.external_userid {
        ids.push(("external_userid", scoped(c.wechat.corpid.as_deref(), v)));
    }
    if let Some(v) = &c.phone
        && is_personal(v)
    {
        ids.push(("phone", v.clone()));
    }
    if let Some(v) = &c.email {
        ids.push(("email", v.clone()));
    }
    if let Some(v) = &c.wechat.openid {
        ids.push(("openid", scoped(c.wechat.appid.as_deref(), v)));
    }
    ids
}

fn scoped(scope: Option<&str>, id: &str) -> String {
    format!("{}/{id}", scope.unwrap_or("-"))
}

/// The number reaches one person. Captures carry numbers already in E.164; one that
/// no longer parses (metadata changed since) still identifies whoever gave it.
fn is_personal(e164: &str) -> bool {
    Phone::parse(e164).map_or(true, |p| p.line() == Line::Personal)
}

/// Whether the identity kind is a WeChat one (for scoring "reachable on WeChat").
pub fn is_wechat(kind: &str) -> bool {
    matches!(kind, "unionid" | "openid" | "external_userid")
}

#[cfg(test)]
mod tests {
    use super::*;
    use huoke_shared::messages::WechatIds;

    fn capture() -> CaptureReceived {
        CaptureReceived {
            capture_id: "c".into(),
            channel: "api".into(),
            campaign_id: None,
            owner_hint: None,
            name: None,
            phone: None,
            email: None,
            company: None,
            title: None,
            uscc: None,
            wechat: WechatIds::default(),
            attributes: serde_json::Map::new(),
            consent: None,
            visitor: None,
            received_at_ms: 0,
        }
    }

    #[test]
    fn company_lines_identify_no_one() {
        let mut c = capture();
        c.phone = Some("+864008108888".into());
        assert!(of(&c).is_empty());
        c.phone = Some("+8613800138000".into());
        assert_eq!(of(&c), vec![("phone", "+8613800138000".to_string())]);
    }

    #[test]
    fn app_and_corp_scoped_ids_carry_their_scope() {
        let mut c = capture();
        c.wechat = WechatIds {
            openid: Some("o1".into()),
            appid: Some("wxA".into()),
            external_userid: Some("wm1".into()),
            ..WechatIds::default()
        };
        let ids = of(&c);
        assert!(ids.contains(&("openid", "wxA/o1".to_string())));
        assert!(ids.contains(&("external_userid", "-/wm1".to_string())));
        c.wechat.appid = Some("wxB".into());
        assert!(
            of(&c).contains(&("openid", "wxB/o1".to_string())),
            "another app's openid is another id"
        );
    }
}
