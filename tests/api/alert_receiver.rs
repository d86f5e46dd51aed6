//! A webhook receiver for the alert tests: a real HTTP server on a free port that verifies each
//! post's signature as a receiver would, keeps what it got, and answers as it is told.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use faultline::store::alerts::{create_channel, ChannelKind, NewChannel, Trigger};
use serde_json::Value;

use crate::helpers::TestApp;

pub const SECRET: &str = "whsec_test_secret";

#[derive(Clone, Default)]
pub struct Receiver {
    /// `(signature header, delivery header, body)` of every post.
    posts: Arc<Mutex<Vec<(String, String, Value)>>>,
    /// Statuses to answer, first to last; 200 once they run out.
    pub answers: Arc<Mutex<Vec<u16>>>,
    /// How long each answer takes.
    pub delay: Arc<Mutex<Duration>>,
    /// Posts must carry no signature (Slack, Discord and Teams channels have no secret).
    unsigned: bool,
}

impl Receiver {
    pub fn unsigned() -> Self {
        Receiver {
            unsigned: true,
            ..Receiver::default()
        }
    }

    /// Starts on a free port; returns its URL.
    pub fn start(&self) -> String {
        self.start_on(TcpListener::bind("127.0.0.1:0").unwrap())
    }

    /// Starts on a listener the test chose (a port it kept closed until now, say).
    pub fn start_on(&self, listener: TcpListener) -> String {
        let port = listener.local_addr().unwrap().port();
        let receiver = self.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(receiver.clone()))
                .route("/hook", web::post().to(take))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        format!("http://127.0.0.1:{port}/hook")
    }

    pub fn posts(&self) -> Vec<(String, String, Value)> {
        self.posts.lock().unwrap().clone()
    }

    /// Waits until `count` posts arrived (the sender polls every second).
    pub async fn wait_for(&self, count: usize) -> Vec<(String, String, Value)> {
        self.wait_for_within(count, Duration::from_secs(10)).await
    }

    pub async fn wait_for_within(
        &self,
        count: usize,
        limit: Duration,
    ) -> Vec<(String, String, Value)> {
        for _ in 0..limit.as_millis() / 100 {
            if self.posts().len() >= count {
                return self.posts();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("expected {count} posts, got {:?}", self.posts());
    }
}

async fn take(req: HttpRequest, body: web::Bytes, receiver: web::Data<Receiver>) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let signature = header("x-faultline-signature");
    if receiver.unsigned {
        assert!(signature.is_empty(), "unexpected signature {signature}");
    } else {
        verify(&signature, &body);
    }
    let value: Value = serde_json::from_slice(&body).unwrap();
    let delay = *receiver.delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    receiver
        .posts
        .lock()
        .unwrap()
        .push((signature, header("x-faultline-delivery"), value));
    let status = {
        let mut answers = receiver.answers.lock().unwrap();
        if answers.is_empty() {
            200
        } else {
            answers.remove(0)
        }
    };
    let mut answer = HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap());
    if status >= 400 {
        // What Slack and the like say: the sender keeps it with the failure.
        return answer.body(format!("channel_not_found ({status})"));
    }
    answer.finish()
}

pub async fn add_webhook(app: &TestApp, url: &str, environments: &[&str]) {
    create_channel(
        &app.pool,
        &NewChannel {
            project_id: app.project_id,
            kind: ChannelKind::Webhook,
            target: url.to_owned(),
            secret: Some(SECRET.into()),
            triggers: Trigger::ALL.to_vec(),
            environments: environments.iter().map(|e| e.to_string()).collect(),
            min_level: faultline::domain::level::Level::Debug,
            spike_events: None,
            spike_minutes: None,
            cooldown_minutes: 30,
        },
    )
    .await
    .unwrap();
}

/// Verifies as a receiver would: recompute the HMAC over "t.body".
fn verify(signature: &str, body: &[u8]) {
    let t: i64 = signature
        .split(',')
        .find_map(|p| p.strip_prefix("t="))
        .and_then(|t| t.parse().ok())
        .unwrap_or_default();
    assert_eq!(signature, faultline::alerts::sign(SECRET, t, body));
    assert!((chrono::Utc::now().timestamp() - t).abs() < 60);
}
