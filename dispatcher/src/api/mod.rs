//! The HTTP API: routes, the OpenAPI document generated from them, and the layers every
//! request passes (request id, tracing, metrics, JSON errors, timeout, body limit,
//! authentication).

pub mod admin;
pub mod auth;
pub mod case_actions;
pub mod cases;
pub mod console;
pub mod devices;
pub mod diagnosis;
pub mod dispatch;
pub mod error;
pub mod extract;
pub mod health;
pub mod observe;
pub mod provider;
pub mod state;
pub mod stream;
pub mod tracking;
pub mod webhooks;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request, StatusCode};
use axum::middleware;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use crate::api::state::AppState;

/// The OpenAPI document's frame; the paths come from the routes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Rescue dispatch API",
        description = "Roadside-rescue dispatch: cases, providers, fleet, offers, alerts. \
                       Errors are `{\"error\": {\"code\", \"message\"}}`.",
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "operations", description = "health, readiness, metrics"),
        (name = "admin", description = "providers and users (admin)"),
        (name = "auth", description = "console login"),
        (name = "cases", description = "rescue cases and their timeline"),
        (name = "provider", description = "contracted providers: vehicles, positions, offers, jobs"),
        (name = "dispatch", description = "agents: fleet map, assignment, offers, alerts"),
        (name = "devices", description = "GPS devices and phone apps (OsmAnd protocol)"),
        (name = "tracking", description = "trajectories, alert handling, the customer's tracking link"),
        (name = "diagnosis", description = "remote diagnosis: triage rules, the phone-expert queue, masked calls, the report"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "Admin token, provider API key (rk_…), session token (st_…) or customer token (ct_…)",
                    ))
                    .build(),
            ),
        );
    }
}

/// Every API route, with its OpenAPI description.
pub fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics))
        .routes(routes!(admin::create_provider))
        .routes(routes!(admin::rotate_webhook_secret))
        .routes(routes!(admin::create_user))
        .routes(routes!(auth::login))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::me))
        .routes(routes!(cases::create_case, cases::list_cases))
        .routes(routes!(cases::get_case))
        .routes(routes!(cases::cancel_case))
        .routes(routes!(cases::timeline))
        .routes(routes!(case_actions::add_note))
        .routes(routes!(case_actions::notify_customer))
        .routes(routes!(case_actions::call))
        .routes(routes!(case_actions::candidates))
        .routes(routes!(case_actions::providers))
        .routes(routes!(provider::put_vehicle, provider::get_vehicle))
        .routes(routes!(provider::list_vehicles))
        .routes(routes!(provider::post_positions))
        .routes(routes!(provider::list_offers))
        .routes(routes!(provider::accept_offer))
        .routes(routes!(provider::decline_offer))
        .routes(routes!(provider::job_status))
        .routes(routes!(dispatch::fleet))
        .routes(routes!(dispatch::assign))
        .routes(routes!(dispatch::redispatch))
        .routes(routes!(dispatch::case_offers))
        .routes(routes!(dispatch::alerts))
        .routes(routes!(webhooks::list_webhooks))
        .routes(routes!(webhooks::provider_webhooks))
        .routes(routes!(stream::stream))
        .routes(routes!(
            diagnosis::get_triage_rules,
            diagnosis::put_triage_rules
        ))
        .routes(routes!(diagnosis::queue))
        .routes(routes!(diagnosis::claim))
        .routes(routes!(diagnosis::solve))
        .routes(routes!(diagnosis::escalate))
        .routes(routes!(diagnosis::call))
        .routes(routes!(diagnosis::report_view))
        .routes(routes!(tracking::trajectory))
        .routes(routes!(tracking::acknowledge))
        .routes(routes!(tracking::resolve))
        .routes(routes!(tracking::track))
        .routes(routes!(tracking::page))
        .routes(routes!(devices::osmand_get, devices::osmand_post))
}

/// The OpenAPI document, as served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_routes().split_for_parts().1
}

/// Where the interactive API documentation lives.
const DOCS_PATH: &str = "/docs";
/// Where the OpenAPI document is served.
const OPENAPI_PATH: &str = "/openapi.json";
/// The paths of the OsmAnd port (`RESCUE_OSMAND_ADDR`); each takes `GET` and `POST`.
const OSMAND_PORT_PATHS: &[&str] = &["/", "/osmand"];
/// The methods of each OsmAnd-port path, as `osmand_router` registers them.
const OSMAND_PORT_METHODS: &[&str] = &["GET", "POST"];

/// Which listener serves a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Listener {
    /// The main HTTP port (`RESCUE_LISTEN`).
    Main,
    /// The OsmAnd port (`RESCUE_OSMAND_ADDR`), when switched on.
    Osmand,
}

/// One route the server serves: a method and a path template.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServedRoute {
    /// The listener.
    pub listener: Listener,
    /// Upper-case HTTP method.
    pub method: String,
    /// The path template, as registered (`/v1/cases/{case_id}`).
    pub path: String,
    /// Whether the OpenAPI document describes it.
    pub documented: bool,
}

/// Every route [`router`] and [`osmand_router`] serve: the documented ones from the same
/// [`api_routes`] the router is built from, and the undocumented ones (Swagger UI, the
/// OpenAPI document, the OsmAnd port) from the constants those routers register. The
/// authorization test requires a rule for each, so a route added there without a rule
/// fails it; register routes only through `api_routes` or these constants.
///
/// ```
/// let routes = dispatcher::api::served_routes();
/// assert!(routes.iter().any(|route| route.path == "/v1/cases" && route.method == "POST"));
/// assert!(routes.iter().any(|route| route.path == "/openapi.json" && !route.documented));
/// ```
pub fn served_routes() -> Vec<ServedRoute> {
    let mut served = Vec::new();
    for (path, item) in openapi().paths.paths {
        let methods = [
            ("GET", item.get.is_some()),
            ("PUT", item.put.is_some()),
            ("POST", item.post.is_some()),
            ("DELETE", item.delete.is_some()),
            ("OPTIONS", item.options.is_some()),
            ("HEAD", item.head.is_some()),
            ("PATCH", item.patch.is_some()),
            ("TRACE", item.trace.is_some()),
            ("QUERY", item.query.is_some()),
        ];
        for (method, present) in methods {
            if present {
                served.push(ServedRoute {
                    listener: Listener::Main,
                    method: method.to_owned(),
                    path: path.clone(),
                    documented: true,
                });
            }
        }
    }
    // What `SwaggerUi::new(DOCS_PATH).url(OPENAPI_PATH, …)` registers.
    for path in [
        OPENAPI_PATH.to_owned(),
        DOCS_PATH.to_owned(),
        format!("{DOCS_PATH}/"),
        format!("{DOCS_PATH}/{{*rest}}"),
    ] {
        served.push(ServedRoute {
            listener: Listener::Main,
            method: "GET".to_owned(),
            path,
            documented: false,
        });
    }
    // What `router` registers for the console.
    for path in [
        console::CONSOLE_PATH.to_owned(),
        format!("{}/", console::CONSOLE_PATH),
        format!("{}/{{*path}}", console::CONSOLE_PATH),
    ] {
        served.push(ServedRoute {
            listener: Listener::Main,
            method: "GET".to_owned(),
            path,
            documented: false,
        });
    }
    for path in OSMAND_PORT_PATHS {
        for method in OSMAND_PORT_METHODS {
            served.push(ServedRoute {
                listener: Listener::Osmand,
                method: (*method).to_owned(),
                path: (*path).to_owned(),
                documented: false,
            });
        }
    }
    served.sort();
    served
}

/// The whole application router.
pub fn router(state: AppState) -> Router {
    let (routes, openapi) = api_routes().split_for_parts();
    let routes = routes
        .layer(middleware::from_fn_with_state(
            state.clone(),
            extract::authenticate,
        ))
        .with_state(state.clone());
    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .merge(routes)
        .merge(SwaggerUi::new(DOCS_PATH).url(OPENAPI_PATH, openapi))
        .route(console::CONSOLE_PATH, axum::routing::get(console::redirect))
        .route(
            &format!("{}/", console::CONSOLE_PATH),
            axum::routing::get(console::index),
        )
        .route(
            &format!("{}/{{*path}}", console::CONSOLE_PATH),
            axum::routing::get(console::file),
        )
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(state.config.settings.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            state.config.request_timeout(),
        ))
        .layer(CatchPanicLayer::new())
        .layer(middleware::map_response(observe::json_errors))
        .layer(middleware::from_fn(observe::track_http))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
                .layer(SetSensitiveRequestHeadersLayer::new([
                    axum::http::header::AUTHORIZATION,
                    axum::http::header::COOKIE,
                ]))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(|request: &Request<_>| {
                            let request_id = request
                                .headers()
                                .get("x-request-id")
                                .and_then(|value| value.to_str().ok())
                                .unwrap_or_default();
                            // The route template when there is one: query strings may carry
                            // positions and some paths carry tokens.
                            let route = request
                                .extensions()
                                .get::<axum::extract::MatchedPath>()
                                .map(|path| path.as_str().to_owned())
                                .unwrap_or_else(|| request.uri().path().to_owned());
                            tracing::info_span!(
                                "http",
                                method = %request.method(),
                                route = %route,
                                request_id = %request_id,
                            )
                        })
                        .on_response(DefaultOnResponse::new().level(Level::INFO)),
                )
                .layer(PropagateRequestIdLayer::new(request_id)),
        )
}

/// The OsmAnd protocol alone, for its own port (`RESCUE_OSMAND_ADDR`).
pub fn osmand_router(state: AppState) -> Router {
    let mut router = Router::new();
    // GET and POST, as `OSMAND_PORT_METHODS` says.
    for path in OSMAND_PORT_PATHS {
        router = router.route(
            path,
            axum::routing::get(devices::osmand_get).post(devices::osmand_post),
        );
    }
    router
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(64 * 1024))
        .layer(middleware::map_response(observe::json_errors))
        .layer(middleware::from_fn(observe::track_http))
        .with_state(state)
}

async fn not_found() -> error::ApiError {
    error::ApiError::not_found("route")
}
