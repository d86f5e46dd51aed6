//! Source-map uploads through the real sentry-cli (3.x, installed into tests/e2e): `sourcemaps
//! inject` then `sourcemaps upload` against Faultline with a token, and the upload protocol's
//! refusals.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use sha1::{Digest, Sha1};

use crate::helpers::{envelope, spawn_app, spawn_app_with, TestApp};

/// sentry-cli 3.x (`@sentry/cli`) or 2.x (`sentry-cli-2`), as tests/e2e installs them.
pub(crate) fn sentry_cli(package: &str) -> PathBuf {
    let cli = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/e2e/node_modules")
        .join(package)
        .join("bin/sentry-cli");
    assert!(
        cli.exists(),
        "{} is missing: run ./scripts/test, which installs the e2e clients",
        cli.display()
    );
    cli
}

pub(crate) async fn run(cli: &Path, app: &TestApp, token: &str, args: &[&str]) -> (bool, String) {
    let mut command = Command::new(cli);
    command
        .args(args)
        .env("SENTRY_URL", &app.address)
        .env("SENTRY_AUTH_TOKEN", token)
        .env("SENTRY_LOG_LEVEL", "warn");
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("sentry-cli runs");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// A minified file and its map, as a build step leaves them.
fn build_output() -> tempdir::Dir {
    let dir = tempdir::Dir::new();
    std::fs::write(
        dir.path().join("app.min.js"),
        "function a(b){throw new Error(\"Order total is NaN: \"+b)}a(1);\n//# sourceMappingURL=app.min.js.map\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("app.min.js.map"),
        json!({
            "version": 3, "file": "app.min.js", "sources": ["../src/checkout.ts"],
            "sourcesContent": ["export function applyCoupon(total: number) {\n  throw new Error(`Order total is NaN: ${total}`);\n}\n"],
            // col 0 → line 1; col 9 (`a`) → `applyCoupon`; col 14 (`throw`) → line 2 col 3.
            "names": ["applyCoupon"], "mappings": "AAAA,SAAgBA,KACd"
        })
        .to_string(),
    )
    .unwrap();
    dir
}

mod tempdir {
    /// A directory removed when dropped.
    pub struct Dir(std::path::PathBuf);

    impl Dir {
        pub fn new() -> Self {
            let path =
                std::env::temp_dir().join(format!("faultline-maps-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&path).unwrap();
            Dir(path)
        }

        pub fn path(&self) -> &std::path::Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentry_cli_3_injects_and_uploads_a_bundle_that_is_indexed_by_debug_id() {
    upload_and_show(&sentry_cli("@sentry/cli")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentry_cli_2_uploads_the_same_way() {
    upload_and_show(&sentry_cli("sentry-cli-2")).await;
}

/// An event from the minified file, at the `throw`, with the debug id `inject` wrote.
fn minified_event(minified: &str, debug_id: &str, value: &str) -> Value {
    let (line, column) = throw_position(minified);
    json!({
        "platform": "javascript",
        "exception": {"values": [{"type": "Error", "value": value,
            "stacktrace": {"frames": [{"abs_path": "https://shop.example/app.min.js",
                "filename": "app.min.js", "function": "a", "lineno": line, "colno": column,
                "in_app": true}]}}]},
        "debug_meta": {"images": [{"type": "sourcemap",
            "code_file": "https://shop.example/app.min.js", "debug_id": debug_id}]}
    })
}

/// A browser event from the minified file at (line, column), without debug ids: found by URL.
fn event_by_url(release: &str, kind: &str, url: &str, (line, column): (usize, usize)) -> Value {
    json!({
        "platform": "javascript", "release": release,
        "exception": {"values": [{"type": kind, "value": format!("{kind} in {release}"),
            "stacktrace": {"frames": [{"abs_path": url, "filename": "app.min.js", "function": "a",
                "lineno": line, "colno": column}]}}]}
    })
}

/// The debug id `sourcemaps inject` wrote into a minified file.
fn injected_debug_id(minified: &str) -> String {
    minified
        .lines()
        .find_map(|l| l.strip_prefix("//# debugId="))
        .expect("inject wrote a debug id")
        .trim()
        .to_owned()
}

/// `sentry-cli sourcemaps upload` of `path` to the test project, as a build step runs it.
pub(crate) fn upload_args<'a>(
    path: &'a str,
    release: Option<&'a str>,
    rewrite: bool,
) -> Vec<&'a str> {
    let mut args = vec![
        "sourcemaps",
        "upload",
        "--org",
        "faultline",
        "--project",
        "checkout-api",
    ];
    if let Some(release) = release {
        args.extend(["--release", release]);
    }
    if !rewrite {
        // Rewriting parses the map, and refuses a damaged one.
        args.push("--no-rewrite");
    }
    args.push(path);
    args
}

fn throw_position(minified: &str) -> (usize, usize) {
    minified
        .lines()
        .enumerate()
        .find_map(|(i, l)| l.find("throw new Error").map(|c| (i + 1, c + 1)))
        .unwrap()
}

async fn issue_of(app: &TestApp, event_id: &str) -> (i64, String, String) {
    sqlx::query_as(
        "SELECT i.id, i.title, i.culprit FROM event_ids e JOIN issues i ON i.id = e.issue_id
          WHERE e.event_id = $1::uuid",
    )
    .bind(event_id)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

/// Inject, send an event, upload, see both events in their original source (by debug id and
/// by URL), remove the bundle, upload again.
async fn upload_and_show(cli: &Path) {
    let app = spawn_app().await;
    let token = app.create_token("ci@example.com").await;
    let dir = build_output();
    let path = dir.path().to_str().unwrap().to_owned();

    let (ok, output) = run(cli, &app, &token, &["sourcemaps", "inject", &path]).await;
    assert!(ok, "{output}");
    let minified = std::fs::read_to_string(dir.path().join("app.min.js")).unwrap();
    let debug_id = injected_debug_id(&minified);
    // Deployed before its maps were uploaded: stored as sent.
    let early = app
        .store_ok(&minified_event(
            &minified,
            &debug_id,
            "Order total is NaN: 0",
        ))
        .await;
    let stored = app.stored_event(&early).await;
    let frame = &stored["exception"]["values"][0]["stacktrace"]["frames"][0];
    assert_eq!(frame["filename"], "app.min.js");
    assert!(frame.get("minified").is_none());

    let upload = upload_args(&path, Some("shop@2.1.0"), true);
    let (ok, output) = run(cli, &app, &token, &upload).await;
    assert!(ok, "{output}");

    let files: Vec<(String, String, Option<uuid::Uuid>, Option<String>)> = sqlx::query_as(
        "SELECT f.file_type, f.url, f.debug_id, b.release
           FROM artifact_files f JOIN artifact_bundles b ON b.id = f.bundle_id
           JOIN artifact_bundle_projects p ON p.bundle_id = b.id AND p.project_id = $1
          ORDER BY f.file_type",
    )
    .bind(app.project_id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let id = uuid::Uuid::try_parse(&debug_id).unwrap();
    assert_eq!(
        files,
        vec![
            (
                "minified_source".into(),
                "~/app.min.js".into(),
                Some(id),
                Some("shop@2.1.0".into())
            ),
            (
                "source_map".into(),
                "~/app.min.js.map".into(),
                Some(id),
                Some("shop@2.1.0".into())
            ),
        ],
        "{output}"
    );
    let chunks: i64 = sqlx::query_scalar("SELECT count(*) FROM upload_chunks")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(chunks, 0, "chunks go once the bundle is assembled");

    // An event after the upload is stored in its original source and grouped on it.
    let event_id = app
        .store_ok(&minified_event(
            &minified,
            &debug_id,
            "Order total is NaN: 1",
        ))
        .await;
    let stored = app.stored_event(&event_id).await;
    let frame = &stored["exception"]["values"][0]["stacktrace"]["frames"][0];
    assert_eq!(frame["filename"], "src/checkout.ts", "{stored}");
    assert_eq!(frame["function"], "applyCoupon");
    assert_eq!(frame["lineno"], 2);
    assert_eq!(frame["minified"]["filename"], "app.min.js");
    let (issue, _, culprit) = issue_of(&app, &event_id).await;
    assert!(culprit.contains("applyCoupon"), "{culprit}");
    let (early_issue, _, early_culprit) = issue_of(&app, &early).await;
    assert_ne!(
        issue, early_issue,
        "an event from before the upload keeps its issue, grouped on minified frames"
    );
    assert!(!early_culprit.contains("applyCoupon"), "{early_culprit}");

    // Both pages show the original file, line and source: the early event's is mapped now.
    let browser = app.admin_browser().await;
    let (line, column) = throw_position(&minified);
    for id in [&event_id, &early] {
        let page = browser.get(&format!("/events/{id}")).await;
        let page = browser.get(&page.location).await;
        assert_eq!(page.status, 200);
        assert!(page.body.contains("src/checkout.ts"), "{}", page.body);
        assert!(
            page.body.contains("Order total is NaN: ${total}"),
            "the original line"
        );
        assert!(
            page.body.contains("export function applyCoupon"),
            "context lines from sourcesContent"
        );
        assert!(
            page.body.contains(">Minified</summary>")
                && page
                    .body
                    .contains(&format!("app.min.js:{line}:{column} in a")),
            "the page can show the frame as the SDK sent it"
        );
    }

    // Without debug ids, the file is found by its URL (any host) in the event's release.
    let by_url = app
        .store_ok(&event_by_url(
            "shop@2.1.0",
            "TypeError",
            "https://cdn.shop.example/app.min.js?v=7",
            (line, column),
        ))
        .await;
    let stored = app.stored_event(&by_url).await;
    assert_eq!(
        stored["exception"]["values"][0]["stacktrace"]["frames"][0]["filename"], "src/checkout.ts",
        "found by URL and release"
    );
    let other_release = app
        .store_ok(&event_by_url(
            "shop@9.9.9",
            "RangeError",
            "https://cdn.shop.example/app.min.js",
            (line, column),
        ))
        .await;
    let located = browser.get(&format!("/events/{other_release}")).await;
    let other_page = browser.get(&located.location).await;
    assert!(
        !other_page.body.contains("src/checkout.ts"),
        "another release's map is not used"
    );

    // The API's events are mapped too, with what the SDK sent kept beside.
    for id in [&event_id, &early] {
        let (status, api_event) = app
            .api_get(
                &token,
                &format!(
                    "{}/api/0/projects/faultline/checkout-api/events/{id}/",
                    app.address
                ),
            )
            .await;
        assert_eq!(status, 200);
        let frame = &api_event["entries"][0]["data"]["values"][0]["stacktrace"]["frames"][0];
        assert_eq!(frame["filename"], "src/checkout.ts", "{api_event}");
        assert_eq!(frame["lineno"], 2);
        assert_eq!(frame["minified"]["filename"], "app.min.js");
    }

    // The project page lists the bundle; an admin removes it. The early event is shown as
    // sent again; the later one was stored in its original source and stays so.
    let project = browser.get(&format!("/projects/{}", app.project_id)).await;
    assert!(
        project.body.contains("shop@2.1.0") && project.body.contains(&debug_id),
        "{}",
        project.body
    );
    let bundle_id: i64 = sqlx::query_scalar("SELECT id FROM artifact_bundles")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let removed = browser
        .post(
            &format!("/projects/{}/bundles/{bundle_id}/remove", app.project_id),
            &[],
        )
        .await;
    assert_eq!(removed.status, 303);
    let again = browser
        .post(
            &format!("/projects/{}/bundles/{bundle_id}/remove", app.project_id),
            &[],
        )
        .await;
    assert_eq!(again.status, 404);
    let page_of = |id: &str| format!("/issues/{early_issue}/events/{id}");
    let unmapped = browser.get(&page_of(&early)).await;
    assert!(
        !unmapped.body.contains("src/checkout.ts"),
        "no map, no mapping"
    );
    let kept = browser
        .get(&format!("/issues/{issue}/events/{event_id}"))
        .await;
    assert!(kept.body.contains("src/checkout.ts"), "{}", kept.body);
    let files: i64 = sqlx::query_scalar("SELECT count(*) FROM artifact_files")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(files, 0, "a bundle no project has is gone");

    // The same upload again is one bundle.
    let (ok, output) = run(cli, &app, &token, &upload).await;
    assert!(ok, "{output}");
    let bundles: i64 = sqlx::query_scalar("SELECT count(*) FROM artifact_bundles")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(bundles, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_map_leaves_events_as_sent() {
    let app = spawn_app().await;
    // Damaged after the build: its positions are not valid VLQ.
    let event_id =
        upload_changed_map_and_send(&app, |map| map["mappings"] = json!("@@@@!!!!")).await;
    assert_shown_as_sent(&app, &event_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_map_too_large_for_the_cache_leaves_events_as_sent() {
    let app = spawn_app_with(|s| s.limits.source_map_cache_mb = 1).await;
    let event_id = upload_changed_map_and_send(&app, |map| {
        map["sourcesContent"][0] = json!(format!("// {}\n", "x".repeat(700_000)));
    })
    .await;
    assert_shown_as_sent(&app, &event_id).await;
}

/// Injects, changes the map with `change`, uploads (without rewriting, which would parse it),
/// and sends an event from the minified file; returns its id.
async fn upload_changed_map_and_send(app: &TestApp, change: impl FnOnce(&mut Value)) -> String {
    let token = app.create_token("ci@example.com").await;
    let cli = sentry_cli("@sentry/cli");
    let dir = build_output();
    let path = dir.path().to_str().unwrap().to_owned();
    let (ok, output) = run(&cli, app, &token, &["sourcemaps", "inject", &path]).await;
    assert!(ok, "{output}");
    let map_path = dir.path().join("app.min.js.map");
    let mut map: Value = serde_json::from_slice(&std::fs::read(&map_path).unwrap()).unwrap();
    change(&mut map);
    std::fs::write(&map_path, map.to_string()).unwrap();
    let upload = upload_args(&path, None, false);
    let (ok, output) = run(&cli, app, &token, &upload).await;
    assert!(ok, "{output}");
    let files: i64 = sqlx::query_scalar("SELECT count(*) FROM artifact_files")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(files, 2, "the changed map was uploaded: {output}");
    let minified = std::fs::read_to_string(dir.path().join("app.min.js")).unwrap();
    let debug_id = injected_debug_id(&minified);
    app.store_ok(&minified_event(
        &minified,
        &debug_id,
        "Order total is NaN: 1",
    ))
    .await
}

async fn assert_shown_as_sent(app: &TestApp, event_id: &str) {
    let stored = app.stored_event(event_id).await;
    let frame = &stored["exception"]["values"][0]["stacktrace"]["frames"][0];
    assert_eq!(frame["filename"], "app.min.js", "{stored}");
    assert!(frame.get("minified").is_none());
    let browser = app.admin_browser().await;
    let page = browser.get(&format!("/events/{event_id}")).await;
    let page = browser.get(&page.location).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("app.min.js"), "{}", page.body);
    assert!(!page.body.contains("src/checkout.ts"));
}

/// A browser event whose 20 frames each name a file with its own debug id (`seed` varies them).
fn event_with_debug_ids(seed: u32) -> Value {
    let files: Vec<(String, String)> = (0..20)
        .map(|i| {
            let id = uuid::Uuid::from_u128(u128::from(seed) << 64 | i);
            (
                format!("https://shop.example/chunk-{seed}-{i}.js"),
                id.to_string(),
            )
        })
        .collect();
    let frames: Vec<Value> = files
        .iter()
        .map(|(file, _)| json!({"abs_path": file, "filename": file, "function": "a", "lineno": 1, "colno": 9}))
        .collect();
    let images: Vec<Value> = files
        .iter()
        .map(|(file, id)| json!({"type": "sourcemap", "code_file": file, "debug_id": id}))
        .collect();
    json!({
        "event_id": crate::helpers::new_event_id(), "platform": "javascript",
        "exception": {"values": [{"type": "Error", "value": format!("chunk {seed}"),
            "stacktrace": {"frames": frames}}]},
        "debug_meta": {"images": images}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_postgresql_is_away_an_event_with_maps_to_find_is_spooled_at_once_and_kept_as_sent() {
    let crate::outage::ProxiedApp {
        app,
        bootstrap,
        proxy,
    } = crate::outage::proxied_app(|_| {}).await;
    // The project has uploads, so its events' files are looked up.
    sqlx::query(
        "WITH b AS (INSERT INTO artifact_bundles (checksum, file_count, size)
                    VALUES ('0000000000000000000000000000000000000000', 0, 0) RETURNING id)
         INSERT INTO artifact_bundle_projects (bundle_id, project_id) SELECT id, $1 FROM b",
    )
    .bind(app.project_id)
    .execute(&bootstrap.pool)
    .await
    .unwrap();
    let first = envelope(&event_with_debug_ids(1), true);
    assert_eq!(app.post_envelope(first).await.status(), 200);

    proxy.cut();
    let during = event_with_debug_ids(2);
    let patient = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(4))
        .build()
        .unwrap();
    let answer = patient
        .post(app.envelope_url())
        .header("X-Sentry-Auth", app.auth_header())
        .body(envelope(&during, true))
        .send()
        .await
        .expect("answered without waiting on 20 lookups");
    assert_eq!(answer.status(), 200, "spooled");

    proxy.restore().await;
    for _ in 0..300 {
        if bootstrap.event_count().await == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let stored = bootstrap
        .stored_event(during["event_id"].as_str().unwrap())
        .await;
    let frames = stored["exception"]["values"][0]["stacktrace"]["frames"]
        .as_array()
        .unwrap();
    assert_eq!(frames.len(), 20);
    assert!(
        frames.iter().all(|f| f.get("minified").is_none()),
        "{stored}"
    );
}

fn sha1_hex(data: &[u8]) -> String {
    hex::encode(Sha1::digest(data))
}

#[tokio::test]
async fn the_upload_protocol_reports_missing_chunks_and_refuses_bad_input() {
    let app = spawn_app().await;
    let token = app.create_token("ci@example.com").await;
    let base = format!("{}/api/0/organizations/faultline", app.address);

    let (status, options) = app.api_get(&token, &format!("{base}/chunk-upload/")).await;
    assert_eq!(status, 200);
    assert_eq!(options["hashAlgorithm"], "sha1");
    assert!(options["url"].as_str().unwrap().ends_with("/chunk-upload/"));
    assert!(options["chunkSize"].as_u64().unwrap().is_power_of_two());

    let assemble = |body: Value| {
        let client = app.client.clone();
        let url = format!("{base}/artifactbundle/assemble/");
        let token = token.clone();
        async move {
            let answer = client
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = answer.status().as_u16();
            (status, answer.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let not_a_bundle = b"PK not a bundle".to_vec();
    let chunk = sha1_hex(&not_a_bundle);
    let (status, answer) =
        assemble(json!({"checksum": chunk, "chunks": [chunk], "projects": ["checkout-api"]})).await;
    assert_eq!(status, 200);
    assert_eq!(answer["state"], "not_found");
    assert_eq!(answer["missingChunks"], json!([chunk]));

    // A chunk whose name is not its checksum is refused; the right one is taken.
    let post_chunk = |name: String, data: Vec<u8>| {
        let client = app.client.clone();
        let url = format!("{base}/chunk-upload/");
        let token = token.clone();
        async move {
            let part = reqwest::multipart::Part::bytes(data).file_name(name);
            let form = reqwest::multipart::Form::new().part("file", part);
            client
                .post(url)
                .bearer_auth(token)
                .multipart(form)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(post_chunk("0".repeat(40), not_a_bundle.clone()).await, 400);
    // A chunk over the chunk size is refused, sent as is or gzip'd (a small gzip bomb).
    let oversized = vec![b'x'; 8 * 1024 * 1024 + 1];
    assert_eq!(
        post_chunk(sha1_hex(&oversized), oversized.clone()).await,
        400
    );
    let bomb = crate::helpers::gzip(&oversized);
    let gzipped = {
        let client = app.client.clone();
        let part = reqwest::multipart::Part::bytes(bomb).file_name(sha1_hex(&oversized));
        client
            .post(format!("{base}/chunk-upload/"))
            .bearer_auth(&token)
            .multipart(reqwest::multipart::Form::new().part("file_gzip", part))
            .send()
            .await
            .unwrap()
    };
    assert_eq!(gzipped.status(), 400);
    assert!(gzipped
        .text()
        .await
        .unwrap()
        .contains("Chunk size too large"));
    assert_eq!(post_chunk(chunk.clone(), not_a_bundle.clone()).await, 200);

    let (_, answer) =
        assemble(json!({"checksum": chunk, "chunks": [chunk], "projects": ["checkout-api"]})).await;
    assert_eq!(answer["state"], "error", "{answer}");
    assert!(
        answer["detail"].as_str().unwrap().contains("SYSB"),
        "{answer}"
    );
    assert_eq!(answer["missingChunks"], json!([]));

    let (status, _) =
        assemble(json!({"checksum": chunk, "chunks": [chunk], "projects": ["no-such-project"]}))
            .await;
    assert_eq!(status, 404);
    let (status, _) = assemble(json!({"checksum": chunk, "chunks": [chunk], "projects": []})).await;
    assert_eq!(status, 400);
    let (status, _) =
        assemble(json!({"checksum": "xyz", "chunks": [], "projects": ["checkout-api"]})).await;
    assert_eq!(status, 400);
    let (status, _) = assemble(
        json!({"checksum": chunk, "chunks": [chunk], "projects": ["checkout-api"], "dist": "1"}),
    )
    .await;
    assert_eq!(status, 400, "dist without a version");
}

/// Uploads cannot take the server's memory: one chunk POST whose gzip'd parts inflate past
/// the largest bundle is refused, and so is an assembly whose chunk list names one chunk
/// thousands of times. (Its sizes are added up before any chunk is read; here the sum is only
/// 80 MB, so that a regression to concatenating first shows as a wrong answer, not as the
/// test machine running out of memory.)
#[tokio::test]
async fn uploads_that_inflate_or_assemble_past_the_bundle_limit_are_refused() {
    let app = spawn_app().await;
    let token = app.create_token("ci@example.com").await;
    let base = format!("{}/api/0/organizations/faultline", app.address);

    let zeros = vec![0u8; 8 * 1024 * 1024];
    let mut form = reqwest::multipart::Form::new();
    for _ in 0..9 {
        let part = reqwest::multipart::Part::bytes(crate::helpers::gzip(&zeros))
            .file_name(sha1_hex(&zeros));
        form = form.part("file_gzip", part);
    }
    let answer = app
        .client
        .post(format!("{base}/chunk-upload/"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    assert!(answer.text().await.unwrap().contains("Request too large"));

    let piece = vec![7u8; 16 * 1024];
    let chunk = sha1_hex(&piece);
    let part = reqwest::multipart::Part::bytes(piece).file_name(chunk.clone());
    let uploaded = app
        .client
        .post(format!("{base}/chunk-upload/"))
        .bearer_auth(&token)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 200);
    let mentions = vec![chunk.clone(); 5_000];
    let answer: Value = app
        .client
        .post(format!("{base}/artifactbundle/assemble/"))
        .bearer_auth(&token)
        .json(
            &json!({"checksum": "1".repeat(40), "chunks": mentions, "projects": ["checkout-api"]}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["state"], "error", "{answer}");
    assert!(
        answer["detail"].as_str().unwrap().contains("larger than"),
        "{answer}"
    );
}
