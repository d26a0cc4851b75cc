//! The embedded PVE 9.1.2 API schema: loading, path resolution and typed
//! parameter descriptions.

mod formats;
mod model;
mod propstring;
mod regex_compat;
mod returns;
mod validate;

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::{Arc, OnceLock};

use serde_json::Value;

pub use model::{Format, MethodSchema, ObjectSchema, PropSchema};
pub use returns::check_returns;
pub use validate::{parse_bool as parse_bool_value, validate_params, ParamErrors};

use crate::error::SimError;

/// The xz-compressed apidoc tree (`pve-docs/api-viewer/apidata.js` as JSON).
static SCHEMA_XZ: &[u8] = include_bytes!("../../schema/pve-api-schema-9.1.2.json.xz");

/// PVE version the embedded schema was taken from.
pub const SCHEMA_VERSION: &str = "9.1.2";

/// The parsed API schema: a tree of path segments with the methods of each path.
#[derive(Debug)]
pub struct ApiSchema {
    root: PathNode,
    path_count: usize,
}

#[derive(Debug, Default)]
struct PathNode {
    path: String,
    literals: BTreeMap<String, PathNode>,
    variable: Option<(String, Box<PathNode>)>,
    methods: BTreeMap<String, Arc<MethodSchema>>,
}

/// A request path matched against the schema.
#[derive(Debug, Clone)]
pub struct ResolvedPath {
    /// The schema path template, e.g. `/nodes/{node}/qemu/{vmid}/config`.
    pub template: String,
    /// Values of the template variables, percent-decoded.
    pub vars: Vec<(String, String)>,
    methods: BTreeMap<String, Arc<MethodSchema>>,
}

impl ResolvedPath {
    /// The schema of `method` (upper case) on this path, if the schema defines it.
    pub fn method(&self, method: &str) -> Option<Arc<MethodSchema>> {
        self.methods.get(method).cloned()
    }

    /// Methods the schema defines on this path.
    pub fn method_names(&self) -> Vec<String> {
        self.methods.keys().cloned().collect()
    }
}

static GLOBAL: OnceLock<Result<Arc<ApiSchema>, String>> = OnceLock::new();

/// The embedded schema, decompressed and parsed once per process.
pub fn embedded() -> Result<Arc<ApiSchema>, SimError> {
    GLOBAL
        .get_or_init(|| {
            ApiSchema::from_xz(SCHEMA_XZ)
                .map(Arc::new)
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(SimError::Schema)
}

impl ApiSchema {
    /// Decompresses and parses an xz-compressed apidoc JSON tree.
    pub fn from_xz(bytes: &[u8]) -> Result<Self, SimError> {
        let mut json = Vec::with_capacity(4 << 20);
        lzma_rs::xz_decompress(&mut Cursor::new(bytes), &mut json)
            .map_err(|e| SimError::Schema(format!("xz decode failed: {e:?}")))?;
        let value: Value = serde_json::from_slice(&json)
            .map_err(|e| SimError::Schema(format!("schema JSON is invalid: {e}")))?;
        Self::from_json(&value)
    }

    /// Builds the schema from the apidoc tree (a JSON array of path nodes).
    pub fn from_json(value: &Value) -> Result<Self, SimError> {
        let top = value
            .as_array()
            .ok_or_else(|| SimError::Schema("schema root is not an array".into()))?;
        let mut schema = ApiSchema {
            root: PathNode {
                path: "/".into(),
                ..PathNode::default()
            },
            path_count: 0,
        };
        for node in top {
            schema.insert_tree(node)?;
        }
        Ok(schema)
    }

    fn insert_tree(&mut self, node: &Value) -> Result<(), SimError> {
        let path = node
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| SimError::Schema("schema node without path".into()))?;
        let mut methods = BTreeMap::new();
        if let Some(info) = node.get("info").and_then(Value::as_object) {
            for (method, desc) in info {
                let parsed = MethodSchema::from_json(path, method, desc)?;
                methods.insert(method.to_ascii_uppercase(), Arc::new(parsed));
            }
        }
        let target = self.node_for_template(path);
        target.path = path.to_string();
        target.methods = methods;
        self.path_count += 1;
        if let Some(children) = node.get("children").and_then(Value::as_array) {
            for child in children {
                self.insert_tree(child)?;
            }
        }
        Ok(())
    }

    fn node_for_template(&mut self, template: &str) -> &mut PathNode {
        let mut cur = &mut self.root;
        for seg in template.split('/').filter(|s| !s.is_empty()) {
            if let Some(var) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                let slot = cur
                    .variable
                    .get_or_insert_with(|| (var.to_string(), Box::default()));
                cur = &mut slot.1;
            } else {
                cur = cur.literals.entry(seg.to_string()).or_default();
            }
        }
        cur
    }

    /// Number of paths in the schema.
    pub fn path_count(&self) -> usize {
        self.path_count
    }

    /// Resolves a request path relative to `/api2/json` (e.g. `/nodes/pve/qemu`).
    /// Segments are percent-decoded after splitting, so `%2F` stays inside one
    /// variable. Literal segments win over variables, as in PVE's router.
    pub fn resolve(&self, path: &str) -> Option<ResolvedPath> {
        let segments: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect();
        let mut vars = Vec::new();
        let node = Self::walk(&self.root, &segments, &mut vars)?;
        if node.methods.is_empty() && node.path.is_empty() {
            return None;
        }
        Some(ResolvedPath {
            template: node.path.clone(),
            vars,
            methods: node.methods.clone(),
        })
    }

    fn walk<'a>(
        node: &'a PathNode,
        segs: &[String],
        vars: &mut Vec<(String, String)>,
    ) -> Option<&'a PathNode> {
        let Some((first, rest)) = segs.split_first() else {
            return (!node.path.is_empty()).then_some(node);
        };
        if let Some(child) = node.literals.get(first) {
            if let Some(found) = Self::walk(child, rest, vars) {
                return Some(found);
            }
        }
        if let Some((name, child)) = &node.variable {
            vars.push((name.clone(), first.clone()));
            if let Some(found) = Self::walk(child, rest, vars) {
                return Some(found);
            }
            vars.pop();
        }
        None
    }

    /// Every method of every path, in path order.
    pub fn methods(&self) -> Vec<Arc<MethodSchema>> {
        fn collect(node: &PathNode, out: &mut Vec<Arc<MethodSchema>>) {
            out.extend(node.methods.values().cloned());
            for child in node.literals.values() {
                collect(child, out);
            }
            if let Some((_, child)) = &node.variable {
                collect(child, out);
            }
        }
        let mut out = Vec::new();
        collect(&self.root, &mut out);
        out
    }

    /// The method schema for a template path and method, for tests and tools.
    pub fn method(&self, template: &str, method: &str) -> Option<Arc<MethodSchema>> {
        let mut cur = &self.root;
        for seg in template.split('/').filter(|s| !s.is_empty()) {
            cur = if seg.starts_with('{') {
                &cur.variable.as_ref()?.1
            } else {
                cur.literals.get(seg)?
            };
        }
        cur.methods.get(&method.to_ascii_uppercase()).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns(prop: &PropSchema, out: &mut Vec<String>) {
        if let Some(p) = &prop.pattern {
            out.push(p.clone());
        }
        if let Some(Format::PropertyString(sub)) = &prop.format {
            for p in sub.values() {
                patterns(p, out);
            }
        }
        if let Some(items) = &prop.items {
            patterns(items, out);
        }
    }

    #[test]
    fn every_schema_pattern_compiles() {
        let schema = embedded().expect("schema");
        let methods = schema.methods();
        assert!(methods.len() > 600, "{}", methods.len());
        let mut all = Vec::new();
        for m in &methods {
            for p in m.parameters.properties.values() {
                patterns(p, &mut all);
            }
            for (_, _, p) in &m.parameters.indexed {
                patterns(p, &mut all);
            }
        }
        assert!(all.len() > 50);
        let failed: Vec<&String> = all
            .iter()
            .filter(|p| regex_compat::anchored(p).is_none())
            .collect();
        assert!(failed.is_empty(), "patterns not enforceable: {failed:#?}");
    }
}
