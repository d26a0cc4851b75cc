//! [`PveApi`]: our implementation of `proxmox_api::client::Client`, so the
//! crate's generated PVE 9.1.2 sub-clients (`NodesClient`, `ClusterClient`,
//! `VersionClient`) and their typed parameters and outputs run over
//! [`PveClient`] — our auth, TLS trust, retries and typed [`PveError`]. The
//! crate's bundled reqwest client (feature `reqwest-client`) is never built:
//! it accepts invalid certificates.

use std::sync::Arc;

use proxmox_api::client::{Client, Method};
use proxmox_api::cluster::ClusterClient;
use proxmox_api::nodes::node::NodeClient;
use proxmox_api::nodes::NodesClient;
use proxmox_api::version::VersionClient;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::client::enc;
use super::{PveClient, PveError};
use crate::retry::RetryPolicy;

/// A cheap-to-clone handle (an `Arc` to the target's transport, a retry
/// budget and the command's cancellation) that the generated sub-clients
/// call through.
#[derive(Debug, Clone)]
pub struct PveApi {
    transport: Arc<PveClient>,
    retry: RetryPolicy,
    cancel: CancellationToken,
}

impl PveApi {
    /// Calls use the connection's retry budget and stop when `cancel` fires.
    pub fn new(transport: Arc<PveClient>, cancel: CancellationToken) -> Self {
        PveApi {
            retry: transport.connection().retry,
            transport,
            cancel,
        }
    }

    /// The same handle with another retry budget (single-attempt clone
    /// dispatch, task polling).
    pub fn with_retry(&self, retry: RetryPolicy) -> Self {
        PveApi {
            retry,
            ..self.clone()
        }
    }

    pub fn transport(&self) -> &PveClient {
        &self.transport
    }

    pub fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    pub fn cancel(&self) -> &CancellationToken {
        &self.cancel
    }

    /// `/nodes/{node}` (the name is percent-encoded here).
    pub fn node(&self, node: &str) -> NodeClient<PveApi> {
        NodesClient::new(self.clone()).node(&enc(node))
    }

    /// `/cluster`
    pub fn cluster(&self) -> ClusterClient<PveApi> {
        ClusterClient::new(self.clone())
    }

    /// `/version`
    pub fn version(&self) -> VersionClient<PveApi> {
        VersionClient::new(self.clone())
    }
}

impl Client for PveApi {
    type Error = PveError;

    async fn request_with_body_and_query<B, Q, R>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        query: Option<&Q>,
    ) -> Result<R, PveError>
    where
        B: Serialize,
        Q: Serialize,
        R: DeserializeOwned,
    {
        let query = match query {
            Some(q) => form_params(q)?,
            None => Vec::new(),
        };
        let form = body.map(form_params).transpose()?;
        self.transport
            .call(
                http_method(method),
                path,
                &query,
                form.as_deref(),
                &self.retry,
                &self.cancel,
            )
            .await
    }
}

fn http_method(method: Method) -> reqwest::Method {
    match method {
        Method::Get => reqwest::Method::GET,
        Method::Post => reqwest::Method::POST,
        Method::Put => reqwest::Method::PUT,
        Method::Delete => reqwest::Method::DELETE,
    }
}

/// Typed parameters as PVE form/query pairs: the crate serialises booleans
/// as `1`/`0` and indexed keys (`ide2`, `net0`) by name; unset options are
/// skipped. `()` (no parameters) gives no pairs.
pub(super) fn form_params<T: Serialize>(params: &T) -> Result<Vec<(String, String)>, PveError> {
    let map = match serde_json::to_value(params) {
        Ok(Value::Object(map)) => map,
        Ok(Value::Null) => return Ok(Vec::new()),
        Ok(other) => {
            return Err(PveError::InvalidParams(format!(
                "parameters must be an object, got {other}"
            )))
        }
        Err(e) => return Err(PveError::InvalidParams(e.to_string())),
    };
    let mut pairs = Vec::with_capacity(map.len());
    for (key, value) in map {
        let text = match value {
            Value::Null => continue,
            Value::Bool(b) => if b { "1" } else { "0" }.to_string(),
            Value::Number(n) => n.to_string(),
            Value::String(s) => s,
            other => {
                return Err(PveError::InvalidParams(format!(
                    "{key} must be a string, number or boolean, got {other}"
                )))
            }
        };
        pairs.push((key, text));
    }
    Ok(pairs)
}

/// A typed PVE output as the JSON the action returns. PVE (Perl) writes
/// integral numbers without a fraction; the crate's `f64` fields would turn
/// `0` into `0.0`, so integral floats are written back as integers and the
/// result matches what PVE sent.
pub(crate) fn pve_json<T: Serialize>(output: &T) -> Result<Value, PveError> {
    fn integral_floats_as_integers(v: &mut Value) {
        match v {
            Value::Number(n) if n.is_f64() => {
                if let Some(f) = n.as_f64() {
                    if f.fract() == 0.0 && f.abs() < 9.0e15 {
                        *v = Value::from(f as i64);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(integral_floats_as_integers),
            Value::Object(map) => map.values_mut().for_each(integral_floats_as_integers),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(output)
        .map_err(|e| PveError::BadResponse(format!("cannot re-encode a PVE answer: {e}")))?;
    integral_floats_as_integers(&mut v);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proxmox_api::cluster::resources;
    use proxmox_api::nodes::node::qemu;
    use proxmox_api::nodes::node::qemu::vmid::{clone, config};
    use serde_json::json;

    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn booleans_are_sent_as_one_and_zero() {
        let params = qemu::vmid::DeleteParams {
            purge: Some(true),
            destroy_unreferenced_disks: Some(false),
            ..Default::default()
        };
        assert_eq!(
            form_params(&params).unwrap(),
            pairs(&[("destroy-unreferenced-disks", "0"), ("purge", "1")])
        );
        let mut clone = clone::PostParams::new(clone::NewidInt::try_from(101).unwrap());
        clone.full = Some(false);
        clone.name = Some("bot-101".into());
        assert_eq!(
            form_params(&clone).unwrap(),
            pairs(&[("full", "0"), ("name", "bot-101"), ("newid", "101")])
        );
    }

    #[test]
    fn indexed_keys_and_additional_properties_are_sent_by_name() {
        let params = config::PutParams {
            ides: HashMap::from([(2, "local:iso/x.iso,media=cdrom".to_string())]),
            nets: HashMap::from([(0, "virtio,bridge=vmbr0".to_string())]),
            onboot: Some(true),
            memory: Some("2048".into()),
            additional_properties: HashMap::from([("x-extra".to_string(), json!(7))]),
            ..Default::default()
        };
        assert_eq!(
            form_params(&params).unwrap(),
            pairs(&[
                ("ide2", "local:iso/x.iso,media=cdrom"),
                ("memory", "2048"),
                ("net0", "virtio,bridge=vmbr0"),
                ("onboot", "1"),
                ("x-extra", "7"),
            ])
        );
    }

    #[test]
    fn no_parameters_and_enums() {
        assert!(form_params(&()).unwrap().is_empty());
        assert!(form_params(&qemu::GetParams::default()).unwrap().is_empty());
        let params = resources::GetParams {
            ty: Some(resources::Type::Vm),
            ..Default::default()
        };
        assert_eq!(form_params(&params).unwrap(), pairs(&[("type", "vm")]));
    }

    #[test]
    fn non_scalar_parameters_are_refused() {
        let e = form_params(&json!({"a": [1, 2]})).unwrap_err();
        assert_eq!(e.code(), "BAD_REQUEST");
        assert!(e.to_string().contains("a must be a string"), "{e}");
        let e = form_params(&json!("x")).unwrap_err();
        assert_eq!(e.code(), "BAD_REQUEST");
    }

    #[test]
    fn outputs_keep_pve_number_encoding() {
        let out = json!({"cpu": 0.0, "mem": 1.5, "nested": [{"n": 3.0}], "name": "x", "i": 4});
        assert_eq!(
            pve_json(&out).unwrap(),
            json!({"cpu": 0, "mem": 1.5, "nested": [{"n": 3}], "name": "x", "i": 4})
        );
        let item: qemu::GetOutputItems =
            serde_json::from_str(r#"{"vmid":101,"status":"running","cpu":0,"template":1}"#)
                .unwrap();
        assert_eq!(
            pve_json(&item).unwrap(),
            json!({"vmid": 101, "status": "running", "cpu": 0, "template": 1})
        );
    }
}
