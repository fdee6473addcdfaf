//! Embedded SQLite store (see issue 4); filled in next.
