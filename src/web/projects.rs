//! Projects: the list with event counts, creation (admins), and each project's DSN keys with
//! copy-ready SDK set-up snippets.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::alerts::{self, AlertsSection};
use super::auth::{CsrfForm, NoFields, Operator};
use super::bundles::{self, BundleItem};
use super::view::{exact_time, html, relative_time, short_count, Layout};
use super::WebError;
use crate::domain::keys::{dsn, new_public_key};
use crate::domain::project_name::{parse_project_name, MAX_PROJECT_NAME_CHARS};
use crate::state::AppState;
use crate::store::projects::{self, CreateProjectError};

pub struct ProjectItem {
    pub id: i64,
    pub name: String,
    pub issues: String,
    pub unresolved: String,
    pub events: String,
    pub created: String,
}

#[derive(Template)]
#[template(path = "projects/list.html")]
struct ListPage {
    layout: Layout,
    projects: Vec<ProjectItem>,
    error: Option<String>,
}

pub async fn list(
    operator: Operator,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    render_list(&operator, &state, None).await
}

async fn render_list(
    operator: &Operator,
    state: &AppState,
    error: Option<String>,
) -> Result<HttpResponse, WebError> {
    let now = chrono::Utc::now();
    let projects = projects::list_with_counts(&state.pool)
        .await?
        .into_iter()
        .map(|p| ProjectItem {
            id: p.id,
            name: p.name,
            issues: short_count(p.issue_count),
            unresolved: short_count(p.unresolved_count),
            events: short_count(p.event_count),
            created: relative_time(p.created_at, now),
        })
        .collect();
    html(
        ListPage {
            layout: Layout::new(operator, "projects"),
            projects,
            error,
        }
        .render(),
    )
}

#[derive(Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    name: String,
}

pub async fn create(
    CsrfForm { operator, form }: CsrfForm<CreateForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    operator.require_admin()?;
    let name = parse_project_name(&form.name).map_err(|_| {
        WebError::BadRequest(format!(
            "A project name has 1 to {MAX_PROJECT_NAME_CHARS} characters."
        ))
    })?;
    match projects::create(&state.pool, name, &new_public_key()).await {
        Ok(id) => Ok(redirect(&format!("/projects/{id}"))),
        Err(CreateProjectError::NameTaken(_)) => Err(WebError::BadRequest(format!(
            "A project named “{name}” already exists."
        ))),
        Err(CreateProjectError::Database(e)) => Err(e.into()),
    }
}

pub struct KeyItem {
    pub id: i64,
    pub label: String,
    pub dsn: String,
    pub created: String,
    pub revoked: Option<String>,
}

pub struct Snippet {
    pub language: &'static str,
    pub code: String,
}

#[derive(Template)]
#[template(path = "projects/show.html")]
struct ShowPage {
    layout: Layout,
    id: i64,
    name: String,
    dsn: String,
    keys: Vec<KeyItem>,
    snippets: Vec<Snippet>,
    alerts: AlertsSection,
    bundles: Vec<BundleItem>,
    /// For the upload command shown when there are no bundles.
    org: String,
}

pub async fn show(
    operator: Operator,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let project_id: i64 = path.parse().map_err(|_| WebError::NotFound)?;
    render(&operator, project_id, &state, None).await
}

/// The project page, with the outcome of an action (a test notification) when there is one.
pub async fn render(
    operator: &Operator,
    project_id: i64,
    state: &AppState,
    notice: Option<String>,
) -> Result<HttpResponse, WebError> {
    let project = projects::find(&state.pool, project_id)
        .await?
        .ok_or(WebError::NotFound)?;
    let base = &state.public.base_url;
    let keys: Vec<KeyItem> = projects::keys(&state.pool, project_id)
        .await?
        .into_iter()
        .map(|k| KeyItem {
            id: k.id,
            dsn: dsn(base, &k.public_key, project_id).unwrap_or_default(),
            label: k.label,
            created: exact_time(k.created_at),
            revoked: k.revoked_at.map(exact_time),
        })
        .collect();
    let active_dsn = keys
        .iter()
        .find(|k| k.revoked.is_none())
        .map(|k| k.dsn.clone())
        .unwrap_or_default();
    let page = ShowPage {
        layout: Layout::new(operator, "projects"),
        id: project.id,
        name: project.name,
        snippets: snippets(&active_dsn, base, project_id),
        dsn: active_dsn,
        keys,
        alerts: alerts::section(state, project_id, notice).await?,
        bundles: bundles::items(state, project_id).await?,
        org: state.dashboard.org.clone(),
    };
    html(page.render())
}

/// Set-up code for each SDK, ready to copy.
fn snippets(dsn: &str, base_url: &str, project_id: i64) -> Vec<Snippet> {
    let key = dsn
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('@').next())
        .unwrap_or("");
    let base = base_url.trim_end_matches('/');
    vec![
        Snippet {
            language: "Python",
            code: format!("# pip install sentry-sdk\nimport sentry_sdk\n\nsentry_sdk.init(\n    dsn=\"{dsn}\",\n    environment=\"production\",\n    release=\"my-app@1.0.0\",\n)"),
        },
        Snippet {
            language: "JavaScript (browser)",
            code: format!("// npm install @sentry/browser\nimport * as Sentry from \"@sentry/browser\";\n\nSentry.init({{\n  dsn: \"{dsn}\",\n  environment: \"production\",\n}});"),
        },
        Snippet {
            language: "JavaScript (Node)",
            code: format!("// npm install @sentry/node\nconst Sentry = require(\"@sentry/node\");\n\nSentry.init({{\n  dsn: \"{dsn}\",\n  environment: \"production\",\n}});"),
        },
        Snippet {
            language: "Rust",
            code: format!("// Cargo.toml: sentry = \"0.46\"\nlet _guard = sentry::init((\n    \"{dsn}\",\n    sentry::ClientOptions {{\n        release: sentry::release_name!(),\n        ..Default::default()\n    }},\n));"),
        },
        Snippet {
            language: "Java",
            code: format!("// io.sentry:sentry\nimport io.sentry.Sentry;\n\nSentry.init(options -> {{\n    options.setDsn(\"{dsn}\");\n    options.setEnvironment(\"production\");\n}});"),
        },
        Snippet {
            language: "curl",
            code: format!(
                "curl -X POST '{base}/api/{project_id}/store/?sentry_key={key}&sentry_version=7' \\\n  -H 'Content-Type: application/json' \\\n  -d '{{\"message\": \"Hello from curl\", \"level\": \"error\"}}'"
            ),
        },
    ]
}

#[derive(Deserialize)]
pub struct KeyForm {
    #[serde(default)]
    label: String,
}

pub async fn add_key(
    path: web::Path<String>,
    CsrfForm { operator, form }: CsrfForm<KeyForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    operator.require_admin()?;
    let project_id: i64 = path.parse().map_err(|_| WebError::NotFound)?;
    projects::find(&state.pool, project_id)
        .await?
        .ok_or(WebError::NotFound)?;
    let label = match form.label.trim() {
        "" => "Default",
        label => label,
    };
    let label: String = label.chars().take(100).collect();
    projects::add_key(&state.pool, project_id, &new_public_key(), &label).await?;
    Ok(redirect(&format!("/projects/{project_id}")))
}

pub async fn revoke_key(
    path: web::Path<(String, String)>,
    CsrfForm { operator, .. }: CsrfForm<NoFields>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let (project_id, key_id) = key_path(&operator, &path)?;
    if !projects::revoke_key(&state.pool, project_id, key_id).await? {
        return Err(WebError::NotFound);
    }
    state.keys.forget_all();
    Ok(redirect(&format!("/projects/{project_id}")))
}

pub async fn rotate_key(
    path: web::Path<(String, String)>,
    CsrfForm { operator, .. }: CsrfForm<NoFields>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let (project_id, key_id) = key_path(&operator, &path)?;
    if !projects::rotate_key(&state.pool, project_id, key_id, &new_public_key()).await? {
        return Err(WebError::NotFound);
    }
    state.keys.forget_all();
    Ok(redirect(&format!("/projects/{project_id}")))
}

fn key_path(operator: &Operator, path: &(String, String)) -> Result<(i64, i64), WebError> {
    operator.require_admin()?;
    let project_id = path.0.parse().map_err(|_| WebError::NotFound)?;
    let key_id = path.1.parse().map_err(|_| WebError::NotFound)?;
    Ok((project_id, key_id))
}

fn redirect(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location.to_owned()))
        .finish()
}
