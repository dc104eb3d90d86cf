//! The console's pages read and change things through the public HTTP API, as the
//! signed-in person (their access token), like any other client: the other services'
//! rules — roles, visibility, validation — apply unchanged, and the console imports
//! none of them. In one process the API is the process itself; split up, it is
//! `HUOKE_API_URL` (the gateway).

use std::sync::OnceLock;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

/// What the API answered when it was not a success, ready to show.
#[derive(Debug)]
pub struct Refusal {
    pub status: u16,
    pub detail: String,
}

impl Refusal {
    fn unreachable(err: reqwest::Error) -> Self {
        Refusal {
            status: 502,
            detail: format!("the API could not be reached: {}", err.without_url()),
        }
    }
}

#[allow(
    clippy::expect_used,
    reason = "building a client without custom certificates only fails when TLS cannot start at all"
)]
fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("HTTP client")
    })
}

pub struct Api {
    base: String,
    token: String,
}

impl Api {
    /// The API as the signed-in person of this request.
    pub fn of(req: &actix_web::HttpRequest, session: &super::session::Session) -> Api {
        Api {
            base: super::api_base(req),
            token: session.token.clone(),
        }
    }

    pub async fn get(&self, path: &str) -> Result<Value, Refusal> {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, Refusal> {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value, Refusal> {
        let mut request = client()
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(Refusal::unreachable)?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(Refusal::unreachable)?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            return Ok(value);
        }
        Err(Refusal {
            status,
            detail: problem_text(&value),
        })
    }
}

/// A problem+json answer as one line: the detail and each field's problem.
pub fn problem_text(problem: &Value) -> String {
    let mut text = problem["detail"]
        .as_str()
        .or_else(|| problem["title"].as_str())
        .unwrap_or("the request failed")
        .to_string();
    if let Some(errors) = problem["errors"].as_array() {
        let fields: Vec<String> = errors
            .iter()
            .map(|e| {
                format!(
                    "{}: {}",
                    e["field"].as_str().unwrap_or("?"),
                    e["message"].as_str().unwrap_or("")
                )
            })
            .collect();
        if !fields.is_empty() {
            text = format!("{text} ({})", fields.join("; "));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_read_as_one_line() {
        let problem = serde_json::json!({"title": "Unprocessable", "detail": "the request is not valid",
            "errors": [{"field": "name", "message": "1–100 characters"}]});
        assert_eq!(
            problem_text(&problem),
            "the request is not valid (name: 1–100 characters)"
        );
        assert_eq!(problem_text(&Value::Null), "the request failed");
    }
}
