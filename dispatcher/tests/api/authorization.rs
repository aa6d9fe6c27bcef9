//! Who may call what. `RULES` lists every route with the principals allowed to call it;
//! the walk proves every other principal is refused (401, 403 or 404) and every allowed
//! one gets through. The tables must cover exactly the routes the server serves, as
//! `dispatcher::api::served_routes` lists them (the OpenAPI routes and the undocumented
//! ones: Swagger UI, the OpenAPI document, the OsmAnd port), so a new route without a rule
//! fails this test; and every other method on a served path must be 405, so a method
//! slipped onto an existing path without being listed fails it too.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use dispatcher::api::Listener;

use crate::api_test;
use crate::helpers::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    /// The bootstrap admin token.
    Admin,
    /// A user with role admin.
    AdminUser,
    Agent,
    Expert,
    /// The provider whose vehicle, offer and job are in the path.
    Provider,
    /// Another provider.
    OtherProvider,
    /// The customer of the case in the path.
    Customer,
    /// The customer of another case.
    OtherCustomer,
}

use Who::*;

const EVERYONE: &[Who] = &[
    Anonymous,
    Admin,
    AdminUser,
    Agent,
    Expert,
    Provider,
    OtherProvider,
    Customer,
    OtherCustomer,
];
const USERS: &[Who] = &[AdminUser, Agent, Expert];
const PROVIDERS: &[Who] = &[Provider, OtherProvider];

struct Rule {
    method: &'static str,
    path: &'static str,
    allowed: &'static [Who],
}

/// In walk order: routes that change state come after those that read it, so the walk
/// itself does not close the case before a later route needs it open.
const RULES: &[Rule] = &[
    Rule {
        method: "GET",
        path: "/healthz",
        allowed: EVERYONE,
    },
    // Not in the OpenAPI document: the document itself and Swagger UI.
    Rule {
        method: "GET",
        path: "/openapi.json",
        allowed: EVERYONE,
    },
    Rule {
        method: "GET",
        path: "/docs",
        allowed: EVERYONE,
    },
    Rule {
        method: "GET",
        path: "/docs/",
        allowed: EVERYONE,
    },
    Rule {
        method: "GET",
        path: "/docs/{*rest}",
        allowed: EVERYONE,
    },
    // Not in the OpenAPI document: the console's static files (it logs in through the API).
    Rule {
        method: "GET",
        path: "/console",
        allowed: EVERYONE,
    },
    Rule {
        method: "GET",
        path: "/console/",
        allowed: EVERYONE,
    },
    Rule {
        method: "GET",
        path: "/console/{*path}",
        allowed: EVERYONE,
    },
    Rule {
        method: "GET",
        path: "/readyz",
        allowed: EVERYONE,
    },
    Rule {
        method: "GET",
        path: "/metrics",
        allowed: EVERYONE,
    },
    Rule {
        method: "POST",
        path: "/v1/admin/providers",
        allowed: &[Admin, AdminUser],
    },
    Rule {
        method: "POST",
        path: "/v1/admin/users",
        allowed: &[Admin, AdminUser],
    },
    Rule {
        method: "POST",
        path: "/v1/admin/providers/{provider_id}/webhook-secret",
        allowed: &[Admin, AdminUser],
    },
    Rule {
        method: "GET",
        path: "/v1/webhooks",
        allowed: &[Agent],
    },
    Rule {
        method: "GET",
        path: "/v1/provider/webhooks",
        allowed: PROVIDERS,
    },
    Rule {
        method: "POST",
        path: "/v1/auth/login",
        allowed: EVERYONE,
    },
    Rule {
        method: "GET",
        path: "/v1/auth/me",
        allowed: USERS,
    },
    Rule {
        method: "POST",
        path: "/v1/cases",
        allowed: &[Anonymous, Agent],
    },
    Rule {
        method: "GET",
        path: "/v1/cases",
        allowed: &[Agent],
    },
    Rule {
        method: "GET",
        path: "/v1/cases/{case_id}",
        allowed: &[Agent, Customer],
    },
    Rule {
        method: "GET",
        path: "/v1/cases/{case_id}/timeline",
        allowed: &[Agent],
    },
    Rule {
        method: "GET",
        path: "/v1/cases/{case_id}/offers",
        allowed: &[Agent],
    },
    Rule {
        method: "GET",
        path: "/v1/fleet",
        allowed: &[Agent],
    },
    Rule {
        method: "GET",
        path: "/v1/alerts",
        allowed: &[Agent],
    },
    Rule {
        method: "GET",
        path: "/v1/stream",
        allowed: &[Agent],
    },
    Rule {
        method: "GET",
        path: "/v1/cases/{case_id}/trajectory",
        allowed: &[Agent],
    },
    Rule {
        method: "GET",
        path: "/v1/cases/{case_id}/candidates",
        allowed: &[Agent],
    },
    Rule {
        method: "GET",
        path: "/v1/providers",
        allowed: &[Agent],
    },
    Rule {
        method: "POST",
        path: "/v1/alerts/{alert_id}/ack",
        allowed: &[Agent],
    },
    Rule {
        method: "POST",
        path: "/v1/alerts/{alert_id}/resolve",
        allowed: &[Agent],
    },
    // The token in the path is the credential; a wrong one is 404 (tracking tests).
    Rule {
        method: "GET",
        path: "/v1/track/{customer_token}",
        allowed: EVERYONE,
    },
    Rule {
        method: "GET",
        path: "/track/{customer_token}",
        allowed: EVERYONE,
    },
    // Devices do not authenticate: the registered device id is the credential. An
    // unknown device id is refused (404), which the device test covers.
    Rule {
        method: "GET",
        path: "/osmand",
        allowed: EVERYONE,
    },
    Rule {
        method: "POST",
        path: "/osmand",
        allowed: EVERYONE,
    },
    // Each provider may use these for its own vehicles; the path names Provider's.
    Rule {
        method: "GET",
        path: "/v1/provider/vehicles/{vehicle_id}",
        allowed: &[Provider],
    },
    // Vehicle ids are per provider: the other provider's PUT registers its own "W1".
    Rule {
        method: "PUT",
        path: "/v1/provider/vehicles/{vehicle_id}",
        allowed: PROVIDERS,
    },
    Rule {
        method: "GET",
        path: "/v1/provider/vehicles",
        allowed: PROVIDERS,
    },
    Rule {
        method: "POST",
        path: "/v1/provider/positions",
        allowed: PROVIDERS,
    },
    Rule {
        method: "GET",
        path: "/v1/provider/offers",
        allowed: PROVIDERS,
    },
    Rule {
        method: "POST",
        path: "/v1/provider/offers/{offer_id}/accept",
        allowed: &[Provider],
    },
    Rule {
        method: "POST",
        path: "/v1/provider/offers/{offer_id}/decline",
        allowed: &[Provider],
    },
    Rule {
        method: "POST",
        path: "/v1/provider/jobs/{case_id}/status",
        allowed: &[Provider],
    },
    Rule {
        method: "GET",
        path: "/v1/admin/triage-rules",
        allowed: &[Admin, AdminUser],
    },
    // The walk's bodies are not valid rules documents: 422, and the rules stay.
    Rule {
        method: "PUT",
        path: "/v1/admin/triage-rules",
        allowed: &[Admin, AdminUser],
    },
    Rule {
        method: "GET",
        path: "/v1/reports/diagnosis",
        allowed: &[Admin, AdminUser, Agent],
    },
    Rule {
        method: "GET",
        path: "/v1/diagnosis/queue",
        allowed: &[Expert],
    },
    // The walk's expert claims the phone-solvable case's ticket here, calls, solves it,
    // and then escalating it is a conflict (409), not a refusal.
    Rule {
        method: "POST",
        path: "/v1/diagnosis/claim",
        allowed: &[Expert],
    },
    Rule {
        method: "POST",
        path: "/v1/diagnosis/{ticket_id}/call",
        allowed: &[Expert],
    },
    Rule {
        method: "POST",
        path: "/v1/diagnosis/{ticket_id}/solve",
        allowed: &[Expert],
    },
    Rule {
        method: "POST",
        path: "/v1/diagnosis/{ticket_id}/escalate",
        allowed: &[Expert],
    },
    Rule {
        method: "POST",
        path: "/v1/cases/{case_id}/assign",
        allowed: &[Agent],
    },
    Rule {
        method: "POST",
        path: "/v1/cases/{case_id}/dispatch",
        allowed: &[Agent],
    },
    Rule {
        method: "POST",
        path: "/v1/cases/{case_id}/notes",
        allowed: &[Agent],
    },
    Rule {
        method: "POST",
        path: "/v1/cases/{case_id}/notify",
        allowed: &[Agent],
    },
    Rule {
        method: "POST",
        path: "/v1/cases/{case_id}/call",
        allowed: &[Agent],
    },
    Rule {
        method: "POST",
        path: "/v1/cases/{case_id}/cancel",
        allowed: &[Agent, Customer],
    },
    Rule {
        method: "POST",
        path: "/v1/auth/logout",
        allowed: USERS,
    },
];

/// The OsmAnd port (`RESCUE_OSMAND_ADDR`): devices are known by their id, not a token.
const OSMAND_PORT_RULES: &[Rule] = &[
    Rule {
        method: "GET",
        path: "/",
        allowed: EVERYONE,
    },
    Rule {
        method: "POST",
        path: "/",
        allowed: EVERYONE,
    },
    Rule {
        method: "GET",
        path: "/osmand",
        allowed: EVERYONE,
    },
    Rule {
        method: "POST",
        path: "/osmand",
        allowed: EVERYONE,
    },
];

/// The rules with the listener they apply to.
fn all_rules() -> impl Iterator<Item = (Listener, &'static Rule)> {
    RULES.iter().map(|rule| (Listener::Main, rule)).chain(
        OSMAND_PORT_RULES
            .iter()
            .map(|rule| (Listener::Osmand, rule)),
    )
}

/// The base URL of `listener`.
fn base_url(app: &TestApp, listener: Listener) -> String {
    match listener {
        Listener::Main => app.address.clone(),
        Listener::Osmand => format!("http://{}", app.osmand.expect("the OsmAnd port is on")),
    }
}

struct Principals {
    admin_user: String,
    agent: String,
    expert: String,
    provider: String,
    other_provider: String,
    customer: String,
    other_customer: String,
    case_id: String,
    offer_id: String,
    alert_id: String,
    provider_id: String,
    ticket_id: String,
}

impl Principals {
    async fn create(app: &TestApp) -> Principals {
        let (_, admin_user) = app.create_user("walk-admin", "admin").await;
        let (_, agent) = app.create_user("walk-agent", "agent").await;
        let (_, expert) = app.create_user("walk-expert", "expert").await;
        let (provider_id, provider) = app.create_provider("Walk Towing").await;
        let (_, other_provider) = app.create_provider("Other Towing").await;
        app.register_vehicle(&provider, "W1", &["jump_start", "tow"], 31.2304, 121.4637)
            .await;
        let reply = app
            .request(
                Method::PUT,
                "/v1/provider/vehicles/W1",
                Some(&provider),
                Some(
                    &json!({"capabilities": ["jump_start", "tow"], "state": "available",
                             "devices": [{"protocol": "osmand", "id": "walk-phone"}]}),
                ),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let own = app.create_case(&case_body()).await;
        let case_id = own["case"]["id"].as_str().unwrap().to_owned();
        let offer_id = app.wait_for_offer(&provider, &case_id).await;
        // Created after the offer, so the only vehicle is already held for `own`: it is
        // escalated, and its no_vehicle alert serves the alert routes.
        let other = app.create_case(&case_body()).await;
        app.wait_for_status(
            other["case"]["id"].as_str().unwrap(),
            domain::CaseStatus::Escalated,
        )
        .await;
        // A phone-solvable case: its ticket serves the expert routes.
        let mut phone_case = case_body();
        phone_case["fault"] = json!({"category": "key_fob", "symptoms": ["key_not_detected"]});
        let phone = app.create_case(&phone_case).await;
        let phone_case_id = phone["case"]["id"].as_str().unwrap().to_owned();
        app.wait_for_status(&phone_case_id, domain::CaseStatus::Diagnosing)
            .await;
        let ticket = app
            .db
            .store
            .case_ticket(phone_case_id.parse().unwrap())
            .await
            .unwrap()
            .expect("the phone-solvable case has a ticket");
        let alerts = app.get("/v1/alerts", Some(&agent)).await;
        let alert_id = alerts.body["alerts"][0]["id"].as_str().unwrap().to_owned();
        Principals {
            admin_user,
            agent,
            expert,
            provider,
            other_provider,
            customer: own["customer_token"].as_str().unwrap().to_owned(),
            other_customer: other["customer_token"].as_str().unwrap().to_owned(),
            case_id,
            offer_id,
            alert_id,
            provider_id,
            ticket_id: ticket.id.to_string(),
        }
    }

    /// The bearer token of `who`; logout gets a fresh session so the walk keeps its own.
    async fn token(&self, app: &TestApp, who: Who, rule: &Rule) -> Option<String> {
        let fresh_login = rule.path == "/v1/auth/logout";
        let (name, token) = match who {
            AdminUser => ("walk-admin", &self.admin_user),
            Agent => ("walk-agent", &self.agent),
            Expert => ("walk-expert", &self.expert),
            _ => ("", &self.agent),
        };
        Some(match who {
            Anonymous => return None,
            Admin => ADMIN_TOKEN.to_owned(),
            AdminUser | Agent | Expert if fresh_login => app.login(name, PASSWORD).await,
            AdminUser | Agent | Expert => token.clone(),
            Provider => self.provider.clone(),
            OtherProvider => self.other_provider.clone(),
            Customer => self.customer.clone(),
            OtherCustomer => self.other_customer.clone(),
        })
    }
}

fn body_for(rule: &Rule, serial: usize) -> Option<Value> {
    match (rule.method, rule.path) {
        ("POST", "/v1/admin/providers") => Some(json!({"name": format!("Provider {serial}")})),
        ("POST", "/v1/admin/users") => Some(json!({
            "username": format!("user{serial}"), "password": PASSWORD, "role": "agent"
        })),
        ("POST", "/v1/auth/login") => Some(json!({"username": "walk-agent", "password": PASSWORD})),
        ("POST", "/v1/cases") => Some(case_body()),
        ("POST", "/osmand" | "/") => Some(json!({
            "device_id": "walk-phone",
            "location": {"timestamp": chrono::Utc::now().to_rfc3339(),
                         "coords": {"latitude": 31.2304, "longitude": 121.4637}}
        })),
        ("PUT", "/v1/provider/vehicles/{vehicle_id}") => {
            Some(json!({"capabilities": ["tow", "jump_start"], "state": "available"}))
        }
        ("POST", "/v1/provider/positions") => Some(json!({"fixes": []})),
        ("POST", "/v1/provider/offers/{offer_id}/decline") => Some(json!({"reason": "busy"})),
        ("POST", "/v1/diagnosis/{ticket_id}/call") => {
            Some(json!({"expert_phone": "+861088880001"}))
        }
        ("POST", "/v1/provider/jobs/{case_id}/status") => Some(json!({"status": "en_route"})),
        ("POST", "/v1/cases/{case_id}/notes") => Some(json!({"text": "walk note"})),
        ("POST", "/v1/cases/{case_id}/notify") => Some(json!({"message": "walk update"})),
        ("POST", "/v1/cases/{case_id}/call") => Some(json!({
            "party": "customer", "agent_phone": "+861088880002"
        })),
        ("POST", "/v1/cases/{case_id}/assign") => {
            Some(json!({"vehicle_id": "0192f6c2-3b1e-7c3a-9d7e-2f1a6b1c9e01"}))
        }
        ("POST", _) => Some(json!({})),
        _ => None,
    }
}

api_test!(
    every_route_refuses_every_principal_its_rule_does_not_allow,
    |app| async move {
        let principals = Principals::create(&app).await;
        let mut serial = 0;
        for (listener, rule) in all_rules() {
            let path = rule
                .path
                .replace("{*rest}", "swagger-initializer.js")
                .replace("{*path}", "app.js")
                .replace("{case_id}", &principals.case_id)
                .replace("{offer_id}", &principals.offer_id)
                .replace("{alert_id}", &principals.alert_id)
                .replace("{provider_id}", &principals.provider_id)
                .replace("{ticket_id}", &principals.ticket_id)
                .replace("{customer_token}", &principals.customer)
                .replace("{vehicle_id}", "W1");
            let path = match (rule.method, rule.path) {
                (_, "/v1/fleet") => format!("{path}?bbox=121,31,122,32"),
                ("GET", "/osmand" | "/") => {
                    format!("{path}?id=walk-phone&lat=31.2304&lon=121.4637")
                }
                _ => path,
            };
            let method: Method = rule.method.parse().unwrap();
            for who in EVERYONE {
                serial += 1;
                let token = principals.token(&app, *who, rule).await;
                let body = body_for(rule, serial);
                let url = format!("{}{path}", base_url(&app, listener));
                let reply = if rule.path == "/v1/stream" {
                    // An open stream never ends: look at the status only.
                    let mut request = app.client.get(&url);
                    if let Some(token) = &token {
                        request = request.bearer_auth(token);
                    }
                    let response = request.send().await.unwrap();
                    Reply {
                        status: response.status(),
                        headers: response.headers().clone(),
                        body: Value::Null,
                        text: String::new(),
                    }
                } else {
                    let mut request = app.client.request(method.clone(), &url);
                    if let Some(token) = &token {
                        request = request.bearer_auth(token);
                    }
                    if let Some(body) = &body {
                        request = request.json(body);
                    }
                    read(request.send().await.expect("request sent")).await
                };
                let refused = matches!(
                    reply.status,
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND
                );
                let route = format!("{listener:?} {} {}", rule.method, rule.path);
                if rule.allowed.contains(who) {
                    assert!(
                        !refused,
                        "{route} should be open to {who:?}, got {}: {}",
                        reply.status, reply.text
                    );
                    assert!(
                        !reply.status.is_server_error(),
                        "{route} as {who:?}: {}",
                        reply.text
                    );
                } else {
                    assert!(
                        refused,
                        "{route} must refuse {who:?}, got {}: {}",
                        reply.status, reply.text
                    );
                    let foreign = (*who == OtherCustomer && rule.allowed.contains(&Customer))
                        || (*who == OtherProvider && rule.allowed.contains(&Provider));
                    if foreign {
                        assert_eq!(
                            reply.status,
                            StatusCode::NOT_FOUND,
                            "{route}: what belongs to another must look absent"
                        );
                    }
                }
            }
        }
        app
    }
);

api_test!(
    the_rule_tables_cover_exactly_the_routes_the_server_serves,
    |app| async move {
        // `served_routes` is built from what the routers register (see its docs), and
        // `/openapi.json` is checked against it, so a route reaches this list whether it
        // is documented or not.
        let served: BTreeSet<(Listener, String, String)> = dispatcher::api::served_routes()
            .into_iter()
            .map(|route| (route.listener, route.method, route.path))
            .collect();
        let ruled: BTreeSet<(Listener, String, String)> = all_rules()
            .map(|(listener, rule)| (listener, rule.method.to_owned(), rule.path.to_owned()))
            .collect();
        let missing: Vec<_> = served.difference(&ruled).collect();
        let stale: Vec<_> = ruled.difference(&served).collect();
        assert!(
            missing.is_empty(),
            "routes without an authorization rule: {missing:?}"
        );
        assert!(
            stale.is_empty(),
            "rules for routes that no longer exist: {stale:?}"
        );

        // The served document lists exactly the documented routes.
        let document = app.get("/openapi.json", None).await;
        let mut in_document = BTreeSet::new();
        for (path, operations) in document.body["paths"].as_object().unwrap() {
            for method in operations.as_object().unwrap().keys() {
                if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                    in_document.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        let documented: BTreeSet<(String, String)> = dispatcher::api::served_routes()
            .into_iter()
            .filter(|route| route.documented)
            .map(|route| (route.method, route.path))
            .collect();
        assert_eq!(in_document, documented);

        // Every method a served path does not list is refused with 405: a method added to
        // a path without being listed shows up here. (The walk above proves each listed
        // one is really served: its allowed principals get through.)
        let paths: BTreeSet<(Listener, &str)> = all_rules()
            .map(|(listener, rule)| (listener, rule.path))
            .collect();
        for (listener, template) in paths {
            let path = template
                .replace("{*rest}", "swagger-initializer.js")
                .replace("{*path}", "app.js")
                .replace("{customer_token}", "ct_x")
                .replace(['{', '}'], "");
            for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
                if ruled.contains(&(listener, method.to_owned(), template.to_owned())) {
                    continue;
                }
                let response = app
                    .client
                    .request(
                        method.parse().unwrap(),
                        format!("{}{path}", base_url(&app, listener)),
                    )
                    .bearer_auth(ADMIN_TOKEN)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(
                    response.status(),
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{listener:?} {method} {template} is served but has no rule"
                );
            }
        }
        app
    }
);
