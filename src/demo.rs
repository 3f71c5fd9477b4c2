//! The demo JSON:API backend of `serve --demo` (being written).
