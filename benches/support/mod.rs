//! Set-up shared by the bench targets.

use wschat::app::Effects;
use wschat::chat::dialect::seed::parse_client_message;
use wschat::chat::event::ClientMessage;
use wschat::chat::fanout::Fanout;
use wschat::chat::hub::Hub;

/// The local time stamp the benches hand the hub.
pub const TIME: &str = "2024-01-01 12:00:00";

/// The chat core and its fanout, driven the way the daemon's `ChatApp` drives them.
pub struct Chat {
    pub hub: Hub,
    pub fanout: Fanout,
}

impl Chat {
    /// A command from `conn`: the hub decides, the fanout encodes and batches.
    pub fn handle(&mut self, conn: usize, msg: ClientMessage<'_>, time: &str, fx: &mut Effects) {
        self.hub.handle(conn, msg, time, &mut self.fanout.sink(fx));
    }

    /// The end of a loop turn: the rooms' batches handed to their members.
    pub fn seal(&mut self, fx: &mut Effects) {
        self.fanout.seal(self.hub.roster(), fx);
    }
}

/// A chat with `members` logged-in users in one room.
pub fn hub_with(members: usize) -> Chat {
    let mut hub = Chat { hub: Hub::new(0), fanout: Fanout::new() };
    let mut fx = Effects::default();
    for conn in 0..members {
        let login = format!(r#"{{"type":"login","name":"u{conn}"}}"#);
        hub.handle(conn, parse_client_message(&login).unwrap(), TIME, &mut fx);
        fx.clear();
    }
    hub
}
