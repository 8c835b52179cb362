//! Shared helpers for capbox's integration tests (see `tests/tests/`).
