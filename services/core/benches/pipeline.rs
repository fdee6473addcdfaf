//! Hot-path micro-benchmarks: decode (Avro via serde_avro_fast vs apache-avro's Value
//! path, JSON), identity, dedup, sketch update (cardinality-estimator behind SiteSketch vs
//! hyperloglogplus), validation, and the whole pipeline per message.
//!
//! `cargo bench -p sitetally-core --bench pipeline`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sitetally_core::codec::{bundled_avro_schema, encode_avro, Codec};
use sitetally_core::dedup::Dedup;
use sitetally_core::event::{DeviceCategory, Discovery, Report};
use sitetally_core::identity::identify;
use sitetally_core::sketch::SiteSketch;
use sitetally_core::{Pipeline, PipelineConfig};
use std::hint::black_box;

const NOW: i64 = 1_795_424_400_000;

fn event(i: u64) -> Discovery<'static> {
    let mac = format!(
        "00:1b:{:02x}:{:02x}:{:02x}:{:02x}",
        (i >> 24) as u8,
        (i >> 16) as u8,
        (i >> 8) as u8,
        i as u8
    );
    Discovery {
        tenant: "contoso".into(),
        site: format!("plant-{}", i % 100).into(),
        sensor: format!("sensor-{}", i % 7).into(),
        observed_at: NOW - (i % 1000) as i64,
        zone: Some("cell-a".into()),
        device_id: Some(format!("dev-{i}").into()),
        macs: vec![mac.into()],
        ips: vec![format!("10.{}.{}.{}", (i >> 16) as u8, (i >> 8) as u8, i as u8).into()],
        category: DeviceCategory::Ot,
        agent_managed: false,
        vendor: Some("Siemens".into()),
        model: Some("S7-1500".into()),
        hostname: None,
    }
}

fn messages(n: u64) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let schema = bundled_avro_schema(1).unwrap();
    let avro = (0..n)
        .map(|i| encode_avro(&event(i), 1, &schema).unwrap())
        .collect();
    let json = (0..n)
        .map(|i| serde_json::to_vec(&event(i)).unwrap())
        .collect();
    (avro, json)
}

fn decode(c: &mut Criterion) {
    let (avro, json) = messages(1024);
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(1));
    let mut codec = Codec::bundled();
    let mut i = 0;
    g.bench_function("avro/compiled_plan_report", |b| {
        b.iter(|| {
            i = (i + 1) % avro.len();
            black_box(codec.decode_report(&avro[i]).unwrap().observed_at)
        })
    });
    g.bench_function("avro/serde_avro_fast_report", |b| {
        b.iter(|| {
            i = (i + 1) % avro.len();
            black_box(codec.decode_as::<Report>(&avro[i]).unwrap().observed_at)
        })
    });
    g.bench_function("avro/serde_avro_fast_discovery", |b| {
        b.iter(|| {
            i = (i + 1) % avro.len();
            black_box(codec.decode(&avro[i]).unwrap().observed_at)
        })
    });
    let schema = bundled_avro_schema(1).unwrap();
    g.bench_function("avro/apache_avro_value", |b| {
        b.iter(|| {
            i = (i + 1) % avro.len();
            let value = apache_avro::from_avro_datum(&schema, &mut &avro[i][5..], None).unwrap();
            let e: Discovery = apache_avro::from_value(&value).unwrap();
            black_box(e.observed_at)
        })
    });
    g.bench_function("json/fast_scanner_report", |b| {
        b.iter(|| {
            i = (i + 1) % json.len();
            black_box(codec.decode_report(&json[i]).unwrap().observed_at)
        })
    });
    g.bench_function("json/sonic_rs_report", |b| {
        b.iter(|| {
            i = (i + 1) % json.len();
            black_box(codec.decode_as::<Report>(&json[i]).unwrap().observed_at)
        })
    });
    g.bench_function("json/serde_json_report", |b| {
        b.iter(|| {
            i = (i + 1) % json.len();
            black_box(
                serde_json::from_slice::<Report>(&json[i])
                    .unwrap()
                    .observed_at,
            )
        })
    });
    g.bench_function("json/serde_json_discovery", |b| {
        b.iter(|| {
            i = (i + 1) % json.len();
            black_box(
                serde_json::from_slice::<Discovery>(&json[i])
                    .unwrap()
                    .observed_at,
            )
        })
    });
    g.finish();
}

fn identity(c: &mut Criterion) {
    let events: Vec<Discovery> = (0..1024).map(event).collect();
    let mut i = 0;
    c.bench_function("identity/identify", |b| {
        b.iter(|| {
            i = (i + 1) % events.len();
            let e = &events[i];
            black_box(
                identify(
                    e.macs.iter().map(|m| m.as_ref()),
                    e.ips.iter().map(|s| s.as_ref()),
                    e.zone.as_deref(),
                    &e.sensor,
                    e.device_id.as_deref(),
                )
                .unwrap(),
            )
        })
    });
}

fn dedup(c: &mut Criterion) {
    let mut g = c.benchmark_group("dedup");
    g.bench_function("offer/hit", |b| {
        let mut d = Dedup::new(1 << 20, 1);
        for k in 0..100_000u64 {
            d.offer(k % 100, 20_000, k);
        }
        let mut k = 0u64;
        b.iter(|| {
            k = (k + 1) % 100_000;
            black_box(d.offer(k % 100, 20_000, k))
        })
    });
    g.bench_function("offer/new", |b| {
        b.iter_batched_ref(
            || Dedup::new(1 << 20, 1),
            |d| {
                for k in 0..10_000u64 {
                    black_box(d.offer(k % 100, 20_000, k));
                }
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn sketch(c: &mut Criterion) {
    use hyperloglogplus::{HyperLogLog, HyperLogLogPlus};
    let keys: Vec<u64> = (0..20_000u64)
        .map(|i| xxhash_rust::xxh3::xxh3_64(&i.to_le_bytes()))
        .collect();
    let mut g = c.benchmark_group("sketch_20k_inserts");
    g.throughput(Throughput::Elements(keys.len() as u64));
    g.bench_function("site_sketch(cardinality-estimator)", |b| {
        b.iter(|| {
            let mut s = SiteSketch::default();
            keys.iter().for_each(|&k| s.insert(k));
            black_box(s.estimate().value)
        })
    });
    g.bench_function("hyperloglogplus", |b| {
        b.iter(|| {
            let mut h: HyperLogLogPlus<u64, _> =
                HyperLogLogPlus::new(14, std::collections::hash_map::RandomState::new()).unwrap();
            keys.iter().for_each(|k| h.insert(k));
            black_box(h.count())
        })
    });
    g.finish();
}

/// Validation of one decoded report (lengths, name characters, timestamps), against its
/// peer in the same run: the whole pipeline per message (`pipeline` group).
fn validate(c: &mut Criterion) {
    let (_, json) = messages(1024);
    let mut codec = Codec::bundled();
    let reports: Vec<Report<'_>> = json
        .iter()
        .map(|m| codec.decode_report(m).unwrap())
        .collect();
    let rules = sitetally_core::validate::ValidationRules::default();
    let mut g = c.benchmark_group("validate");
    g.throughput(Throughput::Elements(reports.len() as u64));
    g.bench_function("rules_check/1024_reports", |b| {
        b.iter(|| {
            for r in &reports {
                black_box(rules.check(r, NOW)).unwrap();
            }
        })
    });
    g.bench_function("name_chars_only/1024_reports", |b| {
        b.iter(|| {
            for r in &reports {
                for name in [&r.tenant, &r.site, &r.sensor] {
                    black_box(sitetally_core::text::first_forbidden(name));
                }
            }
        })
    });
    g.finish();
}

fn pipeline(c: &mut Criterion) {
    let (avro, json) = messages(50_000);
    let mixed: Vec<Vec<u8>> = avro
        .into_iter()
        .zip(json)
        .flat_map(|(a, j)| [a, j])
        .collect();
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(mixed.len() as u64));
    g.bench_function("process/mixed_avro_json_100k", |b| {
        b.iter_batched_ref(
            || Pipeline::new(&PipelineConfig::default(), Codec::bundled()),
            |p| {
                for m in &mixed {
                    black_box(p.process(m, NOW));
                }
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3)).warm_up_time(std::time::Duration::from_secs(1));
    targets = decode, identity, dedup, sketch, validate, pipeline
}
criterion_main!(benches);
