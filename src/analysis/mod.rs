//! Stage 4, analysis: what the profiles say. Similarities and the proximity advantage
//! ([`proximity`]), mixture proposals ([`mix`], `suggest-mix`), the one least-squares fit
//! ([`stats`]), the regression and paper tables ([`report`]) and their charts ([`plot`]),
//! each pool document's importance weight toward a target ([`score`], `mtkit score`) and the
//! documents drawn by it ([`select`], `mtkit select`), and how much of an evaluation set a
//! corpus contains ([`overlap`], `mtkit overlap`; its shards' parts merged by
//! [`overlap_parts`]).

pub mod mix;
pub mod overlap;
pub mod overlap_parts;
pub mod plot;
pub mod proximity;
pub mod report;
pub mod score;
pub mod select;
pub mod stats;
