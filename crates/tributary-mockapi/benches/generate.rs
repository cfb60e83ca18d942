//! Page generation and serving throughput of the mock API.
//!
//! `page_1000`: writing a 1,000-record page into one buffer (the server's hot path), reported
//! as records/s and bytes/s. `loopback_page_1000`: one keep-alive connection requesting
//! 1,000-record pages from a running server over 127.0.0.1 (generation + HTTP + TCP), without
//! compression, as a bench client would see it.
//!
//! The machine these run on is shared, so wall-clock rates understate what one core does.
//! After the criterion groups, `cpu_rates` prints records per CPU-second, from the thread's (or
//! process's) CPU time in /proc (Linux; clock ticks of 10 ms, so it runs for a few seconds).

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tributary_mockapi::dataset::{AVERAGE_RECORD_BYTES, RECORD_BUFFER};
use tributary_mockapi::{Dataset, MockConfig, Timeline, start};

fn page_1000(c: &mut Criterion) {
    let dataset = Dataset::new(42, Timeline::default());
    let mut sample = Vec::new();
    dataset.write_records(0..1_000, &mut sample);
    let mut group = c.benchmark_group("generate");
    group.throughput(Throughput::Elements(1_000));
    group.bench_function("page_1000_records", |b| {
        let mut start = 0u64;
        b.iter(|| {
            let mut out = Vec::with_capacity(1_000 * AVERAGE_RECORD_BYTES + RECORD_BUFFER);
            dataset.write_records(start..start + 1_000, &mut out);
            start += 1_000;
            black_box(out)
        })
    });
    group.throughput(Throughput::Bytes(sample.len() as u64));
    group.bench_function("page_1000_bytes", |b| {
        let mut start = 0u64;
        b.iter(|| {
            let mut out = Vec::with_capacity(1_000 * AVERAGE_RECORD_BYTES + RECORD_BUFFER);
            dataset.write_records(start..start + 1_000, &mut out);
            start += 1_000;
            black_box(out)
        })
    });
    group.finish();
}

fn loopback_page_1000(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let config = MockConfig {
        records: 10_000_000,
        compression: false,
        ..MockConfig::default()
    };
    let server = runtime
        .block_on(start(config, "127.0.0.1:0".parse().expect("an address")))
        .expect("the mock api starts");
    let mut connection = runtime.block_on(Connection::open(server.addr()));
    let mut group = c.benchmark_group("loopback");
    group.throughput(Throughput::Elements(1_000));
    group.bench_function("offset_page_1000_records", |b| {
        let mut offset = 0u64;
        b.iter(|| {
            let target = format!("/3.0/lists/bench/members?count=1000&offset={offset}");
            offset = (offset + 1_000) % 9_000_000;
            black_box(runtime.block_on(connection.get(&target)))
        })
    });
    group.finish();
    drop(connection);
    runtime
        .block_on(server.shutdown())
        .expect("the mock api stops");
}

/// A keep-alive HTTP/1.1 connection that reads Content-Length bodies.
struct Connection {
    stream: TcpStream,
    addr: SocketAddr,
    buf: Vec<u8>,
}

impl Connection {
    async fn open(addr: SocketAddr) -> Connection {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Connection {
            stream,
            addr,
            buf: Vec::with_capacity(1 << 20),
        }
    }

    /// Returns the body length.
    async fn get(&mut self, target: &str) -> usize {
        let head = format!("GET {target} HTTP/1.1\r\nHost: {}\r\n\r\n", self.addr);
        self.stream.write_all(head.as_bytes()).await.expect("write");
        self.buf.clear();
        let mut chunk = vec![0u8; 1 << 16];
        loop {
            let n = self.stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "the server closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
            let Some(split) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&self.buf[..split]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .expect("a content-length")
                .trim()
                .parse()
                .expect("a number");
            if self.buf.len() >= split + 4 + length {
                return length;
            }
        }
    }
}

/// Records per CPU-second of page generation (this thread's CPU time) and of the loopback
/// loop (the whole process's: client and server together).
fn cpu_rates() {
    let dataset = Dataset::new(42, Timeline::default());
    let mut out = Vec::with_capacity(1_000 * AVERAGE_RECORD_BYTES + RECORD_BUFFER);
    let (mut records, mut bytes) = (0u64, 0u64);
    let started = Instant::now();
    let cpu_before = cpu_seconds("/proc/thread-self/stat");
    while started.elapsed() < Duration::from_secs(4) {
        out.clear();
        dataset.write_records(records..records + 1_000, &mut out);
        records += 1_000;
        bytes += out.len() as u64;
        black_box(&out);
    }
    if let (Some(before), Some(after)) = (cpu_before, cpu_seconds("/proc/thread-self/stat")) {
        let cpu = after - before;
        println!(
            "cpu_rate generate: {records} records, {:.2} MB in {cpu:.2} CPU-s ({:.2} s wall): {:.2} M records/CPU-s, {:.0} MB/CPU-s",
            bytes as f64 / 1e6,
            started.elapsed().as_secs_f64(),
            records as f64 / cpu / 1e6,
            bytes as f64 / cpu / 1e6,
        );
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let config = MockConfig {
        records: 10_000_000,
        compression: false,
        ..MockConfig::default()
    };
    let server = runtime
        .block_on(start(config, "127.0.0.1:0".parse().expect("an address")))
        .expect("the mock api starts");
    let mut connection = runtime.block_on(Connection::open(server.addr()));
    let (mut records, mut bytes) = (0u64, 0u64);
    let started = Instant::now();
    let cpu_before = cpu_seconds("/proc/self/stat");
    while started.elapsed() < Duration::from_secs(4) {
        let target = format!("/3.0/lists/bench/members?count=1000&offset={records}");
        bytes += runtime.block_on(connection.get(&target)) as u64;
        records += 1_000;
    }
    if let (Some(before), Some(after)) = (cpu_before, cpu_seconds("/proc/self/stat")) {
        let cpu = after - before;
        println!(
            "cpu_rate loopback: {records} records, {:.2} MB in {cpu:.2} CPU-s of client+server ({:.2} s wall): {:.2} M records/CPU-s, {:.0} MB/CPU-s, {:.0} pages/s wall",
            bytes as f64 / 1e6,
            started.elapsed().as_secs_f64(),
            records as f64 / cpu / 1e6,
            bytes as f64 / cpu / 1e6,
            records as f64 / 1_000.0 / started.elapsed().as_secs_f64(),
        );
    }
    drop(connection);
    runtime
        .block_on(server.shutdown())
        .expect("the mock api stops");
}

/// utime + stime of a /proc stat file, in seconds (assuming the usual 100 ticks a second).
fn cpu_seconds(path: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

criterion_group!(benches, page_1000, loopback_page_1000);

fn main() {
    benches();
    cpu_rates();
    Criterion::default().configure_from_args().final_summary();
}
