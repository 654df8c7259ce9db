//! A publisher that writes AMQP 0-9-1 frames by hand, for messages no
//! client library would encode (or survive encoding): header tables nested
//! thousands of levels deep. Only what a publish with confirms needs.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const FRAME_METHOD: u8 = 1;
const FRAME_HEADER: u8 = 2;
const FRAME_BODY: u8 = 3;
const FRAME_END: u8 = 0xCE;

pub struct RawPublisher {
    stream: TcpStream,
}

fn short_str(out: &mut Vec<u8>, s: &str) {
    out.push(u8::try_from(s.len()).expect("short string"));
    out.extend_from_slice(s.as_bytes());
}

fn long_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&u32::try_from(s.len()).unwrap().to_be_bytes());
    out.extend_from_slice(s);
}

fn method(class: u16, id: u16, args: &[u8]) -> Vec<u8> {
    let mut p = class.to_be_bytes().to_vec();
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(args);
    p
}

/// The shapes of nesting a header can take: each level a table, an array,
/// or alternately an array and a table inside it.
#[derive(Clone, Copy, Debug)]
pub enum Nesting {
    Tables,
    Arrays,
    TablesInArrays,
}

impl Nesting {
    fn kind(self, level: usize) -> u8 {
        match self {
            Nesting::Tables => b'F',
            Nesting::Arrays => b'A',
            Nesting::TablesInArrays if level.is_multiple_of(2) => b'A',
            Nesting::TablesInArrays => b'F',
        }
    }

    /// A typed field value nested `levels` deep, written outermost first
    /// (no recursion, whatever the depth).
    pub fn value(self, levels: usize) -> Vec<u8> {
        // Bytes each level adds around the next: a length, plus a key and a
        // type for a table entry, or a type for an array element.
        let overhead = |kind: u8| if kind == b'F' { 7 } else { 5 };
        let mut sizes = vec![4usize; levels + 1];
        for level in (0..levels).rev() {
            sizes[level] = sizes[level + 1] + overhead(self.kind(level));
        }
        let mut out = Vec::with_capacity(sizes[0] + 1);
        out.push(self.kind(0));
        for (level, size) in sizes.iter().enumerate().take(levels) {
            let kind = self.kind(level);
            let inner = size - 4;
            out.extend_from_slice(&u32::try_from(inner).unwrap().to_be_bytes());
            if kind == b'F' {
                out.extend_from_slice(b"\x01a");
            }
            out.push(if level + 1 < levels {
                self.kind(level + 1)
            } else {
                b'F'
            });
        }
        out.extend_from_slice(&0u32.to_be_bytes());
        out
    }
}

impl RawPublisher {
    /// Connects as guest to the local broker and opens channel 1 in
    /// confirm mode.
    pub async fn connect() -> RawPublisher {
        let stream = TcpStream::connect(("127.0.0.1", 5672))
            .await
            .expect("broker");
        let mut p = RawPublisher { stream };
        p.stream.write_all(b"AMQP\x00\x00\x09\x01").await.unwrap();
        p.expect(0, 10, 10).await; // connection.start
        let mut args = 0u32.to_be_bytes().to_vec(); // client properties
        short_str(&mut args, "PLAIN");
        long_str(&mut args, b"\0guest\0guest");
        short_str(&mut args, "en_US");
        p.send(FRAME_METHOD, 0, &method(10, 11, &args)).await;
        let tune = p.expect(0, 10, 30).await;
        let mut args = tune[..6].to_vec(); // channel-max, frame-max as offered
        args.extend_from_slice(&0u16.to_be_bytes()); // no heartbeats
        p.send(FRAME_METHOD, 0, &method(10, 31, &args)).await;
        let mut args = vec![];
        short_str(&mut args, "/");
        short_str(&mut args, "");
        args.push(0);
        p.send(FRAME_METHOD, 0, &method(10, 40, &args)).await;
        p.expect(0, 10, 41).await;
        p.send(FRAME_METHOD, 1, &method(20, 10, &[0])).await;
        p.expect(1, 20, 11).await;
        p.send(FRAME_METHOD, 1, &method(85, 10, &[0])).await;
        p.expect(1, 85, 11).await;
        p
    }

    async fn send(&mut self, kind: u8, channel: u16, payload: &[u8]) {
        let mut f = vec![kind];
        f.extend_from_slice(&channel.to_be_bytes());
        f.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
        f.extend_from_slice(payload);
        f.push(FRAME_END);
        self.stream.write_all(&f).await.expect("frame sent");
    }

    /// Reads frames until a method frame; asserts it is the one expected
    /// and returns its arguments.
    async fn expect(&mut self, channel: u16, class: u16, id: u16) -> Vec<u8> {
        loop {
            let mut head = [0u8; 7];
            self.stream.read_exact(&mut head).await.expect("frame");
            let size = u32::from_be_bytes(head[3..7].try_into().unwrap()) as usize;
            let mut payload = vec![0u8; size + 1];
            self.stream.read_exact(&mut payload).await.expect("frame");
            if head[0] != FRAME_METHOD {
                continue;
            }
            let got = (
                u16::from_be_bytes(head[1..3].try_into().unwrap()),
                u16::from_be_bytes(payload[0..2].try_into().unwrap()),
                u16::from_be_bytes(payload[2..4].try_into().unwrap()),
            );
            assert_eq!(
                got,
                (channel, class, id),
                "unexpected method (a close says why: {:?})",
                String::from_utf8_lossy(&payload)
            );
            return payload[4..size].to_vec();
        }
    }

    /// Publishes `body` with a `headers` property of one entry, `name` =
    /// the raw typed `value`, plus reply-to and correlation-id; waits for
    /// the broker's confirm.
    #[allow(clippy::too_many_arguments)]
    pub async fn publish(
        &mut self,
        exchange: &str,
        routing_key: &str,
        reply_to: &str,
        correlation_id: &str,
        name: &str,
        value: &[u8],
        body: &[u8],
    ) {
        let mut args = 0u16.to_be_bytes().to_vec();
        short_str(&mut args, exchange);
        short_str(&mut args, routing_key);
        args.push(0);
        self.send(FRAME_METHOD, 1, &method(60, 40, &args)).await;

        let mut header = 60u16.to_be_bytes().to_vec();
        header.extend_from_slice(&0u16.to_be_bytes());
        header.extend_from_slice(&(body.len() as u64).to_be_bytes());
        // content-type, headers, delivery-mode, correlation-id, reply-to
        let flags: u16 = (1 << 15) | (1 << 13) | (1 << 12) | (1 << 10) | (1 << 9);
        header.extend_from_slice(&flags.to_be_bytes());
        short_str(&mut header, "application/json");
        let mut table = vec![];
        short_str(&mut table, name);
        table.extend_from_slice(value);
        long_str(&mut header, &table);
        header.push(2);
        short_str(&mut header, correlation_id);
        short_str(&mut header, reply_to);
        self.send(FRAME_HEADER, 1, &header).await;
        self.send(FRAME_BODY, 1, body).await;
        self.expect(1, 60, 80).await; // basic.ack
    }
}
