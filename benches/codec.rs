//! Encode+decode of Heartbeat, ElectionProposal and LogEntry (64 B, 1 KiB, 16 KiB) beside
//! postcard (serde) on equivalent structs and a plain memcpy; CRC-32C per table size.
//! Run: `cargo bench --bench codec`.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use harp::MessageRef;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, PartialEq, Debug)]
enum PcMsg<'a> {
    Heartbeat { master_vlsn: u64, timestamp_ms: u64 },
    ElectionProposal { node_name: &'a str, vlsn: u64, priority: u32, term: u64, dtvlsn: u64 },
    LogEntry { vlsn: u64, entry_type: u8, data: &'a [u8] },
}

fn harp_round_trip(msg: &MessageRef<'_>, buf: &mut [u8]) -> usize {
    let n = msg.encode_into(buf).unwrap();
    let back = MessageRef::decode(&buf[..n]).unwrap();
    black_box(back);
    n
}

fn postcard_round_trip(msg: &PcMsg<'_>, buf: &mut [u8]) -> usize {
    let n = postcard::to_slice(msg, buf).unwrap().len();
    let back: PcMsg<'_> = postcard::from_bytes(&buf[..n]).unwrap();
    black_box(back);
    n
}

fn control(c: &mut Criterion) {
    let mut g = c.benchmark_group("control");
    let hb = MessageRef::Heartbeat { master_vlsn: 123_456_789, timestamp_ms: 1_764_000_000_000 };
    let hb_pc = PcMsg::Heartbeat { master_vlsn: 123_456_789, timestamp_ms: 1_764_000_000_000 };
    let ep = MessageRef::ElectionProposal {
        node_name: "node-3",
        vlsn: 1 << 40,
        priority: 5,
        term: 77,
        dtvlsn: (1 << 40) - 9,
    };
    let ep_pc = PcMsg::ElectionProposal {
        node_name: "node-3",
        vlsn: 1 << 40,
        priority: 5,
        term: 77,
        dtvlsn: (1 << 40) - 9,
    };
    let mut buf = [0u8; 128];
    g.bench_function("harp/Heartbeat", |b| b.iter(|| harp_round_trip(black_box(&hb), &mut buf)));
    g.bench_function("postcard/Heartbeat", |b| {
        b.iter(|| postcard_round_trip(black_box(&hb_pc), &mut buf))
    });
    g.bench_function("harp/ElectionProposal", |b| {
        b.iter(|| harp_round_trip(black_box(&ep), &mut buf))
    });
    g.bench_function("postcard/ElectionProposal", |b| {
        b.iter(|| postcard_round_trip(black_box(&ep_pc), &mut buf))
    });
    g.finish();
}

fn log_entry(c: &mut Criterion) {
    let mut g = c.benchmark_group("log_entry");
    for size in [64usize, 1024, 16 * 1024] {
        let data: Vec<u8> = (0..size).map(|i| i as u8).collect();
        let mut buf = vec![0u8; size + 64];
        g.throughput(Throughput::Bytes(size as u64));
        let msg = MessageRef::LogEntry { vlsn: 42, entry_type: 1, data: &data };
        let pc = PcMsg::LogEntry { vlsn: 42, entry_type: 1, data: &data };
        g.bench_with_input(BenchmarkId::new("harp", size), &size, |b, _| {
            b.iter(|| harp_round_trip(black_box(&msg), &mut buf))
        });
        g.bench_with_input(BenchmarkId::new("postcard", size), &size, |b, _| {
            b.iter(|| postcard_round_trip(black_box(&pc), &mut buf))
        });
        g.bench_with_input(BenchmarkId::new("memcpy", size), &size, |b, _| {
            b.iter(|| {
                buf[..size].copy_from_slice(black_box(&data));
                black_box(&buf);
            })
        });
    }
    g.finish();
}

fn crc(c: &mut Criterion) {
    let mut g = c.benchmark_group("crc32c");
    let data: Vec<u8> = (0..16 * 1024).map(|i| (i * 7) as u8).collect();
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("no-table", |b| {
        b.iter(|| harp::checksum::NO_TABLE.checksum(black_box(&data)))
    });
    g.bench_function("table-256", |b| {
        b.iter(|| harp::checksum::TABLE_256.checksum(black_box(&data)))
    });
    g.bench_function("slice-16", |b| {
        b.iter(|| harp::checksum::SLICE_16.checksum(black_box(&data)))
    });
    g.finish();
}

criterion_group!(benches, control, log_entry, crc);
criterion_main!(benches);
