//! Routing: which endpoints a request may go to, in which order, and what
//! the router remembers about them (health, performance, stickiness, the
//! retry budget).

pub mod budget;
pub mod health;
pub mod needs;
pub mod params;
pub mod perf;
pub mod prefs;
pub mod select;
pub mod sticky;
pub mod tokens;

#[cfg(test)]
mod tests;
