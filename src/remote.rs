//! What the shared HTTP listener tells the routes about a connection: the client's address.
//!
//! The listener (`http::serve`) serves warp's routes through hyper-util's connection builder,
//! so it puts the address into the request's extensions itself; [`remote`] reads it there (and
//! falls back to warp's own, which `warp::test` requests carry). Any side's routes use it.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use warp::Filter;

/// The TCP peer of the connection a request came on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// The client's address, if known.
pub fn remote() -> impl Filter<Extract = (Option<SocketAddr>,), Error = Infallible> + Clone {
    warp::ext::optional::<ClientAddr>()
        .and(warp::addr::remote())
        .map(|ours: Option<ClientAddr>, warps: Option<SocketAddr>| ours.map(|c| c.0).or(warps))
}

/// IPv4-mapped IPv6 addresses (from a dual-stack listener) count as the IPv4 address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}
