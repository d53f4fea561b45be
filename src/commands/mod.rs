//! One module per subcommand. Each exposes `Args` (when it takes any) and `run`, which returns
//! the process exit code; errors that stop the command bubble up as `anyhow::Error`.

pub mod check;
pub mod controller;
pub mod crds;
pub mod demo;
pub mod demo_service;
pub mod proxy;
pub mod render;
pub mod run;
pub mod serve;
