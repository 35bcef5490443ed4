//! The minimal HTTP/1.1 keep-alive server of `examples/http_server.rs`, on
//! tokio's current-thread runtime: the reference `bench/wrk.sh` sets
//! kqring's server against. The same protocol: every request head gets the
//! same fixed response, pipelined requests are answered in one write, a
//! request with `Connection: close` closes after its answer, and a
//! connection reads into one 8 KiB buffer.
//!
//! ```sh
//! cargo run --release -p kqring-bench --example http_tokio -- --port 8080
//! wrk -t1 -c100 -d5s http://127.0.0.1:8080/
//! ```
//!
//! Options: `--host ADDR` (default 127.0.0.1), `--port N` (default 0: any
//! free port, printed).

use std::io;
use std::net::{IpAddr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The response of examples/http_server, but for the server's name.
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\n\
Server: tokio\r\n\
Content-Type: text/plain\r\n\
Content-Length: 13\r\n\
\r\n\
Hello, world!";

/// A connection's receive buffer, and the most a request head may take.
const BUF_SIZE: usize = 8192;

/// The complete request heads at the front of `buf`: how many, how many
/// bytes they take, and whether one asked to close the connection.
fn requests(buf: &[u8]) -> (usize, usize, bool) {
    let (mut n, mut used, mut close) = (0, 0, false);
    while let Some(end) = buf[used..].windows(4).position(|w| w == b"\r\n\r\n") {
        let head = &buf[used..used + end];
        close |= head
            .split(|&b| b == b'\n')
            .any(|line| line.to_ascii_lowercase().starts_with(b"connection: close"));
        n += 1;
        used += end + 4;
    }
    (n, used, close)
}

async fn serve(mut s: TcpStream) -> io::Result<()> {
    s.set_nodelay(true)?;
    let mut buf = vec![0u8; BUF_SIZE];
    let mut filled = 0;
    let mut out = Vec::new();
    loop {
        let n = s.read(&mut buf[filled..]).await?;
        if n == 0 {
            return Ok(());
        }
        filled += n;
        let (count, used, close) = requests(&buf[..filled]);
        if count == 0 && filled == BUF_SIZE {
            // A head larger than the buffer: not a request this server takes.
            return Ok(());
        }
        buf.copy_within(used..filled, 0);
        filled -= used;
        out.clear();
        for _ in 0..count {
            out.extend_from_slice(RESPONSE);
        }
        s.write_all(&out).await?;
        if close {
            return Ok(());
        }
    }
}

fn main() -> io::Result<()> {
    let mut host: IpAddr = [127, 0, 0, 1].into();
    let mut port = 0u16;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let parsed = match arg.as_str() {
            "--host" => args.next().and_then(|v| v.parse().ok()).map(|v| host = v),
            "--port" => args.next().and_then(|v| v.parse().ok()).map(|v| port = v),
            _ => None,
        };
        if parsed.is_none() {
            eprintln!("usage: http_tokio [--host ADDR] [--port N]");
            std::process::exit(2);
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = TcpListener::bind(SocketAddr::new(host, port)).await?;
        println!(
            "http server listening on http://{}/",
            listener.local_addr()?
        );
        loop {
            let (conn, _) = listener.accept().await?;
            tokio::spawn(async move {
                // A client that goes away mid-request is not the server's error.
                let _ = serve(conn).await;
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelined_heads_are_counted_and_close_is_seen() {
        let (n, used, close) =
            requests(b"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nConnection: close\r\n\r\nGET");
        assert_eq!((n, close), (2, true));
        assert_eq!(used, 18 + 37);
        assert_eq!(requests(b"GET / HTTP/1.1\r\n"), (0, 0, false));
    }
}
