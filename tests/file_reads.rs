//! Regular-file reads at an offset: tried on the driver's thread without
//! waiting for the disk where the system can (Linux's `preadv2` with
//! `RWF_NOWAIT`), on the blocking pool otherwise — the same bytes and
//! results either way. `Stats::offloaded` tells which way a read went,
//! checked against what the system itself answers a `RWF_NOWAIT` read of
//! the same bytes.

mod common;

use std::fs::{self, File};
use std::io::Write as _;
use std::os::fd::AsRawFd;

use bytes::BytesMut;
use common::*;
use kqring::ops::{Advice, Fadvise, Fsync, ProvideBuffers, Read, Readv};
use kqring::{Ring, SqeFlags};
use kqring_test_support::ScratchDir;

const LEN: usize = 64 * 1024;

fn contents() -> Vec<u8> {
    (0..LEN).map(|i| (i * 7 + i / 4096) as u8).collect()
}

/// What the system answers a read of `len` bytes at `off` that must not
/// wait: `Some(true)` read at once, `Some(false)` would wait, `None` no
/// such read (not Linux, or a file system that can't be asked).
fn nowait_answer(file: &File, off: u64, len: usize) -> Option<bool> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    nowait_call(file, off, len)
}

#[cfg(target_os = "linux")]
fn nowait_call(file: &File, off: u64, len: usize) -> Option<bool> {
    let mut buf = vec![0u8; len];
    let iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: len,
    };
    // SAFETY: one iovec over `buf`, alive across the call.
    let r = unsafe {
        libc::preadv2(
            file.as_raw_fd(),
            &iov,
            1,
            off as libc::off_t,
            libc::RWF_NOWAIT,
        )
    };
    match std::io::Error::last_os_error().raw_os_error() {
        _ if r >= 0 => Some(true),
        Some(libc::EAGAIN) => Some(false),
        _ => None,
    }
}

#[cfg(not(target_os = "linux"))]
fn nowait_call(_file: &File, _off: u64, _len: usize) -> Option<bool> {
    None
}

/// Runs `sqe`; its completion and whether it went to the pool.
fn run_counting(ring: &Ring, sqe: kqring::Sqe) -> (kqring::Cqe, bool) {
    let before = ring.stats().offloaded;
    let c = run1(ring, sqe);
    (c, ring.stats().offloaded > before)
}

fn file_with_contents(d: &ScratchDir) -> File {
    let path = d.join("f");
    fs::write(&path, contents()).unwrap();
    File::open(&path).unwrap()
}

#[test]
fn a_cached_read_at_an_offset_is_made_at_once() {
    let data = contents();
    each_mode(|ring| {
        let d = ScratchDir::new().unwrap();
        let file = file_with_contents(&d);
        let fd = file.as_raw_fd();
        // (offset, room, bytes wanted back): a whole block, one that
        // straddles the end, one past it, nothing asked.
        for (off, room, want) in [
            (4096u64, 4096usize, &data[4096..8192]),
            (LEN as u64 - 100, 4096, &data[LEN - 100..]),
            (LEN as u64 + 10, 4096, &data[..0]),
            (100, 0, &data[..0]),
        ] {
            let cached = nowait_answer(&file, off, room.max(1));
            let mut buf = BytesMut::with_capacity(room + 4);
            buf.extend_from_slice(b"kept");
            let sqe = Read::new(fd, buf).offset(off).build();
            let (mut c, offloaded) = run_counting(ring, sqe);
            assert_eq!(c.result(), want.len() as i32, "at {off}");
            let got = take_mut(&mut c);
            assert_eq!(&got[..4], b"kept", "the read goes after the data");
            assert!(&got[4..] == want, "at {off}: the bytes");
            if let Some(cached) = cached {
                assert_eq!(
                    offloaded, !cached,
                    "at {off}: the pool only when the system would wait"
                );
            }
        }
        // Vectored: the bytes spread over the buffers in order.
        let bufs = vec![BytesMut::with_capacity(10), BytesMut::with_capacity(4096)];
        let cached = nowait_answer(&file, 1000, 4106);
        let (mut c, offloaded) = run_counting(ring, Readv::new(fd, bufs).offset(1000).build());
        assert_eq!(c.result(), 4106);
        let bufs: Vec<BytesMut> = c.take_buf().unwrap();
        assert_eq!(&bufs[0][..], &data[1000..1010]);
        assert_eq!(&bufs[1][..], &data[1010..5106]);
        if let Some(cached) = cached {
            assert_eq!(offloaded, !cached);
        }
        // Vectored across the end: the first try's short result could be
        // a page not cached, so the pool reads it again, and says where
        // the file ends.
        let bufs = vec![BytesMut::with_capacity(10), BytesMut::with_capacity(4096)];
        let at = LEN as u64 - 100;
        let cached = nowait_answer(&file, at, 100);
        let (mut c, offloaded) = run_counting(ring, Readv::new(fd, bufs).offset(at).build());
        assert_eq!(c.result(), 100);
        let bufs: Vec<BytesMut> = c.take_buf().unwrap();
        assert_eq!(&bufs[0][..], &data[LEN - 100..LEN - 90]);
        assert_eq!(&bufs[1][..], &data[LEN - 90..]);
        if cached.is_some() {
            assert!(offloaded, "a short vectored first try goes to the pool");
        }
    });
}

#[test]
fn a_read_from_a_provided_buffer_is_made_at_once() {
    let data = contents();
    each_mode(|ring| {
        let d = ScratchDir::new().unwrap();
        let file = file_with_contents(&d);
        let provide = ProvideBuffers::one(7, BytesMut::with_capacity(512), 3).build();
        assert_eq!(run1(ring, provide).result(), 0);
        let cached = nowait_answer(&file, 512, 512);
        let (mut c, offloaded) =
            run_counting(ring, Read::select(file.as_raw_fd(), 7).offset(512).build());
        assert_eq!(c.result(), 512);
        assert_eq!(c.buffer_id(), Some(3));
        assert_eq!(&take_mut(&mut c)[..], &data[512..1024]);
        if let Some(cached) = cached {
            assert_eq!(offloaded, !cached);
        }
    });
}

/// What is not tried at once: a read at the file's position (which moves
/// it), and one with `ASYNC`; both run on the pool, as before.
#[test]
fn reads_at_the_position_and_async_reads_go_to_the_pool() {
    let data = contents();
    each_mode(|ring| {
        let d = ScratchDir::new().unwrap();
        let file = file_with_contents(&d);
        let fd = file.as_raw_fd();
        for i in 0..2 {
            let sqe = Read::new(fd, BytesMut::with_capacity(100))
                .offset(u64::MAX)
                .build();
            let (mut c, offloaded) = run_counting(ring, sqe);
            assert!(offloaded);
            assert_eq!(c.result(), 100);
            assert_eq!(&take_mut(&mut c)[..], &data[i * 100..(i + 1) * 100]);
        }
        let sqe = Read::new(fd, BytesMut::with_capacity(100))
            .offset(300)
            .build()
            .flags(SqeFlags::ASYNC);
        let (mut c, offloaded) = run_counting(ring, sqe);
        assert!(offloaded);
        assert_eq!(&take_mut(&mut c)[..], &data[300..400]);
    });
}

/// Data the page cache does not hold is read on the pool, whole; once
/// cached, at once. Which pages are cached is asked with `mincore`, which
/// starts no read-ahead (a `RWF_NOWAIT` read that finds nothing does).
#[test]
fn an_uncached_read_goes_to_the_pool_then_a_cached_one_does_not() {
    let data = contents();
    each_mode(|ring| {
        let d = ScratchDir::new().unwrap();
        let path = d.join("f");
        let mut w = File::create(&path).unwrap();
        w.write_all(&data).unwrap();
        let fd = w.as_raw_fd();
        // Written out, then dropped from the cache.
        assert_eq!(run1(ring, Fsync::new(fd).build()).result(), 0);
        let _ = run1(ring, Fadvise::new(fd, 0, 0, Advice::DontNeed).build());
        let file = File::open(&path).unwrap();
        let read = || {
            Read::new(file.as_raw_fd(), BytesMut::with_capacity(8192))
                .offset(8192)
                .build()
        };
        let before = resident(&file, 8192, 8192);
        let (mut c, offloaded) = run_counting(ring, read());
        assert_eq!(c.result(), 8192);
        assert!(take_mut(&mut c)[..] == data[8192..16384]);
        // Not cached: the pool reads it, whatever the system offers.
        if before == Some(false) {
            assert!(offloaded, "uncached, read at once");
        }
        // Now cached: read at once where the system can.
        if resident(&file, 8192, 8192) == Some(true)
            && let Some(at_once) = nowait_answer(&file, 8192, 8192)
        {
            let (mut c, offloaded) = run_counting(ring, read());
            assert_eq!(offloaded, !at_once);
            assert!(take_mut(&mut c)[..] == data[8192..16384]);
        }
    });
}

/// Whether every page of the `len` bytes at `off` is in the page cache:
/// `None` where that can't be asked here.
#[cfg(target_os = "linux")]
fn resident(file: &File, off: usize, len: usize) -> Option<bool> {
    // SAFETY: sysconf takes no pointer.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    // SAFETY: a fresh shared read-only mapping of the whole file, unmapped
    // below; mincore writes one byte per page of it into `pages`.
    unsafe {
        let map = libc::mmap(
            std::ptr::null_mut(),
            LEN,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        );
        assert_ne!(map, libc::MAP_FAILED);
        let mut pages = vec![0u8; LEN.div_ceil(page)];
        let r = libc::mincore(map, LEN, pages.as_mut_ptr());
        libc::munmap(map, LEN);
        let ours = &pages[off / page..(off + len).div_ceil(page)];
        (r == 0).then(|| ours.iter().all(|p| p & 1 == 1))
    }
}

#[cfg(not(target_os = "linux"))]
fn resident(_file: &File, _off: usize, _len: usize) -> Option<bool> {
    None
}
