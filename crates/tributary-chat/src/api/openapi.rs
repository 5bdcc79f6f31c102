//! The OpenAPI 3.1 document of the REST API, derived from the code: each
//! route is registered together with its `#[utoipa::path]` documentation
//! (`utoipa_axum::routes!` in [`super::rest`]), and the schemas are derived
//! from the very types the handlers read and write. A route cannot be served
//! undocumented; `tests/api.rs` calls every documented operation.

/// Title, version and description of the document.
#[derive(utoipa::OpenApi)]
#[openapi(info(
    title = "Tributary chat archive",
    description = "Telegram Desktop exports in a searchable archive: import, search, count, delete, per-user counts, audit log, CSV/Parquet backup and restore. Every error is `{\"code\", \"message\"}` (schema `ErrorBody`)."
))]
pub(super) struct ApiDoc;

/// The document served at `/openapi.json`.
pub fn document() -> utoipa::openapi::OpenApi {
    tributary_runtime::openapi::with_document(super::rest::routes(), |_| {}).1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::filter::MAX_TAKE;

    // Proves: the derived schemas carry the rules the code enforces and the
    // shared error body, and every operation documents its error body.
    #[test]
    fn schemas_follow_the_types() {
        let doc = tributary_runtime::openapi::assert_error_bodies(&document(), &["400"]);
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["SearchRequest"]["properties"]["take"]["maximum"],
            MAX_TAKE
        );
        assert_eq!(schemas["MessageFilter"]["additionalProperties"], false);
    }
}
