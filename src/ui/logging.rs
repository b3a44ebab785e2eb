//! tracing set-up: a filtered stderr layer and a full debug log file
//! (opened by [`vmrescue::runlog::open_log_file`]).

use std::fs::File;
use std::sync::Arc;

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;

/// Installs the global subscriber. `verbosity`: -1 quiet, 0 warn, 1 info, 2 debug, 3+ trace.
pub(crate) fn init(verbosity: i8, log_file: Option<File>) {
    let stderr_level = match verbosity {
        i8::MIN..=-1 => LevelFilter::ERROR,
        0 => LevelFilter::WARN,
        1 => LevelFilter::INFO,
        2 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    };
    let stderr_layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .with_filter(stderr_level);
    let file_layer = log_file.map(|file| {
        tracing_subscriber::fmt::layer()
            .with_writer(Arc::new(file))
            .with_ansi(false)
            .with_filter(LevelFilter::DEBUG)
    });
    let _ = tracing_subscriber::registry()
        .with(stderr_layer)
        .with(file_layer)
        .try_init();
}
