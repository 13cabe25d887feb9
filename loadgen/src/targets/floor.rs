//! The floor reference (`pushbench-floor`, built beside `pushbench-server`): a minimal sender speaking our
//! wire that writes each event to each socket with one `write` and does nothing else, so that the peers
//! report can say what each server's user space adds to the kernel's cost per delivery (see the binary's
//! own doc, `server/src/bin/pushbench-floor.rs`). It is spawned like our server, one process per
//! transport, and measured by our own clients; it offers no interval polling, which needs a log.

use std::path::{Path, PathBuf};

use pushbench_common::Transport;

pub use crate::error::FLOOR_BIN;
use crate::error::ServerError;

/// The transports the floor serves.
pub const OFFERS: [Transport; 4] = [
    Transport::LongPoll,
    Transport::Stream,
    Transport::Sse,
    Transport::Ws,
];

/// Whether the floor serves `transport`.
pub fn offers(transport: Transport) -> bool {
    OFFERS.contains(&transport)
}

/// Finds the floor's binary beside the server's: beside `server_bin` when given (`--server-bin`), else
/// where [`crate::targets::server_proc::locate`] looks.
pub fn locate(server_bin: Option<&Path>) -> Result<PathBuf, ServerError> {
    let server = crate::targets::server_proc::locate(server_bin)?;
    let floor = server.with_file_name(FLOOR_BIN);
    if floor.is_file() {
        Ok(floor)
    } else {
        Err(ServerError::NotFound(
            FLOOR_BIN,
            floor.display().to_string(),
        ))
    }
}
