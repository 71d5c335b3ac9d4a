//! SPEC §1–§3 (stub, being written).
