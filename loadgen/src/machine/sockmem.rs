//! Kernel memory held by TCP sockets, machine-wide: the third share of a connection's memory, beside
//! the server's RSS and the load generator's.
//!
//! Two sources, read together ([`KernelSockets::read`]):
//! - the socket slabs in `/proc/slabinfo` (`TCP`, `TCPv6`: one `tcp_sock` per socket; `sock_inode_cache`:
//!   its inode), objects in use × object size — what an idle connection costs;
//! - `/proc/net/sockstat`'s TCP `mem`: pages of socket buffers, which idle sockets do not hold and busy
//!   ones do.
//!
//! On loopback both ends of a connection are sockets of this kernel, so the growth per connection
//! counts **both ends** (the server's and the client's). Other processes' sockets move these figures
//! too: read them on a quiet machine. `/proc/slabinfo` is readable by root only; elsewhere the figure is
//! absent, never guessed.

/// Slab caches of TCP sockets (one object per socket each).
const SOCKET_SLABS: [&str; 3] = ["TCP", "TCPv6", "sock_inode_cache"];
/// Size of a page in `/proc/net/sockstat`'s `mem`.
const PAGE: u64 = 4096;

/// One reading of the kernel's socket memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KernelSockets {
    /// Bytes of socket objects in use in [`SOCKET_SLABS`].
    pub slab_bytes: u64,
    /// Bytes of TCP socket buffers.
    pub buffer_bytes: u64,
}

impl KernelSockets {
    /// Reads both sources; `None` when either is unreadable.
    pub(crate) fn read() -> Option<Self> {
        let slabinfo = std::fs::read_to_string("/proc/slabinfo").ok()?;
        let sockstat = std::fs::read_to_string("/proc/net/sockstat").ok()?;
        Some(Self {
            slab_bytes: slab_bytes(&slabinfo)?,
            buffer_bytes: tcp_mem_pages(&sockstat)? * PAGE,
        })
    }

    /// Slabs and buffers.
    pub(crate) fn total(&self) -> u64 {
        self.slab_bytes + self.buffer_bytes
    }
}

/// Sum of `active_objs × objsize` over [`SOCKET_SLABS`] in a `/proc/slabinfo` text.
fn slab_bytes(slabinfo: &str) -> Option<u64> {
    let mut total = 0;
    let mut seen = false;
    for line in slabinfo.lines() {
        let mut fields = line.split_whitespace();
        let Some(name) = fields.next() else { continue };
        if !SOCKET_SLABS.contains(&name) {
            continue;
        }
        let active: u64 = fields.next()?.parse().ok()?;
        let _allocated = fields.next()?;
        let size: u64 = fields.next()?.parse().ok()?;
        total += active * size;
        seen = true;
    }
    seen.then_some(total)
}

/// The TCP line's `mem` field of a `/proc/net/sockstat` text, in pages.
fn tcp_mem_pages(sockstat: &str) -> Option<u64> {
    let line = sockstat.lines().find(|l| l.starts_with("TCP:"))?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    let at = fields.iter().position(|&f| f == "mem")?;
    fields.get(at + 1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLABINFO: &str = "slabinfo - version: 2.1
# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>
TCPv6                 26     26   2496   13    8 : tunables    0    0    0 : slabdata      2      2      0
request_sock_TCP     192    192    320   12    1 : tunables    0    0    0 : slabdata     16     16      0
TCP                 2059   2093   2368   13    8 : tunables    0    0    0 : slabdata    161    161      0
sock_inode_cache    2118   2166    832   19    4 : tunables    0    0    0 : slabdata    114    114      0
";
    const SOCKSTAT: &str = "sockets: used 2018
TCP: inuse 2002 orphan 0 tw 2467 alloc 2002 mem 308
UDP: inuse 0 mem 0
";

    #[test]
    fn socket_slabs_and_buffers_are_read_from_their_files() {
        assert_eq!(
            slab_bytes(SLABINFO),
            Some(26 * 2496 + 2059 * 2368 + 2118 * 832)
        );
        assert_eq!(tcp_mem_pages(SOCKSTAT), Some(308));
        assert_eq!(slab_bytes("slabinfo - version: 2.1\n"), None);
        assert_eq!(tcp_mem_pages("UDP: inuse 0 mem 0\n"), None);
    }
}
