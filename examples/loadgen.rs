//! An open-loop, fixed-rate HTTP/1.1 load generator for `bench/scan.sh` — the part
//! `wrk` cannot do ("p99 at half of our maximum rate").
//!
//! Requests are scheduled at a fixed rate (request `i` at `start + i / rate`) and
//! spread round-robin over `--connections` keep-alive connections, one request in
//! flight per connection (no pipelining, like a browser or `wrk`). Latency is
//! counted from the *scheduled* send time whenever the connection was still busy
//! with an earlier, slow answer at that moment, so a stalled server cannot hide
//! its stall by slowing the client down (no coordinated omission). When the
//! connection was idle and merely waiting for the slot, latency is counted from
//! the moment the request was actually written, so tokio's 1 ms timer resolution
//! does not add to the figures.
//!
//! The client is deliberately small — raw HTTP/1.1 over `tokio::net::TcpStream` on
//! one thread — so it takes as little CPU from the server as possible. It expects
//! `Content-Length` framed answers (what actix-web sends for these routes).
//!
//! ```sh
//! cargo run --release --example loadgen -- \
//!     --url http://127.0.0.1:18080/s/CODE --rate 5000 --duration 30 --warmup 5
//! ```
//! It prints a human summary and one machine-readable `RESULT key=value ...` line.
//!
//! (`tokio`'s `net` and `io-util` features come from actix-web/redis in the same
//! dependency graph; the root package's own `tokio` line does not list them.)

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark tool, not served code"
)]

use std::time::{Duration, Instant};

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Parser, Debug, Clone)]
#[command(about = "open-loop fixed-rate HTTP/1.1 load generator")]
struct Args {
    /// `http://HOST:PORT/PATH`
    #[arg(long)]
    url: String,
    /// Requests per second to schedule.
    #[arg(long)]
    rate: f64,
    /// Total seconds to run, warm-up included.
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Seconds at the start whose requests are sent but not counted.
    #[arg(long, default_value_t = 5.0)]
    warmup: f64,
    /// Keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Optional `Cookie` header value to send with every request.
    #[arg(long)]
    cookie: Option<String>,
    /// Request method.
    #[arg(long, default_value = "GET")]
    method: String,
    /// Request body, sent as JSON; every `{n}` is replaced by the request's number
    /// (`{n8}`: zero-padded to 8 digits, `{m10}`: its last digit), so each request
    /// can carry a distinct person (the leads benchmark) and spread over ten
    /// routing rules (the routing benchmark).
    #[arg(long)]
    body: Option<String>,
    /// Extra header `Name: value`; repeatable.
    #[arg(long)]
    header: Vec<String>,
    /// Write a CSV of 100 ms buckets (by scheduled time, warm-up excluded): requests,
    /// p50, p99 and max latency — shows whether the tail comes from periodic stalls.
    #[arg(long)]
    timeline: Option<std::path::PathBuf>,
}

struct ConnStats {
    /// Counted requests: (scheduled ms after the warm-up, latency in microseconds).
    samples: Vec<(u32, u32)>,
    status_2xx: u64,
    status_3xx: u64,
    status_other: u64,
    errors: u64,
    /// Counted requests sent late because the connection was still busy.
    behind: u64,
}

fn parse_url(url: &str) -> anyhow::Result<(String, String)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("only http:// URLs are supported"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    Ok((host.to_string(), path.to_string()))
}

fn find_header_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Reads one `Content-Length` framed response; returns its status code.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<u16> {
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        if let Some(end) = find_header_end(buf) {
            break end;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            anyhow::bail!("connection closed by the server");
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..header_end])?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("bad status line {status_line:?}"))?;
    let mut length = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.trim().parse::<usize>()?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                anyhow::bail!("chunked answers are not supported");
            }
        }
    }
    let total = header_end + length.unwrap_or(0);
    while buf.len() < total {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            anyhow::bail!("connection closed mid-body");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    buf.drain(..total);
    Ok(status)
}

/// The bytes of request number `i`.
#[derive(Clone)]
struct RequestTemplate {
    head: String,
    body: Option<String>,
}

impl RequestTemplate {
    fn new(args: &Args, host: &str, path: &str) -> Self {
        let mut head = format!("{} {path} HTTP/1.1\r\nHost: {host}\r\n", args.method);
        if let Some(cookie) = &args.cookie {
            head.push_str(&format!("Cookie: {cookie}\r\n"));
        }
        for h in &args.header {
            head.push_str(h.trim());
            head.push_str("\r\n");
        }
        if args.body.is_some() {
            head.push_str("Content-Type: application/json\r\n");
        }
        RequestTemplate {
            head,
            body: args.body.clone(),
        }
    }

    fn render(&self, i: u64) -> Vec<u8> {
        match &self.body {
            None => format!("{}\r\n", self.head).into_bytes(),
            Some(template) => {
                let body = template
                    .replace("{n8}", &format!("{:08}", i % 100_000_000))
                    .replace("{m10}", &(i % 10).to_string())
                    .replace("{n}", &i.to_string());
                format!("{}Content-Length: {}\r\n\r\n{body}", self.head, body.len()).into_bytes()
            }
        }
    }
}

async fn connection(
    k: usize,
    args: Args,
    host: String,
    template: RequestTemplate,
    start: Instant,
    counted_from: Instant,
    end: Instant,
) -> ConnStats {
    let mut stats = ConnStats {
        samples: Vec::new(),
        status_2xx: 0,
        status_3xx: 0,
        status_other: 0,
        errors: 0,
        behind: 0,
    };
    let interval = 1.0 / args.rate;
    let mut stream: Option<TcpStream> = None;
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut i = k as u64;
    loop {
        let scheduled = start + Duration::from_secs_f64(i as f64 * interval);
        let request = template.render(i);
        i += args.connections as u64;
        // Past the end, stop even when behind schedule (a flat-out run asks for far
        // more than the server can answer).
        if scheduled >= end || Instant::now() >= end {
            break;
        }
        let now = Instant::now();
        let (from, late) = if now < scheduled {
            tokio::time::sleep_until(scheduled.into()).await;
            (Instant::now(), false)
        } else {
            (scheduled, true)
        };
        let counted = scheduled >= counted_from;
        if stream.is_none() {
            match TcpStream::connect(&host).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    stream = Some(s);
                    buf.clear();
                }
                Err(_) => {
                    if counted {
                        stats.errors += 1;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let s = stream.as_mut().expect("connected above");
        let outcome = async {
            s.write_all(&request).await?;
            read_response(s, &mut buf).await
        }
        .await;
        let done = Instant::now();
        match outcome {
            Ok(status) => {
                if counted {
                    let at = scheduled.duration_since(counted_from).as_millis() as u32;
                    let micros = done.duration_since(from).as_micros().min(u32::MAX as u128) as u32;
                    stats.samples.push((at, micros));
                    match status {
                        200..=299 => stats.status_2xx += 1,
                        300..=399 => stats.status_3xx += 1,
                        _ => stats.status_other += 1,
                    }
                    if late {
                        stats.behind += 1;
                    }
                }
            }
            Err(_) => {
                if counted {
                    stats.errors += 1;
                }
                stream = None;
            }
        }
    }
    stats
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

fn write_timeline(path: &std::path::Path, all: &[ConnStats]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut buckets: Vec<Vec<u32>> = Vec::new();
    for &(at, micros) in all.iter().flat_map(|s| s.samples.iter()) {
        let b = (at / 100) as usize;
        if buckets.len() <= b {
            buckets.resize_with(b + 1, Vec::new);
        }
        buckets[b].push(micros);
    }
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "t_s,requests,p50_ms,p99_ms,max_ms")?;
    for (b, v) in buckets.iter_mut().enumerate() {
        v.sort_unstable();
        writeln!(
            out,
            "{:.1},{},{:.3},{:.3},{:.3}",
            b as f64 / 10.0,
            v.len(),
            percentile(v, 50.0),
            percentile(v, 99.0),
            v.last().map(|&m| m as f64 / 1000.0).unwrap_or(f64::NAN)
        )?;
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.rate > 0.0, "--rate must be positive");
    anyhow::ensure!(args.duration > args.warmup, "--duration must exceed --warmup");
    anyhow::ensure!(args.connections > 0, "--connections must be positive");
    let (host, path) = parse_url(&args.url)?;
    let template = RequestTemplate::new(&args, &host, &path);

    // One thread: the client should take as little CPU from the server as it can.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (all, window) = rt.block_on(async {
        // Small head start so every connection is open before the first slot.
        let start = Instant::now() + Duration::from_millis(200);
        let counted_from = start + Duration::from_secs_f64(args.warmup);
        let end = start + Duration::from_secs_f64(args.duration);
        let tasks: Vec<_> = (0..args.connections)
            .map(|k| {
                tokio::spawn(connection(
                    k,
                    args.clone(),
                    host.clone(),
                    template.clone(),
                    start,
                    counted_from,
                    end,
                ))
            })
            .collect();
        let mut all = Vec::with_capacity(tasks.len());
        for t in tasks {
            all.push(t.await.expect("connection task"));
        }
        let finished = Instant::now();
        // Measured window: from the first counted slot to the last answer.
        (all, finished.duration_since(counted_from).as_secs_f64())
    });

    if let Some(path) = &args.timeline {
        write_timeline(path, &all)?;
    }
    let mut micros: Vec<u32> = all.iter().flat_map(|s| s.samples.iter().map(|&(_, m)| m)).collect();
    micros.sort_unstable();
    let n = micros.len();
    let sum = |f: fn(&ConnStats) -> u64| all.iter().map(f).sum::<u64>();
    let (s2, s3, so, errors, behind) = (
        sum(|s| s.status_2xx),
        sum(|s| s.status_3xx),
        sum(|s| s.status_other),
        sum(|s| s.errors),
        sum(|s| s.behind),
    );
    let achieved = n as f64 / window;
    let mean = if n > 0 {
        micros.iter().map(|&m| m as f64).sum::<f64>() / n as f64 / 1000.0
    } else {
        f64::NAN
    };
    let (p50, p90, p99, p999) = (
        percentile(&micros, 50.0),
        percentile(&micros, 90.0),
        percentile(&micros, 99.0),
        percentile(&micros, 99.9),
    );
    let max = micros.last().map(|&m| m as f64 / 1000.0).unwrap_or(f64::NAN);
    println!(
        "{} at {:.0} req/s scheduled over {} connections, {:.1}s counted after {:.1}s warm-up",
        args.url,
        args.rate,
        args.connections,
        args.duration - args.warmup,
        args.warmup
    );
    println!("  answered {n} ({s2} 2xx, {s3} 3xx, {so} other), {errors} errors, achieved {achieved:.0} req/s");
    println!("  sent behind schedule (connection still busy): {behind}");
    println!("  latency ms: mean {mean:.3}  p50 {p50:.3}  p90 {p90:.3}  p99 {p99:.3}  p99.9 {p999:.3}  max {max:.3}");
    println!(
        "RESULT target_rps={:.0} achieved_rps={achieved:.0} n={n} s2xx={s2} s3xx={s3} other={so} errors={errors} behind={behind} mean_ms={mean:.3} p50_ms={p50:.3} p90_ms={p90:.3} p99_ms={p99:.3} p999_ms={p999:.3} max_ms={max:.3}",
        args.rate
    );
    Ok(())
}
