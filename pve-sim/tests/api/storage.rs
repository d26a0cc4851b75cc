use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use sha2::{Digest, Sha256};

use crate::common::{assert_upid, encode, start_sim_in, Api};

fn iso_form(name: &str, bytes: Vec<u8>, checksum: Option<&str>) -> Form {
    let mut form = Form::new().text("content", "iso");
    if let Some(sum) = checksum {
        form = form
            .text("checksum", sum.to_string())
            .text("checksum-algorithm", "sha256");
    }
    form.part(
        "filename",
        Part::bytes(bytes)
            .file_name(name.to_string())
            .mime_str("application/octet-stream")
            .unwrap(),
    )
}

#[tokio::test]
async fn upload_with_checksum_lands_on_disk_and_can_be_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim_in(Some(dir.path().to_path_buf())).await;
    let api = Api::login(&sim).await;
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let sum = hex::encode(Sha256::digest(&payload));

    let resp = api
        .request(Method::POST, "/nodes/pve/storage/local/upload")
        .multipart(iso_form(
            "vm-100-provision.iso",
            payload.clone(),
            Some(&sum),
        ))
        .send()
        .await
        .unwrap();
    let (status, body) = Api::read(resp).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let upid = assert_upid(&body["data"], "imgcopy", "");
    let task = api.wait_task(&upid).await;
    assert_eq!(task["exitstatus"], "OK");

    let path = dir.path().join("local/iso/vm-100-provision.iso");
    assert_eq!(std::fs::read(&path).unwrap(), payload);

    let content = api
        .ok(
            Method::GET,
            "/nodes/pve/storage/local/content",
            &[("content", "iso")],
        )
        .await;
    let item = &content[0];
    assert_eq!(item["volid"], "local:iso/vm-100-provision.iso");
    assert_eq!(item["format"], "iso");
    assert_eq!(item["size"], payload.len());

    // Now it can be attached as CD-ROM.
    api.ok(
        Method::PUT,
        "/nodes/pve/qemu/9000/config",
        &[("ide2", "local:iso/vm-100-provision.iso,media=cdrom")],
    )
    .await;
    assert_eq!(
        sim.vm(9000).unwrap().config["ide2"],
        "local:iso/vm-100-provision.iso,media=cdrom"
    );
    // Detach again, as the agent's detach-cdrom does.
    api.ok(
        Method::PUT,
        "/nodes/pve/qemu/9000/config",
        &[("ide2", "none,media=cdrom")],
    )
    .await;

    let upid = api
        .ok(
            Method::DELETE,
            &format!(
                "/nodes/pve/storage/local/content/{}",
                encode("local:iso/vm-100-provision.iso")
            ),
            &[],
        )
        .await;
    let upid = assert_upid(&upid, "imgdel", "local:iso/vm-100-provision.iso");
    api.wait_task(&upid).await;
    assert!(!path.exists());
    let content = api
        .ok(Method::GET, "/nodes/pve/storage/local/content", &[])
        .await;
    assert!(content.as_array().unwrap().is_empty());
    let (status, _) = api
        .delete(
            &format!(
                "/nodes/pve/storage/local/content/{}",
                encode("local:iso/vm-100-provision.iso")
            ),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    sim.assert_no_violations();
}

#[tokio::test]
async fn upload_checksum_mismatch_fails_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim_in(Some(dir.path().to_path_buf())).await;
    let api = Api::token(&sim);
    let wrong = "0".repeat(64);
    let resp = api
        .request(Method::POST, "/nodes/pve/storage/local/upload")
        .multipart(iso_form("bad.iso", b"hello".to_vec(), Some(&wrong)))
        .send()
        .await
        .unwrap();
    let (status, body) = Api::read(resp).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let task = api.wait_task(body["data"].as_str().unwrap()).await;
    assert!(
        task["exitstatus"]
            .as_str()
            .unwrap()
            .starts_with("checksum mismatch"),
        "{task}"
    );
    assert!(!dir.path().join("local/iso/bad.iso").exists());

    // Wrong extension and wrong storage content are refused up front.
    let resp = api
        .request(Method::POST, "/nodes/pve/storage/local/upload")
        .multipart(iso_form("notes.txt", b"x".to_vec(), None))
        .send()
        .await
        .unwrap();
    let (status, body) = Api::read(resp).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"]["filename"], "wrong file extension");
    let resp = api
        .request(Method::POST, "/nodes/pve/storage/local-lvm/upload")
        .multipart(iso_form("a.iso", b"x".to_vec(), None))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);

    // Multipart fields are schema-checked like any parameter.
    let form = iso_form("c.iso", b"x".to_vec(), None).text("colour", "red");
    let resp = api
        .request(Method::POST, "/nodes/pve/storage/local/upload")
        .multipart(form)
        .send()
        .await
        .unwrap();
    let (status, body) = Api::read(resp).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["errors"]["colour"].is_string());
    assert_eq!(sim.violations().len(), 1);
    // No temp files are left behind.
    let tmp = dir.path().join(".upload-tmp");
    let leftovers = std::fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0);
    assert_eq!(leftovers, 0);
}

#[tokio::test]
async fn storage_list_and_status() {
    let sim = start_sim_in(None).await;
    let api = Api::token(&sim);
    let list = api.ok(Method::GET, "/nodes/pve/storage", &[]).await;
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["storage"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["local", "local-lvm"]);
    let iso = api
        .ok(Method::GET, "/nodes/pve/storage", &[("content", "iso")])
        .await;
    assert_eq!(iso.as_array().unwrap().len(), 1);
    let st = api
        .ok(Method::GET, "/nodes/pve/storage/local-lvm/status", &[])
        .await;
    assert_eq!(st["type"], "lvmthin");
    assert_eq!(st["used"], 64u64 << 30);
    let (status, _) = api.get("/nodes/pve/storage/nfs/status").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    sim.assert_no_violations();
}
