//! The simulator's answers match the `returns` schema of PVE 9.1.2.

use pve_sim::schema::check_returns;
use reqwest::Method;

use crate::common::{encode, start_sim, Api};

#[tokio::test]
async fn responses_match_the_returns_schema() {
    let sim = start_sim().await;
    let api = Api::token(&sim);
    let clone = api
        .ok(
            Method::POST,
            "/nodes/pve/qemu/9000/clone",
            &[("newid", "150"), ("full", "1")],
        )
        .await;
    let upid = clone.as_str().unwrap().to_string();
    api.wait_task(&upid).await;
    let start = api
        .ok(Method::POST, "/nodes/pve/qemu/150/status/start", &[])
        .await;
    api.wait_task(start.as_str().unwrap()).await;

    let cases = [
        ("/version", "/version"),
        ("/nodes", "/nodes"),
        ("/nodes/pve/status", "/nodes/{node}/status"),
        ("/nodes/pve/qemu", "/nodes/{node}/qemu"),
        (
            "/nodes/pve/qemu/150/config",
            "/nodes/{node}/qemu/{vmid}/config",
        ),
        (
            "/nodes/pve/qemu/150/status/current",
            "/nodes/{node}/qemu/{vmid}/status/current",
        ),
        (
            "/nodes/pve/qemu/9000/status/current",
            "/nodes/{node}/qemu/{vmid}/status/current",
        ),
        ("/cluster/resources", "/cluster/resources"),
        ("/cluster/nextid", "/cluster/nextid"),
        ("/nodes/pve/storage", "/nodes/{node}/storage"),
        (
            "/nodes/pve/storage/local-lvm/status",
            "/nodes/{node}/storage/{storage}/status",
        ),
        (
            "/nodes/pve/storage/local-lvm/content",
            "/nodes/{node}/storage/{storage}/content",
        ),
    ];
    let mut problems = Vec::new();
    for (path, template) in cases {
        let data = api.ok(Method::GET, path, &[]).await;
        let schema = sim.schema().method(template, "GET").expect("GET in schema");
        for p in check_returns(&schema.returns, &data) {
            problems.push(format!("GET {path}: {p}"));
        }
    }
    for suffix in ["status", "log"] {
        let path = format!("/nodes/pve/tasks/{}/{suffix}", encode(&upid));
        let data = api.ok(Method::GET, &path, &[]).await;
        let template = format!("/nodes/{{node}}/tasks/{{upid}}/{suffix}");
        let schema = sim.schema().method(&template, "GET").unwrap();
        for p in check_returns(&schema.returns, &data) {
            problems.push(format!("GET {template}: {p}"));
        }
    }
    let login = Api::login(&sim).await;
    let (_, body) = login
        .post(
            "/access/ticket",
            &[("username", "root@pam"), ("password", sim.password())],
        )
        .await;
    let schema = sim.schema().method("/access/ticket", "POST").unwrap();
    problems.extend(check_returns(&schema.returns, &body["data"]));
    assert!(problems.is_empty(), "{problems:#?}");
    sim.assert_no_violations();
}
