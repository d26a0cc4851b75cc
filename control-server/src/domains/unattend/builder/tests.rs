//! Checks every generated answer file must pass (parsed with roxmltree,
//! the component/pass table, `xmllint --schema unattend.xsd`), golden
//! files for representative profiles, one test per fixed bug of the
//! original builder, and a property test over random valid profiles.

use std::path::PathBuf;

use base64::Engine;
use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::domains::unattend::config::UnattendConfig;

const XSD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/src/domains/unattend/builder/unattend.xsd"
);

fn cfg(v: serde_json::Value) -> UnattendConfig {
    let mut c: UnattendConfig = serde_json::from_value(v).expect("config parses");
    c.normalize();
    c
}

fn ctx(seed: u64) -> VmContext {
    VmContext {
        vm_uuid: "6a8f2c3e-1b4d-4e5f-9a0b-1c2d3e4f5a6b".into(),
        vmid: Some(101),
        batch_index: 0,
        ip: None,
        seed,
    }
}

fn build(c: &UnattendConfig, x: &VmContext) -> AnswerFile {
    let a = build_answer_file(c, x).expect("builds");
    check_structure(&a.xml);
    a
}

/// The unattend structure and the component/pass table (the public
/// [`check_answer_file`]); returns `(pass, component)` pairs in order.
pub fn check_structure(xml: &[u8]) -> Vec<(String, String)> {
    let text = std::str::from_utf8(xml).expect("UTF-8");
    check_answer_file(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// `xmllint --schema unattend.xsd`; skipped (loudly) without xmllint
/// unless CI=true.
fn xmllint(xml: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("Autounattend.xml");
    std::fs::write(&file, xml).unwrap();
    match std::process::Command::new("xmllint")
        .args(["--noout", "--schema", XSD])
        .arg(&file)
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "xmllint: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => {
            let msg = format!("xmllint not runnable ({e}); run scripts/setup-test-env.sh");
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{msg}");
            }
            eprintln!("SKIPPED {msg}");
        }
    }
}

fn doc_text<'a>(doc: &'a roxmltree::Document, path: &[&str]) -> Vec<&'a str> {
    doc.descendants()
        .filter(|n| n.is_element() && n.tag_name().name() == *path.last().unwrap())
        .filter(|n| {
            let mut p = *n;
            path.iter().rev().skip(1).all(|want| {
                p = match p.parent_element() {
                    Some(x) => x,
                    None => return false,
                };
                p.tag_name().name() == *want
            })
        })
        .map(|n| n.text().unwrap_or(""))
        .collect()
}

fn setup(a: &AnswerFile) -> String {
    let (name, bytes) = &a.extra_files[0];
    assert_eq!(name, "setup.ps1");
    assert_eq!(
        &bytes[..3],
        &[0xEF, 0xBB, 0xBF],
        "UTF-8 BOM for Windows PowerShell"
    );
    String::from_utf8(bytes[3..].to_vec()).unwrap()
}

// ---------------------------------------------------------------- golden

fn golden_profiles() -> Vec<(&'static str, serde_json::Value, VmContext)> {
    vec![
        (
            "minimal",
            json!({"user": {"nameMode": "fixed", "password": "P@ss"}, "computerName": {"mode": "fixed"}}),
            ctx(1),
        ),
        (
            "random-names",
            json!({
                "user": {"nameMode": "random", "password": "s3cret", "autoLogonCount": 3},
                "computerName": {"mode": "random"},
                "softwareRemoval": {"mode": "fixed_random", "fixedPackages": ["Microsoft.BingNews"],
                    "randomPool": ["Microsoft.BingWeather", "Microsoft.GetHelp", "Microsoft.Getstarted", "Microsoft.People", "Clipchamp.Clipchamp", "Microsoft.ZuneMusic"],
                    "neverRemove": ["Microsoft.People"], "randomCount": {"min": 2, "max": 4}},
                "capabilityRemoval": {"mode": "random", "randomPool": ["App.StepsRecorder~~~~0.0.1.0", "MathRecognizer~~~~0.0.1.0", "Browser.InternetExplorer~~~~0.0.11.0"], "randomCount": {"min": 1, "max": 2}},
                "visualEffects": {"mode": "custom_randomize", "effects": {"fontSmoothing": true}},
                "desktopIcons": {"mode": "custom_randomize"}
            }),
            VmContext {
                batch_index: 4,
                ..ctx(987_654_321)
            },
        ),
        (
            "custom-full",
            json!({
                "user": {"nameMode": "custom", "customName": "Operator", "customNameSuffix": "sequential",
                         "displayName": "Lab Operator", "password": "Pässwörd-日本", "group": "Users", "autoLogonCount": 1},
                "computerName": {"mode": "custom", "customName": "LAB-01"},
                "locale": {"uiLanguage": "de-DE", "keyboardLayouts": [{"language": "0407", "layout": "00000407"}, {"language": "0409", "layout": "00000409"}],
                           "timeZone": "W. Europe Standard Time", "geoLocation": 94},
                "softwareRemoval": {"mode": "fixed", "fixedPackages": ["Microsoft.BingNews", "Microsoft.XboxApp"]},
                "capabilityRemoval": {"mode": "fixed", "fixedCapabilities": ["App.StepsRecorder~~~~0.0.1.0"]},
                "windowsSettings": {"disableDefender": false, "disableUac": false, "enableRemoteDesktop": true},
                "visualEffects": {"mode": "custom", "effects": {"animateControls": true, "animateMinMax": false, "fadeTooltips": true}},
                "desktopIcons": {"mode": "custom", "icons": {"thisPC": true, "recycleBin": true}, "startFolders": {"downloads": true, "music": false}, "deleteEdgeShortcut": true},
                "customScript": {"executable": "bootstrap.cmd", "delaySeconds": 45}
            }),
            VmContext {
                batch_index: 6,
                ..ctx(7)
            },
        ),
        (
            "legacy-plaintext",
            json!({
                "user": {"nameMode": "custom", "customName": "O'Brien & Sons", "customNameSuffix": "random_digits", "displayName": "<Ops> \"Team\" & 'Co'",
                         "password": "a<b>&\"c'", "obscurePassword": false},
                "computerName": {"mode": "custom", "customName": "OPS-7"},
                "locale": {"inputLocales": ["0419:00000419"], "timeZone": "UTC", "geoLocation": 203},
                "softwareRemoval": {"mode": "mixed"},
                "visualEffects": {"mode": "balanced", "cursorShadow": true},
                "desktopIcons": {"recycleBin": false, "thisPC": true, "deleteEdgeShortcut": false},
                "customScript": {"executable": "START.exe", "delaySeconds": 0}
            }),
            ctx(42),
        ),
    ]
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/unattend")
}

/// Byte-for-byte comparison with the reviewed files;
/// `BOTMOX_UPDATE_GOLDEN=1` rewrites them.
#[test]
fn golden_files() {
    let update = std::env::var("BOTMOX_UPDATE_GOLDEN").is_ok_and(|v| v == "1");
    let dir = golden_dir();
    let mut stale = vec![];
    for (name, v, x) in golden_profiles() {
        let a = build(&cfg(v), &x);
        xmllint(&a.xml);
        crate::ps_lint::assert_parses(&format!("{name}.setup.ps1"), &setup(&a));
        for (file, bytes) in [
            (format!("{name}.xml"), a.xml.clone()),
            (format!("{name}.setup.ps1"), a.extra_files[0].1.clone()),
        ] {
            let path = dir.join(&file);
            if update {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &bytes).unwrap();
            } else if std::fs::read(&path).ok().as_deref() != Some(&bytes[..]) {
                stale.push(file);
            }
        }
    }
    assert!(
        stale.is_empty(),
        "golden files differ: {stale:?} (review, then BOTMOX_UPDATE_GOLDEN=1 cargo nextest run -p control-server golden_files)"
    );
}

#[test]
fn every_golden_profile_uses_the_expected_components() {
    for (name, v, x) in golden_profiles() {
        let a = build(&cfg(v), &x);
        let seen = check_structure(&a.xml);
        let want = [
            ("windowsPE", "Microsoft-Windows-International-Core-WinPE"),
            ("windowsPE", "Microsoft-Windows-Setup"),
            ("specialize", "Microsoft-Windows-Shell-Setup"),
            ("specialize", "Microsoft-Windows-International-Core"),
            ("specialize", "Microsoft-Windows-Deployment"),
            ("oobeSystem", "Microsoft-Windows-International-Core"),
            ("oobeSystem", "Microsoft-Windows-Shell-Setup"),
        ];
        let seen: Vec<(&str, &str)> = seen.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
        assert_eq!(seen, want, "{name}");
    }
}

#[test]
fn structure_check_rejects_a_misplaced_component() {
    let bad = br#"<?xml version="1.0"?><unattend xmlns="urn:schemas-microsoft-com:unattend"><settings pass="windowsPE"><component name="Microsoft-Windows-Shell-Setup" processorArchitecture="amd64" publicKeyToken="31bf3856ad364e35" language="neutral" versionScope="nonSxS"/></settings></unattend>"#;
    assert!(std::panic::catch_unwind(|| check_structure(bad)).is_err());
}

/// The public check names the first problem of each kind of broken file
/// (and accepts what the builder writes).
#[test]
fn check_answer_file_names_each_problem() {
    let comp = |name: &str, extra: &str| {
        format!(
            r#"<component name="{name}" processorArchitecture="amd64" publicKeyToken="31bf3856ad364e35" language="neutral" versionScope="nonSxS"{extra}/>"#
        )
    };
    let doc =
        |inner: &str| format!(r#"<?xml version="1.0"?><unattend xmlns="{NS}">{inner}</unattend>"#);
    let setup = comp("Microsoft-Windows-Setup", "");
    assert_eq!(
        check_answer_file(&doc(&format!(
            r#"<settings pass="windowsPE">{setup}</settings>"#
        ))),
        Ok(vec![("windowsPE".into(), "Microsoft-Windows-Setup".into())])
    );
    let cases = [
        ("<unattend>".to_string(), "well-formed"),
        (
            format!(
                r#"<unattend xmlns="urn:other"><settings pass="windowsPE">{setup}</settings></unattend>"#
            ),
            "root element",
        ),
        (
            doc(&format!(
                r#"<settings pass="beforeBoot">{setup}</settings>"#
            )),
            "illegal pass",
        ),
        (doc(&format!(r#"<settings>{setup}</settings>"#)), "no pass"),
        (
            doc(&format!(
                r#"<settings pass="windowsPE">{setup}</settings><settings pass="windowsPE">{setup}</settings>"#
            )),
            "two settings",
        ),
        (
            doc(&format!(
                r#"<servicing/><settings pass="windowsPE">{setup}</settings>"#
            )),
            "unexpected element servicing",
        ),
        (
            doc(r#"<settings pass="windowsPE"><Setup/></settings>"#),
            "only component",
        ),
        (
            doc(&format!(
                r#"<settings pass="specialize">{}</settings>"#,
                comp("Microsoft-Windows-Setup", "")
            )),
            "may not appear in specialize",
        ),
        (
            doc(&format!(
                r#"<settings pass="windowsPE">{}</settings>"#,
                comp("Microsoft-Windows-Unknown", "")
            )),
            "not in passes::COMPONENT_PASSES",
        ),
        (
            doc(&format!(
                r#"<settings pass="windowsPE">{}</settings>"#,
                setup.replace("nonSxS", "SxS")
            )),
            "versionScope",
        ),
        (
            doc(&format!(
                r#"<settings pass="windowsPE">{}</settings>"#,
                setup.replace(r#" publicKeyToken="31bf3856ad364e35""#, "")
            )),
            "publicKeyToken",
        ),
    ];
    for (xml, want) in cases {
        let err = check_answer_file(&xml).expect_err(&xml);
        assert!(err.contains(want), "{xml}: {err} (wanted `{want}`)");
    }
}

/// The builder runs the check on every file it returns; a file that fails
/// it comes back as `BuildError::Malformed`, answered as a 500 (a builder
/// bug), not as the caller's validation error.
#[test]
fn malformed_output_is_an_internal_error() {
    let (_, v, x) = golden_profiles().remove(0);
    assert!(build_answer_file(&cfg(v), &x).is_ok());
    let api: crate::http::error::ApiError =
        crate::domains::unattend::UnattendError::Build(BuildError::Malformed("x".into())).into();
    assert_eq!(api.status, axum::http::StatusCode::INTERNAL_SERVER_ERROR);
}

/// The shipped XSD is the file the tests give xmllint.
#[test]
fn unattend_xsd_constant_is_the_file() {
    assert_eq!(std::fs::read_to_string(XSD).unwrap(), UNATTEND_XSD);
}

/// The preview and the ISO derive a VM's seed with this one function: it
/// is stable, differs between VMs and ignores the UUID's spelling.
#[test]
fn vm_seed_is_derived_from_the_uuid() {
    let a = "6f9c1e2a-3b4d-4c5e-8f70-1a2b3c4d5e6f";
    assert_eq!(vm_seed(a), vm_seed(a));
    assert_eq!(vm_seed(a), vm_seed(&a.to_uppercase()));
    assert_ne!(vm_seed(a), vm_seed("00112233-4455-6677-8899-aabbccddeeff"));
    assert!(i64::try_from(vm_seed(a)).is_ok());
}

// ---------------------------------------------------------------- bugs

/// (a) Windows' password encoding: base64 of UTF-16LE of password +
/// "Password" (checked against the well-known value for the empty
/// password and by decoding non-ASCII ones); or plain text.
#[test]
fn bug_a_password_encoding() {
    assert_eq!(encode_password("", "Password"), "UABhAHMAcwB3AG8AcgBkAA==");
    assert_eq!(
        encode_password("", "AdministratorPassword"),
        "QQBkAG0AaQBuAGkAcwB0AHIAYQB0AG8AcgBQAGEAcwBzAHcAbwByAGQA"
    );
    for pw in ["Pässwörd", "日本語🚀", "a<b>&\"c'"] {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(encode_password(pw, "Password"))
            .unwrap();
        let units: Vec<u16> = raw
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(String::from_utf16(&units).unwrap(), format!("{pw}Password"));
    }
    let c = cfg(
        json!({"user": {"nameMode": "fixed", "password": "Pässwörd"}, "computerName": {"mode": "fixed"}}),
    );
    let a = build(&c, &ctx(1));
    let text = String::from_utf8(a.xml).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    let values = doc_text(&doc, &["Password", "Value"]);
    assert_eq!(values.len(), 2, "account and auto-logon");
    assert!(values
        .iter()
        .all(|v| *v == encode_password("Pässwörd", "Password")));
    assert_eq!(
        doc_text(&doc, &["Password", "PlainText"]),
        ["false", "false"]
    );
    let c = cfg(
        json!({"user": {"nameMode": "fixed", "password": "Pässwörd", "obscurePassword": false}, "computerName": {"mode": "fixed"}}),
    );
    let text = String::from_utf8(build(&c, &ctx(1)).xml).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    assert_eq!(
        doc_text(&doc, &["Password", "Value"]),
        ["Pässwörd", "Pässwörd"]
    );
    assert_eq!(doc_text(&doc, &["Password", "PlainText"]), ["true", "true"]);
}

/// (b) The PowerShell work is a file (`setup.ps1`) run with `-File`; no
/// command line carries `-Command`.
#[test]
fn bug_b_script_is_a_file() {
    let (_, v, x) = golden_profiles().remove(2);
    let a = build(&cfg(v), &x);
    let text = String::from_utf8(a.xml.clone()).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    let lines = doc_text(&doc, &["SynchronousCommand", "CommandLine"]);
    assert!(lines.iter().all(|l| !l.contains("-Command")), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with(r"-File C:\WindowsSetup\setup.ps1")),
        "{lines:?}"
    );
    let script = setup(&a);
    assert!(script.contains("Remove-AppxProvisionedPackage"));
    assert!(script.contains("'*Microsoft.XboxApp*'"));
    assert!(script.contains("fDenyTSConnections"));
    assert!(script.contains("\r\n"));
}

/// (c) provision.json and START.ps1 (and the custom executable) are copied
/// from the CD found by its label or by the file; the bootstrap runs the
/// copied file with the interpreter of its extension.
#[test]
fn bug_c_files_are_copied_and_run_by_extension() {
    let c = cfg(
        json!({"user": {"nameMode": "fixed", "password": "x"}, "computerName": {"mode": "fixed"}}),
    );
    let a = build(&c, &ctx(1));
    let script = setup(&a);
    assert!(script.contains("FileSystemLabel -eq 'PROVISION'"));
    assert!(script.contains("Join-Path $_ 'provision.json'"));
    assert!(
        script.contains("@('provision.json', 'START.ps1', 'playbook.yml')"),
        "{script}"
    );
    let text = String::from_utf8(a.xml).unwrap();
    assert!(text.contains(&xml::escape(COPY_SETUP_COMMAND, "").unwrap()));
    assert!(
        text.contains("-File C:\\WindowsSetup\\START.ps1"),
        "default is START.ps1, run by PowerShell"
    );
    for (exe, want) in [
        ("START.ps1", "powershell.exe -NoExit -NoProfile -ExecutionPolicy Bypass -WindowStyle Normal -File C:\\WindowsSetup\\START.ps1"),
        ("go.CMD", "cmd.exe /k C:\\WindowsSetup\\go.CMD"),
        ("run.bat", "cmd.exe /k C:\\WindowsSetup\\run.bat"),
        ("START.exe", "start \"BOTMOX_SETUP\" C:\\WindowsSetup\\START.exe\""),
    ] {
        assert!(bootstrap_command(exe, 5).contains(want), "{exe}: {}", bootstrap_command(exe, 5));
        assert!(bootstrap_command(exe, 5).starts_with("cmd.exe /c \"timeout /t 5 /nobreak"));
    }
    let c = cfg(
        json!({"user": {"nameMode": "fixed", "password": "x"}, "computerName": {"mode": "fixed"},
        "customScript": {"executable": "agent.exe"}}),
    );
    assert!(setup(&build(&c, &ctx(1))).contains("'playbook.yml', 'agent.exe')"));
}

/// (d) `sequential` appends the VM's 1-based batch position, zero-padded,
/// the same every time.
#[test]
fn bug_d_sequential_suffix() {
    let c = cfg(
        json!({"user": {"nameMode": "custom", "customName": "Bot", "customNameSuffix": "sequential", "password": "x"}, "computerName": {"mode": "random"}}),
    );
    let names: Vec<String> = [0u32, 1, 8, 99, 100]
        .iter()
        .map(|i| {
            build(
                &c,
                &VmContext {
                    batch_index: *i,
                    ..ctx(5)
                },
            )
            .user_name
        })
        .collect();
    assert_eq!(names, ["Bot01", "Bot02", "Bot09", "Bot100", "Bot101"]);
    assert_eq!(
        build(
            &c,
            &VmContext {
                batch_index: 1,
                ..ctx(77)
            }
        )
        .user_name,
        "Bot02",
        "independent of the seed"
    );
    let long = cfg(
        json!({"user": {"nameMode": "custom", "customName": "ABCDEFGHIJKLMNOPQRST", "customNameSuffix": "sequential", "password": "x"}, "computerName": {"mode": "random"}}),
    );
    assert_eq!(
        build(
            &long,
            &VmContext {
                batch_index: 2,
                ..ctx(5)
            }
        )
        .user_name,
        "ABCDEFGHIJKLMNOPQR03"
    );
}

/// (e) deleteEdgeShortcut works in every icon mode, including `default`.
#[test]
fn bug_e_edge_shortcut_in_every_mode() {
    for mode in ["default", "custom", "custom_randomize"] {
        for delete in [true, false] {
            let c = cfg(
                json!({"user": {"nameMode": "fixed", "password": "x"}, "computerName": {"mode": "fixed"},
                "desktopIcons": {"mode": mode, "deleteEdgeShortcut": delete}}),
            );
            let script = setup(&build(&c, &ctx(3)));
            assert_eq!(
                script.contains("Microsoft Edge.lnk"),
                delete,
                "{mode} {delete}"
            );
            assert_eq!(
                script.contains("HideDesktopIcons"),
                mode != "default",
                "{mode}"
            );
        }
    }
}

/// (f) Aliased visual-effect keys: each registry value is written once; the
/// canonical key wins, else the first alias set.
#[test]
fn bug_f_aliases_write_each_value_once() {
    let c = cfg(
        json!({"user": {"nameMode": "fixed", "password": "x"}, "computerName": {"mode": "fixed"},
        "visualEffects": {"mode": "custom", "effects": {
            "animateControls": false, "animateMinMax": true,
            "peekDesktop": true,
            "fadeTooltips": false, "fadeAfterClick": true, "comboBoxSlide": true}}}),
    );
    let script = setup(&build(&c, &ctx(1)));
    let count = |name: &str| script.matches(&format!("'{name}'")).count();
    for e in catalog::EFFECTS {
        assert_eq!(count(e.name), 1, "{} written once", e.name);
    }
    assert!(
        script.contains("'MinAnimate' 'REG_SZ' '0'"),
        "canonical animateControls=false wins"
    );
    assert!(
        script.contains("'EnableAeroPeek' 'REG_DWORD' '1'"),
        "alias peekDesktop applies"
    );
    assert!(
        script.contains("'MenuShowDelay' 'REG_SZ' '0'"),
        "first alias fadeTooltips wins"
    );
}

/// (g) Random subsets and names come from the seed only: the same seed,
/// the same answer file; another seed, other draws. (Uniformity is tested
/// in `rng`.)
#[test]
fn bug_g_seeded_and_reproducible() {
    let (_, v, _) = golden_profiles().remove(1);
    let c = cfg(v);
    let a = build(&c, &ctx(11));
    let b = build(&c, &ctx(11));
    assert_eq!(a, b);
    let others: std::collections::HashSet<String> =
        (0..20).map(|s| build(&c, &ctx(s)).computer_name).collect();
    assert!(others.len() >= 19, "{others:?}");
    let r = resolve(&c, &ctx(11));
    assert!(
        r.packages.contains(&"Microsoft.BingNews".to_string()),
        "fixed part kept"
    );
    assert!(
        !r.packages.contains(&"Microsoft.People".to_string()),
        "neverRemove honoured"
    );
    assert!((2..=5).contains(&r.packages.len()), "{:?}", r.packages);
}

/// (h) Computer-name characters are validated (and the builder refuses an
/// unvalidated config).
#[test]
fn bug_h_computer_name_validated() {
    for bad in [
        "LAB_01",
        "LAB 01",
        "LÄB",
        "-LAB",
        "12345",
        "ABCDEFGHIJKLMNOP",
    ] {
        let c = cfg(
            json!({"user": {"nameMode": "fixed", "password": "x"}, "computerName": {"mode": "custom", "customName": bad}}),
        );
        match build_answer_file(&c, &ctx(1)) {
            Err(BuildError::Invalid(f)) => {
                assert!(
                    f.0.iter().any(|(k, _)| k == "computerName.customName"),
                    "{bad}: {f}"
                )
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
}

/// (i) One builder: the same input gives the same bytes (the preview
/// endpoint and the ISO call this function; tests/it/unattend.rs compares
/// the preview with it).
#[test]
fn bug_i_one_builder_same_bytes() {
    for (_, v, x) in golden_profiles() {
        let c = cfg(v);
        assert_eq!(build(&c, &x).xml, build(&c, &x).xml);
    }
}

#[test]
fn random_names_have_the_documented_shape() {
    let c = cfg(
        json!({"user": {"nameMode": "random", "password": "x"}, "computerName": {"mode": "random"}}),
    );
    for s in 0..200 {
        let a = build(&c, &ctx(s));
        assert_eq!(a.computer_name.len(), 15);
        assert!(a.computer_name.starts_with("DESKTOP-"));
        assert!(a.computer_name[8..]
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
        let digits: String = a.user_name.chars().filter(char::is_ascii_digit).collect();
        let n: u32 = digits.parse().unwrap();
        assert!((10..=98).contains(&n), "{}", a.user_name);
        assert!(
            ADJECTIVES.iter().any(|p| a.user_name.starts_with(p)),
            "{}",
            a.user_name
        );
    }
}

#[test]
fn every_option_reaches_the_output() {
    let (_, v, x) = golden_profiles().remove(2);
    let a = build(&cfg(v), &x);
    let text = String::from_utf8(a.xml.clone()).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    assert_eq!(doc_text(&doc, &["Shell-Setup-unused"]), Vec::<&str>::new());
    assert_eq!(doc_text(&doc, &["component", "ComputerName"]), ["LAB-01"]);
    assert_eq!(
        doc_text(&doc, &["component", "TimeZone"]),
        ["W. Europe Standard Time"]
    );
    assert_eq!(
        doc_text(&doc, &["component", "InputLocale"]),
        ["0407:00000407;0409:00000409"; 3]
    );
    assert_eq!(doc_text(&doc, &["component", "UILanguage"]), ["de-DE"; 3]);
    assert_eq!(doc_text(&doc, &["LocalAccount", "Name"]), ["Operator07"]);
    assert_eq!(
        doc_text(&doc, &["LocalAccount", "DisplayName"]),
        ["Lab Operator"]
    );
    assert_eq!(doc_text(&doc, &["LocalAccount", "Group"]), ["Users"]);
    assert_eq!(doc_text(&doc, &["AutoLogon", "LogonCount"]), ["1"]);
    assert_eq!(doc_text(&doc, &["AutoLogon", "Username"]), ["Operator07"]);
    let script = setup(&a);
    assert!(script.contains("Set-WinHomeLocation -GeoId 94"));
    assert!(
        !script.contains("DisableAntiSpyware"),
        "disableDefender=false"
    );
    assert!(!script.contains("EnableLUA"), "disableUac=false");
    assert!(script.contains("'Start_ShowDownloads' 'REG_DWORD' '1'"));
    assert!(script.contains("'Start_ShowMusic' 'REG_DWORD' '0'"));
    assert!(!script.contains("Start_ShowVideos"), "only set keys");
    assert!(
        script.contains("'{20D04FE0-3AEA-1069-A2D8-08002B30309D}' 'REG_DWORD' '0'"),
        "thisPC shown"
    );
    assert!(
        script.contains("'{5399E694-6CE5-4D6C-8FCE-1D8870FDCBA0}' 'REG_DWORD' '1'"),
        "controlPanel hidden"
    );
    assert!(text.contains("timeout /t 45 /nobreak"));
    assert!(text.contains("cmd.exe /k C:\\WindowsSetup\\bootstrap.cmd"));
    // Auto-logon off: no AutoLogon element.
    let c = cfg(
        json!({"user": {"nameMode": "fixed", "autoLogonCount": 0}, "computerName": {"mode": "fixed"}}),
    );
    let text = String::from_utf8(build(&c, &ctx(1)).xml).unwrap();
    assert!(!text.contains("<AutoLogon>"));
}

#[test]
fn name_collision_is_refused() {
    let c = cfg(
        json!({"user": {"nameMode": "custom", "customName": "LAB", "customNameSuffix": "sequential", "password": "x"},
        "computerName": {"mode": "custom", "customName": "lab01"}}),
    );
    assert!(matches!(
        build_answer_file(&c, &ctx(1)),
        Err(BuildError::NameCollision { .. })
    ));
}

// ---------------------------------------------------------------- property

/// Strings from `chars`, 1..24 long.
fn text_from(chars: Vec<char>) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(chars), 1..24).prop_map(|v| v.into_iter().collect())
}

/// Mostly text the validator accepts (XML's and PowerShell's special
/// characters, non-ASCII), sometimes with characters it must refuse
/// (controls), so both branches of the property run often.
fn text_strategy(accepted: &[char]) -> impl Strategy<Value = String> {
    let mut hostile = accepted.to_vec();
    hostile.extend(['\u{7}', '\t', '\n', '\u{1b}']);
    prop_oneof![
        9 => text_from(accepted.to_vec()),
        1 => text_from(hostile),
    ]
}

/// Characters a display name or password may hold.
const DISPLAY_CHARS: &[char] = &[
    'a', 'Z', '0', ' ', '.', '-', '<', '>', '&', '"', '\'', '$', '`', 'ü', 'ß', '日', '🚀',
];
/// Characters a user name may hold (none of `/\[]:;|=,+*?<>"%@`).
const USER_CHARS: &[char] = &[
    'a', 'Z', '0', ' ', '.', '-', '&', '\'', '$', '`', 'ü', 'ß', '日',
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Random profiles: a profile the validator accepts always builds a
    /// well-formed, structurally valid, XSD-valid file whose values read
    /// back exactly; one it refuses names the field.
    #[test]
    fn random_profiles_build_valid_answer_files(
        display in text_strategy(DISPLAY_CHARS),
        password in text_strategy(DISPLAY_CHARS),
        user in text_strategy(USER_CHARS),
        plain in any::<bool>(),
        seed in any::<u64>(),
        index in 0u32..500,
        suffix in prop::sample::select(vec!["none", "random_digits", "sequential"]),
        effects in prop::sample::select(vec!["default", "appearance", "performance", "custom", "custom_randomize"]),
        icons in prop::sample::select(vec!["default", "custom", "custom_randomize"]),
        tz in prop::sample::select(crate::domains::unattend::catalog::time_zones().to_vec()),
    ) {
        let v = json!({
            "user": {"nameMode": "custom", "customName": user, "customNameSuffix": suffix, "displayName": display,
                     "password": password, "obscurePassword": !plain},
            "computerName": {"mode": "random"},
            "locale": {"timeZone": tz},
            "visualEffects": {"mode": effects},
            "desktopIcons": {"mode": icons},
            "softwareRemoval": {"mode": "random", "randomPool": ["A.B", "C.D", "E~F"]},
        });
        let c = cfg(v);
        match c.validate("") {
            Err(f) => {
                prop_assert!(!f.0.is_empty());
                prop_assert!(f.0.iter().all(|(k, _)| k.starts_with("user.")), "{}", f);
                let refused = matches!(build_answer_file(&c, &VmContext { batch_index: index, ..ctx(seed) }), Err(BuildError::Invalid(_)));
                prop_assert!(refused);
            }
            Ok(()) => {
                let a = build_answer_file(&c, &VmContext { batch_index: index, ..ctx(seed) });
                let a = match a {
                    Ok(a) => a,
                    Err(BuildError::NameCollision { .. }) => return Ok(()),
                    Err(e) => panic!("{e}"),
                };
                check_structure(&a.xml);
                let script = setup(&a);
                let ps_errors = crate::ps_lint::syntax_errors(&script);
                prop_assert!(ps_errors.is_empty(), "setup.ps1: {:?}\n{}", ps_errors, script);
                if seed % 8 == 0 {
                    xmllint(&a.xml);
                }
                let text = String::from_utf8(a.xml.clone()).unwrap();
                let doc = roxmltree::Document::parse(&text).unwrap();
                prop_assert_eq!(doc_text(&doc, &["LocalAccount", "DisplayName"]), vec![display.as_str()]);
                prop_assert_eq!(doc_text(&doc, &["LocalAccount", "Name"]), vec![a.user_name.as_str()]);
                prop_assert_eq!(doc_text(&doc, &["AutoLogon", "Username"]), vec![a.user_name.as_str()]);
                let want = if plain { password.clone() } else { encode_password(&password, "Password") };
                prop_assert_eq!(doc_text(&doc, &["LocalAccount", "Password", "Value"]), vec![want.as_str()]);
                prop_assert!(a.user_name.chars().count() <= 20);
            }
        }
    }
}

/// The property above is only as good as its inputs: most generated
/// profiles must pass validation (so the build-and-read-back branch runs),
/// and some must not (so the refusal branch runs).
#[test]
fn property_inputs_reach_both_branches() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = (
        text_strategy(DISPLAY_CHARS),
        text_strategy(DISPLAY_CHARS),
        text_strategy(USER_CHARS),
    );
    let (mut accepted, total) = (0, 400);
    for _ in 0..total {
        let (display, password, user) = strategy.new_tree(&mut runner).unwrap().current();
        let c = cfg(json!({
            "user": {"nameMode": "custom", "customName": user, "displayName": display,
                     "password": password},
            "computerName": {"mode": "random"},
            "locale": {"timeZone": "UTC"},
            "visualEffects": {"mode": "default"},
            "desktopIcons": {"mode": "default"},
            "softwareRemoval": {"mode": "random", "randomPool": ["A.B"]},
        }));
        if c.validate("").is_ok() {
            accepted += 1;
        }
    }
    assert!(
        accepted * 2 > total && accepted < total,
        "{accepted} of {total} generated profiles are valid"
    );
}
