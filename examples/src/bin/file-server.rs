//! file-server: the file protocol the benchmarks' `file-load` speaks.
//!
//! Request `NAME\n`; response: the file's length as an 8-byte big-endian
//! signed number, then the file's bytes, sent as a `FileRegion` (so with
//! `sendfile(2)`: no byte of the file passes through user space). A name
//! that is empty, contains `/` or `..`, or is not a regular file in the root
//! gets length -1 and no body. Several requests on one connection are
//! answered in order.

use std::path::PathBuf;

use bytes::Bytes;
use clap::Parser;
use weft_codec::{DecoderHandler, LineBasedFrameDecoder};
use weft_core::{Context, Error, FileRegion, Typed, TypedInbound};
use weft_examples::confined::Root;

/// A file server speaking the peers' file protocol.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7008")]
    addr: String,
    /// Directory whose files are served.
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// Worker threads (1: a current-thread runtime; 0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    #[command(flatten)]
    serve: weft_examples::ServeOptions,
}

struct FileRequests {
    root: Root,
}

impl FileRequests {
    /// Opens the named file beneath the root (never outside it: symlinks
    /// that lead out are refused by the kernel), non-blocking, and checks
    /// on the descriptor that it is a regular file: a FIFO or device swapped
    /// in cannot wedge the thread.
    fn open(&self, line: &[u8]) -> Option<FileRegion> {
        let name = std::str::from_utf8(line).ok()?.trim();
        if name.is_empty() || name.contains('/') || name.contains("..") || name.contains('\0') {
            return None;
        }
        let file = self.root.open(name).ok()?;
        let meta = file.metadata().ok()?;
        if !meta.is_file() {
            return None;
        }
        let len = meta.len();
        FileRegion::with_known_size(std::sync::Arc::new(file), 0, len, len).ok()
    }
}

impl TypedInbound for FileRequests {
    type In = Bytes;

    fn read(&mut self, ctx: &mut Context<'_>, line: Bytes) {
        match self.open(&line) {
            Some(region) => {
                ctx.write(Bytes::copy_from_slice(&(region.len() as i64).to_be_bytes()));
                ctx.write_and_flush(region);
            }
            None => ctx.write_and_flush(Bytes::from_static(&[0xff; 8])), // -1
        }
    }

    fn exception_caught(&mut self, ctx: &mut Context<'_>, err: Error) {
        tracing::debug!(error = ?err, "closing the connection");
        ctx.close();
    }
}

fn main() {
    weft_examples::init_tracing();
    let args = Args::parse();
    let root = match Root::new(&args.root) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot serve {}: {e}", args.root.display());
            std::process::exit(1);
        }
    };
    let serve = args.serve.clone();
    weft_examples::runtime(args.threads).block_on(async move {
        let server = weft_examples::exit_on_error(
            serve
                .bootstrap()
                .child_handler(move |p| {
                    p.add_last(
                        "lines",
                        DecoderHandler::new(LineBasedFrameDecoder::new(4096)),
                    )?;
                    p.add_last("files", Typed(FileRequests { root: root.clone() }))
                })
                .bind(&args.addr)
                .await,
        );
        weft_examples::exit_on_error(weft_examples::serve(server, &args.serve).await);
    });
}
