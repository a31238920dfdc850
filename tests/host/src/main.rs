//! `voice-edge-host`: serves a Spin app with Spin's own flags.
//!
//! `voice-edge-host [up] -f spin.toml --listen 127.0.0.1:3000 --variable name=value`;
//! variables also come from `SPIN_VARIABLE_<NAME>` and a `.env` file in the current
//! directory, as with `spin up`. WASIp3 components' instances are reused as Spin reuses
//! them, with Spin's flags and defaults: `--max-instance-reuse-count` (128),
//! `--max-instance-concurrent-reuse-count` (16), `--idle-instance-timeout` (1s),
//! `--request-timeout` (none). Build: `cargo build --profile host -p voice-edge-host`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Parser;
use voice_edge_host::reuse::{Range, parse_duration_range, parse_usize_range};
use voice_edge_host::{App, HostOptions, InstanceReuse, Server, VariableProviders};

/// Serve the components of a Spin manifest, as `spin up` does.
#[derive(Parser, Debug)]
#[command(name = "voice-edge-host", version)]
struct Args {
    /// Optional `up`, so that `voice-edge-host up -f …` reads like `spin up -f …`.
    #[arg(value_parser = ["up"])]
    command: Option<String>,

    /// The application manifest.
    #[arg(
        short = 'f',
        long = "from",
        alias = "file",
        default_value = "spin.toml"
    )]
    from: PathBuf,

    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,

    /// A variable for the app: `key=value`, `key=@file`, `@file.json` or `@file.toml`
    /// (repeatable; the last value of a key wins).
    #[arg(long = "variable", value_name = "KEY=VALUE")]
    variables: Vec<String>,

    /// Where compiled components are cached (default: `target/voice-edge-host-cache`
    /// beside the manifest when that `target` directory exists).
    #[arg(long)]
    cache_dir: Option<PathBuf>,

    /// Where each component's stdout and stderr are appended, as with `spin up`
    /// (default `.spin/logs/` beside the manifest). Like Spin 4.1, an empty value is
    /// refused although Spin's help says it disables the files.
    #[arg(short = 'L', long = "log-dir", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    log_dir: Option<String>,

    /// Component output to the log files only, not also to this process's own.
    #[arg(short = 'q', long)]
    quiet: bool,

    /// WASIp3 components: most requests one instance serves before it is dropped (a
    /// number, or a range `a..b` drawn from per instance). Spin's flag; default 128.
    /// WASIp2 components always get a fresh instance per request.
    #[arg(long, value_parser = parse_usize_range)]
    max_instance_reuse_count: Option<Range<usize>>,

    /// WASIp3 components: most requests one instance handles at once (a number or a
    /// range). Spin's flag; default 16.
    #[arg(long, value_parser = parse_usize_range)]
    max_instance_concurrent_reuse_count: Option<Range<usize>>,

    /// WASIp3 components: a request with no response after this long gets a 500 (`2`,
    /// `2s`, `500ms`, `us`, `ns`, or a range `1..8s`). Spin's flag; default none.
    #[arg(long, value_parser = parse_duration_range)]
    request_timeout: Option<Range<std::time::Duration>>,

    /// WASIp3 components: how long an idle instance is kept for reuse (same forms as
    /// `--request-timeout`). Spin's flag; default 1s.
    #[arg(long, default_value = "1s", value_parser = parse_duration_range)]
    idle_instance_timeout: Range<std::time::Duration>,
}

fn read_variable_file(path: &Path) -> anyhow::Result<HashMap<String, String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let table: HashMap<String, String> = match path.extension().and_then(|e| e.to_str()) {
        Some("json") => serde_json::from_str(&text)?,
        Some("toml") => toml::from_str(&text)?,
        _ => bail!("variable file {} must be .json or .toml", path.display()),
    };
    Ok(table)
}

fn parse_variables(sources: &[String]) -> anyhow::Result<HashMap<String, String>> {
    let mut values = HashMap::new();
    for source in sources {
        if let Some(file) = source.strip_prefix('@') {
            values.extend(read_variable_file(Path::new(file))?);
            continue;
        }
        let Some((key, value)) = source.split_once('=') else {
            bail!(
                "Variable must be of the form `key=value`, `key=@file` or `@file.json|toml`: {source:?}"
            );
        };
        let value = match value.strip_prefix('@') {
            Some(file) => {
                std::fs::read_to_string(file).with_context(|| format!("cannot read {file}"))?
            }
            None => value.to_string(),
        };
        values.insert(key.trim().to_string(), value);
    }
    Ok(values)
}

/// `SPIN_VARIABLE_*` lines of a `.env` file, as Spin's environment provider reads them.
fn read_dotenv(path: &Path) -> HashMap<String, String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return HashMap::new();
    };
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let line = line.strip_prefix("export ").unwrap_or(line);
            if line.starts_with('#') {
                return None;
            }
            let (key, value) = line.split_once('=')?;
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(value);
            Some((key.trim().to_string(), value.to_string()))
        })
        .filter(|(key, _)| key.starts_with("SPIN_VARIABLE_"))
        .collect()
}

fn run(args: Args) -> anyhow::Result<()> {
    let manifest_dir = args
        .from
        .canonicalize()
        .with_context(|| format!("cannot find manifest {}", args.from.display()))?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let cache_dir = args.cache_dir.or_else(|| {
        let target = manifest_dir.join("target");
        target
            .is_dir()
            .then(|| target.join("voice-edge-host-cache"))
    });
    let log_dir = args
        .log_dir
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir.join(".spin").join("logs"));
    // Spin's first line: where component output goes (relative to the working
    // directory when it is below it, as Spin prints it).
    let cwd = std::env::current_dir().unwrap_or_default();
    let shown = log_dir.strip_prefix(&cwd).unwrap_or(&log_dir);
    println!(
        "Logging component stdio to {:?}",
        format!("{}/", shown.display())
    );
    let options = HostOptions {
        manifest: args.from,
        providers: VariableProviders {
            explicit: parse_variables(&args.variables)?,
            environment: true,
            dotenv: read_dotenv(Path::new(".env")),
        },
        forward_output: !args.quiet,
        capture_output: false,
        cache_dir,
        log_dir: Some(log_dir),
        reuse: {
            let defaults = InstanceReuse::default();
            InstanceReuse {
                max_instance_reuse_count: args
                    .max_instance_reuse_count
                    .unwrap_or(defaults.max_instance_reuse_count),
                max_instance_concurrent_reuse_count: args
                    .max_instance_concurrent_reuse_count
                    .unwrap_or(defaults.max_instance_concurrent_reuse_count),
                request_timeout: args.request_timeout,
                idle_instance_timeout: args.idle_instance_timeout,
            }
        },
    };
    let runtime = voice_edge_host::runtime();
    let app = Arc::new(App::load(&options)?);
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|error| {
                if error.kind() == std::io::ErrorKind::AddrInUse {
                    anyhow::anyhow!("{} is already in use.", args.listen)
                } else {
                    anyhow::anyhow!("Unable to listen on {}: {error:?}", args.listen)
                }
            })?;
        let server = Server::start(app.clone(), listener)?;
        print!("{}", app.banner(server.local_addr()));
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let _ = tokio::signal::ctrl_c().await;
        server.shutdown().await;
        anyhow::Ok(())
    })
}

fn main() {
    let args = Args::parse();
    if let Err(error) = run(args) {
        // As Spin (and any anyhow `main`) prints it: the error, then `Caused by:`.
        eprintln!("Error: {error:?}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_take_spins_forms_and_the_last_value_wins() {
        let values = parse_variables(&["a=1".into(), "b=x=y".into(), "a=2".into()]).unwrap();
        assert_eq!(values["a"], "2");
        assert_eq!(values["b"], "x=y");
        assert!(parse_variables(&["novalue".into()]).is_err());
    }
}
