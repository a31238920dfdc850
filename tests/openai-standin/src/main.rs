//! `openai-standin`: the OpenAI stand-in as a process, for the local run and for tests
//! written in other languages.
//!
//! ```text
//! openai-standin [--listen 127.0.0.1:9100] [--api-key KEY] [--quiet]
//! ```
//!
//! Prints one line saying where it listens, then one JSON line per request (no keys,
//! no bodies) unless `--quiet`. The expected key may also come from
//! `OPENAI_STANDIN_API_KEY`. Stops on Ctrl-C or SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use voice_edge_openai_standin::{Options, run};

const USAGE: &str = "usage: openai-standin [--listen 127.0.0.1:9100] [--api-key KEY] [--quiet]";

struct Args {
    listen: SocketAddr,
    options: Options,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut listen = SocketAddr::from(([127, 0, 0, 1], 9100));
    let mut options = Options {
        api_key: std::env::var("OPENAI_STANDIN_API_KEY")
            .ok()
            .filter(|key| !key.is_empty()),
        log_requests: true,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => {
                let value = args.next().ok_or("--listen needs an address")?;
                listen = value.parse().map_err(|_| {
                    format!("--listen: {value:?} is not an address like 127.0.0.1:9100")
                })?;
            }
            "--api-key" => {
                let key = args
                    .next()
                    .filter(|key| !key.is_empty())
                    .ok_or("--api-key needs a key")?;
                options.api_key = Some(key);
            }
            "--quiet" => options.log_requests = false,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(Args { listen, options })
}

async fn stop_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("openai-standin: cannot start a runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(args.listen).await {
            Ok(listener) => listener,
            Err(error) => {
                eprintln!("openai-standin: cannot listen on {}: {error}", args.listen);
                return ExitCode::FAILURE;
            }
        };
        let address = listener.local_addr().unwrap_or(args.listen);
        let keyed = if args.options.api_key.is_some() {
            "one configured key"
        } else {
            "any key"
        };
        println!("openai-standin listening on http://{address} (accepting {keyed})");
        let _ = std::io::stdout().flush();
        run(listener, args.options, stop_signal()).await;
        ExitCode::SUCCESS
    })
}
