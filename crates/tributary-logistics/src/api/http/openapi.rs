//! The OpenAPI 3.1 document of the HTTP routes, derived from the code: each
//! route is registered together with its `#[utoipa::path]` documentation
//! (`utoipa_axum::routes!` in [`super`]), and the schemas are derived from
//! the very types the handlers read and write, so the document and the
//! routes cannot drift apart (`tests/api.rs` calls every documented
//! operation).

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
    tributary_runtime::openapi::with_document(super::routes(), adjust).1
}

/// What the derive cannot say: an update must change something
/// (`NoChanges` is 400). Set here because `#[schema(min_properties = 1)]`
/// is emitted as `maxProperties` by utoipa-gen 5.5.0.
pub(super) fn adjust(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{schema::Schema, RefOr};
    if let Some(RefOr::T(Schema::Object(update))) = doc
        .components
        .as_mut()
        .and_then(|c| c.schemas.get_mut("UpdatePackage"))
    {
        update.min_properties = Some(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves: the derived schemas carry the validation rules of the bodies
    // and every package operation documents the shared error body.
    #[test]
    fn schemas_follow_the_types() {
        let doc = tributary_runtime::openapi::assert_error_bodies(&document(), &["400", "500"]);
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
    }
}
