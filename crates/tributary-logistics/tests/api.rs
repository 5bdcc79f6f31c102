//! Every RPC and every error case through the public gRPC and HTTP APIs of a
//! server spawned on port 0, on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used)]

mod common;

use common::{db, spawn_api, Sql, TestApi};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tonic::Code;
use tributary_logistics::domain::PageLimits;
use tributary_logistics::proto::v1 as pb;

const LIMITS: PageLimits = PageLimits { default: 2, max: 3 };

fn create_req(title: &str, material: &str, volume: f32) -> pb::CreatePackageV1Request {
    pb::CreatePackageV1Request {
        title: title.into(),
        material: material.into(),
        maximum_volume: volume,
        reusable: true,
    }
}

fn assert_status(r: Result<impl std::fmt::Debug, tonic::Status>, code: Code, contains: &str) {
    let e = r.expect_err("must fail");
    assert_eq!(e.code(), code, "{e:?}");
    assert!(
        e.message().contains(contains),
        "{:?} lacks {contains:?}",
        e.message()
    );
}

async fn grpc_scenario(api: &TestApi) {
    let mut c = api.grpc.clone();
    // Create + describe.
    let id = c
        .create_package_v1(create_req("box", "cardboard", 12.5))
        .await
        .unwrap()
        .into_inner()
        .id;
    assert!(id > 0);
    let p = c
        .describe_package_v1(pb::DescribePackageV1Request { id })
        .await
        .unwrap()
        .into_inner()
        .package
        .unwrap();
    assert_eq!(
        (p.id, p.title.as_str(), p.material.as_str()),
        (id, "box", "cardboard")
    );
    assert!((p.maximum_volume - 12.5).abs() < f32::EPSILON && p.reusable);
    assert!(p.created.is_some() && p.updated.is_none());

    // Create validation, field named.
    let long = "x".repeat(33);
    assert_status(
        c.create_package_v1(create_req("", "m", 1.0)).await,
        Code::InvalidArgument,
        "title",
    );
    assert_status(
        c.create_package_v1(create_req(&long, "m", 1.0)).await,
        Code::InvalidArgument,
        "title",
    );
    assert_status(
        c.create_package_v1(create_req("t", "", 1.0)).await,
        Code::InvalidArgument,
        "material",
    );
    assert_status(
        c.create_package_v1(create_req("t", &long, 1.0)).await,
        Code::InvalidArgument,
        "material",
    );
    for v in [0.0, -3.0, f32::NAN, f32::INFINITY] {
        assert_status(
            c.create_package_v1(create_req("t", "m", v)).await,
            Code::InvalidArgument,
            "maximum_volume",
        );
    }
    // 32 multi-byte characters are fine.
    c.create_package_v1(create_req(&"я".repeat(32), "m", 1.0))
        .await
        .unwrap();

    // Describe errors.
    assert_status(
        c.describe_package_v1(pb::DescribePackageV1Request { id: 0 })
            .await,
        Code::InvalidArgument,
        "id",
    );
    assert_status(
        c.describe_package_v1(pb::DescribePackageV1Request { id: 999_999 })
            .await,
        Code::NotFound,
        "package not found",
    );
    assert_status(
        c.describe_package_v1(pb::DescribePackageV1Request { id: u64::MAX })
            .await,
        Code::NotFound,
        "package not found",
    );

    // Update.
    c.update_package_v1(pb::UpdatePackageV1Request {
        id,
        title: Some("crate".into()),
        reusable: Some(false),
        ..Default::default()
    })
    .await
    .unwrap();
    let p = c
        .describe_package_v1(pb::DescribePackageV1Request { id })
        .await
        .unwrap()
        .into_inner()
        .package
        .unwrap();
    assert_eq!(
        (p.title.as_str(), p.material.as_str(), p.reusable),
        ("crate", "cardboard", false)
    );
    assert!(p.updated.is_some());
    assert_status(
        c.update_package_v1(pb::UpdatePackageV1Request {
            id,
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "no changes specified",
    );
    assert_status(
        c.update_package_v1(pb::UpdatePackageV1Request {
            id,
            material: Some(String::new()),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "material",
    );
    assert_status(
        c.update_package_v1(pb::UpdatePackageV1Request {
            id,
            maximum_volume: Some(-1.0),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "maximum_volume",
    );
    assert_status(
        c.update_package_v1(pb::UpdatePackageV1Request {
            id: 999_999,
            title: Some("x".into()),
            ..Default::default()
        })
        .await,
        Code::NotFound,
        "package not found",
    );
    assert_status(
        c.update_package_v1(pb::UpdatePackageV1Request {
            id: 0,
            title: Some("x".into()),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "id",
    );

    // Remove.
    assert!(
        c.remove_package_v1(pb::RemovePackageV1Request { id })
            .await
            .unwrap()
            .into_inner()
            .ok
    );
    assert_status(
        c.describe_package_v1(pb::DescribePackageV1Request { id })
            .await,
        Code::NotFound,
        "package not found",
    );
    assert_status(
        c.remove_package_v1(pb::RemovePackageV1Request { id }).await,
        Code::NotFound,
        "package not found",
    );
    assert_status(
        c.remove_package_v1(pb::RemovePackageV1Request { id: 0 })
            .await,
        Code::InvalidArgument,
        "id",
    );
}

async fn grpc_list(api: &TestApi) {
    let mut c = api.grpc.clone();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            c.create_package_v1(create_req(&format!("l{i}"), "m", 1.0))
                .await
                .unwrap()
                .into_inner()
                .id,
        );
    }
    let list = |offset, limit, after_id| pb::ListPackagesV1Request {
        offset,
        limit,
        after_id,
    };
    let page = |r: tonic::Response<pb::ListPackagesV1Response>| -> Vec<u64> {
        r.into_inner().packages.iter().map(|p| p.id).collect()
    };
    let all = {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let got = page(c.list_packages_v1(list(0, 3, Some(after))).await.unwrap());
            if got.is_empty() {
                break;
            }
            after = *got.last().unwrap();
            all.extend(got);
        }
        all
    };
    assert!(
        all.windows(2).all(|w| w[0] < w[1]),
        "ordered by id: {all:?}"
    );
    assert!(ids.iter().all(|i| all.contains(i)));
    // default page size, max clamp, offset, cursor
    assert_eq!(
        page(c.list_packages_v1(list(0, 0, None)).await.unwrap()),
        all[..2]
    );
    assert_eq!(
        page(c.list_packages_v1(list(0, 100, None)).await.unwrap()),
        all[..3]
    );
    assert_eq!(
        page(c.list_packages_v1(list(1, 2, None)).await.unwrap()),
        all[1..3]
    );
    assert_eq!(
        page(c.list_packages_v1(list(0, 2, Some(all[1]))).await.unwrap()),
        all[2..4]
    );
    assert!(page(c.list_packages_v1(list(1_000, 2, None)).await.unwrap()).is_empty());
}

async fn http_scenario(api: &TestApi) {
    let h = reqwest::Client::new();
    let base = format!("{}/v1/packages", api.http);
    let err = |v: &Value| {
        (
            v["code"].as_str().unwrap().to_string(),
            v["message"].as_str().unwrap().to_string(),
        )
    };

    let r = h
        .post(&base)
        .json(&json!({"title": "box", "material": "wood", "maximum_volume": 3.5, "reusable": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let id = r.json::<Value>().await.unwrap()["id"].as_u64().unwrap();

    let r = h.get(format!("{base}/{id}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let p = r.json::<Value>().await.unwrap()["package"].clone();
    assert_eq!(
        (
            p["id"].as_u64(),
            p["title"].as_str(),
            p["material"].as_str()
        ),
        (Some(id), Some("box"), Some("wood"))
    );
    assert!(p.get("updated").is_none() && p["created"].is_string());

    // Create errors.
    for (body, field) in [
        (
            json!({"title": "", "material": "m", "maximum_volume": 1.0}),
            "title",
        ),
        (json!({"material": "m", "maximum_volume": 1.0}), "title"),
        (
            json!({"title": "t", "material": "x".repeat(33), "maximum_volume": 1.0}),
            "material",
        ),
        (
            json!({"title": "t", "material": "m", "maximum_volume": 0.0}),
            "maximum_volume",
        ),
        (json!({"title": "t", "material": "m"}), "maximum_volume"),
    ] {
        let r = h.post(&base).json(&body).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
        let (code, msg) = err(&r.json().await.unwrap());
        assert_eq!(code, "invalid_argument");
        assert!(msg.contains(field), "{msg:?} lacks {field}");
    }
    let r = h
        .post(&base)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = h
        .post(&base)
        .json(&json!({"title": "t", "material": "m", "maximum_volume": 1.0, "colour": "red"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(err(&r.json().await.unwrap()).1.contains("colour"));
    // Strict bodies: an array is not an object (serde would take it as the
    // fields in order), an explicit null on update is refused, not dropped,
    // and a body over the limit is 413.
    let r = h
        .post(&base)
        .json(&json!(["t", "m", 1.0, false]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(err(&r.json().await.unwrap()).1.contains("JSON object"));
    for field in ["title", "material", "maximum_volume", "reusable"] {
        let r = h
            .put(format!("{base}/1"))
            .json(&json!({ field: null }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{field}: null");
        let (code, msg) = err(&r.json().await.unwrap());
        assert_eq!(code, "invalid_argument");
        assert!(msg.contains("null"), "{field}: {msg}");
    }
    let r = h
        .put(format!("{base}/1"))
        .json(&json!([]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Its own client: the server answers 413 without reading the body and
    // closes that connection, which a pooled client could otherwise reuse.
    let r = reqwest::Client::new()
        .post(&base)
        .header("content-type", "application/json")
        .body(format!(r#"{{"title":"{}"}}"#, "x".repeat(3 << 20)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(err(&r.json().await.unwrap()).0, "resource_exhausted");

    // Describe errors.
    for (path, status, needle) in [
        ("0".to_string(), StatusCode::BAD_REQUEST, "id"),
        ("abc".to_string(), StatusCode::BAD_REQUEST, "id"),
        (
            "999999".to_string(),
            StatusCode::NOT_FOUND,
            "package not found",
        ),
    ] {
        let r = h.get(format!("{base}/{path}")).send().await.unwrap();
        assert_eq!(r.status(), status, "{path}");
        assert!(err(&r.json().await.unwrap()).1.contains(needle));
    }

    // Update.
    let r = h
        .put(format!("{base}/{id}"))
        .json(&json!({"maximum_volume": 9.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"ok": true}));
    let p = h
        .get(format!("{base}/{id}"))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["package"]
        .clone();
    assert_eq!(p["maximum_volume"].as_f64(), Some(9.0));
    assert!(p["updated"].is_string());
    for (path, body, status, needle) in [
        (
            id.to_string(),
            json!({}),
            StatusCode::BAD_REQUEST,
            "no changes specified",
        ),
        (
            id.to_string(),
            json!({"title": ""}),
            StatusCode::BAD_REQUEST,
            "title",
        ),
        (
            "999999".to_string(),
            json!({"title": "x"}),
            StatusCode::NOT_FOUND,
            "package not found",
        ),
        (
            "0".to_string(),
            json!({"title": "x"}),
            StatusCode::BAD_REQUEST,
            "id",
        ),
    ] {
        let r = h
            .put(format!("{base}/{path}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{path} {body}");
        assert!(err(&r.json().await.unwrap()).1.contains(needle));
    }

    // List.
    let r = h.get(format!("{base}?limit=100")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let list = r.json::<Value>().await.unwrap()["packages"]
        .as_array()
        .unwrap()
        .len();
    assert!((1..=3).contains(&list), "clamped to max 3: {list}");
    let r = h.get(format!("{base}?after_id={id}")).send().await.unwrap();
    let after: Vec<u64> = r.json::<Value>().await.unwrap()["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_u64().unwrap())
        .collect();
    assert!(after.iter().all(|x| *x > id));
    let r = h.get(format!("{base}?limit=-1")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Remove.
    let r = h.delete(format!("{base}/{id}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = h.delete(format!("{base}/{id}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        err(&r.json().await.unwrap()),
        ("not_found".into(), "package not found".into())
    );
    let r = h.delete(format!("{base}/0")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // The OpenAPI document is served and names the routes.
    let doc: Value = h
        .get(format!("{}/openapi.json", api.http))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/v1/packages/{id}"]["put"].is_object());
}

async fn internal_errors_hide_details(api: &TestApi, db: &tributary_storage::Database) {
    db.close().await;
    let mut c = api.grpc.clone();
    let e = c
        .describe_package_v1(pb::DescribePackageV1Request { id: 1 })
        .await
        .expect_err("db closed");
    assert_eq!((e.code(), e.message()), (Code::Internal, "internal error"));
    let r = reqwest::get(format!("{}/v1/packages/1", api.http))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"code": "internal", "message": "internal error"})
    );
}

async fn run(kind: Sql) {
    let _ = tributary_platform::telemetry::prometheus();
    let Some(t) = db(kind).await else { return };
    let api = spawn_api(t.store.clone(), LIMITS, true).await;
    grpc_scenario(&api).await;
    grpc_list(&api).await;
    http_scenario(&api).await;

    // log_level: debug is accepted on both transports.
    let mut req = tonic::Request::new(pb::ListPackagesV1Request::default());
    req.metadata_mut()
        .insert("log_level", "debug".parse().unwrap());
    api.grpc.clone().list_packages_v1(req).await.unwrap();
    let r = reqwest::Client::new()
        .get(format!("{}/v1/packages", api.http))
        .header("log_level", "debug")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let metrics = tributary_platform::telemetry::prometheus().render();
    for name in [
        "logistic_package_api_not_found_total",
        "logistic_package_api_cud_event_total",
        "logistic_package_api_requests_total",
        "logistic_package_api_request_duration_seconds",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }

    internal_errors_hide_details(&api, &t.db).await;
    api.shutdown().await;
}

// Proves every RPC and error case over gRPC and HTTP on SQLite (embedded default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_on_sqlite() {
    run(Sql::Sqlite).await;
}

// Proves every RPC and error case over gRPC and HTTP on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_on_postgres() {
    run(Sql::Postgres).await;
}

/// (method, path) of every operation the HTTP API must serve and document.
const HTTP_OPERATIONS: [(&str, &str); 6] = [
    ("get", "/openapi.json"),
    ("get", "/v1/packages"),
    ("post", "/v1/packages"),
    ("get", "/v1/packages/{id}"),
    ("put", "/v1/packages/{id}"),
    ("delete", "/v1/packages/{id}"),
];

// Proves the OpenAPI document served at /openapi.json is the one derived from
// the code, lists exactly HTTP_OPERATIONS, that every documented operation is
// routed (with dummy params it gets an answer of its own handler, never the
// router's 404 "no such route" or 405), and that every other method on a
// documented path is 405 (no undocumented handler hides there).
#[tokio::test]
async fn openapi_document_matches_routes() {
    let Some(t) = db(Sql::Sqlite).await else {
        return;
    };
    let api = spawn_api(t.store.clone(), LIMITS, false).await;
    let h = reqwest::Client::new();
    let doc: Value = h
        .get(format!("{}/openapi.json", api.http))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc,
        serde_json::to_value(tributary_logistics::api::http::openapi::document()).unwrap()
    );
    assert_eq!(doc["openapi"], "3.1.0");

    let documented = tributary_runtime::openapi::documented_operations(&doc);
    let expected = tributary_runtime::openapi::sorted_operations(&HTTP_OPERATIONS);
    assert_eq!(documented, expected);

    for (path, item) in doc["paths"].as_object().unwrap() {
        let url = format!("{}{}", api.http, path.replace("{id}", "1"));
        for method in ["get", "post", "put", "patch", "delete"] {
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = h.request(m, &url).json(&json!({})).send().await.unwrap();
            let status = r.status();
            let text = r.text().await.unwrap();
            if item.get(method).is_some() {
                assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {url}");
                assert!(
                    !(status == StatusCode::NOT_FOUND && text.contains("no such route")),
                    "{method} {url} is documented but not routed: {text}"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {url} is served but not documented: {text}"
                );
            }
        }
    }
    api.shutdown().await;
}

// Proves the standard gRPC health service and server reflection answer.
#[tokio::test]
async fn grpc_health_and_reflection() {
    use tokio_stream::StreamExt as _;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let Some(t) = db(Sql::Sqlite).await else {
        return;
    };
    let api = spawn_api(t.store.clone(), LIMITS, false).await;
    let status = HealthClient::new(api.channel.clone())
        .check(HealthCheckRequest {
            service: "logistic_package_api.v1.LogisticPackageApiService".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = ServerReflectionClient::new(api.channel.clone())
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let resp = stream.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("unexpected reflection answer");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names
            .iter()
            .any(|n| n == "logistic_package_api.v1.LogisticPackageApiService"),
        "{names:?}"
    );
    api.shutdown().await;
}
