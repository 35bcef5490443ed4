//! What kqring's and io_uring's TCP echo share: the operations of a
//! connection's two ends, named in `user_data`, and the client's progress
//! through its rounds. Each system posts the operations with its own
//! buffers; [`Progress`] says which comes next.

use std::time::Instant;

use crate::stats::Recorder;
use crate::{Result, ensure};

/// One of the four operations of a connection, in the low bits of
/// `user_data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// The client sends this round's message (or its rest).
    ClientSend = 0,
    /// The client receives the echo (or its rest).
    ClientRecv = 1,
    /// The server receives whatever comes.
    ServerRecv = 2,
    /// The server sends back what it received (or its rest).
    ServerSend = 3,
}

/// The `user_data` of `op` on connection `conn`.
pub fn tag(conn: usize, op: Op) -> u64 {
    ((conn as u64) << 2) | op as u64
}

/// The connection and operation of a `user_data` made by [`tag`].
pub fn untag(user_data: u64) -> (usize, Op) {
    let op = match user_data & 3 {
        0 => Op::ClientSend,
        1 => Op::ClientRecv,
        2 => Op::ServerRecv,
        _ => Op::ServerSend,
    };
    ((user_data >> 2) as usize, op)
}

/// What the client end does after a completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Send the message from this offset on.
    Send(usize),
    /// Receive the echo into the buffer from this offset on.
    Recv(usize),
    /// The whole echo is in: check its bytes, then [`Progress::checked`].
    Check,
    /// The round is done: [`Progress::finish_round`].
    RoundDone,
    /// Wait for the other operation of the round.
    Wait,
}

/// One connection's progress: the client's round and how much of it is
/// sent and echoed, and whether each end has finished.
#[derive(Debug, Clone)]
pub struct Progress {
    /// The round, which picks the message.
    pub round: u64,
    start: Instant,
    sent: usize,
    got: usize,
    echoed: bool,
    /// The client has sent its last round and half-closed.
    pub client_done: bool,
    /// The server has seen the end of the stream.
    pub server_done: bool,
}

impl Default for Progress {
    fn default() -> Progress {
        Progress {
            round: 0,
            start: Instant::now(),
            sent: 0,
            got: 0,
            echoed: false,
            client_done: false,
            server_done: false,
        }
    }
}

impl Progress {
    /// Starts a round: its message is to be sent and its echo received.
    pub fn begin_round(&mut self) {
        self.start = Instant::now();
        (self.sent, self.got, self.echoed) = (0, 0, false);
    }

    /// The client's send moved `n` bytes of a `size`-byte message.
    pub fn sent(&mut self, n: usize, size: usize) -> Next {
        self.sent += n;
        if self.sent < size {
            Next::Send(self.sent)
        } else if self.echoed {
            Next::RoundDone
        } else {
            Next::Wait
        }
    }

    /// The client's receive brought `n` bytes of a `size`-byte echo.
    pub fn received(&mut self, n: usize, size: usize, conn: usize) -> Result<Next> {
        ensure!(n > 0, "server closed connection {conn}");
        self.got += n;
        Ok(if self.got < size {
            Next::Recv(self.got)
        } else {
            Next::Check
        })
    }

    /// The echo checked out.
    pub fn checked(&mut self, size: usize) -> Next {
        self.echoed = true;
        if self.sent == size {
            Next::RoundDone
        } else {
            Next::Wait
        }
    }

    /// Records the round in `rec`; true if another round is to begin (the
    /// round number has moved on), false if the window is over and the
    /// client should half-close (it counts as done).
    pub fn finish_round(&mut self, rec: &mut Recorder) -> bool {
        if rec.record(1, self.start, Instant::now()) {
            self.round += 1;
            true
        } else {
            self.client_done = true;
            false
        }
    }

    /// Both ends have finished.
    pub fn done(&self) -> bool {
        self.client_done && self.server_done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Window;
    use std::time::Duration;

    #[test]
    fn tags_round_trip() {
        for op in [
            Op::ClientSend,
            Op::ClientRecv,
            Op::ServerRecv,
            Op::ServerSend,
        ] {
            assert_eq!(untag(tag(12345, op)), (12345, op));
        }
    }

    #[test]
    fn a_round_needs_the_whole_send_and_the_checked_echo() {
        let mut p = Progress::default();
        p.begin_round();
        assert_eq!(p.sent(40, 64), Next::Send(40));
        assert_eq!(p.received(30, 64, 0).unwrap(), Next::Recv(30));
        assert_eq!(p.sent(24, 64), Next::Wait);
        assert_eq!(p.received(34, 64, 0).unwrap(), Next::Check);
        assert_eq!(p.checked(64), Next::RoundDone);
        assert!(p.received(0, 64, 7).is_err());
        // The echo may be checked before the send's completion comes.
        p.begin_round();
        assert_eq!(p.received(64, 64, 0).unwrap(), Next::Check);
        assert_eq!(p.checked(64), Next::Wait);
        assert_eq!(p.sent(64, 64), Next::RoundDone);
        let mut rec = Recorder::counting(Window::new(Duration::ZERO));
        assert!(!p.finish_round(&mut rec));
        assert!(p.client_done && !p.done());
    }
}
