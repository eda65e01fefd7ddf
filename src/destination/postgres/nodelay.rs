//! `TCP_NODELAY` on the pool's Postgres connections. sqlx 0.9.0 stopped setting it
//! (launchbadge/sqlx#4335; the fix, #4336, is not in a release yet), and without it every COPY
//! stalls: sqlx writes the batch, then the small `CopyDone` message, which Nagle's algorithm holds
//! until the server's delayed ACK arrives, up to 40 ms later. That was one stall per staged page,
//! half the wall time of a narrow backfill (docs/benchmarks.md). Remove this module once sqlx sets
//! the option again.
//!
//! sqlx does not expose a connection's socket, so the socket is found among the process's open
//! descriptors by the addresses the server reports for the session (`inet_client_port()`,
//! `inet_server_port()`). Only Linux lists them (`/proc/self/fd`); elsewhere, and behind a proxy
//! that changes the client's port, nothing matches and the connection stays as sqlx made it.

/// Sets `TCP_NODELAY` on the socket of `conn`, if it is a TCP connection whose socket can be
/// found; failing to set it only costs speed, never correctness, so it is logged, not returned.
pub(super) async fn set(conn: &mut sqlx::PgConnection) {
    let ports: Result<(Option<i32>, Option<i32>), sqlx::Error> =
        sqlx::query_as("select inet_client_port(), inet_server_port()").fetch_one(conn).await;
    let Ok((Some(client), Some(server))) = ports else {
        return; // a Unix socket
    };
    let (Ok(client), Ok(server)) = (u16::try_from(client), u16::try_from(server)) else {
        return;
    };
    if set_on_socket(client, server) {
        tracing::debug!(client, server, "TCP_NODELAY set on the Postgres connection");
    } else {
        tracing::debug!(client, server, "no socket of this process matches the Postgres session; TCP_NODELAY not set");
    }
}

/// Sets `TCP_NODELAY` on this process's TCP sockets whose local port is `local` and peer port
/// `peer`.
#[cfg(target_os = "linux")]
fn set_on_socket(local: u16, peer: u16) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return false;
    };
    let mut found = false;
    for fd in entries.flatten().filter_map(|e| e.file_name().to_str()?.parse::<std::os::fd::RawFd>().ok()) {
        // SAFETY: `fd` was listed as open a moment ago. Should another thread close it in
        // between, the calls below act on a closed or reused descriptor number: they fail or
        // read a different socket's addresses, and set at most an option that is harmless on
        // any TCP socket. No memory is touched through the descriptor.
        #[allow(unsafe_code)]
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let socket = socket2::SockRef::from(&fd);
        let port = |addr: std::io::Result<socket2::SockAddr>| addr.ok().and_then(|a| a.as_socket()).map(|a| a.port());
        if port(socket.local_addr()) == Some(local)
            && port(socket.peer_addr()) == Some(peer)
            && socket.set_tcp_nodelay(true).is_ok()
        {
            found = true;
        }
    }
    found
}

#[cfg(not(target_os = "linux"))]
fn set_on_socket(_local: u16, _peer: u16) -> bool {
    false
}
