//! `schema.graphql` has every type, field, argument (with its type) and
//! enum value of the contract's SDL (`contract.graphql`, API.md §3).

use std::collections::BTreeMap;

use async_graphql::parser::parse_schema;
use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};

/// `Type.field` → its type; `Type.field(arg)` → its type; `Enum::VALUE`;
/// `Type` → its kind.
fn shape(sdl: &str) -> BTreeMap<String, String> {
    let doc = parse_schema(sdl).expect("SDL parses");
    let mut out = BTreeMap::new();
    for def in doc.definitions {
        let TypeSystemDefinition::Type(ty) = def else {
            continue;
        };
        let name = ty.node.name.node.to_string();
        match &ty.node.kind {
            TypeKind::Scalar => {
                out.insert(name, "scalar".into());
            }
            TypeKind::Object(object) => {
                out.insert(name.clone(), "type".into());
                for field in &object.fields {
                    let f = &field.node;
                    out.insert(format!("{name}.{}", f.name.node), f.ty.node.to_string());
                    for arg in &f.arguments {
                        out.insert(
                            format!("{name}.{}({})", f.name.node, arg.node.name.node),
                            arg.node.ty.node.to_string(),
                        );
                    }
                }
            }
            TypeKind::InputObject(input) => {
                out.insert(name.clone(), "input".into());
                for field in &input.fields {
                    out.insert(
                        format!("{name}.{}", field.node.name.node),
                        field.node.ty.node.to_string(),
                    );
                }
            }
            TypeKind::Enum(values) => {
                out.insert(name.clone(), "enum".into());
                for value in &values.values {
                    out.insert(format!("{name}::{}", value.node.value.node), String::new());
                }
            }
            _ => {
                out.insert(name, "other".into());
            }
        }
    }
    out
}

#[test]
fn schema_graphql_has_everything_the_contract_names() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let contract = shape(include_str!("contract.graphql"));
    let ours = shape(&std::fs::read_to_string(root.join("../schema.graphql")).unwrap());
    assert!(contract.len() > 150, "the contract parses into its parts");
    let missing: Vec<String> = contract
        .iter()
        .filter(|(key, kind)| ours.get(*key) != Some(kind))
        .map(|(key, kind)| format!("{key}: {kind} (ours: {:?})", ours.get(key)))
        .collect();
    assert!(
        missing.is_empty(),
        "schema.graphql differs from the contract:\n{}",
        missing.join("\n")
    );
}
