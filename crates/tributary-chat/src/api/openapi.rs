//! The OpenAPI 3.1 document of the REST API, derived from the code: each
//! route is registered together with its `#[utoipa::path]` documentation
//! (`utoipa_axum::routes!` in [`super::rest`]), and the schemas are derived
//! from the very types the handlers read and write. A route cannot be served
//! undocumented; `tests/api.rs` calls every documented operation.

use std::sync::OnceLock;

/// Title, version and description of the document.
#[derive(utoipa::OpenApi)]
#[openapi(info(
    title = "Tributary chat archive",
    description = "Telegram Desktop exports in a searchable archive: import, search, count, delete, per-user counts, audit log, CSV/Parquet backup and restore. Every error is `{\"code\", \"message\"}` (schema `ErrorBody`)."
))]
pub(super) struct ApiDoc;

/// The document served at `/openapi.json`.
pub fn document() -> utoipa::openapi::OpenApi {
    super::rest::routes().into_openapi()
}

/// [`document`], built once.
pub(super) fn cached() -> &'static utoipa::openapi::OpenApi {
    static DOCUMENT: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOCUMENT.get_or_init(document)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::filter::MAX_TAKE;

    // Proves: the derived schemas carry the rules the code enforces and the
    // shared error body, and every operation documents its error body.
    #[test]
    fn schemas_follow_the_types() {
        let doc = serde_json::to_value(document()).expect("document json");
        assert!(doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")));
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["SearchRequest"]["properties"]["take"]["maximum"],
            MAX_TAKE
        );
        assert_eq!(schemas["MessageFilter"]["additionalProperties"], false);
        assert_eq!(
            schemas["ErrorBody"]["required"],
            serde_json::json!(["code", "message"])
        );
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                if path == "/openapi.json" {
                    continue;
                }
                assert_eq!(
                    op["responses"]["400"]["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path}"
                );
            }
        }
    }
}
