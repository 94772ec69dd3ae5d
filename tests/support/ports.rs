//! Loopback ports for the servers tests start, each reserved for its owner's lifetime.
//!
//! A port is found free by binding it and letting it go; between that and its owner binding it for good (or while
//! its owner restarts or cuts connections), another test of this process could be handed the same port, and
//! requests meant for one server would reach another. So every port handed out here stays reserved until released.

use std::collections::BTreeSet;
use std::sync::Mutex;

/// Ports handed out by [`free_port`] and not yet released.
static RESERVED: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A free port on the loopback interface, reserved until [`release_port`].
pub fn free_port() -> u16 {
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        if RESERVED.lock().unwrap().insert(port) {
            return port;
        }
    }
}

/// Marks a port from [`free_port`] as free again.
pub fn release_port(port: u16) {
    RESERVED.lock().unwrap().remove(&port);
}

/// A reserved port, released when dropped.
pub struct Port(pub u16);

impl Port {
    pub fn reserve() -> Self {
        Self(free_port())
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        release_port(self.0);
    }
}
