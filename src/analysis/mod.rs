//! Stage 4, analysis: what the profiles say. Similarities and the proximity advantage
//! ([`proximity`]), mixture proposals ([`mix`], `suggest-mix`), the one least-squares fit
//! ([`stats`]), the regression and paper tables ([`report`]) and their charts ([`plot`]),
//! and each pool document's importance weight toward a target ([`score`], `mtkit score`).

pub mod mix;
pub mod plot;
pub mod proximity;
pub mod report;
pub mod score;
pub mod stats;
