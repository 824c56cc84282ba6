//! Reading and writing at the edges: the Hugging Face Hub cache ([`hub`]), image decoding with
//! limits ([`image`]), `.npy` arrays ([`npy`]), atomic output files ([`output`]), JSON arrays one
//! object a line ([`json`]) and `.safetensors` files with metadata ([`safetensors`]).

pub mod hub;
pub mod image;
pub mod json;
pub mod npy;
pub mod output;
pub mod safetensors;
