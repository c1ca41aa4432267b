//! rolld's modules, one per concept. The binary is `main.rs`; the library
//! exists so that benchmarks and fuzz targets can reach the parsers, the
//! group machine and the planner.

pub mod actions;
pub mod client;
pub mod config;
pub mod control;
pub mod daemon;
pub mod group;
pub mod haproxy;
pub mod keeper;
pub mod log;
pub mod notify;
pub mod output;
pub mod plan;
pub mod pool;
pub mod process;
pub mod session;
pub mod signals;
pub mod smoke;
pub mod state;
pub mod status;
pub mod sys;
pub mod takeover;
pub mod tcp;
pub mod work;
