//! Reading and writing at the edges: the Hugging Face Hub cache ([`hub`]), image decoding with
//! limits ([`image`]), `.npy` arrays ([`npy`]) and atomic output files ([`output`]).

pub mod hub;
pub mod image;
pub mod npy;
pub mod output;
