//! JSON Schema → the OpenAPI subset Gemini's function declarations and
//! `responseSchema` accept. Gemini rejects the whole request over keywords it
//! does not know, so those are stripped — schema-aware, so a property that
//! happens to be named `additionalProperties` survives.

use serde_json::{Map, Value};

/// Keywords Gemini refuses in a schema.
const UNSUPPORTED: &[&str] = &[
    "$schema",
    "$id",
    "$comment",
    "$defs",
    "definitions",
    "additionalProperties",
    "unevaluatedProperties",
    "patternProperties",
    "dependentRequired",
    "dependentSchemas",
    "strict",
];

/// Keywords whose value is one schema.
const SUBSCHEMA: &[&str] = &["items", "not"];
/// Keywords whose value is a list of schemas.
const SUBSCHEMA_LISTS: &[&str] = &["anyOf", "oneOf", "allOf", "prefixItems"];

pub fn clean(schema: &Value) -> Value {
    let Value::Object(object) = schema else {
        return schema.clone();
    };
    let mut out = Map::new();
    for (key, value) in object {
        if UNSUPPORTED.contains(&key.as_str()) {
            continue;
        }
        let cleaned = match value {
            Value::Object(properties) if key == "properties" => Value::Object(
                properties
                    .iter()
                    .map(|(name, schema)| (name.clone(), clean(schema)))
                    .collect(),
            ),
            _ if SUBSCHEMA.contains(&key.as_str()) => clean(value),
            Value::Array(list) if SUBSCHEMA_LISTS.contains(&key.as_str()) => {
                Value::Array(list.iter().map(clean).collect())
            }
            _ => value.clone(),
        };
        out.insert(key.clone(), cleaned);
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strips_what_gemini_rejects_at_every_level() {
        let schema = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "additionalProperties": {"type": "string", "$comment": "a property, kept"},
                "tags": {"type": "array", "items": {"type": "object", "additionalProperties": false,
                         "properties": {"n": {"type": "integer"}}}},
                "either": {"anyOf": [{"type": "string", "$id": "x"}, {"type": "null"}]},
            },
            "required": ["tags"],
        });
        assert_eq!(
            clean(&schema),
            json!({
                "type": "object",
                "properties": {
                    "additionalProperties": {"type": "string"},
                    "tags": {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "integer"}}}},
                    "either": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                },
                "required": ["tags"],
            })
        );
    }
}
