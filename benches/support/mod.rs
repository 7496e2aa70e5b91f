//! Set-up shared by the bench targets.

use wschat::app::Effects;
use wschat::chat::hub::Hub;
use wschat::chat::protocol::parse_client_message;

/// The local time stamp the benches hand the hub.
pub const TIME: &str = "2024-01-01 12:00:00";

/// A hub with `members` logged-in users in one room.
pub fn hub_with(members: usize) -> Hub {
    let mut hub = Hub::new(0);
    let mut fx = Effects::default();
    for conn in 0..members {
        let login = format!(r#"{{"type":"login","name":"u{conn}"}}"#);
        hub.handle(conn, parse_client_message(&login).unwrap(), TIME, &mut fx);
        fx.clear();
    }
    hub
}
