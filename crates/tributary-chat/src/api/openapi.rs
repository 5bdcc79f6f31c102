//! The OpenAPI 3.0 document of the REST API, written by hand. A test
//! (`tests/api.rs`) calls every operation listed in [`OPERATIONS`] through
//! the router, so the document and the routes cannot drift apart.

use serde_json::{json, Value};

/// (method, path) of every operation in the document.
pub const OPERATIONS: [(&str, &str); 10] = [
    ("get", "/openapi.json"),
    ("post", "/api/chat/import"),
    ("post", "/api/chat/messages/search"),
    ("post", "/api/chat/messages/count"),
    ("post", "/api/chat/messages/delete"),
    ("get", "/api/chat/users"),
    ("get", "/api/chat/users/{id}"),
    ("get", "/api/chat/audit"),
    ("post", "/api/chat/backup"),
    ("post", "/api/chat/restore"),
];

fn body(schema: &str) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
}

fn ok(schema: Value) -> Value {
    json!({
        "200": {"description": "OK", "content": {"application/json": {"schema": schema}}},
        "400": {"description": "Bad request", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        "500": {"description": "Internal error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    })
}

fn ndjson(progress: &str, done: &str) -> Value {
    json!({"200": {"description": format!("NDJSON stream: lines {{\"progress\": {progress}}}, then one {{\"done\": {done}}} or {{\"error\": string}}"),
        "content": {"application/x-ndjson": {"schema": {"type": "object", "properties": {
            "progress": {"$ref": format!("#/components/schemas/{progress}")},
            "done": {"$ref": format!("#/components/schemas/{done}")},
            "error": {"type": "string"}}}}}}})
}

fn r(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn opt(t: &str) -> Value {
    json!({"type": t, "nullable": true})
}

/// The document served at `/openapi.json`.
pub fn document() -> Value {
    let s = |t: &str| json!({"type": t});
    let time = json!({"type": "string", "format": "date-time", "nullable": true});
    json!({
        "openapi": "3.0.3",
        "info": {"title": "Tributary chat archive", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Telegram Desktop exports in a searchable archive: import, search, count, delete, per-user counts, audit log, CSV/Parquet backup and restore."},
        "paths": {
            "/openapi.json": {"get": {"operationId": "openapi", "summary": "This document", "responses": {"200": {"description": "OpenAPI document"}}}},
            "/api/chat/import": {"post": {"operationId": "import", "summary": "Import a file, directory or zip on the server (idempotent)",
                "requestBody": body("ImportBody"), "responses": ndjson("ImportProgress", "ImportReport")}},
            "/api/chat/messages/search": {"post": {"operationId": "searchMessages", "summary": "A page of messages",
                "requestBody": body("SearchRequest"), "responses": ok(json!({"type": "object", "properties": {"messages": {"type": "array", "items": r("Message")}}}))}},
            "/api/chat/messages/count": {"post": {"operationId": "countMessages", "summary": "Number of matching messages",
                "requestBody": body("MessageFilter"), "responses": ok(json!({"type": "object", "properties": {"count": s("integer")}}))}},
            "/api/chat/messages/delete": {"post": {"operationId": "deleteMessages", "summary": "Delete matching messages (an empty filter needs all=true)",
                "requestBody": body("DeleteBody"), "responses": ok(json!({"type": "object", "properties": {"deleted": s("integer")}}))}},
            "/api/chat/users": {"get": {"operationId": "users", "summary": "Senders by message count, largest first",
                "parameters": [{"name": "limit", "in": "query", "required": false, "schema": s("integer")}],
                "responses": ok(json!({"type": "array", "items": r("UserCount")}))}},
            "/api/chat/users/{id}": {"get": {"operationId": "user", "summary": "One sender's count (0 when unknown)",
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": s("string")}],
                "responses": ok(r("UserCount"))}},
            "/api/chat/audit": {"get": {"operationId": "audit", "summary": "Stored log records, newest first",
                "parameters": [
                    {"name": "service", "in": "query", "required": false, "schema": s("string")},
                    {"name": "level", "in": "query", "required": false, "description": "minimum level: error, warn, info, debug, trace", "schema": s("string")},
                    {"name": "from", "in": "query", "required": false, "schema": {"type": "string", "format": "date-time"}},
                    {"name": "to", "in": "query", "required": false, "schema": {"type": "string", "format": "date-time"}},
                    {"name": "take", "in": "query", "required": false, "schema": s("integer")},
                    {"name": "skip", "in": "query", "required": false, "schema": s("integer")}],
                "responses": ok(json!({"type": "array", "items": r("AuditRecord")}))}},
            "/api/chat/backup": {"post": {"operationId": "backup", "summary": "Export matching messages to one CSV or Parquet file",
                "requestBody": body("BackupBody"), "responses": ndjson("BackupProgress", "BackupReport")}},
            "/api/chat/restore": {"post": {"operationId": "restore", "summary": "Import a backup (idempotent)",
                "requestBody": body("RestoreBody"), "responses": ndjson("ImportProgress", "ImportReport")}}
        },
        "components": {"schemas": {
            "Error": {"type": "object", "properties": {"error": s("string")}},
            "ImportBody": {"type": "object", "required": ["path"], "properties": {"path": s("string")}},
            "MessageFilter": {"type": "object", "additionalProperties": false, "properties": {
                "id": opt("integer"), "min_created": time.clone(), "max_created": time.clone(),
                "text": {"type": "string", "nullable": true, "description": "case-sensitive substring"},
                "query": {"type": "string", "nullable": true, "description": "full-text: every word must occur"},
                "user_ids": {"type": "array", "items": s("string")},
                "chat_ids": {"type": "array", "items": s("integer")},
                "chat_names": {"type": "array", "items": s("string")}}},
            "Sort": {"type": "object", "required": ["field"], "properties": {
                "field": {"type": "string", "enum": ["created", "id", "chat", "user"]}, "desc": s("boolean")}},
            "SearchRequest": {"type": "object", "additionalProperties": false, "properties": {
                "filter": r("MessageFilter"), "sorts": {"type": "array", "items": r("Sort")},
                "take": {"type": "integer", "minimum": 1, "maximum": 10000, "nullable": true}, "skip": s("integer")}},
            "DeleteBody": {"type": "object", "properties": {"filter": r("MessageFilter"), "all": s("boolean")}},
            "BackupBody": {"type": "object", "required": ["target"], "properties": {"filter": r("MessageFilter"),
                "target": {"oneOf": [{"type": "object", "properties": {"dir": s("string")}}, {"type": "string", "enum": ["objects"]}]},
                "format": {"type": "string", "enum": ["csv", "parquet"], "default": "csv",
                    "description": "csv: RFC 4180 with a header row; parquet: one file, one row group per page of 5000 messages"}}},
            "RestoreBody": {"type": "object", "required": ["source"], "properties": {"source": {"oneOf": [
                {"type": "object", "properties": {"path": s("string")}}, {"type": "object", "properties": {"object": s("string")}}]}}},
            "ImportProgress": {"type": "object", "properties": {"file": opt("string"), "files_started": s("integer"), "parsed": s("integer"), "inserted": s("integer"), "errors": s("integer")}},
            "ReportedError": {"type": "object", "properties": {"file": s("string"), "position": s("string"), "reason": s("string")}},
            "ImportReport": {"type": "object", "properties": {"files": s("integer"), "files_failed": s("integer"), "files_ignored": s("integer"),
                "parsed": s("integer"), "skipped": s("integer"), "inserted": s("integer"), "duplicates": s("integer"),
                "errors": {"type": "array", "items": r("ReportedError")}, "errors_not_listed": s("integer")}},
            "BackupProgress": {"type": "object", "properties": {"messages": s("integer"), "bytes": s("integer")}},
            "BackupReport": {"type": "object", "properties": {"location": s("string"), "messages": s("integer"), "bytes": s("integer")}},
            "UserCount": {"type": "object", "properties": {"id": s("string"), "name": opt("string"), "count": s("integer")}},
            "AuditRecord": {"type": "object", "properties": {"id": s("string"), "service": s("string"), "level": s("string"),
                "message": s("string"), "target": s("string"), "fields": s("string"), "created": {"type": "string", "format": "date-time"}}},
            "Link": {"type": "object", "properties": {"text": s("string"), "href": s("string")}},
            "Message": {"type": "object", "properties": {
                "chat": s("string"), "chat_id": opt("integer"), "chat_name": s("string"), "id": s("integer"),
                "kind": {"type": "string", "enum": ["message", "service"]}, "date": opt("string"), "date_offset": opt("integer"),
                "created": time, "edited": opt("string"), "edited_offset": opt("integer"), "from": opt("string"),
                "from_id": opt("string"), "user": opt("string"), "forwarded_from": opt("string"), "reply_to": opt("integer"),
                "via_bot": opt("string"), "text": s("string"), "links": {"type": "array", "items": r("Link")},
                "media_type": opt("string"), "action": opt("string"), "actor": opt("string"), "actor_id": opt("string")}}
        }}
    })
}
