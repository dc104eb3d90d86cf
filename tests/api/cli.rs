//! The real binary: `huoke dev`, operator commands beside it, and a hard kill.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::eventually;

const PASSWORD: &str = "cli-password-1";

struct Dev {
    child: Child,
    base: String,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary with none of the backend settings of the test environment.
pub fn huoke() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_huoke"));
    for var in [
        "DATABASE_URL",
        "REDIS_URL",
        "AMQP_URL",
        "HUOKE_JWT_SECRET",
        "HUOKE_JWT_PUBLIC_KEY",
        "HUOKE_NAMESPACE",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("HUOKE_LOG", "warn");
    cmd
}

fn start_dev(data: &Path) -> Dev {
    let mut child = huoke()
        .args(["dev", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .env("HUOKE_DEV_PASSWORD", PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("huoke dev starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("a first line").unwrap();
    let base = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("the URL is printed")
        .to_string();
    std::thread::spawn(move || for _ in lines {});
    Dev { child, base }
}

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = client.request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

async fn login(client: &reqwest::Client, base: &str, tenant: &str, email: &str, password: &str) -> String {
    let (status, body) = call(
        client,
        reqwest::Method::POST,
        format!("{base}/v1/auth/token"),
        None,
        Some(json!({"tenant": tenant, "email": email, "password": password})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huoke_dev_runs_the_flow_and_operator_commands_work_beside_it() {
    crate::helpers::bounded(huoke_dev_runs_the_flow_and_operator_commands_work_beside_it_scenario()).await;
}

async fn huoke_dev_runs_the_flow_and_operator_commands_work_beside_it_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let dev = start_dev(dir.path());
    let client = reqwest::Client::new();
    let base = dev.base.clone();
    let admin = login(&client, &base, "demo", "admin@demo.local", PASSWORD).await;

    let (status, accepted) = call(
        &client,
        reqwest::Method::POST,
        format!("{base}/v1/leads"),
        Some(&admin),
        Some(json!({"phone": "+86 138-0013-8000", "channel": "api"})),
    )
    .await;
    assert_eq!(status, 202);
    let capture = accepted["capture_id"].as_str().unwrap().to_string();
    let (lead_id, owner) = eventually(Duration::from_secs(5), "assignment", || async {
        let (_, c) = call(
            &client,
            reqwest::Method::GET,
            format!("{base}/v1/captures/{capture}"),
            Some(&admin),
            None,
        )
        .await;
        let lead_id = c["lead_id"].as_str()?.to_string();
        let (_, lead) = call(
            &client,
            reqwest::Method::GET,
            format!("{base}/v1/leads/{lead_id}"),
            Some(&admin),
            None,
        )
        .await;
        Some((lead_id, lead["owner_id"].as_str()?.to_string()))
    })
    .await;
    let (_, staff) = call(
        &client,
        reqwest::Method::GET,
        format!("{base}/v1/staff/{owner}"),
        Some(&admin),
        None,
    )
    .await;
    let sdr = login(&client, &base, "demo", staff["email"].as_str().unwrap(), PASSWORD).await;
    let (_, inbox) = eventually(Duration::from_secs(5), "inbox", || async {
        let r = call(
            &client,
            reqwest::Method::GET,
            format!("{base}/v1/inbox"),
            Some(&sdr),
            None,
        )
        .await;
        (!r.1["items"].as_array()?.is_empty()).then_some(r)
    })
    .await;
    assert_eq!(inbox["items"][0]["lead_id"], lead_id.as_str());
    let assignment = inbox["items"][0]["assignment_id"].as_str().unwrap();
    let (status, _) = call(
        &client,
        reqwest::Method::POST,
        format!("{base}/v1/assignments/{assignment}/accept"),
        Some(&sdr),
        None,
    )
    .await;
    assert_eq!(status, 200);

    // Onboarding a tenant against the same embedded store while dev runs.
    let out = huoke()
        .args([
            "tenant",
            "create",
            "--slug",
            "acme",
            "--name",
            "Acme Ltd",
            "--admin-email",
            "ops@acme.example",
            "--admin-password",
            "acme-password",
            "--data",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(created["slug"], "acme");
    let acme = login(&client, &base, "acme", "ops@acme.example", "acme-password").await;
    let (status, me) = call(
        &client,
        reqwest::Method::GET,
        format!("{base}/v1/me"),
        Some(&acme),
        None,
    )
    .await;
    assert_eq!((status, me["tenant"]["slug"].as_str()), (200, Some("acme")));

    // A duplicate slug is refused with a message, not a crash.
    let dup = huoke()
        .args([
            "tenant",
            "create",
            "--slug",
            "acme",
            "--name",
            "X",
            "--admin-email",
            "a@b.cn",
            "--admin-password",
            "whatever-1",
            "--data",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already exists"));

    // A token minted by the operator command is accepted by the running server.
    let out = huoke()
        .args(["token", "--tenant", "demo", "--email", "admin@demo.local", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let (status, me) = call(
        &client,
        reqwest::Method::GET,
        format!("{base}/v1/me"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!((status, me["email"].as_str()), (200, Some("admin@demo.local")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_huoke_dev_loses_no_accepted_capture() {
    crate::helpers::bounded(killing_huoke_dev_loses_no_accepted_capture_scenario()).await;
}

async fn killing_huoke_dev_loses_no_accepted_capture_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let mut captures = Vec::new();
    {
        let mut dev = start_dev(dir.path());
        let admin = login(&client, &dev.base, "demo", "admin@demo.local", PASSWORD).await;
        for i in 0..20 {
            let (status, body) = call(
                &client,
                reqwest::Method::POST,
                format!("{}/v1/leads", dev.base),
                Some(&admin),
                Some(json!({"email": format!("k{i}@example.com"), "channel": "api"})),
            )
            .await;
            assert_eq!(status, 202);
            captures.push(body["capture_id"].as_str().unwrap().to_string());
        }
        dev.child.kill().unwrap(); // SIGKILL: no graceful shutdown
        dev.child.wait().unwrap();
    }
    let dev = start_dev(dir.path());
    let admin = login(&client, &dev.base, "demo", "admin@demo.local", PASSWORD).await;
    for c in &captures {
        let base = dev.base.clone();
        eventually(
            Duration::from_secs(45),
            "every capture assigned after the restart",
            || async {
                let (_, cap) = call(
                    &client,
                    reqwest::Method::GET,
                    format!("{base}/v1/captures/{c}"),
                    Some(&admin),
                    None,
                )
                .await;
                let lead_id = cap["lead_id"].as_str()?.to_string();
                let (_, lead) = call(
                    &client,
                    reqwest::Method::GET,
                    format!("{base}/v1/leads/{lead_id}"),
                    Some(&admin),
                    None,
                )
                .await;
                lead["assignment"].is_object().then_some(())
            },
        )
        .await;
    }
}
