//! examples/copy.rs: its `copy`, run here as the example runs it, in both
//! driving modes and at several depths, each copy checked byte for byte.

#[path = "../examples/copy.rs"]
#[allow(dead_code)]
mod example;

mod common;

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;

use common::{assert_quiet, rings};
use example::{Options, copy};
use kqring_test_support::ScratchDir;

/// `n` bytes that differ from block to block (xorshift), so that a block
/// written at the wrong offset shows.
fn contents(n: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn opts(depth: usize, block_size: usize) -> Options {
    Options {
        depth,
        block_size,
        sync: false,
    }
}

#[test]
fn copies_byte_for_byte_with_several_blocks_in_flight() {
    const BLOCK: usize = 16 * 1024;
    // 64 whole blocks and a part of one.
    let data = contents(64 * BLOCK + 12_345);
    let blocks = 65;
    let d = ScratchDir::new().unwrap();
    let src = d.join("src");
    fs::write(&src, &data).unwrap();
    fs::set_permissions(&src, fs::Permissions::from_mode(0o640)).unwrap();
    for ring in rings() {
        for depth in [1, 4, 32] {
            let dst = d.join(format!("dst-{depth}"));
            // Something longer there already: the copy truncates it.
            fs::write(&dst, vec![b'!'; data.len() + 100]).unwrap();
            let mut o = opts(depth, BLOCK);
            o.sync = depth == 4;
            let report = copy(&ring, &src, &dst, o).unwrap();
            let got = fs::read(&dst).unwrap();
            assert!(got == data, "depth {depth}: the copy differs");
            assert_eq!(report.bytes, data.len() as u64);
            assert_eq!(report.most_in_flight, depth, "depth {depth}");
            // A regular file reads and writes whole: one of each per block.
            assert_eq!((report.reads, report.writes), (blocks, blocks));
            fs::remove_file(&dst).unwrap();
        }
        // A new copy gets the source's permission bits.
        let dst = d.join("mode");
        copy(&ring, &src, &dst, opts(8, BLOCK)).unwrap();
        let mode = fs::metadata(&dst).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & !0o640, 0, "{mode:o}");
        fs::remove_file(&dst).unwrap();
        // Nothing of the copies is left in the ring.
        assert_quiet(&ring);
    }
}

#[test]
fn copies_empty_and_single_block_files() {
    let d = ScratchDir::new().unwrap();
    for ring in rings() {
        for (n, block) in [(0, 4096), (1, 4096), (4096, 4096), (4097, 4096), (10, 3)] {
            let data = contents(n);
            let (src, dst) = (d.join("src"), d.join("dst"));
            fs::write(&src, &data).unwrap();
            let report = copy(&ring, &src, &dst, opts(8, block)).unwrap();
            assert_eq!(fs::read(&dst).unwrap(), data, "{n} bytes");
            assert_eq!(report.bytes, n as u64);
            let blocks = n.div_ceil(block) as u64;
            assert_eq!((report.reads, report.writes), (blocks, blocks));
            assert_eq!(report.most_in_flight, (blocks as usize).min(8));
        }
        // Nothing of the copies is left in the ring.
        assert_quiet(&ring);
    }
}

#[test]
fn refuses_what_it_cannot_copy() {
    let d = ScratchDir::new().unwrap();
    fs::create_dir(d.join("sub")).unwrap();
    fs::write(d.join("src"), b"x").unwrap();
    for ring in rings() {
        let err = |src: &str, dst: &str, o: Options| {
            copy(&ring, &d.join(src), &d.join(dst), o).unwrap_err()
        };
        let e = err("missing", "dst", opts(4, 16));
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        let e = err("sub", "dst", opts(4, 16));
        assert_eq!(e.raw_os_error(), Some(libc::EISDIR));
        let e = err("src", "sub", opts(4, 16));
        assert_eq!(e.raw_os_error(), Some(libc::EISDIR));
        let e = err("src", "no/dst", opts(4, 16));
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        for bad in [opts(0, 16), opts(4, 0), opts(100_000, 16)] {
            assert_eq!(err("src", "dst", bad).kind(), io::ErrorKind::InvalidInput);
        }
        assert!(!d.join("dst").exists(), "nothing made");
        // Nothing of the copies is left in the ring.
        assert_quiet(&ring);
    }
}
