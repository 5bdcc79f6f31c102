//! The OpenAPI 3.1 document of the HTTP routes, derived from the code: each
//! route is registered together with its `#[utoipa::path]` documentation
//! (`utoipa_axum::routes!` in [`super`]), and the schemas are derived from
//! the very types the handlers read and write, so the document and the
//! routes cannot drift apart (`tests/api.rs` calls every documented
//! operation).

use std::sync::OnceLock;

/// Title, version and description of the document.
#[derive(utoipa::OpenApi)]
#[openapi(info(
    title = "Logistics package API",
    version = "1.0.0",
    description = "CRUD for packages; every change is published to Kafka topic omp-package-events through a transactional outbox. Send header `log_level: debug` to log one request at debug level (when the server allows it). Every error is `{\"code\", \"message\"}` (schema `ErrorBody`)."
))]
pub(super) struct ApiDoc;

/// The document served at `/openapi.json`.
pub fn document() -> utoipa::openapi::OpenApi {
    use utoipa::openapi::{schema::Schema, RefOr};
    let mut doc = super::routes().into_openapi();
    // An update must change something (`NoChanges` is 400). Set here because
    // `#[schema(min_properties = 1)]` is emitted as `maxProperties` by
    // utoipa-gen 5.5.0.
    if let Some(RefOr::T(Schema::Object(update))) = doc
        .components
        .as_mut()
        .and_then(|c| c.schemas.get_mut("UpdatePackage"))
    {
        update.min_properties = Some(1);
    }
    doc
}

/// [`document`], built once.
pub(super) fn cached() -> &'static utoipa::openapi::OpenApi {
    static DOCUMENT: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOCUMENT.get_or_init(document)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves: the derived schemas carry the validation rules of the bodies
    // and every package operation documents the shared error body.
    #[test]
    fn schemas_follow_the_types() {
        let doc = serde_json::to_value(document()).expect("document json");
        assert!(doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")));
        let schemas = &doc["components"]["schemas"];
        let create = &schemas["CreatePackage"];
        assert_eq!(create["additionalProperties"], false);
        assert_eq!(
            create["required"],
            serde_json::json!(["title", "material", "maximum_volume"])
        );
        assert_eq!(create["properties"]["title"]["maxLength"], 32);
        assert_eq!(schemas["UpdatePackage"]["minProperties"], 1);
        assert!(schemas["UpdatePackage"].get("maxProperties").is_none());
        assert_eq!(
            schemas["ErrorBody"]["required"],
            serde_json::json!(["code", "message"])
        );
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                if path == "/openapi.json" {
                    continue;
                }
                for status in ["400", "500"] {
                    assert_eq!(
                        op["responses"][status]["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
}
