use std::time::Duration;

use huoke::{all_services, service_named};
use serde_json::json;

use crate::helpers::{Backend, Environment, TestApp};
use crate::on_both_backends;

on_both_backends!(accepted_captures_finish_their_way_after_a_restart);

/// Only intake runs at first: captures are accepted (202) but nothing consumes
/// them. After a full restart on the same storage every one reaches an inbox.
async fn accepted_captures_finish_their_way_after_a_restart(backend: Backend) {
    let env = Environment::new(backend).await;
    let intake_only = vec![service_named("console").unwrap(), service_named("intake").unwrap()];
    let app = TestApp::start(&env, intake_only).await;
    let admin = app.admin().await;
    let mut captures = Vec::new();
    for i in 0..5 {
        captures.push(
            app.post_lead(
                &admin,
                json!({"email": format!("r{i}@example.com"), "channel": "web_form"}),
            )
            .await,
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, pending) = app.get(&admin, &format!("/v1/captures/{}", captures[0])).await;
    assert_eq!(pending["status"], "pending");
    app.stop().await;

    let app = TestApp::start(&env, all_services()).await;
    let admin = app.admin().await;
    for c in &captures {
        let lead = app.wait_for_assigned_lead(&admin, c, Duration::from_secs(10)).await;
        assert_eq!(lead["assignment"]["state"], "offered");
    }
    app.stop().await;
}
