//! The NFQUEUE engine's per-packet header work, hand-written (`chaos_agent::network::packet`)
//! against `etherparse`'s zero-copy slices (a bench binary, `cargo bench -p chaos-agent --bench
//! packet_parse`, `-- --quick` for a short run). Results go to docs/benchmarks.md.
//!
//! 1. **locate**: the fields the engine reads from every packet it touches — IP version,
//!    transport offset and protocol, transport payload offset, destination address — on
//!    realistic IPv4/IPv6 TCP/UDP packets (a full-size TCP segment with timestamps, a bare ACK, a
//!    DNS response). The hand path is `packet::layout` + `packet::destination`; etherparse is
//!    measured through its general entry (`SlicedPacket::from_ip`) and through the smallest
//!    slices that give the same fields (`IpSlice` then `TcpSlice` / `UdpSlice`).
//! 2. **fix**: what follows a DNS rewrite — UDP length, IPv4 header checksum (IPv4, where the
//!    UDP checksum is set to "none") or the UDP checksum (IPv6, where it is mandatory):
//!    `packet::fix_udp` against the same done with etherparse's checksum helpers.
//!
//! Every path is first checked to give the same answer on every packet, so the figures compare
//! equal work. No network, no privileges.

use std::hint::black_box;
use std::net::IpAddr;
use std::time::Instant;

use chaos_agent::network::packet;
use etherparse::{
    IpHeaders, IpNumber, IpSlice, NetSlice, PacketBuilder, PacketBuilderStep, SlicedPacket,
    TcpOptionElement, TcpSlice, TransportSlice, UdpHeader, UdpSlice,
};

/// What the engine reads from a packet, whichever parser finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fields {
    version: u8,
    l4: usize,
    protocol: u8,
    payload: Option<usize>,
    destination: IpAddr,
}

fn hand(p: &[u8]) -> Option<Fields> {
    let layout = packet::layout(p)?;
    Some(Fields {
        version: layout.version,
        l4: layout.l4,
        protocol: layout.protocol,
        payload: layout.payload,
        destination: packet::destination(p)?,
    })
}

/// Where `part` (a sub-slice of `whole`) starts in `whole`.
fn offset(whole: &[u8], part: &[u8]) -> usize {
    part.as_ptr() as usize - whole.as_ptr() as usize
}

fn etherparse_sliced(p: &[u8]) -> Option<Fields> {
    let sliced = SlicedPacket::from_ip(p).ok()?;
    let (version, destination) = match sliced.net.as_ref()? {
        NetSlice::Ipv4(ip) => (4, IpAddr::V4(ip.header().destination_addr())),
        NetSlice::Ipv6(ip) => (6, IpAddr::V6(ip.header().destination_addr())),
        NetSlice::Arp(_) => return None,
    };
    let ip_payload = sliced.net.as_ref()?.ip_payload_ref()?;
    let payload = match &sliced.transport {
        Some(TransportSlice::Tcp(tcp)) => Some(offset(p, tcp.payload())),
        Some(TransportSlice::Udp(udp)) => Some(offset(p, udp.payload())),
        _ => None,
    };
    Some(Fields {
        version,
        l4: offset(p, ip_payload.payload),
        protocol: ip_payload.ip_number.0,
        payload,
        destination,
    })
}

fn etherparse_slices(p: &[u8]) -> Option<Fields> {
    let ip = IpSlice::from_slice(p).ok()?;
    let version = match ip {
        IpSlice::Ipv4(_) => 4,
        IpSlice::Ipv6(_) => 6,
    };
    let ip_payload = ip.payload();
    let payload = match ip_payload.ip_number {
        IpNumber::TCP => Some(offset(
            p,
            TcpSlice::from_slice(ip_payload.payload).ok()?.payload(),
        )),
        IpNumber::UDP => Some(offset(
            p,
            UdpSlice::from_slice(ip_payload.payload).ok()?.payload(),
        )),
        _ => None,
    };
    Some(Fields {
        version,
        l4: offset(p, ip_payload.payload),
        protocol: ip_payload.ip_number.0,
        payload,
        destination: ip.destination_addr(),
    })
}

/// `packet::fix_udp` done with etherparse: lengths, then the IPv4 header checksum or the IPv6
/// UDP checksum from its helpers.
fn etherparse_fix_udp(p: &mut [u8], l4: usize) {
    let udp_len = (p.len() - l4) as u16;
    p[l4 + 4..l4 + 6].copy_from_slice(&udp_len.to_be_bytes());
    p[l4 + 6..l4 + 8].fill(0);
    if p[0] >> 4 == 4 {
        let total = p.len() as u16;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        let header = etherparse::Ipv4HeaderSlice::from_slice(&p[..l4])
            .unwrap()
            .to_header();
        p[10..12].copy_from_slice(&header.calc_header_checksum().to_be_bytes());
    } else {
        p[4..6].copy_from_slice(&udp_len.to_be_bytes());
        let source: [u8; 16] = p[8..24].try_into().unwrap();
        let destination: [u8; 16] = p[24..40].try_into().unwrap();
        let header = UdpHeader {
            source_port: u16::from_be_bytes([p[l4], p[l4 + 1]]),
            destination_port: u16::from_be_bytes([p[l4 + 2], p[l4 + 3]]),
            length: udp_len,
            checksum: 0,
        };
        let c = header
            .calc_checksum_ipv6_raw(source, destination, &p[l4 + 8..])
            .unwrap();
        p[l4 + 6..l4 + 8].copy_from_slice(&c.to_be_bytes());
    }
}

/// A DNS response for `www.example.com` with one A (or AAAA) record, the name compressed.
fn dns_response(aaaa: bool) -> Vec<u8> {
    let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
    for label in ["www", "example", "com"] {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    let rtype = if aaaa { 28 } else { 1 };
    m.extend_from_slice(&[0, rtype, 0, 1]);
    m.extend_from_slice(&[0xc0, 12, 0, rtype, 0, 1, 0, 0, 0x0e, 0x10]);
    if aaaa {
        m.extend_from_slice(&[0, 16]);
        m.extend_from_slice(&[
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x2a,
        ]);
    } else {
        m.extend_from_slice(&[0, 4, 93, 184, 215, 14]);
    }
    m
}

const V4_SRC: [u8; 4] = [198, 18, 0, 2];
const V4_DST: [u8; 4] = [198, 18, 0, 1];
const V6_SRC: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
const V6_DST: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

/// TCP options of a Linux data segment: NOP, NOP, timestamps (12 bytes, header 32 bytes).
const TIMESTAMPS: [TcpOptionElement; 3] = [
    TcpOptionElement::Noop,
    TcpOptionElement::Noop,
    TcpOptionElement::Timestamp(0x0102_0304, 0x0506_0708),
];

/// A TCP segment (ACK with timestamps) carrying `payload` over `ip`.
fn tcp_segment(ip: PacketBuilderStep<IpHeaders>, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    ip.tcp(40000, 443, 1, 502)
        .ack(7)
        .options(&TIMESTAMPS)
        .unwrap()
        .write(&mut p, payload)
        .unwrap();
    p
}

/// A UDP datagram from port 53 carrying `payload` over `ip`.
fn udp_datagram(ip: PacketBuilderStep<IpHeaders>, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    ip.udp(53, 5353).write(&mut p, payload).unwrap();
    p
}

/// The packets of the bench: (name, bytes). Full-size segments fill a 1500-byte MTU.
fn packets() -> Vec<(&'static str, Vec<u8>)> {
    let data = vec![0xa5u8; 1500];
    let v4 = || PacketBuilder::ipv4(V4_SRC, V4_DST, 64);
    let v6 = || PacketBuilder::ipv6(V6_SRC, V6_DST, 64);
    vec![
        (
            "IPv4/TCP 1500 B (timestamps)",
            tcp_segment(v4(), &data[..1500 - 20 - 32]),
        ),
        ("IPv4/TCP 52 B ACK", tcp_segment(v4(), &[])),
        (
            "IPv4/UDP DNS response",
            udp_datagram(v4(), &dns_response(false)),
        ),
        (
            "IPv6/TCP 1500 B (timestamps)",
            tcp_segment(v6(), &data[..1500 - 40 - 32]),
        ),
        (
            "IPv6/UDP DNS response",
            udp_datagram(v6(), &dns_response(true)),
        ),
    ]
}

/// Nanoseconds per call of `f`: the best of `batches` batches of `iterations` calls (the best
/// batch is the one least disturbed by other work on the machine).
fn ns_per_call(iterations: u32, batches: u32, mut f: impl FnMut()) -> f64 {
    (0..batches)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iterations {
                f();
            }
            start.elapsed().as_nanos() as f64 / f64::from(iterations)
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (iterations, batches) = if quick { (200_000, 5) } else { (2_000_000, 9) };
    let packets = packets();

    // Equal work first: every path gives the same fields, and both fixes the same bytes (which
    // are also the bytes etherparse's builder wrote: the checksums it computed verify).
    for (name, p) in &packets {
        let expected = hand(p).unwrap_or_else(|| panic!("{name}: hand parse failed"));
        assert_eq!(etherparse_sliced(p), Some(expected), "{name}: SlicedPacket");
        assert_eq!(etherparse_slices(p), Some(expected), "{name}: IpSlice");
        if expected.protocol == 17 {
            let (mut a, mut b) = (p.clone(), p.clone());
            packet::fix_udp(&mut a, expected.l4);
            etherparse_fix_udp(&mut b, expected.l4);
            assert_eq!(a, b, "{name}: fix_udp");
            if expected.version == 6 {
                assert_eq!(&a, p, "{name}: UDP checksum as the builder wrote it");
            }
        }
    }

    println!("locate (ns per packet, best of {batches} × {iterations}):");
    println!(
        "| packet | bytes | hand (layout + destination) | etherparse SlicedPacket::from_ip | etherparse IpSlice + Tcp/UdpSlice |"
    );
    println!("|---|---:|---:|---:|---:|");
    for (name, p) in &packets {
        let h = ns_per_call(iterations, batches, || {
            black_box(hand(black_box(p)));
        });
        let s = ns_per_call(iterations, batches, || {
            black_box(etherparse_sliced(black_box(p)));
        });
        let i = ns_per_call(iterations, batches, || {
            black_box(etherparse_slices(black_box(p)));
        });
        println!("| {name} | {} | {h:.1} | {s:.1} | {i:.1} |", p.len());
    }

    println!();
    println!("fix after a DNS rewrite (ns per packet):");
    println!("| packet | hand fix_udp | etherparse checksum helpers |");
    println!("|---|---:|---:|");
    for (name, p) in packets
        .iter()
        .filter(|(_, p)| hand(p).unwrap().protocol == 17)
    {
        let l4 = hand(p).unwrap().l4;
        let mut buffer = p.clone();
        let h = ns_per_call(iterations, batches, || {
            packet::fix_udp(black_box(&mut buffer), black_box(l4));
        });
        let e = ns_per_call(iterations, batches, || {
            etherparse_fix_udp(black_box(&mut buffer), black_box(l4));
        });
        println!("| {name} | {h:.1} | {e:.1} |");
    }
}
