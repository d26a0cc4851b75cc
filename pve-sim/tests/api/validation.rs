use pve_sim::ViolationKind;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{start_sim, Api};

fn param_errors(v: &pve_sim::Violation) -> Vec<String> {
    match &v.kind {
        ViolationKind::InvalidParameters { errors } => errors.keys().cloned().collect(),
        other => panic!("expected invalid parameters, got {other:?}"),
    }
}

#[tokio::test]
async fn invalid_parameters_are_rejected_and_recorded() {
    let sim = start_sim().await;
    let api = Api::token(&sim);

    // Unknown parameter.
    let (status, body) = api
        .send(Method::GET, "/nodes/pve/qemu", &[("colour", "red")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["errors"]["colour"],
        "property is not defined in schema and the schema does not allow additional properties"
    );
    assert_eq!(body["data"], serde_json::Value::Null);

    // Wrong type.
    let (status, body) = api
        .put("/nodes/pve/qemu/9000/config", &[("cores", "many")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["errors"]["cores"],
        "type check ('integer') failed - got 'many'"
    );

    // Bad enum.
    let (status, body) = api
        .put("/nodes/pve/qemu/9000/config", &[("ostype", "win99")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["errors"]["ostype"]
        .as_str()
        .unwrap()
        .contains("enumeration"));

    // Missing required parameter.
    let (status, body) = api
        .post("/nodes/pve/qemu/9000/clone", &[("name", "x")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["errors"]["newid"],
        "property is missing and it is not optional"
    );

    // Path parameter out of range, bad property string, index out of range.
    let (status, body) = api.get("/nodes/pve/qemu/42/config").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["errors"]["vmid"].as_str().unwrap().contains("minimum"));
    let (status, body) = api
        .put(
            "/nodes/pve/qemu/9000/config",
            &[("net0", "rtl9999,bridge=vmbr0")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["errors"]["net0"]
            .as_str()
            .unwrap()
            .contains("invalid format"),
        "{body}"
    );
    let (status, _) = api
        .put(
            "/nodes/pve/qemu/9000/config",
            &[("ide4", "none,media=cdrom")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let v = sim.violations();
    assert_eq!(v.len(), 7, "{v:#?}");
    assert_eq!(param_errors(&v[0]), vec!["colour"]);
    assert_eq!(param_errors(&v[1]), vec!["cores"]);
    assert_eq!(param_errors(&v[2]), vec!["ostype"]);
    assert_eq!(param_errors(&v[3]), vec!["newid"]);
    assert_eq!(
        v[3].template.as_deref(),
        Some("/nodes/{node}/qemu/{vmid}/clone")
    );
    assert_eq!(param_errors(&v[6]), vec!["ide4"]);
    // Nothing was applied.
    assert_eq!(sim.vm(9000).unwrap().config["cores"], "2");
    sim.clear_violations();
    assert!(sim.violations().is_empty());
}

#[tokio::test]
async fn unknown_paths_and_methods_are_recorded() {
    let sim = start_sim().await;
    let api = Api::token(&sim);
    let (status, body) = api.get("/nodes/pve/bogus").await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED);
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("not implemented"));
    let (status, _) = api.post("/version", &[]).await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED);
    // Valid per schema, but not simulated: flagged too (also when only
    // another method of the path is simulated).
    let (status, _) = api.get("/nodes/pve/qemu/9000/pending").await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED);
    let (status, _) = api.get("/nodes/pve/qemu/9000").await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED);

    let v = sim.violations();
    assert_eq!(v.len(), 4, "{v:#?}");
    assert_eq!(v[3].kind, ViolationKind::NotSimulated);
    assert_eq!(v[0].kind, ViolationKind::UnknownPath);
    assert!(
        matches!(&v[1].kind, ViolationKind::UnknownMethod { allowed } if allowed == &vec!["GET".to_string()])
    );
    assert_eq!(v[2].kind, ViolationKind::NotSimulated);
    assert_eq!(
        v[2].template.as_deref(),
        Some("/nodes/{node}/qemu/{vmid}/pending")
    );
}

#[tokio::test]
async fn json_bodies_and_booleans_are_accepted() {
    let sim = start_sim().await;
    let api = Api::token(&sim);
    let resp = api
        .request(Method::PUT, "/nodes/pve/qemu/9000/config")
        .json(&json!({"cores": 4, "numa": true, "tags": "win;bot"}))
        .send()
        .await
        .unwrap();
    let (status, body) = Api::read(resp).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let vm = sim.vm(9000).unwrap();
    assert_eq!(vm.config["cores"], "4");
    assert_eq!(vm.config["numa"], "1");
    // GET returns typed values like PVE.
    let config = api
        .ok(Method::GET, "/nodes/pve/qemu/9000/config", &[])
        .await;
    assert_eq!(config["cores"], 4);
    assert_eq!(config["numa"], 1);
    assert_eq!(config["template"], 1);
    assert_eq!(config["memory"], "4096");

    let resp = api
        .request(Method::PUT, "/nodes/pve/qemu/9000/config")
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let v = sim.violations();
    assert_eq!(v.len(), 1);
    assert!(matches!(v[0].kind, ViolationKind::MalformedBody { .. }));
}

#[tokio::test]
async fn uri_duplicates_and_delete_options_are_checked() {
    let sim = start_sim().await;
    let api = Api::token(&sim);
    let (status, body) = api
        .put(
            "/nodes/pve/qemu/9000/config",
            &[("vmid", "9000"), ("cores", "3")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["errors"]["vmid"],
        "duplicate parameter (already defined in URI)"
    );
    assert_eq!(sim.violations().len(), 1);

    let (status, body) = api
        .put(
            "/nodes/pve/qemu/9000/config",
            &[("delete", "flux_capacitor")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"]["delete"], "unknown option 'flux_capacitor'");
    let (status, body) = api
        .put(
            "/nodes/pve/qemu/9000/config",
            &[("delete", "cores"), ("cores", "3")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["errors"]["delete"]
        .as_str()
        .unwrap()
        .contains("at the same time"));
    assert_eq!(sim.vm(9000).unwrap().config["cores"], "2");
}
