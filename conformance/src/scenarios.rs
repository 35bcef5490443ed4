//! The built-in scenarios, and the differences from io_uring that are
//! known and documented (in docs/semantics.md, "Conformance with
//! io_uring").
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
    /// kqring differs on purpose, and says so in docs/semantics.md.
    ByDesign(&'static str),
    /// kqring means to behave as io_uring does here, and does not: a bug,
    /// reported. Once fixed the scenario is identical, and the suite fails
    /// until it leaves this list.
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
    same("nop", "a Nop completes with 0", "nop ud=1\nwait 1"),
    same(
        "nop-batch",
        "three Nops in one batch",
        "order user_data\nnop ud=1\nnop ud=2\nnop ud=3\nwait 3",
    ),
    same(
        "nop-async",
        "ASYNC on a Nop changes nothing visible",
        "nop ud=1 flags=async\nwait 1",
    ),
    // --- reads and writes on sockets ---
    same(
        "read-ready",
        "a read of a socket with data waiting returns it (short read, no link)",
        r#"pair p
        write-peer p.a "hello"
        read fd=p.b len=16 ud=1
        wait 1"#,
    ),
    same(
        "read-waits-for-data",
        "a read of an empty socket completes when data arrives",
        r#"pair p
        read fd=p.b len=5 ud=1
        write-peer p.a "hello"
        wait 1"#,
    ),
    same(
        "read-eof",
        "a read after the peer closed returns 0",
        "pair p\nclose-peer p.a\nread fd=p.b len=8 ud=1\nwait 1",
    ),
    same(
        "read-eof-while-waiting",
        "a waiting read returns 0 when the peer closes",
        "pair p\nread fd=p.b len=8 ud=1\nclose-peer p.a\nwait 1",
    ),
    same(
        "read-zero-length",
        "a zero-length read of an empty socket returns 0 at once",
        r#"order user_data
        pair p
        read fd=p.b len=0 ud=1 flags=link
        link-timeout ms=100 ud=2
        wait 2"#,
    ),
    same(
        "read-bad-fd",
        "a read of a descriptor that is not open is -EBADF",
        "bad x\nread fd=x len=4 ud=1\nwait 1",
    ),
    same(
        "write-bad-fd",
        "a write to a descriptor that is not open is -EBADF",
        "bad x\nwrite fd=x data=\"x\" ud=1\nwait 1",
    ),
    same(
        "write-then-read",
        "a write and a read of the other end, one batch",
        r#"order user_data
        pair p
        write fd=p.a data="ping" ud=1
        read fd=p.b len=4 ud=2
        wait 2"#,
    ),
    same(
        "write-closed-peer",
        "a write to a socket whose peer is closed is -EPIPE",
        "pair p\nclose-peer p.b\nwrite fd=p.a data=\"x\" ud=1\nwait 1",
    ),
    differs(
        "reads-on-one-socket-in-order",
        "two reads waiting on one socket get the data in submission order",
        r#"pair p
        read fd=p.b len=2 ud=1
        read fd=p.b len=2 ud=2
        write-peer p.a "abcd"
        wait 2"#,
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
        wait 2"#,
    ),
    same(
        "pipe-read-waits",
        "a read of an empty non-blocking pipe completes when data arrives",
        "pipe q\nread fd=q.r len=3 ud=1\nwrite-peer q.w \"abc\"\nwait 1",
    ),
    same(
        "pipe-read-eof",
        "a read of a pipe whose writer is closed returns 0",
        "pipe q\nclose-peer q.w\nread fd=q.r len=4 ud=1\nwait 1",
    ),
    same(
        "pipe-write-closed-reader",
        "a write to a pipe whose reader is closed is -EPIPE",
        "pipe q\nclose-peer q.r\nwrite fd=q.w data=\"x\" ud=1\nwait 1",
    ),
    same(
        "blocking-pipe-read-waits",
        "a read of an empty blocking pipe completes when data arrives",
        "pipe q blocking\nread fd=q.r len=3 ud=1\nwrite-peer q.w \"abc\"\nwait 1",
    ),
    // --- regular files ---
    same(
        "file-read-offset",
        "a read of a file at an offset",
        "file f \"hello world\"\nread fd=f len=5 off=6 ud=1\nwait 1",
    ),
    same(
        "file-read-short",
        "a read of a file asking for more than there is",
        "file f \"hello world\"\nread fd=f len=64 ud=1\nwait 1",
    ),
    same(
        "file-read-past-end",
        "a read of a file past its end returns 0",
        "file f \"hello world\"\nread fd=f len=8 off=100 ud=1\nwait 1",
    ),
    same(
        "file-read-current-position",
        "linked reads at the current position read on from each other",
        r#"file f "hello world"
        read fd=f len=5 off=cur ud=1 flags=link
        read fd=f len=6 off=cur ud=2
        wait 2"#,
    ),
    same(
        "file-write-then-read",
        "a write at offset 0 linked to a read of the whole file",
        r#"file f "hello world"
        write fd=f data="HELLO" ud=1 flags=link
        read fd=f len=11 ud=2
        wait 2"#,
    ),
    same(
        "file-write-current-position",
        "linked writes at the current position append to each other",
        r#"file f "hello world"
        write fd=f data="ab" off=cur ud=1 flags=link
        write fd=f data="cd" off=cur ud=2 flags=link
        read fd=f len=11 ud=3
        wait 3"#,
    ),
    // --- vectored ---
    same(
        "readv-socket",
        "a vectored read of a socket fills its buffers in order",
        r#"pair p
        write-peer p.a "abcdef"
        readv fd=p.b lens=2,4 ud=1
        wait 1"#,
    ),
    same(
        "readv-file-offset",
        "a vectored read of a file at an offset",
        "file f \"hello world\"\nreadv fd=f lens=3,3 off=2 ud=1\nwait 1",
    ),
    same(
        "writev-socket",
        "a vectored write, then a read of the other end",
        r#"order user_data
        pair p
        writev fd=p.a data="ab" data="cd" ud=1
        read fd=p.b len=4 ud=2
        wait 2"#,
    ),
    same(
        "writev-readv-file-current-position",
        "a vectored write then a vectored read at the current position",
        r#"file f "0123456789"
        writev fd=f data="ab" data="c" off=cur ud=1 flags=link
        readv fd=f lens=4,6 off=cur ud=2
        wait 2"#,
    ),
    same(
        "readv-bad-fd",
        "a vectored read of a descriptor that is not open is -EBADF",
        "bad x\nreadv fd=x lens=1,1 ud=1\nwait 1",
    ),
    same(
        "writev-bad-fd",
        "a vectored write to a descriptor that is not open is -EBADF",
        "bad x\nwritev fd=x data=\"a\" data=\"b\" ud=1\nwait 1",
    ),
    same(
        "readv-eof",
        "a vectored read after the peer closed returns 0",
        "pair p\nclose-peer p.a\nreadv fd=p.b lens=2,2 ud=1\nwait 1",
    ),
    // --- poll ---
    same(
        "poll-in-ready",
        "a poll for input on a socket with data completes with POLLIN",
        "pair p\nwrite-peer p.a \"x\"\npoll fd=p.b events=in ud=1\nwait 1",
    ),
    same(
        "poll-out-ready",
        "a poll for output on a writable socket completes with POLLOUT",
        "pair p\npoll fd=p.a events=out ud=1\nwait 1",
    ),
    same(
        "poll-waits",
        "a poll for input completes when data arrives",
        "pair p\npoll fd=p.b events=in ud=1\nwrite-peer p.a \"x\"\nwait 1",
    ),
    same(
        "poll-hup-socket",
        "a poll for input sees the peer's close",
        "pair p\npoll fd=p.b events=in ud=1\nclose-peer p.a\nwait 1",
    ),
    same(
        "poll-hup-pipe",
        "a poll for input on a pipe sees the writer's close as POLLHUP",
        "pipe q\npoll fd=q.r events=in ud=1\nclose-peer q.w\nwait 1",
    ),
    same(
        "poll-bad-fd",
        "a poll of a descriptor that is not open is -EBADF",
        "bad x\npoll fd=x events=in ud=1\nwait 1",
    ),
    same(
        "poll-multishot",
        "a multishot poll posts F_MORE per event, then a final CQE when removed",
        r#"order user_data
        pair p
        poll fd=p.b events=in multi ud=1
        nop ud=9
        wait 1
        write-peer p.a "a"
        wait 1
        write-peer p.a "b"
        wait 1
        poll-remove target=1 ud=2
        wait 2"#,
    ),
    same(
        "poll-multishot-cancel",
        "a multishot poll ended by AsyncCancel",
        r#"order user_data
        pair p
        poll fd=p.b events=in multi ud=1
        nop ud=9
        wait 1
        write-peer p.a "a"
        wait 1
        cancel target=1 ud=2
        wait 2"#,
    ),
    same(
        "poll-multishot-ready-at-arm",
        "a multishot poll armed on a socket that already has data",
        r#"order user_data
        pair p
        write-peer p.a "a"
        poll fd=p.b events=in multi ud=1
        wait 1
        poll-remove target=1 ud=2
        wait 2"#,
    ),
    same(
        "poll-remove",
        "PollRemove of a pending poll: it -ECANCELED, the remover 0",
        "order user_data\npair p\npoll fd=p.b events=in ud=1\npoll-remove target=1 ud=2\nwait 2",
    ),
    same(
        "poll-remove-missing",
        "PollRemove of nothing is -ENOENT",
        "poll-remove target=9 ud=1\nwait 1",
    ),
    same(
        "poll-remove-after-fire",
        "PollRemove of a poll that already completed is -ENOENT",
        r#"pair p
        write-peer p.a "x"
        poll fd=p.b events=in ud=1
        wait 1
        poll-remove target=1 ud=2
        wait 1"#,
    ),
    // --- receives and sends ---
    same(
        "recv-ready",
        "a receive of a socket with data waiting returns it",
        r#"pair p
        write-peer p.a "hello"
        recv fd=p.b len=16 ud=1
        wait 1"#,
    ),
    same(
        "recv-waits-for-data",
        "a receive of an empty socket completes when data arrives",
        r#"pair p
        recv fd=p.b len=16 ud=1
        write-peer p.a "hello"
        wait 1"#,
    ),
    same(
        "recv-after-an-emptying-recv",
        "a receive after one that emptied the socket waits for the next data",
        r#"pair p
        recv fd=p.b len=16 ud=1
        write-peer p.a "one"
        wait 1
        recv fd=p.b len=16 ud=2
        write-peer p.a "two"
        wait 1
        write-peer p.a "three"
        recv fd=p.b len=16 ud=3
        wait 1"#,
    ),
    same(
        "recv-eof",
        "a receive after the peer closed returns 0",
        "pair p
close-peer p.a
recv fd=p.b len=8 ud=1
wait 1",
    ),
    same(
        "recv-eof-while-waiting",
        "a waiting receive returns 0 when the peer closes",
        "pair p
recv fd=p.b len=8 ud=1
close-peer p.a
wait 1",
    ),
    same(
        "recv-peek",
        "MSG_PEEK leaves the bytes for the next receive",
        r#"pair p
        write-peer p.a "abc"
        recv fd=p.b len=8 peek ud=1
        wait 1
        recv fd=p.b len=8 ud=2
        wait 1"#,
    ),
    same(
        "recv-waitall",
        "MSG_WAITALL waits for every byte asked for",
        r#"pair p
        recv fd=p.b len=6 waitall ud=1
        write-peer p.a "abc"
        write-peer p.a "def"
        wait 1"#,
    ),
    same(
        "recv-bad-fd",
        "a receive on a descriptor that is not open is -EBADF",
        "bad x
recv fd=x len=4 ud=1
wait 1",
    ),
    same(
        "recv-not-a-socket",
        "a receive on a pipe is -ENOTSOCK",
        "pipe q
recv fd=q.r len=4 ud=1
wait 1",
    ),
    same(
        "send-then-recv",
        "a send and a receive of the other end, one batch",
        r#"order user_data
        pair p
        send fd=p.a data="ping" ud=1
        recv fd=p.b len=4 ud=2
        wait 2"#,
    ),
    same(
        "send-closed-peer",
        "a send to a socket whose peer is closed is -EPIPE",
        "pair p\nclose-peer p.b\nsend fd=p.a data=\"x\" ud=1\nwait 1",
    ),
    same(
        "recv-cancel",
        "AsyncCancel of a waiting receive: it -ECANCELED, the canceller 0",
        "order user_data\npair p\nrecv fd=p.b len=4 ud=1\ncancel target=1 ud=2\nwait 2",
    ),
    // --- provided buffers ---
    same(
        "recv-select",
        "a receive takes a provided buffer: F_BUFFER with its id",
        r#"pair p
        provide-buffers group=1 count=2 len=8 bid=5 ud=1
        wait 1
        write-peer p.a "hello"
        recv-select fd=p.b group=1 ud=2
        wait 1
        write-peer p.a "again"
        recv-select fd=p.b group=1 ud=3
        wait 1"#,
    ),
    same(
        "recv-select-empty-group",
        "a receive from a group with no buffer is -ENOBUFS",
        r#"pair p
        write-peer p.a "hello"
        recv-select fd=p.b group=3 ud=1
        wait 1"#,
    ),
    same(
        "recv-select-eof",
        "a receive that sees the end of the stream takes no buffer",
        r#"pair p
        provide-buffers group=1 count=1 len=8 ud=1
        wait 1
        close-peer p.a
        recv-select fd=p.b group=1 ud=2
        wait 1
        remove-buffers group=1 n=4 ud=3
        wait 1"#,
    ),
    same(
        "remove-buffers",
        "RemoveBuffers removes what is there, then finds nothing: -ENOENT",
        r#"provide-buffers group=2 count=3 len=4 ud=1
        wait 1
        remove-buffers group=2 n=2 ud=2
        wait 1
        remove-buffers group=2 n=5 ud=3
        wait 1
        remove-buffers group=2 n=1 ud=4
        wait 1"#,
    ),
    same(
        "recv-multishot",
        "a multishot receive posts F_MORE per arrival and ends with 0 at the end of the stream",
        r#"pair p
        provide-buffers group=1 count=4 len=8 ud=1
        wait 1
        recv-select fd=p.b group=1 multi ud=2
        write-peer p.a "one"
        wait 1
        write-peer p.a "two"
        wait 1
        close-peer p.a
        wait 1"#,
    ),
    same(
        "recv-multishot-runs-out-of-buffers",
        "a multishot receive ends with -ENOBUFS when its group is empty",
        r#"pair p
        provide-buffers group=1 count=1 len=8 ud=1
        wait 1
        recv-select fd=p.b group=1 multi ud=2
        write-peer p.a "one"
        wait 1
        write-peer p.a "two"
        wait 1"#,
    ),
    same(
        "recv-multishot-cancel",
        "a multishot receive ended by AsyncCancel",
        r#"order user_data
        pair p
        provide-buffers group=1 count=2 len=8 ud=1
        wait 1
        recv-select fd=p.b group=1 multi ud=2
        write-peer p.a "one"
        wait 1
        cancel target=2 ud=3
        wait 2"#,
    ),
    // --- timeouts ---
    same(
        "timeout-expires",
        "a relative timeout completes with -ETIME",
        "timeout ms=10 ud=1\nwait 1",
    ),
    same(
        "timeout-absolute",
        "an absolute timeout completes with -ETIME",
        "timeout ms=10 abs ud=1\nwait 1",
    ),
    same(
        "timeout-count",
        "a timeout with count 1 completes with 0 after one other completion",
        "timeout ms=600000 count=1 ud=1\nnop ud=2\nwait 2",
    ),
    same(
        "timeout-count-two-batches",
        "a timeout with count 2 counts completions of later batches",
        "timeout ms=600000 count=2 ud=1\nnop ud=2\nwait 1\nnop ud=3\nwait 2",
    ),
    same(
        "timeout-remove",
        "TimeoutRemove of a pending timeout: it -ECANCELED, the remover 0",
        "order user_data\ntimeout ms=600000 ud=1\ntimeout-remove target=1 ud=2\nwait 2",
    ),
    same(
        "timeout-remove-missing",
        "TimeoutRemove of nothing is -ENOENT",
        "timeout-remove target=9 ud=1\nwait 1",
    ),
    same(
        "timeout-remove-after-fire",
        "TimeoutRemove of a timeout that already fired is -ENOENT",
        "timeout ms=5 ud=1\nwait 1\ntimeout-remove target=1 ud=2\nwait 1",
    ),
    same(
        "timeout-update",
        "TimeoutUpdate brings a far timeout near: the update 0, then -ETIME",
        "timeout ms=600000 ud=1\nsubmit\ntimeout-update target=1 ms=10 ud=2\nwait 2",
    ),
    same(
        "timeout-update-missing",
        "TimeoutUpdate of nothing is -ENOENT",
        "timeout-update target=9 ms=10 ud=1\nwait 1",
    ),
    same(
        "timeout-update-absolute",
        "TimeoutUpdate to an absolute time",
        "timeout ms=600000 ud=1\nsubmit\ntimeout-update target=1 ms=10 abs ud=2\nwait 2",
    ),
    same(
        "timeout-cancel",
        "AsyncCancel of a pending timeout",
        "order user_data\ntimeout ms=600000 ud=1\ncancel target=1 ud=2\nwait 2",
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
        wait 4"#,
    ),
    same(
        "link-waits-for-read",
        "a linked Nop starts only after the read before it completes",
        r#"pair p
        read fd=p.b len=2 ud=1 flags=link
        nop ud=2
        write-peer p.a "ok"
        wait 2"#,
    ),
    same(
        "link-failure-cancels-rest",
        "a failed link member cancels the rest of the chain",
        r#"bad x
        read fd=x len=4 ud=1 flags=link
        nop ud=2 flags=link
        nop ud=3
        wait 3"#,
    ),
    same(
        "hardlink-continues",
        "a hard link goes on after a failure",
        "bad x\nread fd=x len=4 ud=1 flags=hardlink\nnop ud=2\nwait 2",
    ),
    same(
        "short-read-breaks-link",
        "a read that gets less than it asked for breaks the link",
        r#"pair p
        write-peer p.a "xy"
        read fd=p.b len=8 ud=1 flags=link
        nop ud=2
        wait 2"#,
    ),
    same(
        "short-read-hardlink-continues",
        "a short read does not break a hard link",
        r#"pair p
        write-peer p.a "xy"
        read fd=p.b len=8 ud=1 flags=hardlink
        nop ud=2
        wait 2"#,
    ),
    same(
        "link-across-submit",
        "a link flag on a batch's last entry does not reach into the next batch",
        r#"pair p
        read fd=p.b len=2 ud=1 flags=link
        submit
        nop ud=2
        wait 1
        write-peer p.a "ok"
        wait 1"#,
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
        write-peer p.a "go"
        wait 3"#,
    ),
    same(
        "drain-across-batches",
        "a drained entry in a second batch waits for the first batch",
        r#"pair p
        read fd=p.b len=2 ud=1
        submit
        nop ud=2 flags=drain
        nop ud=3
        write-peer p.a "ok"
        wait 3"#,
    ),
    // --- linked timeouts ---
    same(
        "link-timeout-fires",
        "a LinkTimeout cancels a read that gets no data",
        r#"order user_data
        pair p
        read fd=p.b len=8 ud=1 flags=link
        link-timeout ms=10 ud=2
        wait 2"#,
    ),
    same(
        "link-timeout-not-firing",
        "a read that completes first cancels its LinkTimeout",
        r#"order user_data
        pair p
        read fd=p.b len=2 ud=1 flags=link
        link-timeout ms=600000 ud=2
        write-peer p.a "ok"
        wait 2"#,
    ),
    same(
        "link-timeout-chain",
        "a fired LinkTimeout fails the rest of the chain",
        r#"order user_data
        pair p
        read fd=p.b len=8 ud=1 flags=link
        link-timeout ms=10 ud=2 flags=link
        nop ud=3
        wait 3"#,
    ),
    same(
        "link-timeout-absolute",
        "a LinkTimeout given as an absolute time",
        r#"order user_data
        pair p
        read fd=p.b len=8 ud=1 flags=link
        link-timeout ms=10 abs ud=2
        wait 2"#,
    ),
    same(
        "link-timeout-alone",
        "a LinkTimeout with no link before it is -EINVAL",
        "order user_data\nnop ud=1\nlink-timeout ms=1000 ud=2\nwait 2",
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
        wait 2"#,
    ),
    same(
        "skip-success-link",
        "a skipped success still lets its chain go on",
        "nop ud=1 flags=link|skip_success\nnop ud=2\nwait 1",
    ),
    same(
        "skip-success-cancelled-member",
        "a link member cancelled by a failure posts despite its CQE_SKIP_SUCCESS",
        r#"bad x
        read fd=x len=1 ud=1 flags=link
        nop ud=2 flags=link|skip_success
        nop ud=3
        wait 3"#,
    ),
    same(
        "skip-success-failed-head",
        "a failed link head with CQE_SKIP_SUCCESS: the members it cancels post nothing",
        r#"bad x
        read fd=x len=1 ud=1 flags=link|skip_success
        nop ud=2
        nop ud=3
        wait 1"#,
    ),
    // --- ASYNC ---
    same(
        "async-read",
        "an ASYNC read of a socket with data",
        "pair p\nwrite-peer p.a \"pool\"\nread fd=p.b len=4 ud=1 flags=async\nwait 1",
    ),
    same(
        "async-read-waits-blocking",
        "an ASYNC read of an empty blocking socket completes when data arrives",
        "pair p blocking\nread fd=p.b len=4 ud=1 flags=async\nwrite-peer p.a \"late\"\nwait 1",
    ),
    same(
        "async-read-empty-socket",
        "an ASYNC read of an empty non-blocking socket waits for data",
        r#"order user_data
        pair p
        read fd=p.b len=4 ud=1 flags=async|link
        link-timeout ms=100 ud=2
        wait 2"#,
    ),
    same(
        "async-write",
        "an ASYNC write, and a read of the other end",
        r#"order user_data
        pair p
        write fd=p.a data="w" ud=1 flags=async
        read fd=p.b len=1 ud=2
        wait 2"#,
    ),
    same(
        "async-file-read",
        "an ASYNC read of a regular file",
        "file f \"hello world\"\nread fd=f len=5 off=6 ud=1 flags=async\nwait 1",
    ),
    // --- cancel ---
    same(
        "cancel-by-user-data",
        "AsyncCancel of a pending read: it -ECANCELED, the canceller 0",
        "order user_data\npair p\nread fd=p.b len=4 ud=1\ncancel target=1 ud=2\nwait 2",
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
        wait 3"#,
    ),
    same(
        "cancel-missing",
        "AsyncCancel of nothing is -ENOENT",
        "cancel target=7 ud=1\nwait 1",
    ),
    same(
        "cancel-by-fd-all",
        "AsyncCancel by descriptor, all: counts what it cancelled",
        r#"order user_data
        pair p
        read fd=p.b len=4 ud=1
        poll fd=p.b events=in ud=2
        cancel target=fd:p.b all ud=3
        wait 3"#,
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
        write-peer q.w "abcd"
        wait 1"#,
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
        wait 4"#,
    ),
    same(
        "cancel-any",
        "AsyncCancel of any, without all",
        r#"order user_data
        settle 200
        pair p
        read fd=p.b len=4 ud=1
        timeout ms=600000 ud=2
        cancel target=any ud=3"#,
    ),
    same(
        "cancel-chain-head",
        "cancelling a chain's head cancels the rest of the chain",
        r#"order user_data
        pair p
        read fd=p.b len=2 ud=1 flags=link
        nop ud=2
        cancel target=1 ud=3
        wait 3"#,
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
        write-peer p.a "ok"
        wait 2"#,
    ),
    differs(
        "cancel-running-async",
        "AsyncCancel of an ASYNC read of an empty blocking socket",
        r#"pair p blocking
        read fd=p.b len=2 ud=1 flags=async
        cancel target=1 ud=2
        wait 1
        write-peer p.a "ok"
        wait 1"#,
        Difference::ByDesign(
            "kqring runs an ASYNC entry as a blocking call on its pool, which cannot be \
             interrupted: the cancel answers -EALREADY and the read completes with the \
             data; io_uring cancels the read (-ECANCELED) and answers 0",
        ),
    ),
    // --- close ---
    same(
        "close",
        "Close of an open descriptor is 0",
        "pipe q\nclose fd=q.r ud=1\nwait 1",
    ),
    same(
        "close-bad-fd",
        "Close of a descriptor that is not open is -EBADF",
        "bad x\nclose fd=x ud=1\nwait 1",
    ),
    same(
        "close-then-use",
        "a read linked after the Close of its descriptor is -EBADF",
        "pipe q\nclose fd=q.r ud=1 flags=link\nread fd=q.r len=1 ud=2\nwait 2",
    ),
    differs(
        "close-with-pending-read",
        "Close of a descriptor a read is waiting on",
        r#"pair p
        read fd=p.b len=2 ud=1
        close fd=p.b ud=2
        wait 1
        write-peer p.a "ok"
        wait 1"#,
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
        wait 3"#,
    ),
    same(
        "files-update-own-fd-closed",
        "a slot holds its own reference: the program's descriptor closed, a send through the slot works",
        r#"files 1
        pair p
        files-update at=0 fds=p.a ud=1
        wait 1
        close-peer p.a
        send fd=@0 data="still" ud=2
        wait 1
        recv fd=p.b len=8 ud=3
        wait 1"#,
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
        send fd=@0 data="a" ud=2
        send fd=@2 data="b" ud=3
        wait 2
        files-update at=0 fds=x ud=4
        wait 1
        send fd=@0 data="c" ud=5
        wait 1"#,
    ),
    same(
        "files-update-range-and-empty",
        "FilesUpdate past the end of the table, or of no descriptor, is -EINVAL",
        r#"files 2
        pair p
        files-update at=1 fds=p.a,p.b ud=1
        wait 1
        files-update at=2 fds=p.a ud=2
        wait 1
        files-update at=0 fds= ud=3
        wait 1
        files-update at=alloc fds= ud=4
        wait 1"#,
    ),
    same(
        "files-update-clear-and-skip",
        "FilesUpdate with -1 empties a slot and with skip leaves it",
        r#"files 2
        pair p
        files-update at=0 fds=p.a,p.b ud=1
        wait 1
        files-update at=0 fds=-1,skip ud=2
        wait 1
        send fd=@0 data="x" ud=3
        wait 1
        send fd=@1 data="y" ud=4
        wait 1
        recv fd=p.a len=4 ud=5
        wait 1"#,
    ),
    same(
        "files-update-alloc",
        "FilesUpdate into free slots: from the first up, a partial count when the table fills, then -ENFILE",
        r#"files 3
        pair p
        files-update at=alloc fds=p.a,p.b ud=1
        wait 1
        send fd=@0 data="hi" ud=2
        wait 1
        recv fd=@1 len=4 ud=3
        wait 1
        files-update at=alloc fds=p.a,p.b ud=4
        wait 1
        files-update at=alloc fds=p.a ud=5
        wait 1
        send fd=@2 data="ok" ud=6
        wait 1
        recv fd=p.b len=4 ud=7
        wait 1"#,
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
        close fd=@1 ud=2
        wait 1
        accept fd=l file-index=alloc ud=3
        wait 1"#,
    ),
    same(
        "files-no-table",
        "without a file table: FilesUpdate and Close of a slot -ENXIO, an entry or a cancel on a slot -EBADF",
        r#"pair p
        files-update at=0 fds=p.a ud=1
        wait 1
        files-update at=alloc fds=p.a ud=2
        wait 1
        send fd=@0 data="x" ud=3
        wait 1
        close fd=@0 ud=4
        wait 1
        cancel target=fd:@0 ud=5
        wait 1"#,
    ),
    same(
        "close-fixed",
        "Close of a slot: 0, the file closed with its last reference; then -EBADF, past the table -EINVAL",
        r#"order user_data
        files 1
        pair p
        files-update at=0 fds=p.a ud=1
        wait 1
        close-peer p.a
        recv fd=p.b len=4 ud=2
        nop ud=9
        wait 1
        close fd=@0 ud=3
        wait 2
        close fd=@0 ud=4
        close fd=@1 ud=5
        send fd=@0 data="x" ud=6
        send fd=@1 data="x" ud=7
        wait 4"#,
    ),
    same(
        "recv-fixed-waits-and-eof",
        "receives through a slot wait for data, after one that emptied the socket too, and see the end of the stream",
        r#"files 1
        pair p
        files-update at=0 fds=p.b ud=1
        wait 1
        recv fd=@0 len=16 ud=2
        write-peer p.a "one"
        wait 1
        recv fd=@0 len=16 ud=3
        write-peer p.a "two"
        wait 1
        recv fd=@0 len=16 ud=4
        close-peer p.a
        wait 1
        recv fd=@0 len=16 ud=5
        wait 1"#,
    ),
    same(
        "recv-on-closed-slot",
        "a receive waiting on a slot that is emptied meanwhile keeps its file and gets the data",
        r#"files 1
        pair p
        files-update at=0 fds=p.b ud=1
        wait 1
        close-peer p.b
        recv fd=@0 len=8 ud=2
        nop ud=9
        wait 1
        close fd=@0 ud=3
        wait 1
        write-peer p.a "late"
        wait 1"#,
    ),
    same(
        "cancel-fixed",
        "AsyncCancel by slot: what waits on its file -ECANCELED; an empty slot or one past the table -EBADF",
        r#"order user_data
        files 2
        pair p
        files-update at=0 fds=p.b ud=1
        wait 1
        recv fd=@0 len=4 ud=2
        cancel target=fd:@0 ud=3
        wait 2
        cancel target=fd:@1 ud=4
        wait 1
        cancel target=fd:@2 ud=5
        wait 1"#,
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
        close-peer p.a
        accept fd=l file-index=0 ud=2
        wait 1
        recv fd=p.b len=4 ud=3
        wait 1
        write-peer c "hi"
        recv fd=@0 len=4 ud=4
        wait 1
        send fd=@0 data="yo" ud=5
        wait 1
        recv fd=c len=4 ud=6
        wait 1"#,
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
        accept fd=l file-index=0 multi ud=2
        wait 1"#,
    ),
    same(
        "accept-direct-no-table",
        "without a table, Accept into a given slot is -ENXIO and into a free slot -ENFILE (io_uring looks for a free slot first)",
        r#"listener l
        client c1 l
        client c2 l
        accept fd=l file-index=0 ud=1
        wait 1
        accept fd=l file-index=alloc ud=2
        wait 1"#,
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
        files-update at=2 fds=p.b ud=2
        wait 1
        accept fd=l file-index=0 ud=3
        wait 1
        accept fd=l file-index=alloc ud=4
        wait 1"#,
    ),
    differs(
        "cancel-by-fd-reaches-slot",
        "a cancel by the program's descriptor does not reach a receive on the slot that holds the same file",
        r#"order user_data
        files 1
        pair p
        files-update at=0 fds=p.b ud=1
        wait 1
        recv fd=@0 len=4 ud=2
        cancel target=fd:p.b ud=3
        wait 1
        cancel target=fd:@0 ud=4
        wait 2"#,
        Difference::ByDesign(
            "a slot holds a duplicate descriptor: cancel by descriptor matches descriptor numbers, not open files",
        ),
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
        recv fd=c3 len=4 ud=2
        wait 1"#,
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
