//! The funnel by channel, campaign, live code or team: a chart drawn on the server
//! (inline SVG: nothing to load, nothing the CSP has to allow) and the table.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use huoke_shared::Infra;
use serde::Deserialize;
use serde_json::Value;

use super::api::Api;
use super::pages::{list_of, refused, signed_in, text};
use super::{Chrome, chrome, render};

pub const STAGES: [&str; 7] = ["scans", "captures", "leads", "mql", "sql", "sal", "won"];
const BY: [&str; 4] = ["channel", "campaign", "live_code", "team"];

/// One bar of the chart: its stage, count, and geometry in the SVG's units.
pub struct Bar {
    pub label: &'static str,
    pub count: i64,
    pub y: i64,
    pub width: i64,
}

pub struct Row {
    pub key: String,
    pub counts: Vec<i64>,
}

#[derive(Template)]
#[template(path = "funnel.html")]
struct FunnelPage {
    chrome: Chrome,
    /// The period the API answered for.
    from: String,
    to: String,
    dimension: &'static str,
    choices: [&'static str; 4],
    bars: Vec<Bar>,
    rows: Vec<Row>,
}

impl FunnelPage {
    fn by_label(&self, dimension: &str) -> &'static str {
        self.chrome.t(&format!("by.{dimension}"))
    }
}

/// Bars for the stages of `total`, the widest `max_width` long.
pub fn bars(total: &Value, max_width: i64) -> Vec<Bar> {
    let counts: Vec<i64> = STAGES.iter().map(|s| total[*s].as_i64().unwrap_or(0)).collect();
    let largest = counts.iter().copied().max().unwrap_or(0).max(1);
    STAGES
        .iter()
        .zip(counts)
        .enumerate()
        .map(|(i, (stage, count))| Bar {
            label: stage,
            count,
            y: i as i64 * 28,
            // A stage with any count stays visible.
            width: if count == 0 {
                0
            } else {
                (count * max_width / largest).max(2)
            },
        })
        .collect()
}

#[derive(Deserialize)]
pub struct Query {
    by: Option<String>,
    /// Local dates (`YYYY-MM-DD`); the API's default is the last 30 days.
    from: Option<String>,
    to: Option<String>,
}

/// A date as the API takes it, or nothing (anything else is dropped, not passed on).
fn plain_date(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|d| d.len() == 10 && d.bytes().all(|b| b.is_ascii_digit() || b == b'-'))
        .map(str::to_string)
}

pub async fn show(req: HttpRequest, infra: web::Data<Infra>, q: web::Query<Query>) -> HttpResponse {
    let session = signed_in!(req, infra);
    let by = BY
        .iter()
        .find(|b| Some(**b) == q.by.as_deref())
        .copied()
        .unwrap_or("channel");
    let (from, to) = (plain_date(q.from.as_deref()), plain_date(q.to.as_deref()));
    let mut address = format!("/v1/reports/funnel?by={by}");
    for (name, value) in [("from", &from), ("to", &to)] {
        if let Some(v) = value {
            address.push_str(&format!("&{name}={v}"));
        }
    }
    let answer = match Api::of(&req, &session).get(&address).await {
        Ok(a) => a,
        Err(refusal) => return refused(&req, &session, &refusal),
    };
    let rows = list_of(&answer, "rows", |r| Row {
        key: text(&r["key"]),
        counts: STAGES.iter().map(|s| r[*s].as_i64().unwrap_or(0)).collect(),
    });
    let page = FunnelPage {
        chrome: chrome(&req, &session, None),
        from: text(&answer["from"]),
        to: text(&answer["to"]),
        dimension: by,
        choices: BY,
        bars: bars(&answer["total"], 240),
        rows,
    };
    session.finish(render(&page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_dates_reach_the_api() {
        assert_eq!(plain_date(Some("2026-11-01")), Some("2026-11-01".into()));
        for bad in ["2026-11-1", "2026-11-01&by=x", "tomorrow", ""] {
            assert_eq!(plain_date(Some(bad)), None, "{bad}");
        }
    }

    #[test]
    fn bars_scale_to_the_largest_stage() {
        let total = serde_json::json!({"scans": 1000, "captures": 100, "leads": 1, "mql": 0});
        let bars = bars(&total, 240);
        assert_eq!(bars.len(), 7);
        assert_eq!((bars[0].width, bars[1].width), (240, 24));
        assert_eq!(bars[2].width, 2, "one lead still shows");
        assert_eq!(bars[3].width, 0);
        assert_eq!(bars[6].y, 6 * 28);
        assert!(super::bars(&Value::Null, 240).iter().all(|b| b.width == 0));
    }
}
