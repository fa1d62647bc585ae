//! C semantics (filled in with the C shim).
