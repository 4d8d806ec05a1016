//! Encode+decode of Heartbeat, ElectionProposal and LogEntry (64 B, 1 KiB, 16 KiB) beside
//! postcard (serde) on equivalent structs and a plain memcpy; CRC-32C per table size.
//! Run: `cargo bench --bench codec` (add `--features crc-hw` for the hardware CRC row).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
// `std::hint::black_box`, not criterion 0.5's: that one reads the value back with a volatile
// load per byte, ~10 ns for a 48-byte `MessageRef`, which is harness cost, not codec cost.
use harp::MessageRef;
use serde::{Deserialize, Serialize};
use std::hint::black_box;

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

/// The control messages, each in harp's form and postcard's.
fn control_messages() -> [(MessageRef<'static>, PcMsg<'static>); 2] {
    let (master_vlsn, timestamp_ms) = (123_456_789, 1_764_000_000_000);
    let (node_name, vlsn, priority, term, dtvlsn) = ("node-3", 1 << 40, 5, 77, (1 << 40) - 9);
    [
        (
            MessageRef::Heartbeat { master_vlsn, timestamp_ms },
            PcMsg::Heartbeat { master_vlsn, timestamp_ms },
        ),
        (
            MessageRef::ElectionProposal { node_name, vlsn, priority, term, dtvlsn },
            PcMsg::ElectionProposal { node_name, vlsn, priority, term, dtvlsn },
        ),
    ]
}

fn control(c: &mut Criterion) {
    let mut g = c.benchmark_group("control");
    let [(hb, hb_pc), (ep, ep_pc)] = control_messages();
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

/// Where every contender's copy of the payload lands in the output buffer: the start of a
/// cache line, for all three alike. The message header before it (harp's 14 bytes,
/// postcard's 4 to 6) starts that many bytes earlier, so the payload copy has the same
/// source and destination addresses in every contender and the comparison is of the codec,
/// not of how a copy happens to be aligned (at 16 KiB a copy to an address 14 bytes past a
/// cache line ran ~30% slower than an aligned one).
const PAYLOAD_AT: usize = 64;

/// Carves the payload and the output buffer out of one allocation so that the payload starts
/// on a 4 KiB page and the output half a page later. Two separately allocated buffers can end
/// up a multiple of 4 KiB (plus a few bytes) apart, and then every load of a large copy aliases
/// a recent store ("4K aliasing"), which made a plain 16 KiB memcpy run at ~2 GiB/s. With this
/// layout all three contenders copy between addresses ~2 KiB apart modulo 4 KiB.
fn page_layout(arena: &mut [u8], size: usize) -> (&mut [u8], &mut [u8]) {
    let start = arena.as_ptr().align_offset(4096);
    let (_, rest) = arena.split_at_mut(start);
    let data_span = size.div_ceil(4096) * 4096 + 2048;
    let (data, buf) = rest.split_at_mut(data_span);
    (&mut data[..size], &mut buf[..size + 2 * PAYLOAD_AT])
}

fn log_entry(c: &mut Criterion) {
    let mut g = c.benchmark_group("log_entry");
    for size in [64usize, 1024, 16 * 1024] {
        let mut arena = vec![0u8; 2 * size + 3 * 4096 + 2 * PAYLOAD_AT];
        let (data, buf) = page_layout(&mut arena, size);
        data.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
        let data: &[u8] = data;
        g.throughput(Throughput::Bytes(size as u64));
        let msg = MessageRef::LogEntry { vlsn: 42, entry_type: 1, data };
        let pc = PcMsg::LogEntry { vlsn: 42, entry_type: 1, data };
        let harp_at = PAYLOAD_AT - (msg.encoded_len() - size);
        let pc_header = postcard::to_slice(&pc, buf).unwrap().len() - size;
        let pc_at = PAYLOAD_AT - pc_header;
        g.bench_with_input(BenchmarkId::new("harp", size), &size, |b, _| {
            b.iter(|| harp_round_trip(black_box(&msg), &mut buf[harp_at..]))
        });
        g.bench_with_input(BenchmarkId::new("postcard", size), &size, |b, _| {
            b.iter(|| postcard_round_trip(black_box(&pc), &mut buf[pc_at..]))
        });
        g.bench_with_input(BenchmarkId::new("memcpy", size), &size, |b, _| {
            b.iter(|| {
                buf[PAYLOAD_AT..PAYLOAD_AT + size].copy_from_slice(black_box(data));
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
    // The CPU's instruction, when the bench is built with `--features crc-hw`.
    #[cfg(feature = "crc-hw")]
    g.bench_function("hardware", |b| b.iter(|| harp::checksum::crc32c(black_box(&data))));
    g.finish();
}

criterion_group!(benches, control, log_entry, crc);
criterion_main!(benches);
