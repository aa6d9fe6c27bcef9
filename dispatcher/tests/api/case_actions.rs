//! An agent's actions on a case: nearest candidates and a manual pick among them, notes,
//! customer updates on the tracking link, masked calls to the customer or the driver, and
//! the providers' service areas for the map.

use domain::PhoneNumber;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::api_test;
use crate::helpers::*;

api_test!(
    candidates_come_ranked_with_etas_and_one_of_them_can_be_assigned,
    |app| async move {
        let (_, agent) = app.create_user("ann", "agent").await;
        // No vehicle yet: the case escalates.
        let created = app.create_settled_case(&case_body()).await;
        let case_id = created["case"]["id"].as_str().unwrap().to_owned();
        let path = format!("/v1/cases/{case_id}/candidates");
        let empty = app.get(&path, Some(&agent)).await;
        assert_eq!(empty.status, StatusCode::OK, "{}", empty.text);
        assert_eq!(empty.body["candidates"], json!([]));
        assert!(empty.body["radius_m"].is_null());

        let (_, provider) = app.create_provider("Pudong Towing").await;
        for (name, km, capabilities) in [
            ("FAR", 4.0, &["jump_start"][..]),
            ("NEAR", 1.0, &["jump_start", "tow"][..]),
            ("TOW-ONLY", 0.5, &["tow"][..]),
        ] {
            let (lat, lon) = north_of_customer(km);
            app.register_vehicle(&provider, name, capabilities, lat, lon)
                .await;
        }
        let listed = app.get(&path, Some(&agent)).await;
        assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
        let candidates = listed.body["candidates"].as_array().unwrap().clone();
        let refs: Vec<&str> = candidates
            .iter()
            .map(|c| c["vehicle_ref"].as_str().unwrap())
            .collect();
        assert_eq!(
            refs,
            ["NEAR", "FAR"],
            "capable vehicles only, nearest first"
        );
        assert_eq!(candidates[0]["provider_name"], "Pudong Towing");
        assert!(
            (candidates[0]["distance_m"].as_f64().unwrap() - 1000.0).abs() < 20.0,
            "{}",
            listed.text
        );
        let eta = |c: &Value| c["eta_s"].as_u64().unwrap();
        assert!(eta(&candidates[0]) < eta(&candidates[1]));
        assert!(listed.body["radius_m"].as_f64().unwrap() >= 4000.0);

        // The agent picks the farther one on purpose.
        let far_id = candidates[1]["vehicle_id"].as_str().unwrap();
        let assigned = app
            .post(
                &format!("/v1/cases/{case_id}/assign"),
                Some(&agent),
                &json!({"vehicle_id": far_id}),
            )
            .await;
        assert_eq!(assigned.status, StatusCode::OK, "{}", assigned.text);
        assert_eq!(assigned.body["status"], "assigned");
        // An assigned case has no candidates to choose from.
        let after = app.get(&path, Some(&agent)).await;
        assert_eq!(after.status, StatusCode::CONFLICT, "{}", after.text);
        assert_eq!(after.error_code(), "conflict");
        // An unknown case is 404.
        let unknown = app
            .get(
                "/v1/cases/0192f6c2-3b1e-7c3a-9d7e-2f1a6b1c9e01/candidates",
                Some(&agent),
            )
            .await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
        app
    }
);

api_test!(
    notes_land_in_the_timeline_and_updates_reach_the_tracking_link,
    |app| async move {
        let (agent_user, agent) = app.create_user("ann", "agent").await;
        let created = app.create_settled_case(&case_body()).await;
        let case_id = created["case"]["id"].as_str().unwrap().to_owned();
        let token = created["customer_token"].as_str().unwrap().to_owned();
        let before = timeline(&app, &agent, &case_id).await.len();

        let note = app
            .post(
                &format!("/v1/cases/{case_id}/notes"),
                Some(&agent),
                &json!({"text": "  客户说车在应急车道 — hazard lights on  "}),
            )
            .await;
        assert_eq!(note.status, StatusCode::CREATED, "{}", note.text);
        assert_eq!(note.body["kind"], "note_added");
        assert_eq!(
            note.body["data"]["text"],
            "客户说车在应急车道 — hazard lights on"
        );
        assert_eq!(
            note.body["actor"],
            format!("agent:{}", agent_user["id"].as_str().unwrap())
        );
        // Empty and oversized notes are refused and change nothing.
        for text in ["   ".to_owned(), "x".repeat(2001)] {
            let refused = app
                .post(
                    &format!("/v1/cases/{case_id}/notes"),
                    Some(&agent),
                    &json!({ "text": text }),
                )
                .await;
            assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(
                refused.error_code(),
                "validation_failed",
                "{}",
                refused.text
            );
        }
        let events = timeline(&app, &agent, &case_id).await;
        assert_eq!(events.len(), before + 1);
        assert_eq!(events.last().unwrap()["kind"], "note_added");

        let sent = app
            .post(
                &format!("/v1/cases/{case_id}/notify"),
                Some(&agent),
                &json!({"message": "救援车约 20 分钟到达 / the truck is about 20 min away"}),
            )
            .await;
        assert_eq!(sent.status, StatusCode::CREATED, "{}", sent.text);
        assert_eq!(sent.body["kind"], "customer_notified");
        let view = app.get(&format!("/v1/track/{token}"), None).await;
        assert_eq!(view.status, StatusCode::OK);
        let updates = view.body["updates"].as_array().unwrap();
        assert_eq!(updates.len(), 1, "{}", view.text);
        assert_eq!(
            updates[0]["message"],
            "救援车约 20 分钟到达 / the truck is about 20 min away"
        );

        // Once the case is closed the customer gets no more updates; notes still go in.
        let cancelled = app
            .post(
                &format!("/v1/cases/{case_id}/cancel"),
                Some(&agent),
                &json!({"reason": "duplicate"}),
            )
            .await;
        assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.text);
        let late = app
            .post(
                &format!("/v1/cases/{case_id}/notify"),
                Some(&agent),
                &json!({"message": "hello?"}),
            )
            .await;
        assert_eq!(late.status, StatusCode::CONFLICT, "{}", late.text);
        let closing_note = app
            .post(
                &format!("/v1/cases/{case_id}/notes"),
                Some(&agent),
                &json!({"text": "called back: duplicate of an earlier case"}),
            )
            .await;
        assert_eq!(closing_note.status, StatusCode::CREATED);
        let view = app.get(&format!("/v1/track/{token}"), None).await;
        assert_eq!(view.body["updates"].as_array().unwrap().len(), 1);
        app
    }
);

api_test!(
    an_agent_calls_the_customer_or_the_driver_through_the_masked_number,
    |app| async move {
        let (_, agent) = app.create_user("ann", "agent").await;
        let (_, provider) = app.create_provider("Towing").await;
        let created = app.create_settled_case(&case_body()).await;
        let case_id = created["case"]["id"].as_str().unwrap().to_owned();
        let call = |party: &str, phone: &str| {
            let body = json!({"party": party, "agent_phone": phone});
            let path = format!("/v1/cases/{case_id}/call");
            let app = &app;
            let agent = agent.clone();
            async move { app.post(&path, Some(&agent), &body).await }
        };
        let agent_line = PhoneNumber::parse("+861088880002").unwrap();

        let customer = call("customer", "+86 10 8888 0002").await;
        assert_eq!(customer.status, StatusCode::OK, "{}", customer.text);
        let virtual_number =
            PhoneNumber::parse(customer.body["virtual_number"].as_str().unwrap()).unwrap();
        let reached = app
            .state
            .calls
            .lookup(&virtual_number, &agent_line)
            .await
            .unwrap();
        assert_eq!(reached.unwrap().as_str(), "+8613800138000");

        // No truck yet: nobody to call.
        let no_driver = call("driver", "+861088880002").await;
        assert_eq!(no_driver.status, StatusCode::CONFLICT, "{}", no_driver.text);
        let bad_line = call("customer", "ext. 12").await;
        assert_eq!(bad_line.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(bad_line.body["error"]["details"][0]["field"], "agent_phone");
        let bad_party = call("mechanic", "+861088880002").await;
        assert_eq!(bad_party.status, StatusCode::UNPROCESSABLE_ENTITY);

        // A driver phone that is not a number is refused at registration.
        let refused = app
            .request(
                Method::PUT,
                "/v1/provider/vehicles/T1",
                Some(&provider),
                Some(
                    &json!({"capabilities": ["jump_start"], "state": "available",
                             "driver_phone": "ask the office"}),
                ),
            )
            .await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
        let registered = app
            .request(
                Method::PUT,
                "/v1/provider/vehicles/T1",
                Some(&provider),
                Some(
                    &json!({"capabilities": ["jump_start"], "state": "available",
                             "driver_phone": "+86 139 0000 1234"}),
                ),
            )
            .await;
        assert!(registered.status.is_success(), "{}", registered.text);
        assert_eq!(registered.body["driver_phone"], "+8613900001234");
        let (lat, lon) = north_of_customer(1.0);
        app.report_position(&provider, "T1", lat, lon, chrono::Utc::now())
            .await;
        let assigned = app
            .post(
                &format!("/v1/cases/{case_id}/assign"),
                Some(&agent),
                &json!({"vehicle_id": registered.body["id"]}),
            )
            .await;
        assert_eq!(assigned.status, StatusCode::OK, "{}", assigned.text);

        let driver = call("driver", "+861088880002").await;
        assert_eq!(driver.status, StatusCode::OK, "{}", driver.text);
        assert_eq!(
            driver.body["virtual_number"], customer.body["virtual_number"],
            "the case keeps its number"
        );
        let reached = app
            .state
            .calls
            .lookup(&virtual_number, &agent_line)
            .await
            .unwrap();
        assert_eq!(reached.unwrap().as_str(), "+8613900001234");
        // The driver's number never reaches the agent.
        assert!(!driver.text.contains("13900001234"));
        let kinds: Vec<String> = timeline(&app, &agent, &case_id)
            .await
            .iter()
            .map(|event| event["kind"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            kinds.iter().filter(|kind| *kind == "call_bridged").count(),
            1,
            "bridged once; the second call rebinds the same number: {kinds:?}"
        );
        app
    }
);

api_test!(
    agents_see_providers_with_their_service_areas_and_no_secrets,
    |app| async move {
        let (_, agent) = app.create_user("ann", "agent").await;
        app.create_provider("Zhang Towing").await;
        app.create_provider("An Rescue").await;
        let listed = app.get("/v1/providers", Some(&agent)).await;
        assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
        let providers = listed.body["providers"].as_array().unwrap();
        let names: Vec<&str> = providers
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["An Rescue", "Zhang Towing"]);
        assert_eq!(providers[0]["service_area"], shanghai_area());
        assert!(!listed.text.contains("webhook"), "{}", listed.text);
        assert!(!listed.text.contains("api_key"), "{}", listed.text);
        app
    }
);
