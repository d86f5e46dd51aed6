//! The operators' dashboard: server-rendered pages (askama templates in `templates/`, styles in
//! `static/`), every one behind a login.

mod alert_form;
mod alerts;
pub mod auth;
mod bundles;
mod endpoints;
pub mod errors;
pub mod event_view;
pub mod feedback;
pub mod filter_values;
pub mod issues;
pub mod login;
pub mod projects;
pub mod view;

use actix_web::http::header;
use actix_web::{web, HttpResponse};

pub use errors::WebError;

/// Registers the dashboard's routes and lists them in [`PAGE_ROUTES`], so tests can check
/// that every one of them refuses anonymous visitors: a route added here cannot be forgotten.
macro_rules! page_routes {
    ($( $method:ident $path:literal => $handler:path ),* $(,)?) => {
        /// `(method, path)` of every route that requires a logged-in operator.
        pub const PAGE_ROUTES: &[(&str, &str)] = &[ $( (stringify!($method), $path) ),* ];

        fn configure_pages(cfg: &mut web::ServiceConfig) {
            $( cfg.route($path, web::$method().to($handler)); )*
        }
    };
}

page_routes! {
    get "/" => issues::list,
    get "/issues/{issue_id}" => issues::show,
    post "/issues/{issue_id}/status" => issues::set_status,
    get "/issues/{issue_id}/events/{event_id}" => issues::show_event,
    get "/issues/{issue_id}/events/{event_id}/json" => issues::download_event,
    get "/events/{event_id}" => issues::find_event,
    get "/endpoints" => endpoints::list,
    get "/projects" => projects::list,
    post "/projects" => projects::create,
    get "/projects/{project_id}" => projects::show,
    get "/projects/{project_id}/feedback" => feedback::list,
    post "/projects/{project_id}/keys" => projects::add_key,
    post "/projects/{project_id}/keys/{key_id}/revoke" => projects::revoke_key,
    post "/projects/{project_id}/keys/{key_id}/rotate" => projects::rotate_key,
    post "/projects/{project_id}/alerts" => alerts::add,
    post "/projects/{project_id}/alerts/{channel_id}/edit" => alerts::edit,
    post "/projects/{project_id}/alerts/{channel_id}/remove" => alerts::remove,
    post "/projects/{project_id}/alerts/{channel_id}/test" => alerts::send_test,
    post "/projects/{project_id}/bundles/{bundle_id}/remove" => bundles::remove,
    post "/logout" => login::logout,
}

/// Routes anyone may reach.
pub const PUBLIC_ROUTES: &[(&str, &str)] = &[
    ("get", "/login"),
    ("post", "/login"),
    ("get", "/static/{file}"),
];

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/login", web::get().to(login::form))
        .route("/login", web::post().to(login::submit))
        .route("/static/{file}", web::get().to(static_file));
    configure_pages(cfg);
}

/// Styles and scripts are compiled into the binary: one file to deploy.
async fn static_file(file: web::Path<String>) -> Result<HttpResponse, WebError> {
    let (body, content_type): (&'static str, &str) = match file.as_str() {
        "style.css" => (
            include_str!("../../static/style.css"),
            "text/css; charset=utf-8",
        ),
        "app.js" => (
            include_str!("../../static/app.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => return Err(WebError::NotFound),
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(body))
}
