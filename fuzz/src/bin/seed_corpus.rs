//! Writes the seed corpora: events as sensors send them (Avro in the schema-registry wire
//! format and JSON, in the shapes the simulator produces), identity lines, and the
//! licence and counts files of the examples. `cargo run --bin seed_corpus` from fuzz/.

use sitetally_core::codec::{bundled_avro_schema, encode_avro};
use sitetally_core::{DeviceCategory, Discovery};
use std::path::Path;

fn event(i: u64, json_variant: bool) -> Discovery<'static> {
    Discovery {
        tenant: "contoso".into(),
        site: format!("plant-{}", i % 3).into(),
        sensor: format!("sensor-{}", i % 2).into(),
        observed_at: 1_795_424_400_000 + i as i64,
        zone: (i % 2 == 0).then(|| "cell-a".into()),
        device_id: (i % 3 == 0).then(|| format!("dev-{i}").into()),
        macs: if json_variant && i % 4 == 1 {
            vec![]
        } else {
            vec![format!("00:1b:1b:00:00:{:02x}", i as u8).into()]
        },
        ips: vec![format!("10.0.0.{}", i % 250).into()],
        category: [DeviceCategory::Ot, DeviceCategory::Iot, DeviceCategory::Unknown][i as usize % 3],
        agent_managed: i % 5 == 0,
        vendor: Some("Siemens".into()),
        model: None,
        hostname: None,
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = root.join("corpus");
    let schema = bundled_avro_schema(1).unwrap();
    for i in 0..8u64 {
        let avro = encode_avro(&event(i, false), 1, &schema).unwrap();
        write(&corpus.join("decode_report"), &format!("avro-{i}"), &avro);
        let json = serde_json::to_vec(&event(i, true)).unwrap();
        write(&corpus.join("decode_report"), &format!("json-{i}"), &json);
        write(&corpus.join("json_scanner"), &format!("json-{i}"), &json);
    }
    // Timestamps as RFC 3339 text, escapes, nesting: what the scanner hands to serde.
    for (n, text) in [
        r#"{"tenant":"t","site":"s","sensor":"x","observed_at":"2026-12-03T10:00:00Z","macs":["AA-BB-CC-00-11-22"]}"#,
        r#"{"tenant":"t\u00e9","site":"s","sensor":"x","observed_at":1,"extra":{"a":[1,{"b":null}]}}"#,
        r#" {"site":"s","tenant":"t","sensor":"x","observed_at":1.5}"#,
    ]
    .iter()
    .enumerate()
    {
        write(&corpus.join("json_scanner"), &format!("edge-{n}"), text.as_bytes());
        write(&corpus.join("decode_report"), &format!("edge-{n}"), text.as_bytes());
    }
    for (n, text) in [
        "00:1b:1b:00:00:01,aabb.ccdd.eeff\n10.0.0.1,fe80::1\ncell-a\ndev-1",
        "ff:ff:ff:ff:ff:ff,01:00:5e:00:00:01\n8.8.8.8,224.0.0.1\n\n",
        "AABBCCDDEEFF\n192.168.1.300\nzone\n",
    ]
    .iter()
    .enumerate()
    {
        write(&corpus.join("identity"), &format!("seed-{n}"), text.as_bytes());
    }
    let examples = root.join("../services/reconciler/examples");
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        if matches!(path.extension().and_then(|e| e.to_str()), Some("toml" | "json")) {
            let bytes = std::fs::read(&path).unwrap();
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            write(&corpus.join("licence_file"), &name, &bytes);
        }
    }
    let counts = std::fs::read(examples.join("counts.csv")).unwrap();
    write(&corpus.join("counts_csv"), "example.csv", &counts);
    for (n, text) in [
        "\u{feff}site,tenant,count,category,exact,error_bound\r\n\"Plant, North\",contoso,1200,OT,1190,30\r\n",
        "# comment\n\ncontoso,plant-1,OT,5000,80\ncontoso,plant-1,IOT,18446744073709551615\n",
        "contoso,plant-1,OT,10\ncontoso,plant-1,OT,11\n",
    ]
    .iter()
    .enumerate()
    {
        write(&corpus.join("counts_csv"), &format!("edge-{n}"), text.as_bytes());
    }
    println!("seed corpora written to {}", corpus.display());
}
