use std::collections::HashMap;
use std::time::{Duration, Instant};

use huoke::{Application, all_services};
use huoke_shared::ServiceDef;
use huoke_shared::config::Settings;
use serde_json::{Value, json};
use sqlx::Connection;

pub const PASSWORD: &str = "test-password-1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file, SQL-backed bus, in-memory cache: what `huoke dev` runs on.
    Embedded,
    /// PostgreSQL, RabbitMQ and Redis from the environment.
    Services,
}

/// Runs a scenario once per backend, as two tests.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                $crate::helpers::bounded(super::$name($crate::helpers::Backend::Embedded)).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn services() {
                if $crate::helpers::services_available() {
                    $crate::helpers::bounded(super::$name($crate::helpers::Backend::Services)).await
                }
            }
        }
    )*};
}

/// The longest any test may run. A test that hangs fails with its name instead of
/// holding the whole suite (and CI) until an outer timeout kills it without one.
pub const TEST_DEADLINE: Duration = Duration::from_secs(360);

pub async fn bounded(test: impl std::future::Future<Output = ()>) {
    if tokio::time::timeout(TEST_DEADLINE, test).await.is_err() {
        panic!("still running after {} s: a hang", TEST_DEADLINE.as_secs());
    }
}

/// True when the external services are configured; panics when they are required but missing.
pub fn services_available() -> bool {
    let missing: Vec<_> = ["DATABASE_URL", "REDIS_URL", "AMQP_URL"]
        .into_iter()
        .filter(|v| std::env::var(v).map(|s| s.is_empty()).unwrap_or(true))
        .collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var("HUOKE_REQUIRE_BACKENDS").is_ok_and(|v| v == "1") {
        panic!("HUOKE_REQUIRE_BACKENDS=1 but {} not set", missing.join(", "));
    }
    eprintln!("skipping: {} not set", missing.join(", "));
    false
}

/// The storage an app runs on; kept so a test can restart the app on the same data.
pub struct Environment {
    pub vars: HashMap<String, String>,
    /// Holds the SQLite file and JWT secret; deleted when the test ends.
    _dir: tempfile::TempDir,
}

impl Environment {
    pub async fn new(backend: Backend) -> Environment {
        let dir = tempfile::tempdir().expect("temp dir");
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        let mut vars = HashMap::from([
            (
                "HUOKE_JWT_SECRET".to_string(),
                format!("test-secret-{id}-0123456789abcdefghij"),
            ),
            ("HUOKE_LISTEN".into(), "127.0.0.1:0".into()),
            ("HUOKE_DATA_DIR".into(), dir.path().display().to_string()),
            ("HUOKE_HTTP_WORKERS".into(), "2".into()),
            ("HUOKE_RECYCLE_POLL_MS".into(), "200".into()),
            // The tests play the ingress: they say who the client is.
            ("HUOKE_TRUSTED_PROXIES".into(), "127.0.0.1".into()),
            // The fake WeCom servers (wiremock) listen on loopback, over plain HTTP.
            ("HUOKE_WECOM_ALLOWED_HOSTS".into(), "127.0.0.1".into()),
        ]);
        if backend == Backend::Services {
            let admin_url = std::env::var("DATABASE_URL").unwrap();
            let db = format!("huoke_t_{id}");
            let mut conn = sqlx::PgConnection::connect(&admin_url)
                .await
                .expect("connect to PostgreSQL");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
                .execute(&mut conn)
                .await
                .expect("create test database");
            vars.insert("DATABASE_URL".into(), with_database(&admin_url, &db));
            vars.insert("REDIS_URL".into(), std::env::var("REDIS_URL").unwrap());
            vars.insert("AMQP_URL".into(), std::env::var("AMQP_URL").unwrap());
            vars.insert("HUOKE_NAMESPACE".into(), format!("t_{id}"));
            // Test queues disappear from the shared broker once unused, and are
            // classic ones: hundreds of quorum queues created and expiring per run
            // wore the broker down until declares stalled.
            vars.insert("HUOKE_BUS_QUEUE_EXPIRES_MS".into(), "120000".into());
            vars.insert("HUOKE_BUS_QUEUE_TYPE".into(), "classic".into());
        }
        Environment { vars, _dir: dir }
    }

    pub fn settings(&self) -> Settings {
        Settings::from_map(&self.vars).expect("test settings")
    }
}

fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let root = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{db}?{q}"),
        None => format!("{root}/{db}"),
    }
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub app: Application,
}

impl TestApp {
    pub async fn start(env: &Environment, services: Vec<ServiceDef>) -> TestApp {
        let app = Application::build(env.settings(), services)
            .await
            .expect("application starts");
        huoke::dev::seed_demo(&app.infra().store, PASSWORD, true)
            .await
            .expect("demo tenant");
        TestApp {
            address: format!("http://127.0.0.1:{}", app.port()),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            app,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn stop(self) {
        self.app.stop().await;
    }

    pub async fn login(&self, tenant: &str, email: &str, password: &str) -> String {
        let resp = self
            .client
            .post(self.url("/v1/auth/token"))
            .json(&json!({"tenant": tenant, "email": email, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            200,
            "login {email}: {}",
            resp.text().await.unwrap_or_default()
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["token_type"], "Bearer");
        body["access_token"].as_str().unwrap().to_string()
    }

    pub async fn admin(&self) -> String {
        self.login("demo", "admin@demo.local", PASSWORD).await
    }

    pub async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        let resp = self.client.get(self.url(path)).bearer_auth(token).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Any method with a JSON body; answers the status and the JSON (or null).
    pub async fn send(&self, method: reqwest::Method, token: &str, path: &str, body: &Value) -> (u16, Value) {
        let resp = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// The tenant's staff ids by e-mail, as seen by `admin`.
    pub async fn staff_ids(&self, admin: &str) -> HashMap<String, String> {
        let (status, staff) = self.get(admin, "/v1/staff").await;
        assert_eq!(status, 200, "{staff}");
        let items = staff["items"].as_array().unwrap();
        items
            .iter()
            .map(|s| {
                (
                    s["email"].as_str().unwrap().to_string(),
                    s["id"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    pub async fn post(&self, token: &str, path: &str, body: &Value) -> (u16, Value) {
        let resp = self
            .client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Posts a lead and returns its capture id.
    pub async fn post_lead(&self, token: &str, body: Value) -> String {
        let (status, answer) = self.post(token, "/v1/leads", &body).await;
        assert_eq!(status, 202, "{answer}");
        answer["capture_id"].as_str().unwrap().to_string()
    }

    /// Waits until the capture is qualified and its lead assigned; returns the lead.
    pub async fn wait_for_assigned_lead(&self, token: &str, capture_id: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let (_, capture) = self.get(token, &format!("/v1/captures/{capture_id}")).await;
            if let Some(lead_id) = capture["lead_id"].as_str() {
                let (status, lead) = self.get(token, &format!("/v1/leads/{lead_id}")).await;
                assert_eq!(status, 200);
                // The lead and its assignment are read by separate statements: wait for both.
                if lead["assignment"].is_object() && lead["owner_id"].is_string() {
                    return lead;
                }
            }
            assert!(
                Instant::now() < deadline,
                "capture {capture_id} not assigned within {within:?}: {capture}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A client that shows redirects instead of following them.
pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

pub async fn spawn_app(backend: Backend) -> (Environment, TestApp) {
    let env = Environment::new(backend).await;
    let app = TestApp::start(&env, all_services()).await;
    (env, app)
}

/// Polls `check` until it returns Some, or fails after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Fixed-window rate limits count per wall-clock minute: a scenario that must stay in
/// one window waits for the next one when fewer than `needs` are left of this one.
pub async fn start_early_in_a_minute(needs: Duration) {
    let into = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
        % 60_000;
    let left = Duration::from_millis((60_000 - into) as u64);
    if left < needs {
        tokio::time::sleep(left + Duration::from_millis(100)).await;
    }
}

/// A fake WeCom API that hands out the access token `T`; tests mount the calls they
/// expect on it.
pub async fn fake_wecom() -> wiremock::MockServer {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let wecom = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/cgi-bin/gettoken"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"errcode": 0, "access_token": "T", "expires_in": 7200})),
        )
        .mount(&wecom)
        .await;
    wecom
}
