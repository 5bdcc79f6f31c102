//! The OpenAPI 3.0 document of the HTTP routes (hand-written; a test checks
//! that every route of the router is described and nothing else).

use serde_json::{json, Value};

/// `(method, path)` of every documented operation, as the router spells the path.
pub const OPERATIONS: &[(&str, &str)] = &[
    ("post", "/v1/packages"),
    ("get", "/v1/packages"),
    ("get", "/v1/packages/{id}"),
    ("put", "/v1/packages/{id}"),
    ("delete", "/v1/packages/{id}"),
];

fn error_responses(not_found: bool) -> Value {
    let err = json!({"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let mut r = json!({
        "400": {"description": "invalid argument (the message names the field) or no changes specified", "content": err["content"].clone()},
        "500": {"description": "internal error (no details)", "content": err["content"].clone()},
    });
    if not_found {
        r["404"] = json!({"description": "package not found", "content": err["content"].clone()});
    }
    r
}

fn ok(schema: Value) -> Value {
    json!({"description": "OK", "content": {"application/json": {"schema": schema}}})
}

/// The document.
pub fn document() -> Value {
    let id_param = json!({"name": "id", "in": "path", "required": true,
        "schema": {"type": "integer", "format": "uint64", "minimum": 1}});
    let with = |mut errors: Value, good: Value| {
        errors["200"] = good;
        errors
    };
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Logistics package API",
            "version": "1.0.0",
            "description": "CRUD for packages; every change is published to Kafka topic omp-package-events through a transactional outbox. Send header `log_level: debug` to log one request at debug level (when the server allows it)."
        },
        "paths": {
            "/v1/packages": {
                "post": {
                    "operationId": "CreatePackageV1",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CreatePackage"}}}},
                    "responses": with(error_responses(false), ok(json!({"type": "object", "required": ["id"], "properties": {"id": {"type": "integer", "format": "uint64"}}})))
                },
                "get": {
                    "operationId": "ListPackagesV1",
                    "parameters": [
                        {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 0}, "description": "rows to skip; ignored with after_id"},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 0}, "description": "page size; 0 or absent = server default, clamped to the server maximum"},
                        {"name": "after_id", "in": "query", "schema": {"type": "integer", "minimum": 0}, "description": "cursor: only packages with a greater id"}
                    ],
                    "responses": with(error_responses(false), ok(json!({"type": "object", "required": ["packages"], "properties": {"packages": {"type": "array", "items": {"$ref": "#/components/schemas/Package"}}}})))
                }
            },
            "/v1/packages/{id}": {
                "get": {
                    "operationId": "DescribePackageV1",
                    "parameters": [id_param.clone()],
                    "responses": with(error_responses(true), ok(json!({"type": "object", "required": ["package"], "properties": {"package": {"$ref": "#/components/schemas/Package"}}})))
                },
                "put": {
                    "operationId": "UpdatePackageV1",
                    "parameters": [id_param.clone()],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/UpdatePackage"}}}},
                    "responses": with(error_responses(true), ok(json!({"$ref": "#/components/schemas/Ok"})))
                },
                "delete": {
                    "operationId": "RemovePackageV1",
                    "parameters": [id_param],
                    "responses": with(error_responses(true), ok(json!({"$ref": "#/components/schemas/Ok"})))
                }
            }
        },
        "components": {"schemas": {
            "Package": {"type": "object", "required": ["id", "title", "material", "maximum_volume", "reusable", "created"], "properties": {
                "id": {"type": "integer", "format": "uint64"},
                "title": {"type": "string", "minLength": 1, "maxLength": 32},
                "material": {"type": "string", "minLength": 1, "maxLength": 32},
                "maximum_volume": {"type": "number", "format": "float", "exclusiveMinimum": true, "minimum": 0},
                "reusable": {"type": "boolean"},
                "created": {"type": "string", "format": "date-time"},
                "updated": {"type": "string", "format": "date-time"}
            }},
            "CreatePackage": {"type": "object", "additionalProperties": false, "required": ["title", "material", "maximum_volume"], "properties": {
                "title": {"type": "string", "minLength": 1, "maxLength": 32},
                "material": {"type": "string", "minLength": 1, "maxLength": 32},
                "maximum_volume": {"type": "number", "format": "float", "exclusiveMinimum": true, "minimum": 0, "description": "cm³"},
                "reusable": {"type": "boolean", "default": false}
            }},
            "UpdatePackage": {"type": "object", "additionalProperties": false, "minProperties": 1, "properties": {
                "title": {"type": "string", "minLength": 1, "maxLength": 32},
                "material": {"type": "string", "minLength": 1, "maxLength": 32},
                "maximum_volume": {"type": "number", "format": "float", "exclusiveMinimum": true, "minimum": 0},
                "reusable": {"type": "boolean"}
            }},
            "Ok": {"type": "object", "required": ["ok"], "properties": {"ok": {"type": "boolean"}}},
            "Error": {"type": "object", "required": ["code", "message"], "properties": {
                "code": {"type": "string", "enum": ["invalid_argument", "not_found", "internal"]},
                "message": {"type": "string"}
            }}
        }}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves the document describes exactly the operations the router serves.
    #[test]
    fn document_matches_routes() {
        let doc = document();
        let mut found = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("item").keys() {
                found.push((method.clone(), path.clone()));
            }
        }
        found.sort();
        let mut want: Vec<(String, String)> = OPERATIONS
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        want.sort();
        assert_eq!(found, want);
    }
}
