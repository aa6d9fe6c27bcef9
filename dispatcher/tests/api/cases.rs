use reqwest::StatusCode;
use serde_json::json;

use crate::api_test;
use crate::helpers::*;

api_test!(
    the_app_creates_a_case_and_its_customer_reads_it,
    |app| async move {
        let created = app.create_case(&case_body()).await;
        let case_id = created["case"]["id"].as_str().unwrap();
        let token = created["customer_token"].as_str().unwrap();
        assert_eq!(created["case"]["status"], "new");
        assert_eq!(created["case"]["customer"]["phone"], "+8613800138000");
        assert!(token.starts_with("ct_"));
        assert_eq!(
            created["tracking_url"],
            format!("{}/track/{token}", app.address)
        );

        let read = app.get(&format!("/v1/cases/{case_id}"), Some(token)).await;
        assert_eq!(read.status, StatusCode::OK);
        for field in [
            "id",
            "channel",
            "service",
            "customer",
            "location",
            "fault",
            "created_at",
        ] {
            assert_eq!(read.body[field], created["case"][field], "{field}");
        }

        // Another case's customer sees nothing of this one, not even that it exists.
        let other = app.create_case(&case_body()).await;
        let other_token = other["customer_token"].as_str().unwrap();
        let refused = app
            .get(&format!("/v1/cases/{case_id}"), Some(other_token))
            .await;
        assert_eq!(
            (refused.status, refused.error_code()),
            (StatusCode::NOT_FOUND, "not_found")
        );
        app
    }
);

api_test!(
    the_created_event_records_channel_actor_and_triage_inputs,
    |app| async move {
        let (agent, agent_token) = app.create_user("ann", "agent").await;
        let mut body = case_body();
        body["channel"] = json!("hotline");
        let reply = app.post("/v1/cases", Some(&agent_token), &body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        let case_id = reply.body["case"]["id"].as_str().unwrap();
        let timeline = app
            .get(&format!("/v1/cases/{case_id}/timeline"), Some(&agent_token))
            .await;
        assert_eq!(timeline.status, StatusCode::OK);
        let events = timeline.body["events"].as_array().unwrap();
        assert_eq!(events[0]["seq"], 1);
        assert_eq!(events[0]["kind"], "created");
        assert_eq!(
            events[0]["actor"],
            format!("agent:{}", agent["id"].as_str().unwrap())
        );
        assert_eq!(events[0]["data"]["channel"], "hotline");
        assert_eq!(events[0]["data"]["road_kind"], "urban");
        app
    }
);

api_test!(only_agents_create_hotline_cases, |app| async move {
    let mut body = case_body();
    body["channel"] = json!("hotline");
    let reply = app.post("/v1/cases", None, &body).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let (_, provider_key) = app.create_provider("Pudong Towing").await;
    let reply = app
        .post("/v1/cases", Some(&provider_key), &case_body())
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(app.case_count().await, 0);
    app
});

api_test!(gcj02_locations_are_converted_to_wgs84, |app| async move {
    let mut body = case_body();
    body["location"]["crs"] = json!("gcj02");
    // The published GCJ-02 position of People's Square (Tiananmen-style pairs are tested in
    // the domain crate); the stored WGS-84 point lies a few hundred metres away.
    let created = app.create_case(&body).await;
    let lat = created["case"]["location"]["lat"].as_f64().unwrap();
    let lon = created["case"]["location"]["lon"].as_f64().unwrap();
    assert!((lat - 31.2304).abs() > 0.001 || (lon - 121.4737).abs() > 0.003);
    assert!((lat - 31.2304).abs() < 0.01 && (lon - 121.4737).abs() < 0.01);
    app
});

api_test!(
    a_customer_cancels_once_and_the_timeline_shows_it,
    |app| async move {
        let created = app.create_settled_case(&case_body()).await;
        let case_id = created["case"]["id"].as_str().unwrap();
        let token = created["customer_token"].as_str().unwrap();
        let path = format!("/v1/cases/{case_id}/cancel");

        let cancelled = app
            .post(
                &path,
                Some(token),
                &json!({"reason": "car started after all"}),
            )
            .await;
        assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.text);
        assert_eq!(cancelled.body["status"], "cancelled");

        let (_, agent) = app.create_user("ann", "agent").await;
        let timeline_path = format!("/v1/cases/{case_id}/timeline");
        let before = app.get(&timeline_path, Some(&agent)).await.body["events"].clone();

        let again = app.post(&path, Some(token), &json!({})).await;
        assert_eq!(
            (again.status, again.error_code()),
            (StatusCode::CONFLICT, "illegal_transition")
        );

        let events = app.get(&timeline_path, Some(&agent)).await.body["events"].clone();
        assert_eq!(events, before, "the refused cancel wrote nothing");
        let last = events.as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["kind"], "status_changed");
        assert_eq!(last["actor"], "customer");
        assert_eq!(
            last["data"],
            json!({"from": "escalated", "to": "cancelled", "reason": "car started after all"})
        );
        app
    }
);

api_test!(an_agent_cancels_without_a_body, |app| async move {
    let created = app.create_case(&case_body()).await;
    let case_id = created["case"]["id"].as_str().unwrap();
    let (_, agent) = app.create_user("ann", "agent").await;
    let reply = app
        .request(
            reqwest::Method::POST,
            &format!("/v1/cases/{case_id}/cancel"),
            Some(&agent),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let case = app
        .db
        .store
        .get_case(case_id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(case.status, domain::CaseStatus::Cancelled);
    app
});

api_test!(agents_list_cases_with_filters_and_pages, |app| async move {
    let (_, agent) = app.create_user("ann", "agent").await;
    let mut ids = Vec::new();
    for index in 0..7 {
        let mut body = case_body();
        if index % 2 == 0 {
            body["service"] = json!("tow");
        }
        ids.push(
            app.create_settled_case(&body).await["case"]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let first_token = app.create_settled_case(&case_body()).await; // an eighth, cancelled
    let eighth = first_token["case"]["id"].as_str().unwrap().to_owned();
    app.post(
        &format!("/v1/cases/{eighth}/cancel"),
        Some(first_token["customer_token"].as_str().unwrap()),
        &json!({}),
    )
    .await;

    let tows = app
        .get("/v1/cases?service=tow&status=escalated", Some(&agent))
        .await;
    assert_eq!(tows.status, StatusCode::OK);
    assert_eq!(tows.body["cases"].as_array().unwrap().len(), 4);

    let cancelled = app.get("/v1/cases?status=cancelled", Some(&agent)).await;
    assert_eq!(cancelled.body["cases"][0]["id"], eighth.as_str());

    // Pages of three, newest first, every case once.
    let mut seen = Vec::new();
    let mut path = "/v1/cases?limit=3".to_owned();
    loop {
        let page = app.get(&path, Some(&agent)).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        for case in page.body["cases"].as_array().unwrap() {
            seen.push(case["id"].as_str().unwrap().to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/cases?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    let mut expected: Vec<String> = ids.iter().cloned().chain([eighth]).collect();
    expected.reverse();
    assert_eq!(seen, expected);

    for bad in [
        "/v1/cases?status=finished",
        "/v1/cases?limit=0",
        "/v1/cases?cursor=zzz",
        "/v1/cases?service=teleport",
        "/v1/cases?colour=red",
    ] {
        let reply = app.get(bad, Some(&agent)).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {}",
            reply.text
        );
    }
    app
});

api_test!(a_timeline_of_an_unknown_case_is_404, |app| async move {
    let (_, agent) = app.create_user("ann", "agent").await;
    let id = domain::CaseId::new_v7();
    let reply = app
        .get(&format!("/v1/cases/{id}/timeline"), Some(&agent))
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = app.get(&format!("/v1/cases/{id}"), Some(&agent)).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    app
});
