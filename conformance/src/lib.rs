//! The conformance tool (being built).
