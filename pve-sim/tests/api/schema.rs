use pve_sim::schema::{embedded, Format};

#[test]
fn embedded_schema_loads_and_resolves() {
    let schema = embedded().expect("schema loads");
    assert!(schema.path_count() > 400, "{}", schema.path_count());

    let r = schema
        .resolve("/nodes/pve/qemu/101/config")
        .expect("resolves");
    assert_eq!(r.template, "/nodes/{node}/qemu/{vmid}/config");
    assert_eq!(
        r.vars,
        vec![
            ("node".to_string(), "pve".to_string()),
            ("vmid".to_string(), "101".to_string())
        ]
    );
    assert_eq!(r.method_names(), vec!["GET", "POST", "PUT"]);

    // Literal segments win over variables.
    let r = schema
        .resolve("/nodes/pve/qemu/101/status/current")
        .unwrap();
    assert_eq!(r.template, "/nodes/{node}/qemu/{vmid}/status/current");
    // Encoded slashes stay inside one variable.
    let r = schema
        .resolve("/nodes/pve/storage/local/content/local%3Aiso%2Fa.iso")
        .unwrap();
    assert_eq!(
        r.template,
        "/nodes/{node}/storage/{storage}/content/{volume}"
    );
    assert_eq!(r.vars[2].1, "local:iso/a.iso");
    assert!(schema.resolve("/nodes/pve/bogus").is_none());

    let put = schema
        .method("/nodes/{node}/qemu/{vmid}/config", "PUT")
        .unwrap();
    assert!(put.parameters.lookup("net31").is_some());
    assert!(put.parameters.lookup("net32").is_none());
    assert!(put.parameters.lookup("ide3").is_some());
    assert!(put.parameters.lookup("ide4").is_none());
    assert!(put.parameters.lookup("scsi30").is_some());
    assert!(put.parameters.lookup("net01").is_none());
    let net = put.parameters.lookup("net0").unwrap();
    assert!(matches!(net.format, Some(Format::PropertyString(_))));

    let upload = schema
        .method("/nodes/{node}/storage/{storage}/upload", "POST")
        .unwrap();
    let required: Vec<&str> = upload.parameters.required().collect();
    assert_eq!(required, vec!["content", "filename", "node", "storage"]);
    let ticket = schema.method("/access/ticket", "POST").unwrap();
    assert!(ticket.world);
    assert!(!ticket.allow_token);
}
