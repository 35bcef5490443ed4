//! Owned buffers: what reads fill and writes send, handed back typed.
//!
//! A read or receive takes any buffer that implements [`IoBufMut`] and
//! its completion gives that same buffer back, its length grown by what
//! was read; a write or send takes any [`IoBuf`] and gives it back as it
//! came. The completion holds the buffer type-erased;
//! [`Cqe::take_buf`](crate::Cqe::take_buf) names the type and gets it back,
//! or a [`BufError`] saying what the completion holds instead.
//!
//! kqring makes every syscall while the buffer is borrowed from the
//! operation that owns it, so no pointer outlives a call: a buffer may move
//! between attempts, and [`IoBuf`] is a safe trait. [`IoBufMut`] is
//! `unsafe` because the kernel writes through its pointer.
//!
//! ```
//! use kqring::{IoBuf, IoBufMut};
//! fn room(b: &impl IoBufMut) -> usize { b.buf_capacity() - b.buf_len() }
//! assert_eq!(room(&Vec::<u8>::with_capacity(8)), 8);
//! assert_eq!(b"abc".as_slice().as_bytes(), b"abc");
//! ```

use std::any::{Any, TypeId, type_name};
use std::fmt;
use std::marker::PhantomData;
use std::mem::{ManuallyDrop, MaybeUninit};

use bytes::{Bytes, BytesMut};

/// A buffer a write or send takes its bytes from.
pub trait IoBuf: Send + 'static {
    /// The bytes to write.
    fn as_bytes(&self) -> &[u8];
}

/// A buffer a read or receive fills.
///
/// A read appends after the buffer's [`buf_len`](Self::buf_len) bytes, up
/// to its [`buf_capacity`](Self::buf_capacity), then sets its length past
/// what it wrote. A buffer with no notion of a length (`Box<[u8]>`, a
/// fixed aligned buffer) reports 0 and ignores `set_buf_len`: reads fill it
/// from the start, and the completion's `res` says how much.
///
/// # Safety
///
/// `spare_mut_ptr` must point at the `buf_capacity - buf_len` bytes the
/// buffer owns after its data, valid for writes until the buffer is next
/// used; `buf_len` must not exceed `buf_capacity`.
pub unsafe trait IoBufMut: Send + 'static {
    /// The first byte after the buffer's data, where a read writes. (A
    /// pointer derived from the data would not do: a slice's pointer may
    /// only reach the slice's own bytes.)
    fn spare_mut_ptr(&mut self) -> *mut u8;

    /// The bytes of data it holds; a read appends after them.
    fn buf_len(&self) -> usize;

    /// The bytes of memory it has in all.
    fn buf_capacity(&self) -> usize;

    /// Makes the first `len` bytes its data.
    ///
    /// # Safety
    ///
    /// `len <= buf_capacity()`, and the first `len` bytes are initialised.
    unsafe fn set_buf_len(&mut self, len: usize);
}

impl IoBuf for Bytes {
    fn as_bytes(&self) -> &[u8] {
        self
    }
}

impl IoBuf for BytesMut {
    fn as_bytes(&self) -> &[u8] {
        self
    }
}

impl IoBuf for Vec<u8> {
    fn as_bytes(&self) -> &[u8] {
        self
    }
}

impl IoBuf for Box<[u8]> {
    fn as_bytes(&self) -> &[u8] {
        self
    }
}

impl IoBuf for String {
    fn as_bytes(&self) -> &[u8] {
        self.as_ref()
    }
}

impl IoBuf for &'static [u8] {
    fn as_bytes(&self) -> &[u8] {
        self
    }
}

impl<const N: usize> IoBuf for &'static [u8; N] {
    fn as_bytes(&self) -> &[u8] {
        self.as_slice()
    }
}

impl IoBuf for &'static str {
    fn as_bytes(&self) -> &[u8] {
        str::as_bytes(self)
    }
}

/// `IoBufMut` for a growable buffer: its length, capacity and allocation.
macro_rules! growable {
    ($($ty:ty),*) => {$(
        // SAFETY: the spare capacity is the buffer's own allocation.
        unsafe impl IoBufMut for $ty {
            fn spare_mut_ptr(&mut self) -> *mut u8 {
                self.spare_capacity_mut().as_mut_ptr().cast()
            }

            fn buf_len(&self) -> usize {
                self.len()
            }

            fn buf_capacity(&self) -> usize {
                self.capacity()
            }

            unsafe fn set_buf_len(&mut self, len: usize) {
                // SAFETY: the caller initialised `len <= capacity` bytes.
                unsafe { self.set_len(len) }
            }
        }
    )*};
}

growable!(BytesMut, Vec<u8>);

// SAFETY: the pointer and length are the box's own, initialised memory.
unsafe impl IoBufMut for Box<[u8]> {
    fn spare_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }

    fn buf_len(&self) -> usize {
        0
    }

    fn buf_capacity(&self) -> usize {
        self.len()
    }

    unsafe fn set_buf_len(&mut self, _len: usize) {}
}

/// Where a read lands in a buffer: the memory after its first `from`
/// bytes (never inside its data), borrowed from the buffer for one call.
pub(crate) struct Room<'a> {
    ptr: *mut u8,
    len: usize,
    _buf: PhantomData<&'a mut [u8]>,
}

impl<'a> Room<'a> {
    /// The room of `buf` after its first `from` bytes (`from` clamped
    /// between its length and its capacity).
    pub(crate) fn of<B: IoBufMut + ?Sized>(buf: &'a mut B, from: usize) -> Room<'a> {
        let cap = buf.buf_capacity();
        let data = buf.buf_len().min(cap);
        let from = from.max(data).min(cap);
        // SAFETY: `data <= from <= cap`, so the offset stays in the spare
        // memory (`IoBufMut`'s contract).
        let ptr = unsafe { buf.spare_mut_ptr().add(from - data) };
        Room {
            ptr,
            len: cap - from,
            _buf: PhantomData,
        }
    }

    /// At most `max` bytes of it.
    pub(crate) fn limit(self, max: usize) -> Room<'a> {
        Room {
            len: self.len.min(max),
            ..self
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The memory, for a call that writes into it.
    pub(crate) fn as_uninit(&mut self) -> &mut [MaybeUninit<u8>] {
        // SAFETY: `IoBufMut` promises `len` writable bytes at `ptr` while
        // the buffer stays borrowed, which `'a` holds. Seeing initialised
        // bytes as `MaybeUninit` is sound; only a syscall writes here.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.cast(), self.len) }
    }

    /// The memory as an iovec, for the vectored calls.
    pub(crate) fn iovec(&mut self) -> libc::iovec {
        libc::iovec {
            iov_base: self.ptr.cast(),
            iov_len: self.len,
        }
    }
}

/// Records that a read wrote `n` bytes into `buf` after its first `from`:
/// its length becomes `from + n`, within its capacity.
pub(crate) fn filled<B: IoBufMut + ?Sized>(buf: &mut B, from: usize, n: usize) {
    let len = from.saturating_add(n).min(buf.buf_capacity());
    if len > buf.buf_len() {
        // SAFETY: the syscall initialised the bytes from `from` to `len`
        // (those before `from` were data already), and `len` is clamped
        // to the capacity.
        unsafe { buf.set_buf_len(len) };
    }
}

/// A completion's buffer with its type erased. The kinds most programs use
/// are held as they are; any other rides in a box.
pub(crate) enum AnyBuf {
    BytesMut(BytesMut),
    Bytes(Bytes),
    Vec(Vec<u8>),
    Other {
        buf: Box<dyn Any + Send>,
        type_name: &'static str,
    },
}

/// `b` as a `T`, when `B` is `T`; `b` back otherwise.
fn same<B: 'static, T: 'static>(b: B) -> Result<T, B> {
    if TypeId::of::<B>() != TypeId::of::<T>() {
        return Err(b);
    }
    let b = ManuallyDrop::new(b);
    // SAFETY: `B` and `T` are one type, so this is a move of `b`; the
    // original is never dropped.
    Ok(unsafe { std::mem::transmute_copy::<B, T>(&b) })
}

impl AnyBuf {
    /// Erases `buf`'s type.
    pub(crate) fn new<B: Send + 'static>(buf: B) -> AnyBuf {
        let buf = match same::<B, BytesMut>(buf) {
            Ok(b) => return AnyBuf::BytesMut(b),
            Err(b) => b,
        };
        let buf = match same::<B, Bytes>(buf) {
            Ok(b) => return AnyBuf::Bytes(b),
            Err(b) => b,
        };
        let buf = match same::<B, Vec<u8>>(buf) {
            Ok(b) => return AnyBuf::Vec(b),
            Err(b) => b,
        };
        AnyBuf::Other {
            buf: Box::new(buf),
            type_name: type_name::<B>(),
        }
    }

    /// The name of the type it holds.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            AnyBuf::BytesMut(_) => type_name::<BytesMut>(),
            AnyBuf::Bytes(_) => type_name::<Bytes>(),
            AnyBuf::Vec(_) => type_name::<Vec<u8>>(),
            AnyBuf::Other { type_name, .. } => type_name,
        }
    }

    /// The buffer as a `T`, or itself back if it is not one.
    pub(crate) fn downcast<T: 'static>(self) -> Result<T, AnyBuf> {
        match self {
            AnyBuf::BytesMut(b) => same(b).map_err(AnyBuf::BytesMut),
            AnyBuf::Bytes(b) => same(b).map_err(AnyBuf::Bytes),
            AnyBuf::Vec(b) => same(b).map_err(AnyBuf::Vec),
            AnyBuf::Other { buf, type_name } => match buf.downcast::<T>() {
                Ok(t) => Ok(*t),
                Err(buf) => Err(AnyBuf::Other { buf, type_name }),
            },
        }
    }
}

impl fmt::Debug for AnyBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.type_name())
    }
}

/// Why [`Cqe::take_buf`](crate::Cqe::take_buf) gave no buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BufError {
    /// The completion carries no buffer: its operation had none, or it was
    /// taken already.
    Missing,
    /// The completion carries a buffer of another type; it stays there.
    WrongType {
        /// The type asked for.
        asked: &'static str,
        /// The type the completion holds.
        held: &'static str,
    },
}

impl fmt::Display for BufError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BufError::Missing => f.write_str("the completion carries no buffer"),
            BufError::WrongType { asked, held } => {
                write!(
                    f,
                    "asked for a buffer of type {asked}, the completion holds {held}"
                )
            }
        }
    }
}

impl std::error::Error for BufError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Aligned(Vec<u8>);

    #[test]
    fn every_kind_comes_back_as_itself() {
        let b = AnyBuf::new(BytesMut::from(&b"ab"[..]));
        assert!(matches!(b, AnyBuf::BytesMut(_)));
        assert_eq!(b.downcast::<BytesMut>().ok().as_deref(), Some(&b"ab"[..]));
        let v = AnyBuf::new(vec![1u8, 2]);
        assert!(matches!(v, AnyBuf::Vec(_)));
        let v = v.downcast::<Bytes>().expect_err("a Vec is not Bytes");
        assert_eq!(v.type_name(), "alloc::vec::Vec<u8>");
        assert_eq!(v.downcast::<Vec<u8>>().ok(), Some(vec![1, 2]));
        let own = AnyBuf::new(Aligned(vec![7]));
        assert!(own.type_name().ends_with("Aligned"));
        let own = own.downcast::<Vec<u8>>().expect_err("not a Vec");
        assert_eq!(own.downcast::<Aligned>().ok(), Some(Aligned(vec![7])));
        let vecs = AnyBuf::new(vec![Bytes::from_static(b"x")]);
        assert_eq!(
            vecs.downcast::<Vec<Bytes>>().ok(),
            Some(vec![Bytes::from_static(b"x")])
        );
    }

    #[test]
    fn a_read_appends_after_the_data_and_a_box_fills_from_the_start() {
        let mut b = BytesMut::with_capacity(8);
        b.extend_from_slice(b"ab");
        let cap = b.capacity();
        let mut room = Room::of(&mut b, 2);
        assert_eq!(room.len(), cap - 2);
        room.as_uninit()[0].write(b'c');
        filled(&mut b, 2, 1);
        assert_eq!(&b[..], b"abc");
        let mut boxed: Box<[u8]> = vec![0; 4].into_boxed_slice();
        let room = Room::of(&mut boxed, 0).limit(2);
        assert_eq!(room.len(), 2);
        filled(&mut boxed, 0, 2);
        assert_eq!(boxed.len(), 4, "a box keeps its length");
    }
}
