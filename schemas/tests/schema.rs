//! Integration tests of `chaoshub-schema`: the fixture corpus and Chaos Mesh examples, rejections
//! with paths, property tests, ProxyChaos and the checked-in JSON Schemas.

#[path = "schema/broken.rs"]
mod broken;
#[path = "schema/examples.rs"]
mod examples;
#[path = "schema/export.rs"]
mod export;
#[path = "schema/faults.rs"]
mod faults;
#[path = "schema/fixtures.rs"]
mod fixtures;
#[path = "schema/props.rs"]
mod props;
#[path = "schema/proxy.rs"]
mod proxy;
#[path = "schema/support.rs"]
mod support;
#[path = "schema/template.rs"]
mod template;
#[path = "schema/yaml.rs"]
mod yaml;
