//! A hosted form's configuration and what a submission makes of it. Pure.

use std::collections::BTreeMap;

use huoke_shared::capture::CaptureInput;
use huoke_shared::channels;
use huoke_shared::error::FieldError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The fields a form may ask for; `message` goes to the lead's attributes.
pub const FIELDS: &[&str] = &["name", "phone", "email", "company", "title", "message"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormConfig {
    pub name: String,
    #[serde(default = "default_channel")]
    pub channel: String,
    #[serde(default)]
    pub campaign_id: Option<String>,
    /// Asked in this order.
    pub fields: Vec<String>,
    #[serde(default)]
    pub required: Vec<String>,
    #[serde(default)]
    pub thank_you: Option<String>,
    /// When set, the visitor must tick it (and the lead records the consent).
    #[serde(default)]
    pub consent_text: Option<String>,
    /// Sites allowed to post the JSON endpoint from a browser (CORS), e.g.
    /// `https://www.example.com`.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    #[serde(default = "yes")]
    pub active: bool,
}

fn default_channel() -> String {
    "web_form".into()
}

fn yes() -> bool {
    true
}

fn limited(errors: &mut Vec<FieldError>, field: &str, value: Option<&str>, max: usize) {
    if value.is_some_and(|v| v.chars().count() > max) {
        errors.push(FieldError::new(field, format!("at most {max} characters")));
    }
}

impl FormConfig {
    pub fn check(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.name.trim().is_empty() || self.name.chars().count() > 100 {
            errors.push(FieldError::new("name", "1–100 characters"));
        }
        if !channels::is_known(&self.channel) {
            errors.push(FieldError::new(
                "channel",
                format!("unknown channel `{}`", self.channel),
            ));
        }
        if self.fields.is_empty() {
            errors.push(FieldError::new(
                "fields",
                format!("one or more of {}", FIELDS.join(", ")),
            ));
        }
        for (i, f) in self.fields.iter().enumerate() {
            if !FIELDS.contains(&f.as_str()) || self.fields[..i].contains(f) {
                errors.push(FieldError::new(
                    format!("fields[{i}]"),
                    format!("one of {}, once", FIELDS.join(", ")),
                ));
            }
        }
        if !self.fields.iter().any(|f| f == "phone" || f == "email") {
            errors.push(FieldError::new("fields", "a form asks for a phone or an e-mail"));
        }
        for (i, r) in self.required.iter().enumerate() {
            if !self.fields.contains(r) {
                errors.push(FieldError::new(format!("required[{i}]"), "a field the form asks for"));
            }
        }
        limited(&mut errors, "thank_you", self.thank_you.as_deref(), 500);
        limited(&mut errors, "consent_text", self.consent_text.as_deref(), 1000);
        for (i, origin) in self.allowed_origins.iter().enumerate() {
            if !is_origin(origin) {
                errors.push(FieldError::new(
                    format!("allowed_origins[{i}]"),
                    "an origin such as https://www.example.com (scheme and host, no path)",
                ));
            }
        }
        errors
    }

    pub fn allows_origin(&self, origin: &str) -> bool {
        self.allowed_origins.iter().any(|o| o.trim_end_matches('/') == origin)
    }
}

/// `https://host[:port]` (or `http://`), nothing more.
fn is_origin(origin: &str) -> bool {
    let host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    host.is_some_and(|h| !h.is_empty() && h.len() <= 200 && !h.contains('/') && !h.chars().any(char::is_whitespace))
}

/// A submission's values, by field name.
pub type Values = BTreeMap<String, String>;

/// The capture a submission makes, or what is wrong with it.
pub fn capture(
    form_id: &str,
    config: &FormConfig,
    values: &Values,
    consented: bool,
) -> Result<CaptureInput, Vec<FieldError>> {
    let value = |f: &str| {
        values
            .get(f)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty() && config.fields.iter().any(|x| x == f))
    };
    let mut errors = Vec::new();
    for r in &config.required {
        if value(r).is_none() {
            errors.push(FieldError::new(r.clone(), "required"));
        }
    }
    if config.consent_text.is_some() && !consented {
        errors.push(FieldError::new("consent", "please agree to be contacted"));
    }
    if value("phone").is_none() && value("email").is_none() {
        errors.push(FieldError::new("phone", "a phone number or an e-mail"));
    }
    if let Some(message) = value("message")
        && message.chars().count() > 2000
    {
        errors.push(FieldError::new("message", "at most 2000 characters"));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut attributes = Map::new();
    attributes.insert("form_id".into(), Value::String(form_id.to_string()));
    if let Some(message) = value("message") {
        attributes.insert("message".into(), Value::String(message));
    }
    Ok(CaptureInput {
        name: value("name"),
        phone: value("phone"),
        email: value("email"),
        company: value("company"),
        title: value("title"),
        channel: Some(config.channel.clone()),
        campaign_id: config.campaign_id.clone(),
        consent: config.consent_text.as_ref().map(|_| consented),
        attributes: Some(attributes),
        ..CaptureInput::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> FormConfig {
        serde_json::from_value(serde_json::json!({
            "name": "Fair", "fields": ["name", "phone", "message"], "required": ["name"],
            "consent_text": "OK to call me", "allowed_origins": ["https://www.example.com"]
        }))
        .unwrap()
    }

    fn values(pairs: &[(&str, &str)]) -> Values {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn a_good_submission_makes_a_capture() {
        let input = capture(
            "f1",
            &config(),
            &values(&[("name", " 李雷 "), ("phone", "13800138000"), ("message", "hi")]),
            true,
        )
        .unwrap();
        assert_eq!(input.name.as_deref(), Some("李雷"));
        assert_eq!(input.channel.as_deref(), Some("web_form"));
        assert_eq!(input.consent, Some(true));
        assert_eq!(input.attributes.unwrap()["form_id"], "f1");
    }

    #[test]
    fn missing_values_and_consent_are_explained_and_unasked_fields_ignored() {
        let errors = capture("f1", &config(), &values(&[("email", "a@b.c")]), false).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["name", "consent", "phone"],
            "e-mail is not asked, so it does not count"
        );
    }

    #[test]
    fn bad_configurations_are_explained() {
        let bad: FormConfig = serde_json::from_value(serde_json::json!({
            "name": "", "channel": "carrier_pigeon", "fields": ["name", "salary", "name"], "required": ["email"],
            "allowed_origins": ["www.example.com", "https://x.example/path"]
        }))
        .unwrap();
        let fields: Vec<String> = bad.check().into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "name",
                "channel",
                "fields[1]",
                "fields[2]",
                "fields",
                "required[0]",
                "allowed_origins[0]",
                "allowed_origins[1]"
            ]
        );
        assert!(config().check().is_empty());
        assert!(config().allows_origin("https://www.example.com"));
        assert!(!config().allows_origin("https://evil.example"));
    }

    proptest::proptest! {
        #[test]
        fn no_submission_makes_the_form_panic(
            pairs in proptest::collection::btree_map("[a-z_]{1,10}", ".{0,80}", 0..10),
            consented in proptest::prelude::any::<bool>(),
        ) {
            let _ = capture("f1", &config(), &pairs, consented);
        }
    }
}
