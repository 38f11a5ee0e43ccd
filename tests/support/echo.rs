//! A loop handler that echoes every message back (a send refused because
//! the connection is closing is not the test's concern).

use ws::api::event_loop::{ConnHandle, Handler};
use ws::api::MessageType;

pub struct Echo;

impl Handler for Echo {
    fn on_message(&self, conn: &ConnHandle, kind: MessageType, data: &[u8]) {
        let _ = conn.send(kind, data);
    }
}
