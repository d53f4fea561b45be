//! `portcullis`: the Portcullis API gateway — operator and data plane in one binary.
//!
//! This file only parses the command line and hands over to the crates; see `commands/`.

#![forbid(unsafe_code)]

mod commands;
mod compiled;
mod manifests;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Portcullis: a Kubernetes-native API gateway.
///
/// One binary holds the operator, which turns Gateway, Route and ServiceBackend resources into
/// redundant gateway deployments, and the data plane, which serves them.
#[derive(Parser, Debug)]
#[command(name = "portcullis", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the whole picture on localhost, no cluster needed.
    ///
    /// Three demo services and a gateway in front of them. Prints the URLs and curl lines to
    /// try; runs until Ctrl-C.
    Demo(commands::demo::Args),
    /// Serve one of the demo's services (users, orders, catalog) on its own.
    ///
    /// A JSON REST API over an in-memory store of its own, the same code as `demo`'s services:
    /// the Deployments of deploy/examples run it, so that the examples serve in a cluster.
    /// `GET /healthz` is its probe; `POST /outage` makes it answer 503 (probe included) until
    /// `DELETE /outage`.
    DemoService(commands::demo_service::Args),
    /// Print the CustomResourceDefinitions (multi-document YAML) to apply to a cluster.
    Crds,
    /// Validate manifests offline, with the same checks the API server and the operator make.
    ///
    /// Exit 0 when every Gateway, Route and ServiceBackend is valid; otherwise exit 1 and print
    /// one line per problem: `FILE: Kind/namespace/name: spec.path.to.field: message`.
    /// Warns, on standard error, wherever kubectl (which reads YAML 1.1) would read a manifest
    /// differently; `--strict` makes those problems too.
    Check(commands::check::Args),
    /// Print the Kubernetes objects the operator would create for the Gateways in the manifests.
    Render(commands::render::Args),
    /// Serve manifests from files: the standalone data plane. Reloads when the files change.
    Run(commands::run::Args),
    /// Serve a compiled config snapshot: the data plane inside a gateway pod.
    Proxy(commands::proxy::Args),
    /// Run the operator: reconcile Gateways into redundant gateway deployments.
    ///
    /// Leader election through a Lease (only the leader writes), /healthz, /readyz and /metrics.
    Controller(commands::controller::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Demo(args) => commands::demo::run(&args),
        Command::DemoService(args) => commands::demo_service::run(&args),
        Command::Crds => commands::crds::run(),
        Command::Check(args) => commands::check::run(&args),
        Command::Render(args) => commands::render::run(&args),
        Command::Run(args) => commands::run::run(&args),
        Command::Proxy(args) => commands::proxy::run(&args),
        Command::Controller(args) => commands::controller::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("portcullis: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Logs go to standard error (standard output carries the access log and command output);
/// `RUST_LOG` tunes them, `info` by default.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}
