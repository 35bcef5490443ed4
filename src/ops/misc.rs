//! Operations that do nothing but complete.

use crate::ops::Op;
use crate::sq::Sqe;

/// `IORING_OP_NOP`: completes with 0. Measures the ring itself.
#[derive(Debug, Default, Clone, Copy)]
pub struct Nop {}

impl Nop {
    /// A no-op.
    pub fn new() -> Nop {
        Nop {}
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Nop(self))
    }
}
