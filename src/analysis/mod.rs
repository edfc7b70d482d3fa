//! Stage 4, analysis: what the profiles say. Similarities and the proximity advantage
//! ([`proximity`]), mixture proposals ([`mix`], `suggest-mix`), the one least-squares fit
//! ([`stats`]), the regression and paper tables ([`report`]) and their charts ([`plot`]).

pub mod mix;
pub mod plot;
pub mod proximity;
pub mod report;
pub mod stats;
