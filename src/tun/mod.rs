//! The TUN side: every room is a multicast group on a TUN device (`meshroom0`), so programs on
//! the gateway host watch and post room traffic with ordinary IP tools.
//!
//! Map of the module (sans-IO cores first, IO shell last):
//! - `group`: room → multicast group and port (derived from the name, overridable, no clashes).
//! - `datagram`: the JSON line a post becomes, and what the host may send.
//! - `seal`: ChaCha20-Poly1305 seal of a private room's datagrams (format documented there).
//! - `packet`: IPv4/UDP/IGMP packets on the device, via `smoltcp::wire`.
//! - `igmp`: IGMP v1/v2/v3 reports in, v3 general queries out.
//! - `proc_igmp`: per-group socket counts from `/proc/net/igmp`.
//! - `membership`: the rooms' host-side listeners from both of the above.
//! - `bridge`: packets ↔ posts, with drop counting (`counters`).
//! - `device`: the TUN device and its address and route (rtnetlink).
//! - `side`: the IO shell that runs all of the above in the gateway; `status`: its `/status`.
pub mod bridge;
pub mod counters;
pub mod datagram;
pub mod device;
pub mod group;
pub mod igmp;
pub mod membership;
pub mod packet;
pub mod proc_igmp;
pub mod seal;
pub mod side;
pub mod status;

pub use side::spawn;
