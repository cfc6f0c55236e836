//! The TUN device and its place in the kernel's tables: create it, address it, turn IPv6 off on
//! it, bring it up and route the room range over it — through rtnetlink, never by running `ip`
//! — and take back exactly what was added when the side stops.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use futures_util::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::link::{AfSpecInet6, AfSpecUnspec, In6AddrGenMode, LinkAttribute};
use rtnetlink::packet_route::route::RouteScope;
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};

/// What to set up.
#[derive(Clone, Debug)]
pub struct DeviceSetup {
    pub name: String,
    /// The kernel's own address on the device, with the prefix of the on-link subnet.
    pub kernel_address: Ipv4Net,
    /// The room range routed over the device.
    pub range: Ipv4Net,
    pub mtu: u16,
}

/// Why the device could not be opened. The first two mean "this host or this process may not
/// have a TUN device", which in `auto` mode is a warning, not an error.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("/dev/net/tun is missing (no TUN support in this kernel or container)")]
    NoTunDevice,
    #[error("not permitted to create TUN device (needs CAP_NET_ADMIN)")]
    NotPermitted,
    #[error("creating TUN device {name}: {source}")]
    Create {
        name: String,
        #[source]
        source: tun::Error,
    },
    #[error("configuring {name} over netlink: {what}: {source}")]
    Netlink {
        name: String,
        what: &'static str,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("opening netlink: {0}")]
    NetlinkSocket(#[source] io::Error),
    #[error("finding index of {name}: {source}")]
    Index {
        name: String,
        #[source]
        source: nix::Error,
    },
}

impl OpenError {
    /// True when the host or the process just does not allow a TUN device.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, OpenError::NoTunDevice | OpenError::NotPermitted)
    }
}

/// An open, configured device. Call [`TunDevice::close`] to take the route and address back
/// before the file descriptor closes (which removes the device itself).
pub struct TunDevice {
    pub io: Arc<tun::AsyncDevice>,
    pub index: u32,
    pub setup: DeviceSetup,
    handle: Handle,
    connection: tokio::task::JoinHandle<()>,
    ipv6_disabled: bool,
}

impl std::fmt::Debug for TunDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunDevice")
            .field("name", &self.setup.name)
            .field("index", &self.index)
            .finish()
    }
}

fn classify(name: &str, err: tun::Error) -> OpenError {
    if let tun::Error::Io(io) = &err {
        match io.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENODEV) | Some(libc::ENXIO) => {
                return OpenError::NoTunDevice
            }
            Some(libc::EPERM) | Some(libc::EACCES) => return OpenError::NotPermitted,
            _ => {}
        }
    }
    OpenError::Create {
        name: name.to_string(),
        source: err,
    }
}

/// Route of the room range over the device, as added and as deleted.
fn room_route(setup: &DeviceSetup, index: u32) -> rtnetlink::packet_route::route::RouteMessage {
    RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(setup.range.network(), setup.range.prefix_len())
        .output_interface(index)
        .pref_source(setup.kernel_address.addr())
        .scope(RouteScope::Link)
        .build()
}

impl TunDevice {
    pub async fn open(setup: DeviceSetup) -> Result<TunDevice, OpenError> {
        if !std::path::Path::new("/dev/net/tun").exists() {
            return Err(OpenError::NoTunDevice);
        }
        let mut config = tun::Configuration::default();
        config.tun_name(&setup.name);
        // Addresses, MTU and link state go through netlink below, not the crate's ioctls.
        config.platform_config(|p| {
            p.ensure_root_privileges(false);
        });
        let device = tun::create_as_async(&config).map_err(|e| classify(&setup.name, e))?;
        let index = nix::net::if_::if_nametoindex(setup.name.as_str()).map_err(|source| {
            OpenError::Index {
                name: setup.name.clone(),
                source,
            }
        })?;

        let (connection, handle, _) =
            rtnetlink::new_connection().map_err(OpenError::NetlinkSocket)?;
        let connection = tokio::spawn(connection);
        let mut dev = TunDevice {
            io: Arc::new(device),
            index,
            setup,
            handle,
            connection,
            ipv6_disabled: false,
        };
        if let Err(e) = dev.configure().await {
            dev.close().await;
            return Err(e);
        }
        Ok(dev)
    }

    /// Whether IPv6 was turned off on the device (`disable_ipv6`, or where /proc/sys is
    /// read-only, no IPv6 addresses); false when the kernel has no IPv6.
    pub fn ipv6_disabled(&self) -> bool {
        self.ipv6_disabled
    }

    async fn configure(&mut self) -> Result<(), OpenError> {
        let name = self.setup.name.clone();
        let nl = |what: &'static str| {
            let name = name.clone();
            move |source| OpenError::Netlink { name, what, source }
        };
        // Router solicitations and MLD reports would be noise on a device that carries rooms.
        let sysctl = format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", self.setup.name);
        match std::fs::write(&sysctl, b"1") {
            Ok(()) => self.ipv6_disabled = true,
            Err(e) if std::path::Path::new("/proc/sys/net/ipv6").exists() => {
                // /proc/sys is read-only (systemd's ProtectKernelTunables, containers): no
                // IPv6 address at all on the device has the same effect, since the kernel sends
                // neither solicitations nor MLD without a link-local address. That setting goes
                // over netlink, before the link comes up.
                let no_addresses = LinkUnspec::new_with_index(self.index)
                    .append_extra_attribute(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(
                        vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::None)],
                    )]))
                    .build();
                match self.handle.link().set(no_addresses).execute().await {
                    Ok(()) => {
                        self.ipv6_disabled = true;
                        tracing::debug!(path = %sysctl, error = %e, "IPv6 sysctl not writable; IPv6 address generation turned off on the TUN device instead");
                    }
                    Err(nl_err) => tracing::warn!(
                        path = %sysctl, error = %e, netlink = %nl_err,
                        "cannot turn IPv6 off on the TUN device; router solicitations may appear on it"
                    ),
                }
            }
            Err(e) => {
                tracing::debug!(path = %sysctl, error = %e, "no IPv6 in this kernel; nothing to turn off")
            }
        }
        self.handle
            .address()
            .add(
                self.index,
                IpAddr::V4(self.setup.kernel_address.addr()),
                self.setup.kernel_address.prefix_len(),
            )
            .execute()
            .await
            .map_err(nl("adding address"))?;
        self.handle
            .link()
            .set(
                LinkUnspec::new_with_index(self.index)
                    .mtu(u32::from(self.setup.mtu))
                    .up()
                    .build(),
            )
            .execute()
            .await
            .map_err(nl("bringing link up"))?;
        self.handle
            .route()
            .add(room_route(&self.setup, self.index))
            .execute()
            .await
            .map_err(nl("adding room route"))?;
        Ok(())
    }

    /// Removes the room route and the address, then closes the device (which the kernel then
    /// deletes: it is not persistent). Failures are logged, not returned: there is nothing
    /// left to do about them at shutdown.
    pub async fn close(self) {
        let name = &self.setup.name;
        if let Err(e) = self
            .handle
            .route()
            .del(room_route(&self.setup, self.index))
            .execute()
            .await
        {
            tracing::debug!(device = %name, error = %e, "room route already gone");
        }
        let addr = IpAddr::V4(self.setup.kernel_address.addr());
        let found = self
            .handle
            .address()
            .get()
            .set_link_index_filter(self.index)
            .set_address_filter(addr)
            .execute()
            .try_collect::<Vec<_>>()
            .await;
        match found {
            Ok(messages) => {
                for message in messages {
                    if let Err(e) = self.handle.address().del(message).execute().await {
                        tracing::warn!(device = %name, error = %e, "could not remove address");
                    }
                }
            }
            Err(e) => tracing::debug!(device = %name, error = %e, "listing addresses at close"),
        }
        self.connection.abort();
        drop(self.io);
    }
}
