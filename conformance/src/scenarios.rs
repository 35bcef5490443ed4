//! The built-in scenarios, and the differences from io_uring that are
//! known and documented (in docs/semantics.md, "Conformance with
//! io_uring": "Differences by design" and "Open differences").
//!
//! Each scenario carries, after every wait, the completions io_uring gives
//! (`expect`), recorded with `kqring-conformance --bless` and read against
//! io_uring's documented semantics; a scenario that differs also carries
//! kqring's own (`expect-kqring`).
//!
//! Scenarios never rely on timing: an entry that must still be pending
//! when something else happens waits on a socket or pipe with no data, and
//! timers are either short ones whose expiry is awaited or long ones that
//! must never fire. Where io_uring leaves the order of completions open
//! (independent entries, a canceller and what it cancels) the scenario
//! compares each wait's completions sorted by `user_data`.

use crate::model::Program;
use crate::text::ParseError;

/// Why a scenario's completions differ from io_uring's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Difference {
    /// kqring differs on purpose, and says so in docs/semantics.md
    /// ("Differences by design").
    ByDesign(&'static str),
    /// kqring means to behave as io_uring does here, and does not: a bug,
    /// reported, and listed in docs/semantics.md ("Open differences").
    /// Once fixed, kqring no longer gives its `expect-kqring` completions
    /// and the suite fails until the scenario drops them and leaves this
    /// list.
    Open(&'static str),
}

impl Difference {
    /// The explanation.
    pub fn why(&self) -> &'static str {
        match self {
            Difference::ByDesign(w) | Difference::Open(w) => w,
        }
    }

    /// `"by design"` or `"open"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Difference::ByDesign(_) => "by design",
            Difference::Open(_) => "open",
        }
    }
}

/// A built-in scenario.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// Its name (what the CLI and the summary call it).
    pub name: &'static str,
    /// What it checks.
    pub about: &'static str,
    /// The program, in the text format.
    pub text: &'static str,
    /// Why kqring differs from io_uring here, when it is a known and
    /// documented difference.
    pub difference: Option<Difference>,
}

impl Scenario {
    /// The program.
    pub fn program(&self) -> Result<Program, ParseError> {
        Program::parse(self.name, self.text)
    }
}

/// Finds a built-in scenario by name.
pub fn find(name: &str) -> Option<&'static Scenario> {
    ALL.iter().find(|s| s.name == name)
}

const fn same(name: &'static str, about: &'static str, text: &'static str) -> Scenario {
    Scenario {
        name,
        about,
        text,
        difference: None,
    }
}

const fn differs(
    name: &'static str,
    about: &'static str,
    text: &'static str,
    why: Difference,
) -> Scenario {
    Scenario {
        name,
        about,
        text,
        difference: Some(why),
    }
}

/// Every built-in scenario.
pub static ALL: &[Scenario] = &[
    // --- misc ---
    same(
        "nop",
        "a Nop completes with 0",
        r#"nop ud=1
        wait 1
        expect ud=1 res=0"#,
    ),
    same(
        "nop-batch",
        "three Nops in one batch",
        r#"order user_data
        nop ud=1
        nop ud=2
        nop ud=3
        wait 3
        expect ud=1 res=0
        expect ud=2 res=0
        expect ud=3 res=0"#,
    ),
    same(
        "nop-async",
        "ASYNC on a Nop changes nothing visible",
        r#"nop ud=1 flags=async
        wait 1
        expect ud=1 res=0"#,
    ),
    // --- reads and writes on sockets ---
    same(
        "read-ready",
        "a read of a socket with data waiting returns it (short read, no link)",
        r#"pair p
        write-peer p.a "hello"
        read fd=p.b len=16 ud=1
        wait 1
        expect ud=1 res=5 data="hello""#,
    ),
    same(
        "read-waits-for-data",
        "a read of an empty socket completes when data arrives",
        r#"pair p
        read fd=p.b len=5 ud=1
        write-peer p.a "hello"
        wait 1
        expect ud=1 res=5 data="hello""#,
    ),
    same(
        "read-eof",
        "a read after the peer closed returns 0",
        r#"pair p
        close-peer p.a
        read fd=p.b len=8 ud=1
        wait 1
        expect ud=1 res=0 data="""#,
    ),
    same(
        "read-eof-while-waiting",
        "a waiting read returns 0 when the peer closes",
        r#"pair p
        read fd=p.b len=8 ud=1
        close-peer p.a
        wait 1
        expect ud=1 res=0 data="""#,
    ),
    same(
        "read-zero-length",
        "a zero-length read of an empty socket returns 0 at once",
        r#"order user_data
        pair p
        read fd=p.b len=0 ud=1 flags=link
        link-timeout ms=100 ud=2
        wait 2
        expect ud=1 res=0 data=""
        expect ud=2 res=-ECANCELED"#,
    ),
    same(
        "read-bad-fd",
        "a read of a descriptor that is not open is -EBADF",
        r#"bad x
        read fd=x len=4 ud=1
        wait 1
        expect ud=1 res=-EBADF"#,
    ),
    same(
        "write-bad-fd",
        "a write to a descriptor that is not open is -EBADF",
        r#"bad x
        write fd=x data="x" ud=1
        wait 1
        expect ud=1 res=-EBADF"#,
    ),
    same(
        "write-then-read",
        "a write and a read of the other end, one batch",
        r#"order user_data
        pair p
        write fd=p.a data="ping" ud=1
        read fd=p.b len=4 ud=2
        wait 2
        expect ud=1 res=4
        expect ud=2 res=4 data="ping""#,
    ),
    same(
        "write-closed-peer",
        "a write to a socket whose peer is closed is -EPIPE",
        r#"pair p
        close-peer p.b
        write fd=p.a data="x" ud=1
        wait 1
        expect ud=1 res=-EPIPE"#,
    ),
    differs(
        "reads-on-one-socket-in-order",
        "two reads waiting on one socket get the data in submission order",
        r#"pair p
        read fd=p.b len=2 ud=1
        read fd=p.b len=2 ud=2
        write-peer p.a "abcd"
        wait 2
        expect ud=2 res=2 data="ab"
        expect ud=1 res=2 data="cd"
        expect-kqring ud=1 res=2 data="ab"
        expect-kqring ud=2 res=2 data="cd""#,
        Difference::ByDesign(
            "kqring serves the operations waiting on one descriptor and direction in \
             submission order (its invariant 2), so the first read gets the first \
             bytes; io_uring promises no order, and Linux wakes the later read's poll \
             first (wait queues are LIFO), so the second read gets them",
        ),
    ),
    // --- pipes ---
    same(
        "pipe-write-read",
        "a write and a read through a non-blocking pipe",
        r#"order user_data
        pipe q
        write fd=q.w data="abc" ud=1
        read fd=q.r len=3 ud=2
        wait 2
        expect ud=1 res=3
        expect ud=2 res=3 data="abc""#,
    ),
    same(
        "pipe-read-waits",
        "a read of an empty non-blocking pipe completes when data arrives",
        r#"pipe q
        read fd=q.r len=3 ud=1
        write-peer q.w "abc"
        wait 1
        expect ud=1 res=3 data="abc""#,
    ),
    same(
        "pipe-read-eof",
        "a read of a pipe whose writer is closed returns 0",
        r#"pipe q
        close-peer q.w
        read fd=q.r len=4 ud=1
        wait 1
        expect ud=1 res=0 data="""#,
    ),
    same(
        "pipe-write-closed-reader",
        "a write to a pipe whose reader is closed is -EPIPE",
        r#"pipe q
        close-peer q.r
        write fd=q.w data="x" ud=1
        wait 1
        expect ud=1 res=-EPIPE"#,
    ),
    same(
        "blocking-pipe-read-waits",
        "a read of an empty blocking pipe completes when data arrives",
        r#"pipe q blocking
        read fd=q.r len=3 ud=1
        write-peer q.w "abc"
        wait 1
        expect ud=1 res=3 data="abc""#,
    ),
    // --- regular files ---
    same(
        "file-read-offset",
        "a read of a file at an offset",
        r#"file f "hello world"
        read fd=f len=5 off=6 ud=1
        wait 1
        expect ud=1 res=5 data="world""#,
    ),
    same(
        "file-read-short",
        "a read of a file asking for more than there is",
        r#"file f "hello world"
        read fd=f len=64 ud=1
        wait 1
        expect ud=1 res=11 data="hello world""#,
    ),
    same(
        "file-read-past-end",
        "a read of a file past its end returns 0",
        r#"file f "hello world"
        read fd=f len=8 off=100 ud=1
        wait 1
        expect ud=1 res=0 data="""#,
    ),
    same(
        "file-read-current-position",
        "linked reads at the current position read on from each other",
        r#"file f "hello world"
        read fd=f len=5 off=cur ud=1 flags=link
        read fd=f len=6 off=cur ud=2
        wait 2
        expect ud=1 res=5 data="hello"
        expect ud=2 res=6 data=" world""#,
    ),
    same(
        "file-write-then-read",
        "a write at offset 0 linked to a read of the whole file",
        r#"file f "hello world"
        write fd=f data="HELLO" ud=1 flags=link
        read fd=f len=11 ud=2
        wait 2
        expect ud=1 res=5
        expect ud=2 res=11 data="HELLO world""#,
    ),
    same(
        "file-write-current-position",
        "linked writes at the current position append to each other",
        r#"file f "hello world"
        write fd=f data="ab" off=cur ud=1 flags=link
        write fd=f data="cd" off=cur ud=2 flags=link
        read fd=f len=11 ud=3
        wait 3
        expect ud=1 res=2
        expect ud=2 res=2
        expect ud=3 res=11 data="abcdo world""#,
    ),
    // --- vectored ---
    same(
        "readv-socket",
        "a vectored read of a socket fills its buffers in order",
        r#"pair p
        write-peer p.a "abcdef"
        readv fd=p.b lens=2,4 ud=1
        wait 1
        expect ud=1 res=6 data="abcdef""#,
    ),
    same(
        "readv-file-offset",
        "a vectored read of a file at an offset",
        r#"file f "hello world"
        readv fd=f lens=3,3 off=2 ud=1
        wait 1
        expect ud=1 res=6 data="llo wo""#,
    ),
    same(
        "writev-socket",
        "a vectored write, then a read of the other end",
        r#"order user_data
        pair p
        writev fd=p.a data="ab" data="cd" ud=1
        read fd=p.b len=4 ud=2
        wait 2
        expect ud=1 res=4
        expect ud=2 res=4 data="abcd""#,
    ),
    same(
        "writev-readv-file-current-position",
        "a vectored write then a vectored read at the current position",
        r#"file f "0123456789"
        writev fd=f data="ab" data="c" off=cur ud=1 flags=link
        readv fd=f lens=4,6 off=cur ud=2
        wait 2
        expect ud=1 res=3
        expect ud=2 res=7 data="3456789""#,
    ),
    same(
        "readv-bad-fd",
        "a vectored read of a descriptor that is not open is -EBADF",
        r#"bad x
        readv fd=x lens=1,1 ud=1
        wait 1
        expect ud=1 res=-EBADF"#,
    ),
    same(
        "writev-bad-fd",
        "a vectored write to a descriptor that is not open is -EBADF",
        r#"bad x
        writev fd=x data="a" data="b" ud=1
        wait 1
        expect ud=1 res=-EBADF"#,
    ),
    same(
        "readv-eof",
        "a vectored read after the peer closed returns 0",
        r#"pair p
        close-peer p.a
        readv fd=p.b lens=2,2 ud=1
        wait 1
        expect ud=1 res=0 data="""#,
    ),
    // --- poll ---
    same(
        "poll-in-ready",
        "a poll for input on a socket with data completes with POLLIN",
        r#"pair p
        write-peer p.a "x"
        poll fd=p.b events=in ud=1
        wait 1
        expect ud=1 res=1"#,
    ),
    same(
        "poll-out-ready",
        "a poll for output on a writable socket completes with POLLOUT",
        r#"pair p
        poll fd=p.a events=out ud=1
        wait 1
        expect ud=1 res=4"#,
    ),
    same(
        "poll-waits",
        "a poll for input completes when data arrives",
        r#"pair p
        poll fd=p.b events=in ud=1
        write-peer p.a "x"
        wait 1
        expect ud=1 res=1"#,
    ),
    same(
        "poll-hup-socket",
        "a poll for input sees the peer's close",
        r#"pair p
        poll fd=p.b events=in ud=1
        close-peer p.a
        wait 1
        expect ud=1 res=17"#,
    ),
    same(
        "poll-hup-pipe",
        "a poll for input on a pipe sees the writer's close as POLLHUP",
        r#"pipe q
        poll fd=q.r events=in ud=1
        close-peer q.w
        wait 1
        expect ud=1 res=16"#,
    ),
    same(
        "poll-bad-fd",
        "a poll of a descriptor that is not open is -EBADF",
        r#"bad x
        poll fd=x events=in ud=1
        wait 1
        expect ud=1 res=-EBADF"#,
    ),
    same(
        "poll-multishot",
        "a multishot poll posts F_MORE per event, then a final CQE when removed",
        r#"order user_data
        pair p
        poll fd=p.b events=in multi ud=1
        nop ud=9
        wait 1
        expect ud=9 res=0
        write-peer p.a "a"
        wait 1
        expect ud=1 res=1 more
        write-peer p.a "b"
        wait 1
        expect ud=1 res=1 more
        poll-remove target=1 ud=2
        wait 2
        expect ud=1 res=-ECANCELED
        expect ud=2 res=0"#,
    ),
    same(
        "poll-multishot-cancel",
        "a multishot poll ended by AsyncCancel",
        r#"order user_data
        pair p
        poll fd=p.b events=in multi ud=1
        nop ud=9
        wait 1
        expect ud=9 res=0
        write-peer p.a "a"
        wait 1
        expect ud=1 res=1 more
        cancel target=1 ud=2
        wait 2
        expect ud=1 res=-ECANCELED
        expect ud=2 res=0"#,
    ),
    same(
        "poll-multishot-ready-at-arm",
        "a multishot poll armed on a socket that already has data",
        r#"order user_data
        pair p
        write-peer p.a "a"
        poll fd=p.b events=in multi ud=1
        wait 1
        expect ud=1 res=1 more
        poll-remove target=1 ud=2
        wait 2
        expect ud=1 res=-ECANCELED
        expect ud=2 res=0"#,
    ),
    same(
        "poll-remove",
        "PollRemove of a pending poll: it -ECANCELED, the remover 0",
        r#"order user_data
        pair p
        poll fd=p.b events=in ud=1
        poll-remove target=1 ud=2
        wait 2
        expect ud=1 res=-ECANCELED
        expect ud=2 res=0"#,
    ),
    same(
        "poll-remove-missing",
        "PollRemove of nothing is -ENOENT",
        r#"poll-remove target=9 ud=1
        wait 1
        expect ud=1 res=-ENOENT"#,
    ),
    same(
        "poll-remove-after-fire",
        "PollRemove of a poll that already completed is -ENOENT",
        r#"pair p
        write-peer p.a "x"
        poll fd=p.b events=in ud=1
        wait 1
        expect ud=1 res=1
        poll-remove target=1 ud=2
        wait 1
        expect ud=2 res=-ENOENT"#,
    ),
    // --- receives and sends ---
    same(
        "recv-ready",
        "a receive of a socket with data waiting returns it",
        r#"pair p
        write-peer p.a "hello"
        recv fd=p.b len=16 ud=1
        wait 1
        expect ud=1 res=5 data="hello""#,
    ),
    same(
        "recv-waits-for-data",
        "a receive of an empty socket completes when data arrives",
        r#"pair p
        recv fd=p.b len=16 ud=1
        write-peer p.a "hello"
        wait 1
        expect ud=1 res=5 data="hello""#,
    ),
    same(
        "recv-after-an-emptying-recv",
        "a receive after one that emptied the socket waits for the next data",
        r#"pair p
        recv fd=p.b len=16 ud=1
        write-peer p.a "one"
        wait 1
        expect ud=1 res=3 data="one"
        recv fd=p.b len=16 ud=2
        write-peer p.a "two"
        wait 1
        expect ud=2 res=3 data="two"
        write-peer p.a "three"
        recv fd=p.b len=16 ud=3
        wait 1
        expect ud=3 res=5 data="three""#,
    ),
    same(
        "recv-eof",
        "a receive after the peer closed returns 0",
        r#"pair p
        close-peer p.a
        recv fd=p.b len=8 ud=1
        wait 1
        expect ud=1 res=0 data="""#,
    ),
    same(
        "recv-eof-while-waiting",
        "a waiting receive returns 0 when the peer closes",
        r#"pair p
        recv fd=p.b len=8 ud=1
        close-peer p.a
        wait 1
        expect ud=1 res=0 data="""#,
    ),
    same(
        "recv-peek",
        "MSG_PEEK leaves the bytes for the next receive",
        r#"pair p
        write-peer p.a "abc"
        recv fd=p.b len=8 peek ud=1
        wait 1
        expect ud=1 res=3 data="abc"
        recv fd=p.b len=8 ud=2
        wait 1
        expect ud=2 res=3 data="abc""#,
    ),
    same(
        "recv-waitall",
        "MSG_WAITALL waits for every byte asked for",
        r#"pair p
        recv fd=p.b len=6 waitall ud=1
        write-peer p.a "abc"
        write-peer p.a "def"
        wait 1
        expect ud=1 res=6 data="abcdef""#,
    ),
    same(
        "recv-bad-fd",
        "a receive on a descriptor that is not open is -EBADF",
        r#"bad x
        recv fd=x len=4 ud=1
        wait 1
        expect ud=1 res=-EBADF"#,
    ),
    same(
        "recv-not-a-socket",
        "a receive on a pipe is -ENOTSOCK",
        r#"pipe q
        recv fd=q.r len=4 ud=1
        wait 1
        expect ud=1 res=-ENOTSOCK"#,
    ),
    same(
        "send-then-recv",
        "a send and a receive of the other end, one batch",
        r#"order user_data
        pair p
        send fd=p.a data="ping" ud=1
        recv fd=p.b len=4 ud=2
        wait 2
        expect ud=1 res=4
        expect ud=2 res=4 data="ping""#,
    ),
    same(
        "send-closed-peer",
        "a send to a socket whose peer is closed is -EPIPE",
        r#"pair p
        close-peer p.b
        send fd=p.a data="x" ud=1
        wait 1
        expect ud=1 res=-EPIPE"#,
    ),
    same(
        "recv-cancel",
        "AsyncCancel of a waiting receive: it -ECANCELED, the canceller 0",
        r#"order user_data
        pair p
        recv fd=p.b len=4 ud=1
        cancel target=1 ud=2
        wait 2
        expect ud=1 res=-ECANCELED
        expect ud=2 res=0"#,
    ),
    // --- provided buffers ---
    same(
        "recv-select",
        "a receive takes a provided buffer: F_BUFFER with its id",
        r#"pair p
        provide-buffers group=1 count=2 len=8 bid=5 ud=1
        wait 1
        expect ud=1 res=0
        write-peer p.a "hello"
        recv-select fd=p.b group=1 ud=2
        wait 1
        expect ud=2 res=5 buf=5 data="hello"
        write-peer p.a "again"
        recv-select fd=p.b group=1 ud=3
        wait 1
        expect ud=3 res=5 buf=6 data="again""#,
    ),
    same(
        "recv-select-empty-group",
        "a receive from a group with no buffer is -ENOBUFS",
        r#"pair p
        write-peer p.a "hello"
        recv-select fd=p.b group=3 ud=1
        wait 1
        expect ud=1 res=-ENOBUFS"#,
    ),
    same(
        "recv-select-eof",
        "a receive that sees the end of the stream takes no buffer",
        r#"pair p
        provide-buffers group=1 count=1 len=8 ud=1
        wait 1
        expect ud=1 res=0
        close-peer p.a
        recv-select fd=p.b group=1 ud=2
        wait 1
        expect ud=2 res=0
        remove-buffers group=1 n=4 ud=3
        wait 1
        expect ud=3 res=1"#,
    ),
    same(
        "remove-buffers",
        "RemoveBuffers removes what is there, up to its count; from a group emptied, none (0)",
        r#"provide-buffers group=2 count=3 len=4 ud=1
        wait 1
        expect ud=1 res=0
        remove-buffers group=2 n=2 ud=2
        wait 1
        expect ud=2 res=2
        remove-buffers group=2 n=5 ud=3
        wait 1
        expect ud=3 res=1
        remove-buffers group=2 n=1 ud=4
        wait 1
        expect ud=4 res=0"#,
    ),
    same(
        "recv-multishot",
        "a multishot receive posts F_MORE per arrival and ends with 0 at the end of the stream",
        r#"pair p
        provide-buffers group=1 count=4 len=8 ud=1
        wait 1
        expect ud=1 res=0
        recv-select fd=p.b group=1 multi ud=2
        write-peer p.a "one"
        wait 1
        expect ud=2 res=3 more buf=0 data="one"
        write-peer p.a "two"
        wait 1
        expect ud=2 res=3 more buf=1 data="two"
        close-peer p.a
        wait 1
        expect ud=2 res=0"#,
    ),
    same(
        "recv-multishot-runs-out-of-buffers",
        "a multishot receive ends with -ENOBUFS when its group is empty",
        r#"pair p
        provide-buffers group=1 count=1 len=8 ud=1
        wait 1
        expect ud=1 res=0
        recv-select fd=p.b group=1 multi ud=2
        write-peer p.a "one"
        wait 1
        expect ud=2 res=3 more buf=0 data="one"
        write-peer p.a "two"
        wait 1
        expect ud=2 res=-ENOBUFS"#,
    ),
    same(
        "recv-multishot-cancel",
        "a multishot receive ended by AsyncCancel",
        r#"order user_data
        pair p
        provide-buffers group=1 count=2 len=8 ud=1
        wait 1
        expect ud=1 res=0
        recv-select fd=p.b group=1 multi ud=2
        write-peer p.a "one"
        wait 1
        expect ud=2 res=3 more buf=0 data="one"
        cancel target=2 ud=3
        wait 2
        expect ud=2 res=-ECANCELED
        expect ud=3 res=0"#,
    ),
    // --- timeouts ---
    same(
        "timeout-expires",
        "a relative timeout completes with -ETIME",
        r#"timeout ms=10 ud=1
        wait 1
        expect ud=1 res=-ETIME"#,
    ),
    same(
        "timeout-absolute",
        "an absolute timeout completes with -ETIME",
        r#"timeout ms=10 abs ud=1
        wait 1
        expect ud=1 res=-ETIME"#,
    ),
    same(
        "timeout-count",
        "a timeout with count 1 completes with 0 after one other completion",
        r#"timeout ms=600000 count=1 ud=1
        nop ud=2
        wait 2
        expect ud=2 res=0
        expect ud=1 res=0"#,
    ),
    same(
        "timeout-count-two-batches",
        "a timeout with count 2 counts completions of later batches",
        r#"timeout ms=600000 count=2 ud=1
        nop ud=2
        wait 1
        expect ud=2 res=0
        nop ud=3
        wait 2
        expect ud=3 res=0
        expect ud=1 res=0"#,
    ),
    same(
        "timeout-remove",
        "TimeoutRemove of a pending timeout: it -ECANCELED, the remover 0",
        r#"order user_data
        timeout ms=600000 ud=1
        timeout-remove target=1 ud=2
        wait 2
        expect ud=1 res=-ECANCELED
        expect ud=2 res=0"#,
    ),
    same(
        "timeout-remove-missing",
        "TimeoutRemove of nothing is -ENOENT",
        r#"timeout-remove target=9 ud=1
        wait 1
        expect ud=1 res=-ENOENT"#,
    ),
    same(
        "timeout-remove-after-fire",
        "TimeoutRemove of a timeout that already fired is -ENOENT",
        r#"timeout ms=5 ud=1
        wait 1
        expect ud=1 res=-ETIME
        timeout-remove target=1 ud=2
        wait 1
        expect ud=2 res=-ENOENT"#,
    ),
    same(
        "timeout-update",
        "TimeoutUpdate brings a far timeout near: the update 0, then -ETIME",
        r#"timeout ms=600000 ud=1
        submit
        timeout-update target=1 ms=10 ud=2
        wait 2
        expect ud=2 res=0
        expect ud=1 res=-ETIME"#,
    ),
    same(
        "timeout-update-missing",
        "TimeoutUpdate of nothing is -ENOENT",
        r#"timeout-update target=9 ms=10 ud=1
        wait 1
        expect ud=1 res=-ENOENT"#,
    ),
    same(
        "timeout-update-absolute",
        "TimeoutUpdate to an absolute time",
        r#"timeout ms=600000 ud=1
        submit
        timeout-update target=1 ms=10 abs ud=2
        wait 2
        expect ud=2 res=0
        expect ud=1 res=-ETIME"#,
    ),
    same(
        "timeout-cancel",
        "AsyncCancel of a pending timeout",
        r#"order user_data
        timeout ms=600000 ud=1
        cancel target=1 ud=2
        wait 2
        expect ud=1 res=-ECANCELED
        expect ud=2 res=0"#,
    ),
    // --- links ---
    same(
        "link-chain",
        "write -> read -> timeout -> nop: the timeout's -ETIME fails the link",
        r#"pair p
        write fd=p.a data="abc" ud=1 flags=link
        read fd=p.b len=3 ud=2 flags=link
        timeout ms=10 ud=3 flags=link
        nop ud=4
        wait 4
        expect ud=1 res=3
        expect ud=2 res=3 data="abc"
        expect ud=3 res=-ETIME
        expect ud=4 res=-ECANCELED"#,
    ),
    same(
        "link-waits-for-read",
        "a linked Nop starts only after the read before it completes",
        r#"pair p
        read fd=p.b len=2 ud=1 flags=link
        nop ud=2
        write-peer p.a "ok"
        wait 2
        expect ud=1 res=2 data="ok"
        expect ud=2 res=0"#,
    ),
    same(
        "link-failure-cancels-rest",
        "a failed link member cancels the rest of the chain",
        r#"bad x
        read fd=x len=4 ud=1 flags=link
        nop ud=2 flags=link
        nop ud=3
        wait 3
        expect ud=1 res=-EBADF
        expect ud=2 res=-ECANCELED
        expect ud=3 res=-ECANCELED"#,
    ),
    same(
        "hardlink-continues",
        "a hard link goes on after a failure",
        r#"bad x
        read fd=x len=4 ud=1 flags=hardlink
        nop ud=2
        wait 2
        expect ud=1 res=-EBADF
        expect ud=2 res=0"#,
    ),
    same(
        "short-read-breaks-link",
        "a read that gets less than it asked for breaks the link",
        r#"pair p
        write-peer p.a "xy"
        read fd=p.b len=8 ud=1 flags=link
        nop ud=2
        wait 2
        expect ud=1 res=2 data="xy"
        expect ud=2 res=-ECANCELED"#,
    ),
    same(
        "short-read-hardlink-continues",
        "a short read does not break a hard link",
        r#"pair p
        write-peer p.a "xy"
        read fd=p.b len=8 ud=1 flags=hardlink
        nop ud=2
        wait 2
        expect ud=1 res=2 data="xy"
        expect ud=2 res=0"#,
    ),
    same(
        "link-across-submit",
        "a link flag on a batch's last entry does not reach into the next batch",
        // Blocking: io_uring may hand a linked read to a worker, where a
        // non-blocking socket's read would end -EAGAIN if no data came yet.
        r#"pair p blocking
        read fd=p.b len=2 ud=1 flags=link
        submit
        nop ud=2
        wait 1
        expect ud=2 res=0
        write-peer p.a "ok"
        wait 1
        expect ud=1 res=2 data="ok""#,
    ),
    // --- drain ---
    same(
        "drain-in-batch",
        "a drained Nop waits for the read before it, and holds the Nop after it",
        r#"pair p
        read fd=p.b len=4 ud=1
        timeout ms=20 ud=2
        nop ud=3 flags=drain
        nop ud=4
        wait 1
        expect ud=2 res=-ETIME
        write-peer p.a "go"
        wait 3
        expect ud=1 res=2 data="go"
        expect ud=3 res=0
        expect ud=4 res=0"#,
    ),
    same(
        "drain-across-batches",
        "a drained entry in a second batch waits for the first batch",
        r#"pair p
        read fd=p.b len=2 ud=1
        submit
        nop ud=4
        nop ud=2 flags=drain
        nop ud=3
        wait 1 # nop 4: the second batch is in, the drained entry held
        expect ud=4 res=0
        write-peer p.a "ok"
        wait 3
        expect ud=1 res=2 data="ok"
        expect ud=2 res=0
        expect ud=3 res=0"#,
    ),
    // --- linked timeouts ---
    same(
        "link-timeout-fires",
        "a LinkTimeout cancels a read that gets no data",
        r#"order user_data
        pair p
        read fd=p.b len=8 ud=1 flags=link
        link-timeout ms=10 ud=2
        wait 2
        expect ud=1 res=-ECANCELED
        expect ud=2 res=-ETIME"#,
    ),
    same(
        "link-timeout-not-firing",
        "a read that completes first cancels its LinkTimeout",
        r#"order user_data
        pair p
        read fd=p.b len=2 ud=1 flags=link
        link-timeout ms=600000 ud=2
        write-peer p.a "ok"
        wait 2
        expect ud=1 res=2 data="ok"
        expect ud=2 res=-ECANCELED"#,
    ),
    same(
        "link-timeout-chain",
        "a fired LinkTimeout fails the rest of the chain",
        r#"order user_data
        pair p
        read fd=p.b len=8 ud=1 flags=link
        link-timeout ms=10 ud=2 flags=link
        nop ud=3
        wait 3
        expect ud=1 res=-ECANCELED
        expect ud=2 res=-ETIME
        expect ud=3 res=-ECANCELED"#,
    ),
    same(
        "link-timeout-absolute",
        "a LinkTimeout given as an absolute time",
        r#"order user_data
        pair p
        read fd=p.b len=8 ud=1 flags=link
        link-timeout ms=10 abs ud=2
        wait 2
        expect ud=1 res=-ECANCELED
        expect ud=2 res=-ETIME"#,
    ),
    same(
        "link-timeout-running-async",
        "a LinkTimeout on an ASYNC read of an empty blocking socket: the worker hands the \
         read back to wait, where the timeout cancels it",
        r#"order user_data
        pair p blocking
        read fd=p.b len=2 ud=1 flags=async|link
        link-timeout ms=50 ud=2
        wait 2
        expect ud=1 res=-ECANCELED
        expect ud=2 res=-ETIME"#,
    ),
    same(
        "link-timeout-alone",
        "a LinkTimeout with no link before it is -EINVAL",
        r#"order user_data
        nop ud=1
        link-timeout ms=1000 ud=2
        wait 2
        expect ud=1 res=0
        expect ud=2 res=-EINVAL"#,
    ),
    // --- CQE_SKIP_SUCCESS ---
    same(
        "skip-success",
        "successes with CQE_SKIP_SUCCESS post nothing, failures post",
        r#"order user_data
        bad x
        nop ud=1 flags=skip_success
        read fd=x len=4 ud=2 flags=skip_success
        nop ud=3
        wait 2
        expect ud=2 res=-EBADF
        expect ud=3 res=0"#,
    ),
    same(
        "skip-success-link",
        "a skipped success still lets its chain go on",
        r#"nop ud=1 flags=link|skip_success
        nop ud=2
        wait 1
        expect ud=2 res=0"#,
    ),
    same(
        "skip-success-cancelled-member",
        "a link member cancelled by a failure posts despite its CQE_SKIP_SUCCESS",
        r#"bad x
        read fd=x len=1 ud=1 flags=link
        nop ud=2 flags=link|skip_success
        nop ud=3
        wait 3
        expect ud=1 res=-EBADF
        expect ud=2 res=-ECANCELED
        expect ud=3 res=-ECANCELED"#,
    ),
    same(
        "skip-success-failed-head",
        "a failed link head with CQE_SKIP_SUCCESS: the members it cancels post nothing",
        r#"order user_data
        bad x
        read fd=x len=1 ud=1 flags=link|skip_success
        nop ud=2
        nop ud=3
        wait 2
        expect ud=1 res=-EBADF
        expect ud=3 res=0"#,
    ),
    // --- ASYNC ---
    same(
        "async-read",
        "an ASYNC read of a socket with data",
        r#"pair p
        write-peer p.a "pool"
        read fd=p.b len=4 ud=1 flags=async
        wait 1
        expect ud=1 res=4 data="pool""#,
    ),
    same(
        "async-read-waits-blocking",
        "an ASYNC read of an empty blocking socket completes when data arrives",
        r#"pair p blocking
        read fd=p.b len=4 ud=1 flags=async
        write-peer p.a "late"
        wait 1
        expect ud=1 res=4 data="late""#,
    ),
    same(
        "async-read-empty-socket",
        "an ASYNC read of an empty non-blocking socket waits for data",
        r#"order user_data
        pair p
        read fd=p.b len=4 ud=1 flags=async|link
        link-timeout ms=100 ud=2
        wait 2
        expect ud=1 res=-ECANCELED
        expect ud=2 res=-ETIME"#,
    ),
    same(
        "async-write",
        "an ASYNC write, and a read of the other end",
        r#"order user_data
        pair p
        write fd=p.a data="w" ud=1 flags=async
        read fd=p.b len=1 ud=2
        wait 2
        expect ud=1 res=1
        expect ud=2 res=1 data="w""#,
    ),
    same(
        "async-file-read",
        "an ASYNC read of a regular file",
        r#"file f "hello world"
        read fd=f len=5 off=6 ud=1 flags=async
        wait 1
        expect ud=1 res=5 data="world""#,
    ),
    // --- cancel ---
    same(
        "cancel-by-user-data",
        "AsyncCancel of a pending read: it -ECANCELED, the canceller 0",
        r#"order user_data
        pair p
        read fd=p.b len=4 ud=1
        cancel target=1 ud=2
        wait 2
        expect ud=1 res=-ECANCELED
        expect ud=2 res=0"#,
    ),
    same(
        "cancel-by-user-data-all",
        "AsyncCancel of every entry with one user_data, all: counts them",
        r#"order user_data
        pair p
        pipe q
        read fd=p.b len=4 ud=1
        poll fd=q.r events=in ud=1
        cancel target=1 all ud=2
        wait 3
        expect ud=1 res=-ECANCELED
        expect ud=1 res=-ECANCELED
        expect ud=2 res=2"#,
    ),
    same(
        "cancel-missing",
        "AsyncCancel of nothing is -ENOENT",
        r#"cancel target=7 ud=1
        wait 1
        expect ud=1 res=-ENOENT"#,
    ),
    same(
        "cancel-by-fd-all",
        "AsyncCancel by descriptor, all: counts what it cancelled",
        r#"order user_data
        pair p
        read fd=p.b len=4 ud=1
        poll fd=p.b events=in ud=2
        cancel target=fd:p.b all ud=3
        wait 3
        expect ud=1 res=-ECANCELED
        expect ud=2 res=-ECANCELED
        expect ud=3 res=2"#,
    ),
    same(
        "cancel-by-fd-first",
        "AsyncCancel by descriptor cancels what is on that descriptor only",
        r#"order user_data
        pair p
        pipe q
        read fd=p.b len=4 ud=1
        read fd=q.r len=4 ud=2
        cancel target=fd:p.b ud=3
        wait 2
        expect ud=1 res=-ECANCELED
        expect ud=3 res=0
        write-peer q.w "abcd"
        wait 1
        expect ud=2 res=4 data="abcd""#,
    ),
    same(
        "cancel-any-all",
        "AsyncCancel of any, all: a read, a poll and a timeout",
        r#"order user_data
        pair p
        pipe q
        read fd=p.b len=4 ud=1
        poll fd=q.r events=in ud=2
        timeout ms=600000 ud=3
        cancel target=any all ud=4
        wait 4
        expect ud=1 res=-ECANCELED
        expect ud=2 res=-ECANCELED
        expect ud=3 res=-ECANCELED
        expect ud=4 res=3"#,
    ),
    same(
        "cancel-any",
        "AsyncCancel of any, without all, cancels every match too (ANY implies ALL)",
        r#"order user_data
        pair p
        read fd=p.b len=4 ud=1
        timeout ms=600000 ud=2
        cancel target=any ud=3
        wait 3
        expect ud=1 res=-ECANCELED
        expect ud=2 res=-ECANCELED
        expect ud=3 res=2"#,
    ),
    same(
        "cancel-chain-head",
        "cancelling a chain's head cancels the rest of the chain",
        r#"order user_data
        pair p
        read fd=p.b len=2 ud=1 flags=link
        nop ud=2
        cancel target=1 ud=3
        wait 3
        expect ud=1 res=-ECANCELED
        expect ud=2 res=-ECANCELED
        expect ud=3 res=0"#,
    ),
    same(
        "cancel-unstarted-link-member",
        "AsyncCancel of a link member that has not started yet",
        r#"order user_data
        pair p
        read fd=p.b len=2 ud=1 flags=link
        nop ud=2
        cancel target=2 ud=3
        wait 1
        expect ud=3 res=-ENOENT
        write-peer p.a "ok"
        wait 2
        expect ud=1 res=2 data="ok"
        expect ud=2 res=0"#,
    ),
    same(
        "cancel-running-async",
        "AsyncCancel of an ASYNC read of an empty blocking socket, in its batch: the \
         cancel withdraws it from the pool before a worker starts it",
        r#"pair p blocking
        read fd=p.b len=2 ud=1 flags=async
        cancel target=1 ud=2
        wait 1
        expect ud=2 res=0
        write-peer p.a "ok"
        wait 1
        expect ud=1 res=-ECANCELED"#,
    ),
    // --- close ---
    same(
        "close",
        "Close of an open descriptor is 0",
        r#"pipe q
        close fd=q.r ud=1
        wait 1
        expect ud=1 res=0"#,
    ),
    same(
        "close-bad-fd",
        "Close of a descriptor that is not open is -EBADF",
        r#"bad x
        close fd=x ud=1
        wait 1
        expect ud=1 res=-EBADF"#,
    ),
    same(
        "close-then-use",
        "a read linked after the Close of its descriptor is -EBADF",
        r#"pipe q
        close fd=q.r ud=1 flags=link
        read fd=q.r len=1 ud=2
        wait 2
        expect ud=1 res=0
        expect ud=2 res=-EBADF"#,
    ),
    differs(
        "close-with-pending-read",
        "Close of a descriptor a read is waiting on",
        r#"pair p
        read fd=p.b len=2 ud=1
        close fd=p.b ud=2
        wait 1
        expect ud=2 res=0
        expect-kqring ud=1 res=-ECANCELED
        write-peer p.a "ok"
        wait 1
        expect ud=1 res=2 data="ok"
        expect-kqring ud=2 res=0"#,
        Difference::ByDesign(
            "kqring's Close first completes what waits on the descriptor with \
             -ECANCELED (kqueue forgets a closed descriptor's registrations); in \
             io_uring the read keeps the file open and gets the data written later",
        ),
    ), // --- registered files ---
    same(
        "files-update-send-recv",
        "FilesUpdate fills two slots; a send and a receive linked after it go through them",
        r#"files 2
        pair p
        files-update at=0 fds=p.a,p.b ud=1 flags=link
        send fd=@0 data="ping" ud=2 flags=link
        recv fd=@1 len=4 ud=3
        wait 3
        expect ud=1 res=2
        expect ud=2 res=4
        expect ud=3 res=4 data="ping""#,
    ),
    same(
        "files-update-own-fd-closed",
        "a slot holds its own reference: the program's descriptor closed, a send through the slot works",
        r#"files 1
        pair p
        files-update at=0 fds=p.a ud=1
        wait 1
        expect ud=1 res=1
        close-peer p.a
        send fd=@0 data="still" ud=2
        wait 1
        expect ud=2 res=5
        recv fd=p.b len=8 ud=3
        wait 1
        expect ud=3 res=5 data="still""#,
    ),
    same(
        "files-update-bad-fd",
        "FilesUpdate stops at a bad descriptor: the count done, or -EBADF if first; its slot is emptied",
        r#"order user_data
        files 4
        pair p
        bad x
        files-update at=0 fds=p.a,x,p.b ud=1
        wait 1
        expect ud=1 res=1
        send fd=@0 data="a" ud=2
        send fd=@2 data="b" ud=3
        wait 2
        expect ud=2 res=1
        expect ud=3 res=-EBADF
        files-update at=0 fds=x ud=4
        wait 1
        expect ud=4 res=-EBADF
        send fd=@0 data="c" ud=5
        wait 1
        expect ud=5 res=-EBADF"#,
    ),
    same(
        "files-update-range-and-empty",
        "FilesUpdate past the end of the table, or of no descriptor, is -EINVAL",
        r#"files 2
        pair p
        files-update at=1 fds=p.a,p.b ud=1
        wait 1
        expect ud=1 res=-EINVAL
        files-update at=2 fds=p.a ud=2
        wait 1
        expect ud=2 res=-EINVAL
        files-update at=0 fds= ud=3
        wait 1
        expect ud=3 res=-EINVAL
        files-update at=alloc fds= ud=4
        wait 1
        expect ud=4 res=-EINVAL"#,
    ),
    same(
        "files-update-clear-and-skip",
        "FilesUpdate with -1 empties a slot and with skip leaves it",
        r#"files 2
        pair p
        files-update at=0 fds=p.a,p.b ud=1
        wait 1
        expect ud=1 res=2
        files-update at=0 fds=-1,skip ud=2
        wait 1
        expect ud=2 res=2
        send fd=@0 data="x" ud=3
        wait 1
        expect ud=3 res=-EBADF
        send fd=@1 data="y" ud=4
        wait 1
        expect ud=4 res=1
        recv fd=p.a len=4 ud=5
        wait 1
        expect ud=5 res=1 data="y""#,
    ),
    same(
        "files-update-alloc",
        "FilesUpdate into free slots: from the first up, a partial count when the table fills, then -ENFILE",
        r#"files 3
        pair p
        files-update at=alloc fds=p.a,p.b ud=1
        wait 1
        expect ud=1 res=2
        send fd=@0 data="hi" ud=2
        wait 1
        expect ud=2 res=2
        recv fd=@1 len=4 ud=3
        wait 1
        expect ud=3 res=2 data="hi"
        files-update at=alloc fds=p.a,p.b ud=4
        wait 1
        expect ud=4 res=1
        files-update at=alloc fds=p.a ud=5
        wait 1
        expect ud=5 res=-ENFILE
        send fd=@2 data="ok" ud=6
        wait 1
        expect ud=6 res=2
        recv fd=p.b len=4 ud=7
        wait 1
        expect ud=7 res=2 data="ok""#,
    ),
    same(
        "files-alloc-takes-freed-slot",
        "after a slot is emptied, the next allocation takes it rather than the next one up",
        r#"files 4
        pair p
        listener l
        client c l
        files-update at=alloc fds=p.a,p.a,p.a ud=1
        wait 1
        expect ud=1 res=3
        close fd=@1 ud=2
        wait 1
        expect ud=2 res=0
        accept fd=l file-index=alloc ud=3
        wait 1
        expect ud=3 res=1"#,
    ),
    same(
        "files-no-table",
        "without a file table: FilesUpdate and Close of a slot -ENXIO, an entry or a cancel on a slot -EBADF",
        r#"pair p
        files-update at=0 fds=p.a ud=1
        wait 1
        expect ud=1 res=-ENXIO
        files-update at=alloc fds=p.a ud=2
        wait 1
        expect ud=2 res=-ENXIO
        send fd=@0 data="x" ud=3
        wait 1
        expect ud=3 res=-EBADF
        close fd=@0 ud=4
        wait 1
        expect ud=4 res=-ENXIO
        cancel target=fd:@0 ud=5
        wait 1
        expect ud=5 res=-EBADF"#,
    ),
    same(
        "close-fixed",
        "Close of a slot: 0, the file closed with its last reference; then -EBADF, past the table -EINVAL",
        r#"order user_data
        files 1
        pair p
        files-update at=0 fds=p.a ud=1
        wait 1
        expect ud=1 res=1
        close-peer p.a
        recv fd=p.b len=4 ud=2
        nop ud=9
        wait 1
        expect ud=9 res=0
        close fd=@0 ud=3
        wait 2
        expect ud=2 res=0 data=""
        expect ud=3 res=0
        close fd=@0 ud=4
        close fd=@1 ud=5
        send fd=@0 data="x" ud=6
        send fd=@1 data="x" ud=7
        wait 4
        expect ud=4 res=-EBADF
        expect ud=5 res=-EINVAL
        expect ud=6 res=-EBADF
        expect ud=7 res=-EBADF"#,
    ),
    same(
        "recv-fixed-waits-and-eof",
        "receives through a slot wait for data, after one that emptied the socket too, and see the end of the stream",
        r#"files 1
        pair p
        files-update at=0 fds=p.b ud=1
        wait 1
        expect ud=1 res=1
        recv fd=@0 len=16 ud=2
        write-peer p.a "one"
        wait 1
        expect ud=2 res=3 data="one"
        recv fd=@0 len=16 ud=3
        write-peer p.a "two"
        wait 1
        expect ud=3 res=3 data="two"
        recv fd=@0 len=16 ud=4
        close-peer p.a
        wait 1
        expect ud=4 res=0 data=""
        recv fd=@0 len=16 ud=5
        wait 1
        expect ud=5 res=0 data="""#,
    ),
    same(
        "recv-on-closed-slot",
        "a receive waiting on a slot that is emptied meanwhile keeps its file and gets the data",
        r#"files 1
        pair p
        files-update at=0 fds=p.b ud=1
        wait 1
        expect ud=1 res=1
        close-peer p.b
        recv fd=@0 len=8 ud=2
        nop ud=9
        wait 1
        expect ud=9 res=0
        close fd=@0 ud=3
        wait 1
        expect ud=3 res=0
        write-peer p.a "late"
        wait 1
        expect ud=2 res=4 data="late""#,
    ),
    same(
        "cancel-fixed",
        "AsyncCancel by slot: what waits on its file -ECANCELED; an empty slot or one past the table -EBADF",
        r#"order user_data
        files 2
        pair p
        files-update at=0 fds=p.b ud=1
        wait 1
        expect ud=1 res=1
        recv fd=@0 len=4 ud=2
        cancel target=fd:@0 ud=3
        wait 2
        expect ud=2 res=-ECANCELED
        expect ud=3 res=0
        cancel target=fd:@1 ud=4
        wait 1
        expect ud=4 res=-EBADF
        cancel target=fd:@2 ud=5
        wait 1
        expect ud=5 res=-EBADF"#,
    ),
    same(
        "accept-direct-index",
        "Accept into a slot: 0; the file it replaces closes; the connection works through the slot",
        r#"files 1
        pair p
        listener l
        client c l
        files-update at=0 fds=p.a ud=1
        wait 1
        expect ud=1 res=1
        close-peer p.a
        accept fd=l file-index=0 ud=2
        wait 1
        expect ud=2 res=0
        recv fd=p.b len=4 ud=3
        wait 1
        expect ud=3 res=0 data=""
        write-peer c "hi"
        recv fd=@0 len=4 ud=4
        wait 1
        expect ud=4 res=2 data="hi"
        send fd=@0 data="yo" ud=5
        wait 1
        expect ud=5 res=2
        recv fd=c len=4 ud=6
        wait 1
        expect ud=6 res=2 data="yo""#,
    ),
    same(
        "accept-direct-errors",
        "Accept into a slot past the table is -EINVAL, and so is a multishot Accept into a given slot",
        r#"files 2
        listener l
        client c1 l
        client c2 l
        accept fd=l file-index=2 ud=1
        wait 1
        expect ud=1 res=-EINVAL
        accept fd=l file-index=0 multi ud=2
        wait 1
        expect ud=2 res=-EINVAL"#,
    ),
    same(
        "accept-direct-no-table",
        "without a table, Accept into a given slot is -ENXIO and into a free slot -ENFILE (io_uring looks for a free slot first)",
        r#"listener l
        client c1 l
        client c2 l
        accept fd=l file-index=0 ud=1
        wait 1
        expect ud=1 res=-ENXIO
        accept fd=l file-index=alloc ud=2
        wait 1
        expect ud=2 res=-ENFILE"#,
    ),
    same(
        "accept-replacing-keeps-hint",
        "an Accept that replaces a file leaves the allocation hint where the last update put it",
        r#"files 4
        pair p
        listener l
        client c1 l
        client c2 l
        files-update at=0 fds=p.a ud=1
        wait 1
        expect ud=1 res=1
        files-update at=2 fds=p.b ud=2
        wait 1
        expect ud=2 res=1
        accept fd=l file-index=0 ud=3
        wait 1
        expect ud=3 res=0
        accept fd=l file-index=alloc ud=4
        wait 1
        expect ud=4 res=3"#,
    ),
    differs(
        "cancel-by-fd-reaches-slot",
        "a cancel by the program's descriptor does not reach a receive on the slot that holds the same file",
        r#"order user_data
        files 1
        pair p
        files-update at=0 fds=p.b ud=1
        wait 1
        expect ud=1 res=1
        recv fd=@0 len=4 ud=2
        cancel target=fd:p.b ud=3
        cancel target=fd:@0 ud=4
        wait 3
        expect ud=2 res=-ECANCELED
        expect ud=3 res=0
        expect ud=4 res=0
        expect-kqring ud=2 res=-ECANCELED
        expect-kqring ud=3 res=-ENOENT
        expect-kqring ud=4 res=0"#,
        Difference::ByDesign(
            "a slot holds a duplicate descriptor: cancel by descriptor matches descriptor numbers, not open files",
        ),
    ),
    // --- sockets made, bound, connected; messages ---
    same(
        "socket-bind-listen-connect",
        "Socket, Bind linked to Listen, a second Socket connects, Accept takes it; data goes through",
        r#"order user_data
        socket domain=inet type=stream as=s ud=1
        wait 1
        expect ud=1 res=fd
        bind fd=s addr=127.0.0.1:0 ud=2 flags=link
        listen fd=s ud=3
        wait 2
        expect ud=2 res=0
        expect ud=3 res=0
        socket domain=inet type=stream as=c ud=4
        wait 1
        expect ud=4 res=fd
        connect fd=c addr=local:s ud=5
        accept fd=s as=conn ud=6
        wait 2
        expect ud=5 res=0
        expect ud=6 res=fd
        send fd=c data="hello" ud=7
        wait 1
        expect ud=7 res=5
        recv fd=conn len=16 ud=8
        wait 1
        expect ud=8 res=5 data="hello""#,
    ),
    same(
        "socket-direct-chains",
        "Socket into a slot linked to Connect and Send through it; Socket, Bind, Listen linked through a slot",
        r#"files 2
        listener l tcp
        socket domain=inet type=stream file-index=0 ud=1 flags=link
        connect fd=@0 addr=local:l ud=2 flags=link
        send fd=@0 data="hi" ud=3
        wait 3
        expect ud=1 res=0
        expect ud=2 res=0
        expect ud=3 res=2
        accept fd=l as=conn ud=4
        wait 1
        expect ud=4 res=fd
        recv fd=conn len=4 ud=5
        wait 1
        expect ud=5 res=2 data="hi"
        socket domain=inet type=stream file-index=1 ud=6 flags=link
        bind fd=@1 addr=127.0.0.1:0 ud=7 flags=link
        listen fd=@1 ud=8
        wait 3
        expect ud=6 res=0
        expect ud=7 res=0
        expect ud=8 res=0"#,
    ),
    same(
        "connect-refused",
        "Connect to a port that is bound but not listening is -ECONNREFUSED",
        r#"socket domain=inet type=stream as=s ud=1
        wait 1
        expect ud=1 res=fd
        bind fd=s addr=127.0.0.1:0 ud=2
        wait 1
        expect ud=2 res=0
        socket domain=inet type=stream as=c ud=3
        wait 1
        expect ud=3 res=fd
        connect fd=c addr=local:s ud=4
        wait 1
        expect ud=4 res=-ECONNREFUSED"#,
    ),
    same(
        "bind-in-use",
        "Bind to the address a socket already holds is -EADDRINUSE",
        r#"udp u
        socket domain=inet type=dgram as=s ud=1
        wait 1
        expect ud=1 res=fd
        bind fd=s addr=local:u ud=2
        wait 1
        expect ud=2 res=-EADDRINUSE"#,
    ),
    same(
        "net-errors",
        "Bind, Listen, Connect, Shutdown, SendMsg, RecvMsg on a descriptor that is not open: -EBADF; on a pipe: -ENOTSOCK",
        r#"order user_data
        bad x
        pipe q
        udp u
        bind fd=x addr=127.0.0.1:0 ud=1
        listen fd=x ud=2
        connect fd=x addr=local:u ud=3
        shutdown fd=x how=rdwr ud=4
        sendmsg fd=x data="a" ud=5
        recvmsg fd=x lens=4 ud=6
        wait 6
        expect ud=1 res=-EBADF
        expect ud=2 res=-EBADF
        expect ud=3 res=-EBADF
        expect ud=4 res=-EBADF
        expect ud=5 res=-EBADF
        expect ud=6 res=-EBADF
        bind fd=q.r addr=127.0.0.1:0 ud=7
        listen fd=q.r ud=8
        connect fd=q.r addr=local:u ud=9
        shutdown fd=q.r how=rdwr ud=10
        sendmsg fd=q.w data="a" ud=11
        recvmsg fd=q.r lens=4 ud=12
        wait 6
        expect ud=7 res=-ENOTSOCK
        expect ud=8 res=-ENOTSOCK
        expect ud=9 res=-ENOTSOCK
        expect ud=10 res=-ENOTSOCK
        expect ud=11 res=-ENOTSOCK
        expect ud=12 res=-ENOTSOCK"#,
    ),
    same(
        "shutdown-then-peer-reads-eof",
        "Shutdown of the writing side linked to a read of the peer: the read returns 0",
        r#"pair p
        shutdown fd=p.a how=wr ud=1 flags=link
        read fd=p.b len=4 ud=2
        wait 2
        expect ud=1 res=0
        expect ud=2 res=0 data="""#,
    ),
    same(
        "shutdown-wakes-waiting-read",
        "a read waiting on a socket returns 0 when its peer shuts down writing",
        r#"order user_data
        pair p
        read fd=p.b len=4 ud=1
        nop ud=9
        wait 1
        expect ud=9 res=0
        shutdown fd=p.a how=wr ud=2
        wait 2
        expect ud=1 res=0 data=""
        expect ud=2 res=0"#,
    ),
    same(
        "shutdown-not-connected",
        "Shutdown of a socket that is not connected is -ENOTCONN",
        r#"udp u
        shutdown fd=u how=rdwr ud=1
        wait 1
        expect ud=1 res=-ENOTCONN"#,
    ),
    same(
        "sendmsg-recvmsg-pair",
        "SendMsg of two buffers as one message, RecvMsg into two buffers, on a socket pair (no address)",
        r#"pair p
        sendmsg fd=p.a data="ab" data="cd" ud=1
        wait 1
        expect ud=1 res=4
        recvmsg fd=p.b lens=3,8 ud=2
        wait 1
        expect ud=2 res=4 data="abcd""#,
    ),
    same(
        "recvmsg-waits-for-data",
        "a RecvMsg of an empty socket completes when data arrives",
        r#"pair p
        recvmsg fd=p.b lens=8 ud=1
        write-peer p.a "late"
        wait 1
        expect ud=1 res=4 data="late""#,
    ),
    same(
        "sendmsg-recvmsg-udp-to",
        "SendMsg to an address from an unconnected UDP socket; RecvMsg names the sender",
        r#"udp u
        udp v
        sendmsg fd=u data="ab" data="cd" to=local:v ud=1
        wait 1
        expect ud=1 res=4
        recvmsg fd=v lens=3,8 ud=2
        wait 1
        expect ud=2 res=4 data="abcd" from=u"#,
    ),
    same(
        "sendmsg-recvmsg-udp-connected",
        "Connect of a UDP socket, then SendMsg with no address; RecvMsg names the sender",
        r#"udp u
        udp v
        connect fd=u addr=local:v ud=1
        wait 1
        expect ud=1 res=0
        sendmsg fd=u data="x" ud=2
        wait 1
        expect ud=2 res=1
        recvmsg fd=v lens=8 ud=3
        wait 1
        expect ud=3 res=1 data="x" from=u
        sendmsg fd=v data="unaddressed" ud=4
        wait 1
        expect ud=4 res=-EDESTADDRREQ"#,
    ),
    same(
        "recvmsg-select",
        "a RecvMsg takes a provided buffer: F_BUFFER with its id, and names the sender",
        r#"order user_data
        udp u
        udp v
        provide-buffers group=2 count=1 len=8 bid=7 ud=1
        wait 1
        expect ud=1 res=0
        sendmsg fd=u data="x" to=local:v ud=2
        wait 1
        expect ud=2 res=1
        recvmsg-select fd=v group=2 ud=3
        wait 1
        expect ud=3 res=1 buf=7 data="x" from=u
        provide-buffers group=2 count=1 len=8 bid=8 ud=4
        recvmsg-select fd=v group=2 ud=5
        nop ud=9
        wait 2
        expect ud=4 res=0
        expect ud=9 res=0
        sendmsg fd=u data="yz" to=local:v ud=6
        wait 2
        expect ud=5 res=2 buf=8 data="yz" from=u
        expect ud=6 res=2"#,
    ),
    same(
        "read-select-short-breaks-link",
        "a read that fills less than the provided buffer it took is short: its link breaks",
        r#"order user_data
        pipe q
        provide-buffers group=1 count=1 len=8 ud=1
        wait 1
        expect ud=1 res=0
        write-peer q.w "abc"
        read-select fd=q.r group=1 ud=2 flags=link
        nop ud=3
        wait 2
        expect ud=2 res=3 buf=0 data="abc"
        expect ud=3 res=-ECANCELED"#,
    ),
    same(
        "read-select",
        "reads take provided buffers in the order provided; a file read at an offset; an empty group -ENOBUFS",
        r#"pipe q
        pipe r
        file f "hello world"
        provide-buffers group=1 count=3 len=4 bid=3 ud=1
        wait 1
        expect ud=1 res=0
        write-peer q.w "abcdef"
        read-select fd=q.r group=1 ud=2
        wait 1
        expect ud=2 res=4 buf=3 data="abcd"
        read-select fd=q.r group=1 ud=3
        wait 1
        expect ud=3 res=2 buf=4 data="ef"
        read-select fd=f group=1 off=6 ud=4
        wait 1
        expect ud=4 res=4 buf=5 data="worl"
        read-select fd=r.r group=1 ud=5
        wait 1
        expect ud=5 res=-ENOBUFS"#,
    ),
    same(
        "read-select-waits",
        "a read of an empty pipe from a group takes its buffer when the data arrives",
        r#"pipe q
        provide-buffers group=1 count=1 len=8 ud=1
        wait 1
        expect ud=1 res=0
        read-select fd=q.r group=1 ud=2
        write-peer q.w "late"
        wait 1
        expect ud=2 res=4 buf=0 data="late""#,
    ),
    same(
        "select-empty-group-on-used-fd",
        "a receive or read from an empty group, on a descriptor used before and with no data, is -ENOBUFS at once",
        r#"order user_data
        pair p
        pipe q
        provide-buffers group=1 count=1 len=4 ud=1
        wait 1
        expect ud=1 res=0
        write-peer p.a "ab"
        recv-select fd=p.b group=1 ud=2
        wait 1
        expect ud=2 res=2 buf=0 data="ab"
        recv-select fd=p.b group=1 ud=3 flags=link
        link-timeout ms=100 ud=4
        wait 2
        expect ud=3 res=-ENOBUFS
        expect ud=4 res=-ECANCELED
        provide-buffers group=1 count=1 len=4 ud=5
        wait 1
        expect ud=5 res=0
        write-peer q.w "cd"
        read-select fd=q.r group=1 ud=6
        wait 1
        expect ud=6 res=2 buf=0 data="cd"
        read-select fd=q.r group=1 ud=7 flags=link
        link-timeout ms=100 ud=8
        wait 2
        expect ud=7 res=-ENOBUFS
        expect ud=8 res=-ECANCELED"#,
    ),
    same(
        "accept-plain",
        "Accept into a descriptor of the process: the connection works through it",
        r#"listener l
        client c l
        accept fd=l as=conn ud=1
        wait 1
        expect ud=1 res=fd
        write-peer c "hi"
        recv fd=conn len=4 ud=2
        wait 1
        expect ud=2 res=2 data="hi"
        send fd=conn data="yo" ud=3
        wait 1
        expect ud=3 res=2
        recv fd=c len=4 ud=4
        wait 1
        expect ud=4 res=2 data="yo""#,
    ),
    same(
        "accept-plain-tcp-waits",
        "an Accept on a TCP listener with no connection completes when one arrives",
        r#"order user_data
        listener l tcp
        socket domain=inet type=stream as=c ud=1
        wait 1
        expect ud=1 res=fd
        accept fd=l ud=2
        nop ud=9
        wait 1
        expect ud=9 res=0
        connect fd=c addr=local:l ud=3
        wait 2
        expect ud=2 res=fd
        expect ud=3 res=0"#,
    ),
    same(
        "accept-plain-multishot",
        "a multishot Accept into descriptors posts F_MORE per connection, then -ECANCELED when cancelled",
        r#"order user_data
        listener l
        client c1 l
        client c2 l
        accept fd=l multi ud=1
        wait 2
        expect ud=1 res=fd more
        expect ud=1 res=fd more
        cancel target=1 ud=2
        wait 2
        expect ud=1 res=-ECANCELED
        expect ud=2 res=0"#,
    ),
    same(
        "accept-multishot-alloc-until-full",
        "a multishot Accept into free slots posts each slot with F_MORE, then -ENFILE; that connection is closed",
        r#"files 2
        listener l
        client c1 l
        client c2 l
        client c3 l
        accept fd=l file-index=alloc multi ud=1
        wait 3
        expect ud=1 res=0 more
        expect ud=1 res=1 more
        expect ud=1 res=-ENFILE
        recv fd=c3 len=4 ud=2
        wait 1
        expect ud=2 res=0 data="""#,
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_parses_and_prints_back() {
        for s in ALL {
            let p = s.program().unwrap_or_else(|e| panic!("{}: {e}", s.name));
            let again = Program::parse(s.name, &p.to_string()).unwrap();
            assert_eq!(p, again, "{}", s.name);
        }
    }

    /// Every scenario pins io_uring's completions; a documented difference
    /// pins kqring's own too, and only a documented difference does.
    #[test]
    fn every_scenario_has_expectations_that_match_its_difference() {
        for s in ALL {
            let p = s.program().unwrap();
            let e = p
                .expected
                .as_ref()
                .unwrap_or_else(|| panic!("{}: no expectations", s.name));
            assert_eq!(
                e.differs(p.order),
                s.difference.is_some(),
                "{}: expect-kqring lines go with a documented difference, and only there",
                s.name
            );
        }
    }

    #[test]
    fn names_are_unique() {
        for (i, s) in ALL.iter().enumerate() {
            assert!(
                ALL[i + 1..].iter().all(|t| t.name != s.name),
                "{} twice",
                s.name
            );
        }
    }
}
