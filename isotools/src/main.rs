//! `isotools` command line: build images, NoCloud seeds, and list images.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use isotools::{IsoBuilder, IsoImage, IsoOptions};

#[derive(Parser)]
#[command(
    name = "isotools",
    version,
    about = "Build and inspect ISO 9660 + Joliet + Rock Ridge images"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build an image from a directory tree.
    Build {
        /// Source directory; its contents become the image root.
        src: PathBuf,
        /// Output image path (`-` for stdout).
        #[arg(short, long)]
        output: PathBuf,
        /// Volume label (printable ASCII, up to 32 characters).
        #[arg(short = 'V', long = "volume-id", default_value = "CDROM")]
        volume_id: String,
        /// Do not write the Joliet (Windows) namespace.
        #[arg(long)]
        no_joliet: bool,
        /// Do not write Rock Ridge (POSIX) entries.
        #[arg(long)]
        no_rock: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Build a cloud-init NoCloud seed (label `cidata`).
    Nocloud {
        /// The user-data file.
        #[arg(long)]
        user_data: PathBuf,
        /// The meta-data file.
        #[arg(long)]
        meta_data: PathBuf,
        /// Optional network-config file.
        #[arg(long)]
        network_config: Option<PathBuf>,
        /// Output image path (`-` for stdout).
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// List the files of an image in every namespace.
    Ls {
        /// The image to inspect.
        image: PathBuf,
    },
}

#[derive(clap::Args)]
struct Common {
    /// Fixed timestamp for every date in the image (RFC 3339, e.g. 2024-01-01T00:00:00Z);
    /// defaults to $SOURCE_DATE_EPOCH when set, otherwise the current time.
    #[arg(long)]
    date: Option<String>,
    /// Print progress to stderr (default: only when stderr is a terminal).
    #[arg(long)]
    progress: bool,
}

fn timestamp(date: Option<&str>) -> Result<Option<i64>> {
    if let Some(d) = date {
        let t = chrono::DateTime::parse_from_rfc3339(d).with_context(|| {
            format!("--date {d:?} is not an RFC 3339 date such as 2024-01-01T00:00:00Z")
        })?;
        return Ok(Some(t.timestamp()));
    }
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => Ok(Some(v.trim().parse().with_context(|| {
            format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds")
        })?)),
        Err(_) => Ok(None),
    }
}

fn write_image(mut image: IsoImage, output: &Path, progress: bool) -> Result<()> {
    let show = progress || std::io::stderr().is_terminal();
    if show {
        let start = Instant::now();
        let mut last = 0u64;
        image.on_progress(move |done, total| {
            let pct = done * 100 / total.max(1);
            if pct != last || done == total {
                last = pct;
                let mib = done as f64 / (1 << 20) as f64;
                let secs = start.elapsed().as_secs_f64().max(1e-3);
                eprint!("\r{pct:3}%  {mib:9.1} MiB  {:7.1} MiB/s", mib / secs);
                if done == total {
                    eprintln!();
                }
            }
        });
    }
    let size = image.size();
    if output == Path::new("-") {
        let stdout = std::io::stdout();
        image.write_to(BufWriter::with_capacity(1 << 20, stdout.lock()))?;
    } else {
        let file =
            File::create(output).with_context(|| format!("cannot create {}", output.display()))?;
        image.write_to(file)?;
    }
    if show {
        eprintln!("wrote {size} bytes to {}", output.display());
    }
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Build {
            src,
            output,
            volume_id,
            no_joliet,
            no_rock,
            common,
        } => {
            if !src.is_dir() {
                bail!("{} is not a directory", src.display());
            }
            let mut b = IsoBuilder::new(IsoOptions {
                volume_id,
                joliet: !no_joliet,
                rock_ridge: !no_rock,
                timestamp: timestamp(common.date.as_deref())?,
                ..IsoOptions::default()
            });
            b.add_tree("/", &src)?;
            write_image(b.build()?, &output, common.progress)
        }
        Cmd::Nocloud {
            user_data,
            meta_data,
            network_config,
            output,
            common,
        } => {
            let nc = network_config.as_deref().map(read).transpose()?;
            let mut b = isotools::nocloud_seed(read(&user_data)?, read(&meta_data)?, nc)?;
            b.options_mut().timestamp = timestamp(common.date.as_deref())?;
            write_image(b.build()?, &output, common.progress)
        }
        Cmd::Ls { image } => {
            let f =
                File::open(&image).with_context(|| format!("cannot open {}", image.display()))?;
            let listing = isotools::reader::list(std::io::BufReader::new(f))
                .with_context(|| format!("cannot list {}", image.display()))?;
            let mut out = std::io::stdout().lock();
            out.write_all(isotools::reader::render(&listing).as_bytes())?;
            Ok(())
        }
    }
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
