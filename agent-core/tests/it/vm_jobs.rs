//! VM creation jobs end to end (issue #17) with real parts only: the REAL
//! control-server (in-process, HTTPS) owns the job, the REAL `botmox-agent`
//! runs every step against pve-sim (clone, configure, ISO upload, attach,
//! start, detach), and the test plays the guests: it reads each uploaded
//! ISO back with isoinfo, takes the token from its provision.json and walks
//! the progress steps. Then: the server restarted and the agent killed
//! mid-job (no duplicate VM, retries visible), lock timeouts injected
//! (retried and counted), the agent away (`waiting_for_agent`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::common::run_tool;
use crate::runtime::{paired_agent, sim, Server};

pub(crate) async fn setup(server: &mut Server) -> String {
    server.login().await;
    let (st, b) = server
        .call(
            "POST",
            "/api/v1/tenant-licenses",
            Some(json!({"type": "perpetual"})),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    let (st, b) = server
        .call(
            "POST",
            "/api/v1/unattend-profiles",
            Some(json!({"name": "farm", "config": {
                "user": {"nameMode": "custom", "customName": "farmer", "password": "S3cret-pw"},
                "computerName": {"mode": "random"}
            }})),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    b["data"]["id"].as_str().unwrap().to_string()
}

async fn job(server: &Server, id: &str) -> Value {
    let (st, b) = server
        .call("GET", &format!("/api/v1/vm-jobs/{id}"), None)
        .await;
    assert_eq!(st, 200, "{b}");
    b["data"].clone()
}

async fn wait_job(
    server: &Server,
    id: &str,
    what: &str,
    within: Duration,
    f: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let j = job(server, id).await;
        if f(&j) {
            return j;
        }
        assert!(Instant::now() < deadline, "{what}: {j:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One file of an ISO (`-J` Joliet or `-R` Rock Ridge names).
fn iso_file(iso: &std::path::Path, tree: &str, name: &str) -> Vec<u8> {
    let out = run_tool("isoinfo", &[tree, "-x", name, "-i", iso.to_str().unwrap()]);
    assert!(out.status.success(), "isoinfo -x {name}");
    out.stdout
}

fn iso_listing(iso: &std::path::Path, tree: &str) -> String {
    let out = run_tool("isoinfo", &["-f", tree, "-i", iso.to_str().unwrap()]);
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The guest's side: the token from its ISO, then its reports.
async fn guest(server: &Server, vm_uuid: &str, token: &str, steps: &[&str]) {
    let http = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    for step in steps.iter().chain(["completed"].iter()) {
        let r = http
            .post(format!(
                "{}/api/v1/provisioning/report-progress",
                server.url
            ))
            .json(&json!({"token": token, "vm_uuid": vm_uuid, "step": step, "status": "completed"}))
            .send()
            .await
            .expect("report-progress");
        assert_eq!(
            r.status().as_u16(),
            200,
            "{step}: {}",
            r.text().await.unwrap_or_default()
        );
    }
}

/// What the guest of an item finds on its CD: checks the ISO's files and
/// returns its token.
async fn read_iso(
    server: &Server,
    sim_dir: &std::path::Path,
    item: &Value,
    profile: &str,
) -> String {
    let volid = item["iso_volume"].as_str().expect("ISO recorded");
    let name = volid.strip_prefix("local:iso/").unwrap();
    let path = sim_dir.join("local/iso").join(name);
    assert!(path.exists(), "{volid} uploaded");
    let vm_uuid = item["vm_uuid"].as_str().unwrap();
    if item["os"] == "windows" {
        let listing = iso_listing(&path, "-J");
        for f in ["/Autounattend.xml", "/provision.json", "/START.ps1"] {
            assert!(listing.lines().any(|l| l == f), "{f} in {listing}");
        }
        // the answer file is the builder's for this VM: the preview with
        // the VM's uuid, vmid, batch index and seed gives the same bytes
        // (the preview takes seeds up to i64::MAX only)
        let d = Sha256::digest(format!("botmox-unattend-seed:{vm_uuid}").as_bytes());
        let seed = u64::from_be_bytes(d[..8].try_into().unwrap());
        let xml = String::from_utf8(iso_file(&path, "-J", "/Autounattend.xml")).unwrap();
        assert!(
            xml.contains("urn:schemas-microsoft-com:unattend") && xml.contains("farmer"),
            "{xml}"
        );
        if i64::try_from(seed).is_ok() {
            let (st, pv) = server
                .call(
                    "POST",
                    &format!("/api/v1/unattend-profiles/{profile}/preview"),
                    Some(json!({"vm_uuid": vm_uuid, "vmid": item["vmid"], "batch_index": item["index"], "seed": seed})),
                )
                .await;
            assert_eq!(st, 200, "{pv}");
            assert_eq!(
                xml,
                pv["data"]["xml"].as_str().unwrap(),
                "Autounattend.xml of {vm_uuid}"
            );
        }
        let pj: Value = serde_json::from_slice(&iso_file(&path, "-J", "/provision.json")).unwrap();
        assert_eq!(pj["vm_uuid"], vm_uuid);
        if let Some(ip) = item["ip"].as_str() {
            assert_eq!(pj["ip"]["address"], ip, "{pj}");
        }
        pj["token"].as_str().unwrap().to_string()
    } else {
        let pvd = run_tool("isoinfo", &["-d", "-i", path.to_str().unwrap()]);
        assert!(String::from_utf8_lossy(&pvd.stdout).contains("Volume id: cidata"));
        let listing = iso_listing(&path, "-R");
        for f in ["/user-data", "/meta-data"] {
            assert!(listing.lines().any(|l| l == f), "{f} in {listing}");
        }
        let meta = String::from_utf8(iso_file(&path, "-R", "/meta-data")).unwrap();
        assert!(meta.contains(vm_uuid), "{meta}");
        assert!(meta.contains(item["name"].as_str().unwrap()), "{meta}");
        let ud = String::from_utf8(iso_file(&path, "-R", "/user-data")).unwrap();
        assert!(ud.starts_with("#cloud-config"), "{ud}");
        let at = ud.find("bmxv_").expect("token in user-data");
        ud[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect()
    }
}

/// Walks the job: every item that reaches `installing` gets its guest.
pub(crate) async fn drive_guests(
    server: &Server,
    sim_dir: &std::path::Path,
    id: &str,
    profile: &str,
    within: Duration,
) -> Value {
    let deadline = Instant::now() + within;
    let mut done = BTreeSet::new();
    loop {
        let j = job(server, id).await;
        if j["status"] != "running" && j["status"] != "pending" {
            return j;
        }
        assert!(Instant::now() < deadline, "job did not finish: {j:#}");
        for item in j["items"].as_array().unwrap() {
            let idx = item["index"].as_i64().unwrap();
            if item["step"] == "installing" && !done.contains(&idx) {
                let token = read_iso(server, sim_dir, item, profile).await;
                let steps: &[&str] = if item["os"] == "windows" {
                    &["network_configured", "windows_installed"]
                } else {
                    &["cloud_init_done"]
                };
                guest(server, item["vm_uuid"].as_str().unwrap(), &token, steps).await;
                done.insert(idx);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(crate) async fn events(server: &Server, id: &str) -> Vec<Value> {
    let (st, b) = server
        .call(
            "GET",
            &format!("/api/v1/vm-jobs/{id}/events?limit=1000"),
            None,
        )
        .await;
    assert_eq!(st, 200, "{b}");
    b["data"].as_array().unwrap().clone()
}

pub(crate) const ORDER: [&str; 10] = [
    "cloning",
    "clone_wait",
    "configuring",
    "iso_building",
    "iso_attaching",
    "registering",
    "starting",
    "installing",
    "detaching",
    "done",
];

/// The steps each item went through, from the timeline.
pub(crate) fn steps_of(events: &[Value]) -> BTreeMap<i64, Vec<String>> {
    let mut out: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for e in events
        .iter()
        .filter(|e| e["event_type"] == "vm_job.item_step")
    {
        out.entry(e["data"]["item"]["index"].as_i64().unwrap())
            .or_default()
            .push(e["data"]["item"]["step"].as_str().unwrap().to_string());
    }
    out
}

/// Every VM exists once, configured, its ISO detached and deleted.
fn check_vms(sim: &pve_sim::PveSim, j: &Value, cores: &str, memory: &str) {
    for item in j["items"].as_array().unwrap() {
        let vmid = item["vmid"].as_u64().unwrap() as u32;
        let vm = sim.vm(vmid).unwrap_or_else(|| panic!("VM {vmid} exists"));
        let c = &vm.config;
        assert_eq!(c["name"], item["name"].as_str().unwrap());
        assert_eq!(c["cores"], cores, "{c:?}");
        assert_eq!(c["memory"], memory, "{c:?}");
        assert!(
            c["smbios1"].contains(&format!("uuid={}", item["vm_uuid"].as_str().unwrap())),
            "{c:?}"
        );
        assert!(
            c["description"].contains(&format!(
                "botmox-job:{}:{}",
                j["id"].as_str().unwrap(),
                item["index"]
            )),
            "{c:?}"
        );
        assert_eq!(c["ide2"], "none,media=cdrom", "detached: {c:?}");
        assert!(c.get("lock").is_none(), "{c:?}");
        assert_eq!(vm.status, pve_sim::VmStatus::Running);
        assert_eq!(item["step"], "done", "{item}");
    }
    // no duplicate: the template and exactly the job's VMs
    let mut vmids: Vec<u32> = sim
        .vms()
        .iter()
        .map(|v| v.vmid)
        .filter(|v| *v != 9000)
        .collect();
    vmids.sort();
    let mut want: Vec<u32> = j["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["vmid"].as_u64().unwrap() as u32)
        .collect();
    want.sort();
    assert_eq!(vmids, want);
    // every ISO was recorded with its checksum and deleted from storage
    let arts = j["artifacts"].as_array().unwrap();
    assert_eq!(arts.len(), want.len(), "{arts:?}");
    for a in arts {
        assert_eq!(a["sha256"].as_str().unwrap().len(), 64, "{a}");
        assert!(a["size"].as_i64().unwrap() > 0, "{a}");
        assert!(a["deleted_at"].is_string(), "{a}");
    }
    assert!(
        !sim.volumes("local")
            .iter()
            .any(|v| v.volid.contains("provision-")),
        "{:?}",
        sim.volumes("local")
    );
}

/// 5 Windows and 2 Linux VMs from one template, two at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_of_windows_and_linux_vms_completes_with_real_agent_and_pve_sim() {
    let sim = sim().await;
    sim.set_task_duration(Some("qmclone"), Duration::from_millis(400));
    let mut server = Server::start("self-signed", 120).await;
    let profile = setup(&mut server).await;
    let (mut agent, agent_id, _) = paired_agent(&server, &sim).await;
    agent.spawn_run();
    server.wait_online(&agent_id, Duration::from_secs(20)).await;

    let names = json!(["win01", "win02", "win03", "win04", "win05",
                       {"name": "lin01", "os": "linux"}, {"name": "lin02", "os": "linux"}]);
    let (st, b) = server
        .call(
            "POST",
            "/api/v1/vm-jobs",
            Some(json!({
                "agent_id": agent_id, "node": sim.node(), "template_vmid": 9000, "names": names,
                "profile_id": profile, "linux": {"user": "ops"}, "cores": 4, "memory": 2048,
                "parallelism": 2,
                "ip_plan": {"mode": "pool", "cidr": "10.20.0.0/24", "gateway": "10.20.0.1",
                            "dns": ["10.20.0.1"], "first": "10.20.0.10", "last": "10.20.0.50"},
                "idempotency_key": "farm-7"
            })),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    let id = b["data"]["id"].as_str().unwrap().to_string();

    let j = drive_guests(
        &server,
        sim.data_dir(),
        &id,
        &profile,
        Duration::from_secs(240),
    )
    .await;
    assert_eq!(j["status"], "completed", "{j:#}");
    check_vms(&sim, &j, "4", "2048");
    // VMIDs came from the cluster: the lowest free ones
    let vmids: Vec<i64> = j["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["vmid"].as_i64().unwrap())
        .collect();
    assert_eq!(vmids, (100..107).collect::<Vec<_>>());

    // the timeline: created, running, every item through every step in
    // order, completed
    let ev = events(&server, &id).await;
    assert_eq!(ev[0]["event_type"], "vm_job.created");
    let statuses: Vec<&str> = ev
        .iter()
        .filter(|e| e["event_type"] == "vm_job.status")
        .map(|e| e["data"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["running", "completed"]);
    for (idx, steps) in steps_of(&ev) {
        assert_eq!(steps, ORDER, "item {idx}");
    }
    // at most 2 clone/configure steps at once on the node
    let mut heavy = BTreeSet::new();
    let mut peak = 0;
    for e in ev.iter().filter(|e| e["event_type"] == "vm_job.item_step") {
        let idx = e["data"]["item"]["index"].as_i64().unwrap();
        match e["data"]["item"]["step"].as_str().unwrap() {
            "cloning" | "clone_wait" | "configuring" => {
                heavy.insert(idx);
            }
            _ => {
                heavy.remove(&idx);
            }
        }
        peak = peak.max(heavy.len());
    }
    assert!((1..=2).contains(&peak), "parallelism 2, peak {peak}");
    // the same events on the SSE stream, filtered by job_id
    let mut req = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .build()
        .unwrap()
        .get(format!(
            "{}/api/v1/vm-ops/events?job_id={id}&last_event_id=0",
            server.url
        ));
    req = req.bearer_auth(server.admin_token.clone().unwrap());
    let mut resp = req.send().await.unwrap();
    let mut text = String::new();
    while let Ok(Some(c)) = tokio::time::timeout(Duration::from_millis(1500), resp.chunk())
        .await
        .map(|c| c.unwrap())
    {
        text.push_str(&String::from_utf8_lossy(&c));
    }
    let sse: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    let api: Vec<&str> = ev
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(sse, api);

    // the idempotency key answers the same job
    let (st, again) = server
        .call(
            "POST",
            "/api/v1/vm-jobs",
            Some(json!({
                "agent_id": agent_id, "node": sim.node(), "template_vmid": 9000, "names": names,
                "profile_id": profile, "linux": {"user": "ops"}, "cores": 4, "memory": 2048,
                "parallelism": 2,
                "ip_plan": {"mode": "pool", "cidr": "10.20.0.0/24", "gateway": "10.20.0.1",
                            "dns": ["10.20.0.1"], "first": "10.20.0.10", "last": "10.20.0.50"},
                "idempotency_key": "farm-7"
            })),
        )
        .await;
    assert_eq!(st, 200, "{again}");
    assert_eq!(again["data"]["id"], id.as_str());
    agent.sigterm();
    agent.wait_exit(Duration::from_secs(20)).await;
    sim.assert_no_violations();
}

/// The steps a crash test kills the server in: every step of the state
/// machine that waits on the agent or the guest. (`registering` is one
/// server transaction with no wait: nothing to interrupt from outside.)
const KILL_STEPS: [&str; 8] = [
    "cloning",
    "clone_wait",
    "configuring",
    "iso_building",
    "iso_attaching",
    "starting",
    "installing",
    "detaching",
];

/// SIGKILL of the server process in every step of every item: the server
/// runs as its own process; each time the job shows an item in a step it
/// was not yet killed in, the test kills the server with SIGKILL and
/// starts it again on the same data dir and database. Every Proxmox
/// request takes 1 s (pve-sim latency) so each step lasts long enough to be
/// seen. The job completes, each VM exists once (one clone task per VM),
/// configured, its ISO detached and deleted, one ISO artifact per VM.
async fn server_sigkilled_in_every_step(postgres: bool) {
    let sim = sim().await;
    sim.faults().set_latency(Duration::from_millis(1_000));
    sim.set_task_duration(Some("qmclone"), Duration::from_millis(2_000));
    sim.set_task_duration(Some("imgcopy"), Duration::from_millis(1_500));
    let mut server = Server::start_process("self-signed", 8, postgres, |s| {
        s.heartbeat_interval_seconds = Some(1);
    })
    .await;
    let profile = setup(&mut server).await;
    let (mut agent, agent_id, _) = paired_agent(&server, &sim).await;
    agent.spawn_run();
    server.wait_online(&agent_id, Duration::from_secs(30)).await;

    let (st, b) = server
        .call(
            "POST",
            "/api/v1/vm-jobs",
            Some(json!({
                "agent_id": agent_id, "node": sim.node(), "template_vmid": 9000,
                "names": ["win01", "win02", {"name": "lin01", "os": "linux"}],
                "profile_id": profile, "linux": {"user": "ops"}, "cores": 2, "memory": 1024,
                "parallelism": 2, "vmid_range": {"first": 200, "last": 220}
            })),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    let id = b["data"]["id"].as_str().unwrap().to_string();

    let deadline = Instant::now() + Duration::from_secs(480);
    let mut killed: BTreeSet<(i64, String)> = BTreeSet::new();
    let mut guests_done = BTreeSet::new();
    let j = loop {
        let j = job(&server, &id).await;
        if j["status"] != "running" && j["status"] != "pending" {
            break j;
        }
        assert!(
            Instant::now() < deadline,
            "job did not finish (killed in {killed:?}): {j:#}"
        );
        let items = j["items"].as_array().unwrap().clone();
        let fresh = items.iter().find_map(|i| {
            let step = i["step"].as_str().unwrap().to_string();
            let key = (i["index"].as_i64().unwrap(), step);
            (KILL_STEPS.contains(&key.1.as_str()) && !killed.contains(&key)).then_some(key)
        });
        if let Some(key) = fresh {
            server.kill9();
            killed.insert(key);
            server.boot().await;
            server.login().await;
            continue;
        }
        // a guest reports only once its server was killed in `installing`
        for item in &items {
            let idx = item["index"].as_i64().unwrap();
            if item["step"] == "installing" && guests_done.insert(idx) {
                let token = read_iso(&server, sim.data_dir(), item, &profile).await;
                let steps: &[&str] = if item["os"] == "windows" {
                    &["network_configured", "windows_installed"]
                } else {
                    &["cloud_init_done"]
                };
                guest(&server, item["vm_uuid"].as_str().unwrap(), &token, steps).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(j["status"], "completed", "killed in {killed:?}: {j:#}");
    check_vms(&sim, &j, "2", "1024");
    // the server died in every waiting step of every item
    for idx in 0..3 {
        for step in KILL_STEPS {
            assert!(
                killed.contains(&(idx, step.to_string())),
                "item {idx} never seen in {step}; killed in {killed:?}"
            );
        }
    }
    // one clone task per VM: nothing was cloned twice
    let clones = sim
        .tasks()
        .into_iter()
        .filter(|t| t.task_type == "qmclone")
        .count();
    assert_eq!(clones, 3);
    // each item went through the steps in order, none twice
    for (idx, steps) in steps_of(&events(&server, &id).await) {
        assert_eq!(steps, ORDER, "item {idx}");
    }
    agent.sigterm();
    agent.wait_exit(Duration::from_secs(20)).await;
    sim.assert_no_violations();
    server.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_server_sigkilled_in_every_step_resumes_without_duplicates() {
    server_sigkilled_in_every_step(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_server_sigkilled_in_every_step_resumes_without_duplicates() {
    server_sigkilled_in_every_step(true).await;
}

/// The infrastructure fails under the job: the agent is killed during a
/// clone wait and during an ISO upload, the server is stopped and started
/// again mid-job, Proxmox answers lock timeouts, the agent goes away for a
/// while. The job still completes, with no duplicate VM, and the retries
/// are visible on the items.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_restarts_lock_timeouts_and_an_absent_agent_are_retried_not_failed() {
    let sim = sim().await;
    sim.set_task_duration(Some("qmclone"), Duration::from_millis(2_500));
    sim.set_task_duration(Some("imgcopy"), Duration::from_millis(2_500));
    let mut server = Server::start_with("self-signed", 6, |s| {
        s.heartbeat_interval_seconds = Some(1);
        s.agent_offline_after_seconds = Some(30);
    })
    .await;
    let profile = setup(&mut server).await;
    let (mut agent, agent_id, _) = paired_agent(&server, &sim).await;
    agent.spawn_run();
    server.wait_online(&agent_id, Duration::from_secs(20)).await;
    // Proxmox keeps VM 101's config locked for a while: more lock timeouts
    // than the agent retries by itself, so the server sees them
    sim.faults().lock_timeout_next(5, Some("/qemu/101/config"));

    let (st, b) = server
        .call(
            "POST",
            "/api/v1/vm-jobs",
            Some(json!({
                "agent_id": agent_id, "node": sim.node(), "template_vmid": 9000, "count": 3,
                "name_prefix": "farm", "profile_id": profile, "cores": 2, "memory": 1024,
                "parallelism": 3, "vmid_range": {"first": 100, "last": 110}
            })),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    let id = b["data"]["id"].as_str().unwrap().to_string();

    // 1. SIGKILL the agent while it waits for the clone tasks
    wait_job(
        &server,
        &id,
        "a clone wait in flight",
        Duration::from_secs(60),
        |j| {
            j["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["step"] == "clone_wait")
        },
    )
    .await;
    // ... at a moment a command is in flight (the agent runs the items'
    // short task-status polls concurrently, so it is often idle between them)
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while agent.inflight_records().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no command in flight during the clone waits"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    agent.kill9();
    // 2. the server goes down and comes back meanwhile (same database)
    server.stop().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.boot().await;
    server.login().await;
    agent.spawn_run();
    server.wait_online(&agent_id, Duration::from_secs(30)).await;

    // 3. SIGKILL the agent during an ISO upload (the imgcopy task runs 2.5 s)
    wait_job(
        &server,
        &id,
        "an ISO upload in flight",
        Duration::from_secs(90),
        |j| {
            j["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["step"] == "iso_building" && i["command_id"].is_string())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    agent.kill9();

    // 4. the agent stays away: the items wait for it instead of failing
    let j = wait_job(
        &server,
        &id,
        "waiting_for_agent",
        Duration::from_secs(30),
        |j| j["waiting_for_agent"].as_i64().unwrap_or(0) > 0,
    )
    .await;
    assert!(
        j["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["state"] == "waiting_for_agent"),
        "{j:#}"
    );
    assert!(
        j["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["step"] != "failed"),
        "{j:#}"
    );
    agent.spawn_run();
    server.wait_online(&agent_id, Duration::from_secs(30)).await;

    let j = drive_guests(
        &server,
        sim.data_dir(),
        &id,
        &profile,
        Duration::from_secs(240),
    )
    .await;
    assert_eq!(j["status"], "completed", "{j:#}");
    check_vms(&sim, &j, "2", "1024");
    let items = j["items"].as_array().unwrap();
    // lost work was re-dispatched (AGENT_RESTARTED, lease lost) and counted
    let infra: i64 = items
        .iter()
        .map(|i| i["infra_retries"].as_i64().unwrap())
        .sum();
    assert!(infra >= 1, "re-dispatches after the kills: {j:#}");
    // the lock timeouts on VM 101 were retried with backoff, not a failure
    assert!(
        items[1]["lock_retries"].as_i64().unwrap() >= 1,
        "{:#}",
        items[1]
    );
    let ev = events(&server, &id).await;
    assert!(ev
        .iter()
        .any(|e| e["event_type"] == "vm_job.item_retry" && e["data"]["reason"] == "lock"));
    assert!(ev
        .iter()
        .any(|e| e["event_type"] == "vm_job.item_waiting_for_agent"));
    assert!(ev
        .iter()
        .any(|e| e["event_type"] == "vm_job.item_agent_back"));
    // each item still went through the steps in order (retries repeat none)
    for (idx, steps) in steps_of(&ev) {
        assert_eq!(steps, ORDER, "item {idx}");
    }
    // one clone task per VM: nothing was cloned twice
    let clones: Vec<String> = sim
        .tasks()
        .into_iter()
        .filter(|t| t.task_type == "qmclone")
        .map(|t| t.upid)
        .collect();
    assert_eq!(clones.len(), 3, "{clones:?}");
    agent.sigterm();
    agent.wait_exit(Duration::from_secs(20)).await;
    sim.assert_no_violations();
}

/// CPU time of this process (server, pve-sim and the test) in seconds.
fn process_cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// The benchmark of issue #17 (not a test; run with
/// `cargo nextest run -p agent-core --run-ignored only bench_vm_job`):
/// a job of 100 VMs against pve-sim, clone tasks of a fixed duration D,
/// parallelism P on one node, 20 % of clone requests answered with a lock
/// timeout. Prints the wall time next to the ideal schedule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run on demand, figures in docs/benchmarks.md"]
async fn bench_vm_job_100_vms() {
    const N: u64 = 100;
    let d = Duration::from_millis(
        std::env::var("BENCH_CLONE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2_000),
    );
    let p: u64 = std::env::var("BENCH_P")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let upload = Duration::from_millis(100);
    let sim = sim().await;
    sim.set_task_duration(None, Duration::from_millis(100));
    sim.set_task_duration(Some("qmclone"), d);
    sim.set_task_duration(Some("imgcopy"), upload);
    // every 5th clone request: PVE's lock timeout
    sim.faults()
        .lock_timeout_every(5, u32::MAX, Some("/qemu/9000/clone"));
    let mut server = Server::start("self-signed", 120).await;
    let profile = setup(&mut server).await;
    let (mut agent, agent_id, _) = paired_agent(&server, &sim).await;
    // more command slots than the parallelism: clone waits are long polls
    // (BENCH_SLOTS = P keeps the short polls)
    let slots = std::env::var("BENCH_SLOTS").unwrap_or_else(|_| (2 * p).to_string());
    agent.spawn_run_with(&[
        "--shutdown-grace-secs",
        "2",
        "--max-concurrent-commands",
        &slots,
    ]);
    server.wait_online(&agent_id, Duration::from_secs(20)).await;

    let cpu0 = process_cpu_s();
    let t0 = Instant::now();
    let (st, b) = server
        .call(
            "POST",
            "/api/v1/vm-jobs",
            Some(json!({
                "agent_id": agent_id, "node": sim.node(), "template_vmid": 9000, "count": N,
                "profile_id": profile, "parallelism": p, "start": false
            })),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    let id = b["data"]["id"].as_str().unwrap().to_string();
    let j = wait_job(
        &server,
        &id,
        "the benchmark job",
        Duration::from_secs(3600),
        |j| j["status"] != "running" && j["status"] != "pending",
    )
    .await;
    let wall = t0.elapsed();
    let cpu = process_cpu_s() - cpu0;
    let items = j["items"].as_array().unwrap();
    let failed = items.iter().filter(|i| i["step"] != "done").count();
    let lock: i64 = items
        .iter()
        .map(|i| i["lock_retries"].as_i64().unwrap())
        .sum();
    let (_, cmds) = server
        .call("GET", "/api/v1/vm-ops/commands?limit=1", None)
        .await;
    let commands = cmds["meta"]["total"].as_i64().unwrap_or(0);
    let hits = sim
        .tasks()
        .iter()
        .filter(|t| t.task_type == "qmclone")
        .count();
    let ideal = d.as_secs_f64() * N.div_ceil(p) as f64 + upload.as_secs_f64();
    println!("| VMs | P | slots | D | ideal | wall | wall/ideal | overhead/VM | failed | server lock retries | clone tasks | commands/VM | CPU (server+sim) |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {N} | {p} | {slots} | {:.1} s | {:.1} s | {:.1} s | {:.2} | {:.0} ms | {failed} | {lock} | {hits} | {:.1} | {:.1} s |",
        d.as_secs_f64(),
        ideal,
        wall.as_secs_f64(),
        wall.as_secs_f64() / ideal,
        (wall.as_secs_f64() - ideal) * 1000.0 / N as f64,
        commands as f64 / N as f64,
        cpu,
    );
    assert_eq!(j["status"], "completed", "{j:#}");
    // where the time goes: each step's duration per item, from the
    // timeline (the step's `item_step` event to the next one)
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let (st, b) = server
            .call(
                "GET",
                &format!("/api/v1/vm-jobs/{id}/events?after={after}&limit=1000"),
                None,
            )
            .await;
        assert_eq!(st, 200, "{b}");
        let page = b["data"].as_array().unwrap().clone();
        let Some(last) = page.last() else { break };
        after = last["event_id"].as_i64().unwrap();
        all.extend(page);
    }
    let mut per_item: BTreeMap<i64, Vec<(String, i64)>> = BTreeMap::new();
    for e in all.iter().filter(|e| e["event_type"] == "vm_job.item_step") {
        let at = chrono::DateTime::parse_from_rfc3339(e["created_at"].as_str().unwrap())
            .unwrap()
            .timestamp_millis();
        per_item
            .entry(e["data"]["item"]["index"].as_i64().unwrap())
            .or_default()
            .push((e["data"]["item"]["step"].as_str().unwrap().to_string(), at));
    }
    let mut spent: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for steps in per_item.values() {
        for w in steps.windows(2) {
            spent
                .entry(w[0].0.clone())
                .or_default()
                .push(w[1].1 - w[0].1);
        }
    }
    println!();
    println!("| step | mean ms | p50 ms | max ms |");
    println!("|---|---:|---:|---:|");
    for step in ORDER {
        if let Some(v) = spent.get_mut(step) {
            v.sort();
            let mean = v.iter().sum::<i64>() as f64 / v.len() as f64;
            println!(
                "| {step} | {mean:.0} | {} | {} |",
                v[v.len() / 2],
                v[v.len() - 1]
            );
        }
    }
    agent.sigterm();
    agent.wait_exit(Duration::from_secs(20)).await;
}
