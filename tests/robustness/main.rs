//! Robustness: crafted or corrupted user files, and inputs that once crashed or blew up memory, give a
//! typed one-line error (or a bounded, correct result), never a panic (issue 12). One test binary, one
//! module per kind of input; the fuzz targets' crashes (`tests/fuzz/`) are replayed here on stable.

mod checkpoints;
mod fuzz_replay;
mod images;
mod index_files;
