//! What routing knows about a lead: its own fields and the attributes of the capture
//! that brought it (`region`, `province`, `city`, `industry`, `company_size`, `tags`,
//! `live_code_id` — the names a form, a webhook mapping or the scan path give them).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeadFacts {
    #[serde(default)]
    pub channel: String,
    #[serde(default)]
    pub grade: String,
    #[serde(default)]
    pub score: i64,
    #[serde(default)]
    pub company: Option<String>,
    #[serde(default)]
    pub campaign_id: Option<String>,
    #[serde(default)]
    pub live_code_id: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub province: Option<String>,
    #[serde(default)]
    pub city: Option<String>,
    #[serde(default)]
    pub industry: Option<String>,
    #[serde(default)]
    pub company_size: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// The employee whose code or card the prospect used.
    #[serde(default)]
    pub owner_hint: Option<String>,
}

fn text(attributes: &Map<String, Value>, key: &str) -> Option<String> {
    match attributes.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl LeadFacts {
    /// Fills the attribute-borne facts from a capture's `attributes` object; facts
    /// already set are kept.
    pub fn with_attributes(mut self, attributes: &Map<String, Value>) -> Self {
        for (slot, key) in [
            (&mut self.region, "region"),
            (&mut self.province, "province"),
            (&mut self.city, "city"),
            (&mut self.industry, "industry"),
            (&mut self.company_size, "company_size"),
            (&mut self.live_code_id, "live_code_id"),
        ] {
            if slot.is_none() {
                *slot = text(attributes, key);
            }
        }
        if self.tags.is_empty() {
            self.tags = match attributes.get("tags") {
                Some(Value::Array(tags)) => tags.iter().filter_map(Value::as_str).map(str::to_string).collect(),
                Some(Value::String(tags)) => tags
                    .split([',', '，'])
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_string)
                    .collect(),
                _ => Vec::new(),
            };
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn attributes_fill_the_facts() {
        let attributes = json!({"province": " 江苏 ", "city": "", "company_size": 200, "tags": "vip， expo"});
        let facts = LeadFacts::default().with_attributes(attributes.as_object().unwrap());
        assert_eq!(facts.province.as_deref(), Some("江苏"));
        assert_eq!(facts.city, None);
        assert_eq!(facts.company_size.as_deref(), Some("200"));
        assert_eq!(facts.tags, ["vip", "expo"]);
    }
}
