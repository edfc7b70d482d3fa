//! Hugging Face, where mtkit meets it: the Hub client (`mtkit data pull`, `mtkit model pull`:
//! [`hub`]) and GPT-NeoX checkpoint folders read and checked as bytes ([`checkpoint`]).

pub mod checkpoint;
pub mod hub;
