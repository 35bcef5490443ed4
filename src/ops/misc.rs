//! Operations that do nothing but complete.

use crate::ops::{DirectOp, Op, operation};
use crate::sq::Sqe;

/// `IORING_OP_NOP`: completes with 0, at once. Its cost is the ring's own
/// per-operation cost.
#[derive(Debug, Default, Clone, Copy)]
pub struct Nop {}

impl Nop {
    /// A no-op.
    pub fn new() -> Nop {
        Nop {}
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Direct(Box::new(self)))
    }
}

operation!(Nop, "Nop", |_, _out| {});

impl DirectOp for Nop {
    fn call(&mut self) -> i32 {
        0
    }
}
