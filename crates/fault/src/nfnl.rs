//! nf_tables spoken over netlink from this process: the start of the path that will replace
//! the `nft` child ([`crate::nft`]) on the injection path. Not wired in yet.
//!
//! [`Socket::open_in`] opens a `NETLINK_NETFILTER` socket inside a network namespace (on a
//! short-lived thread that enters it: a socket keeps the namespace it was made in), so the
//! tables it creates with `NFT_TABLE_F_OWNER` are deleted by the kernel when it closes — when
//! this process dies, however. [`Batch`] encodes a transaction (tables, chains, rules of
//! expressions) that the kernel applies whole or not at all, one ACK per message checked.
//! The encoding follows the kernel's uapi (`linux/netfilter/nf_tables.h`); `nft list` is the
//! test oracle.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt as _;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::Error;

const NETLINK_NETFILTER: i32 = 12;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 16;
const NFNL_MSG_BATCH_END: u16 = 17;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETRULE: u16 = 7;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLA_F_NESTED: u16 = 0x8000;

/// `NFPROTO_INET`: a table for IPv4 and IPv6 both.
pub const FAMILY_INET: u8 = 1;
/// `NFT_TABLE_F_OWNER`: the table goes when its socket closes.
const NFT_TABLE_F_OWNER: u32 = 2;

/// A hook of the inet family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// `NF_INET_LOCAL_IN`: packets to this namespace.
    Input,
    /// `NF_INET_LOCAL_OUT`: packets it sends.
    Output,
}

/// One expression of a rule, as nft would encode it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// `meta load nfproto => reg 1`.
    MetaNfproto,
    /// `meta load l4proto => reg 1`.
    MetaL4proto,
    /// `payload load LEN @ network header + OFFSET => reg 1`.
    Network { offset: u32, len: u32 },
    /// `payload load LEN @ transport header + OFFSET => reg 1`.
    Transport { offset: u32, len: u32 },
    /// `bitwise reg 1 = (reg 1 & MASK) ^ 0`.
    Mask(Vec<u8>),
    /// `cmp eq reg 1 DATA`.
    Equal(Vec<u8>),
    /// `counter`.
    Counter,
    /// `immediate reg 0 drop` / `accept`.
    Verdict(bool),
    /// `numgen reg 1 = random mod N`, then `byteorder reg 1 = hton(reg 1, 4, 4)` (so that the
    /// comparison that follows compares numbers, not little-endian bytes).
    Random(u32),
    /// `cmp lt reg 1 DATA`.
    Less(Vec<u8>),
    /// `reject with tcp reset`.
    RejectTcpReset,
    /// `reject` (inet: ICMP or ICMPv6 port unreachable, as the packet's family needs).
    RejectUnreachable,
}

/// An nf_tables transaction being built.
#[derive(Debug, Default)]
pub struct Batch {
    buf: Vec<u8>,
    seq: u32,
    /// The sequence numbers of the messages that ask for an ACK.
    acked: Vec<u32>,
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn attr(buf: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(payload);
    buf.resize(align4(buf.len()), 0);
}

fn attr_str(buf: &mut Vec<u8>, kind: u16, s: &str) {
    let mut bytes = s.as_bytes().to_vec();
    bytes.push(0);
    attr(buf, kind, &bytes);
}

fn attr_u32(buf: &mut Vec<u8>, kind: u16, v: u32) {
    attr(buf, kind, &v.to_be_bytes());
}

fn nested(buf: &mut Vec<u8>, kind: u16, inner: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    buf.extend_from_slice(&[0, 0]);
    buf.extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    inner(buf);
    let len = (buf.len() - start) as u16;
    buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
}

/// `NFTA_DATA_VALUE` inside `kind`.
fn data(buf: &mut Vec<u8>, kind: u16, value: &[u8]) {
    nested(buf, kind, |b| attr(b, 1, value));
}

impl Expr {
    /// The expression's name in the kernel (`NFTA_EXPR_NAME`).
    fn name(&self) -> &'static str {
        match self {
            Expr::MetaNfproto | Expr::MetaL4proto => "meta",
            Expr::Network { .. } | Expr::Transport { .. } => "payload",
            Expr::Mask(_) => "bitwise",
            Expr::Equal(_) => "cmp",
            Expr::Counter => "counter",
            Expr::Verdict(_) => "immediate",
            Expr::Random(_) => "numgen",
            Expr::Less(_) => "cmp",
            Expr::RejectTcpReset | Expr::RejectUnreachable => "reject",
        }
    }

    /// Its attributes (`NFTA_EXPR_DATA`), all with register 1 where one is used.
    fn body(&self, b: &mut Vec<u8>) {
        match self {
            Expr::MetaNfproto | Expr::MetaL4proto => {
                attr_u32(b, 1, 1); // NFTA_META_DREG: reg 1
                // NFTA_META_KEY: NFT_META_NFPROTO, NFT_META_L4PROTO
                attr_u32(b, 2, if *self == Expr::MetaNfproto { 15 } else { 16 });
            }
            Expr::Network { offset, len } | Expr::Transport { offset, len } => {
                attr_u32(b, 1, 1); // NFTA_PAYLOAD_DREG
                // NFTA_PAYLOAD_BASE: the network or the transport header
                attr_u32(
                    b,
                    2,
                    if matches!(self, Expr::Network { .. }) {
                        1
                    } else {
                        2
                    },
                );
                attr_u32(b, 3, *offset); // NFTA_PAYLOAD_OFFSET
                attr_u32(b, 4, *len); // NFTA_PAYLOAD_LEN
            }
            Expr::Mask(mask) => {
                attr_u32(b, 1, 1); // NFTA_BITWISE_SREG
                attr_u32(b, 2, 1); // NFTA_BITWISE_DREG
                attr_u32(b, 3, mask.len() as u32); // NFTA_BITWISE_LEN
                data(b, 4, mask); // NFTA_BITWISE_MASK
                data(b, 5, &vec![0; mask.len()]); // NFTA_BITWISE_XOR
            }
            Expr::Equal(value) => {
                attr_u32(b, 1, 1); // NFTA_CMP_SREG
                attr_u32(b, 2, 0); // NFTA_CMP_OP: NFT_CMP_EQ
                data(b, 3, value); // NFTA_CMP_DATA
            }
            Expr::Counter => {
                attr(b, 1, &0u64.to_be_bytes()); // NFTA_COUNTER_BYTES
                attr(b, 2, &0u64.to_be_bytes()); // NFTA_COUNTER_PACKETS
            }
            Expr::Verdict(drop) => {
                attr_u32(b, 1, 0); // NFTA_IMMEDIATE_DREG: the verdict register
                let code: u32 = if *drop { 0 } else { 1 }; // NF_DROP, NF_ACCEPT
                // NFTA_IMMEDIATE_DATA { NFTA_DATA_VERDICT { NFTA_VERDICT_CODE } }
                nested(b, 2, |b| nested(b, 2, |b| attr_u32(b, 1, code)));
            }
            Expr::Random(modulus) => {
                attr_u32(b, 1, 1); // NFTA_NG_DREG
                attr_u32(b, 2, *modulus); // NFTA_NG_MODULUS
                attr_u32(b, 3, 1); // NFTA_NG_TYPE: NFT_NG_RANDOM
                attr_u32(b, 4, 0); // NFTA_NG_OFFSET
            }
            Expr::Less(value) => {
                attr_u32(b, 1, 1); // NFTA_CMP_SREG
                attr_u32(b, 2, 2); // NFTA_CMP_OP: NFT_CMP_LT
                data(b, 3, value); // NFTA_CMP_DATA
            }
            Expr::RejectTcpReset => {
                attr_u32(b, 1, 1); // NFTA_REJECT_TYPE: NFT_REJECT_TCP_RST
                attr(b, 2, &[0]); // NFTA_REJECT_ICMP_CODE
            }
            Expr::RejectUnreachable => {
                attr_u32(b, 1, 2); // NFTA_REJECT_TYPE: NFT_REJECT_ICMPX_UNREACH
                attr(b, 2, &[1]); // NFTA_REJECT_ICMP_CODE: NFT_REJECT_ICMPX_PORT_UNREACH
            }
        }
    }

    /// The byte-order conversion [`Expr::Random`] is followed by.
    fn encode_hton(buf: &mut Vec<u8>) {
        nested(buf, 1, |b| {
            attr_str(b, 1, "byteorder");
            nested(b, 2, |b| {
                attr_u32(b, 1, 1); // NFTA_BYTEORDER_SREG
                attr_u32(b, 2, 1); // NFTA_BYTEORDER_DREG
                attr_u32(b, 3, 1); // NFTA_BYTEORDER_OP: NFT_BYTEORDER_HTON
                attr_u32(b, 4, 4); // NFTA_BYTEORDER_LEN
                attr_u32(b, 5, 4); // NFTA_BYTEORDER_SIZE
            });
        });
    }

    fn encode(&self, buf: &mut Vec<u8>) {
        // NFTA_LIST_ELEM { NFTA_EXPR_NAME, NFTA_EXPR_DATA { … } }
        nested(buf, 1, |b| {
            attr_str(b, 1, self.name());
            nested(b, 2, |b| self.body(b));
        });
        if matches!(self, Expr::Random(_)) {
            Self::encode_hton(buf);
        }
    }
}

impl Batch {
    /// An empty transaction.
    pub fn new() -> Self {
        let mut batch = Self::default();
        batch.header(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 0, |_| {});
        batch
    }

    /// A message: its header, the `nfgenmsg`, then `attrs`.
    fn header(&mut self, kind: u16, flags: u16, family: u8, attrs: impl FnOnce(&mut Vec<u8>)) {
        self.seq += 1;
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]); // length, set below
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&self.seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
        // nfgenmsg: family, version 0, resource id (the subsystem, for batches) big-endian.
        let res_id = if kind == NFNL_MSG_BATCH_BEGIN || kind == NFNL_MSG_BATCH_END {
            NFNL_SUBSYS_NFTABLES
        } else {
            0
        };
        self.buf.push(family);
        self.buf.push(0);
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        attrs(&mut self.buf);
        let len = (self.buf.len() - start) as u32;
        self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
        if flags & NLM_F_ACK != 0 {
            self.acked.push(self.seq);
        }
    }

    fn message(&mut self, msg: u16, extra: u16, attrs: impl FnOnce(&mut Vec<u8>)) {
        let kind = (NFNL_SUBSYS_NFTABLES << 8) | msg;
        self.header(kind, NLM_F_REQUEST | NLM_F_ACK | extra, FAMILY_INET, attrs);
    }

    /// `add table inet NAME { flags owner; }`: refused if it exists.
    pub fn table(&mut self, name: &str) -> &mut Self {
        self.message(NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_EXCL, |b| {
            attr_str(b, 1, name); // NFTA_TABLE_NAME
            attr_u32(b, 2, NFT_TABLE_F_OWNER); // NFTA_TABLE_FLAGS
        });
        self
    }

    /// `delete table inet NAME`.
    pub fn delete_table(&mut self, name: &str) -> &mut Self {
        self.message(NFT_MSG_DELTABLE, 0, |b| attr_str(b, 1, name));
        self
    }

    /// `add chain inet TABLE NAME { type filter hook HOOK priority PRIORITY; policy accept; }`.
    pub fn chain(&mut self, table: &str, name: &str, hook: Hook, priority: i32) -> &mut Self {
        self.message(NFT_MSG_NEWCHAIN, NLM_F_CREATE | NLM_F_EXCL, |b| {
            attr_str(b, 1, table); // NFTA_CHAIN_TABLE
            attr_str(b, 3, name); // NFTA_CHAIN_NAME
            nested(b, 4, |b| {
                // NFTA_CHAIN_HOOK { NFTA_HOOK_HOOKNUM, NFTA_HOOK_PRIORITY }
                attr_u32(b, 1, if hook == Hook::Input { 1 } else { 3 });
                attr_u32(b, 2, priority as u32);
            });
            attr_u32(b, 5, 1); // NFTA_CHAIN_POLICY: NF_ACCEPT
            attr_str(b, 7, "filter"); // NFTA_CHAIN_TYPE
        });
        self
    }

    /// `add rule inet TABLE CHAIN EXPRS…`.
    pub fn rule(&mut self, table: &str, chain: &str, exprs: &[Expr]) -> &mut Self {
        self.message(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, |b| {
            attr_str(b, 1, table); // NFTA_RULE_TABLE
            attr_str(b, 2, chain); // NFTA_RULE_CHAIN
            nested(b, 4, |b| {
                for e in exprs {
                    e.encode(b);
                }
            });
        });
        self
    }

    /// The bytes to send: the messages, closed by the end of the batch.
    fn finish(mut self) -> (Vec<u8>, Vec<u32>) {
        self.header(NFNL_MSG_BATCH_END, NLM_F_REQUEST, 0, |_| {});
        (self.buf, self.acked)
    }
}

/// The expressions of `ip daddr NET/PREFIX` (or `saddr` with `source`).
pub fn ipv4_peer(addr: std::net::Ipv4Addr, prefix: u8, source: bool) -> Vec<Expr> {
    let mut exprs = vec![
        Expr::MetaNfproto,
        Expr::Equal(vec![2]), // NFPROTO_IPV4
        Expr::Network {
            offset: if source { 12 } else { 16 },
            len: 4,
        },
    ];
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    if prefix < 32 {
        exprs.push(Expr::Mask(mask.to_be_bytes().to_vec()));
    }
    exprs.push(Expr::Equal((u32::from(addr) & mask).to_be_bytes().to_vec()));
    exprs
}

/// The expressions of `ip6 daddr NET/PREFIX` (or `saddr` with `source`).
pub fn ipv6_peer(addr: std::net::Ipv6Addr, prefix: u8, source: bool) -> Vec<Expr> {
    let mut exprs = vec![
        Expr::MetaNfproto,
        Expr::Equal(vec![10]), // NFPROTO_IPV6
        Expr::Network {
            offset: if source { 8 } else { 24 },
            len: 16,
        },
    ];
    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
    if prefix < 128 {
        exprs.push(Expr::Mask(mask.to_be_bytes().to_vec()));
    }
    exprs.push(Expr::Equal(
        (u128::from(addr) & mask).to_be_bytes().to_vec(),
    ));
    exprs
}

/// A netlink socket in one network namespace.
#[derive(Debug)]
pub struct Socket {
    fd: OwnedFd,
}

fn last() -> io::Error {
    io::Error::last_os_error()
}

impl Socket {
    /// A `NETLINK_NETFILTER` socket in the namespace `netns` (a `/proc/PID/ns/net` or
    /// `/run/netns/NAME` file), made on a thread that entered it and then ends.
    pub fn open_in(netns: &File) -> Result<Self, Error> {
        let ns = netns.as_raw_fd();
        let made = std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: setns and socket on this thread only, which ends right after; the
                // descriptor returned is owned by the caller.
                unsafe {
                    if libc::setns(ns, libc::CLONE_NEWNET) != 0 {
                        return Err(last());
                    }
                    let fd = libc::socket(
                        libc::AF_NETLINK,
                        libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                        NETLINK_NETFILTER,
                    );
                    if fd < 0 {
                        return Err(last());
                    }
                    Ok(OwnedFd::from_raw_fd(fd))
                }
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the netlink thread panicked")))
        });
        let fd = made.map_err(|e| Error::io("open a netfilter netlink socket".into(), e))?;
        Ok(Self { fd })
    }

    fn send(&self, bytes: &[u8]) -> Result<(), Error> {
        // SAFETY: a send of our own buffer on our own socket (to the kernel: no address).
        let n = unsafe { libc::send(self.fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), 0) };
        if n < 0 || n as usize != bytes.len() {
            return Err(Error::io("send to nf_tables".into(), last()));
        }
        Ok(())
    }

    fn recv(&self, buf: &mut [u8]) -> Result<usize, Error> {
        // SAFETY: a receive into our own buffer.
        let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(Error::io("receive from nf_tables".into(), last()));
        }
        Ok(n as usize)
    }

    /// Sends `batch` and waits for every ACK: the whole transaction applied, or the kernel's
    /// error for the first message it refused (and then nothing of it applied).
    pub fn apply(&self, batch: Batch) -> Result<(), Error> {
        let (bytes, mut waiting) = batch.finish();
        self.send(&bytes)?;
        let mut buf = vec![0u8; 1 << 16];
        let mut refused = None;
        while !waiting.is_empty() {
            let n = self.recv(&mut buf)?;
            for (kind, seq, payload) in messages(&buf[..n]) {
                if kind != NLMSG_ERROR {
                    continue;
                }
                waiting.retain(|s| *s != seq);
                let code = errno(payload);
                if code != 0 && refused.is_none() {
                    refused = Some(io::Error::from_raw_os_error(-code));
                }
            }
            // An error aborts the batch: the kernel answers the messages up to it only.
            if refused.is_some() {
                break;
            }
        }
        match refused {
            Some(e) => Err(Error::io("nf_tables refused the batch".into(), e)),
            None => Ok(()),
        }
    }

    /// Whether table `inet NAME` exists in the socket's namespace.
    pub fn table_exists(&self, name: &str) -> Result<bool, Error> {
        let mut batch = Batch::default();
        batch.header(
            (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE,
            NLM_F_REQUEST | NLM_F_ACK,
            FAMILY_INET,
            |b| attr_str(b, 1, name),
        );
        self.send(&batch.buf)?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = self.recv(&mut buf)?;
            for (kind, _, payload) in messages(&buf[..n]) {
                if kind == NLMSG_ERROR {
                    return match -errno(payload) {
                        0 => Ok(true),
                        libc::ENOENT => Ok(false),
                        e => Err(Error::io(
                            format!("look for table inet {name}"),
                            io::Error::from_raw_os_error(e),
                        )),
                    };
                }
                // The table itself; its ACK follows.
            }
        }
    }

    /// The packets counted by every `counter` of the rules of `table`.
    pub fn packets(&self, table: &str) -> Result<u64, Error> {
        let mut batch = Batch::default();
        batch.header(
            (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETRULE,
            NLM_F_REQUEST | NLM_F_DUMP,
            FAMILY_INET,
            |b| attr_str(b, 1, table),
        );
        self.send(&batch.buf)?;
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0u64;
        loop {
            let n = self.recv(&mut buf)?;
            let mut done = false;
            for (kind, _, payload) in messages(&buf[..n]) {
                match kind {
                    NLMSG_DONE => done = true,
                    NLMSG_ERROR => {
                        let code = errno(payload);
                        if code != 0 {
                            return Err(Error::io(
                                format!("list the rules of {table}"),
                                io::Error::from_raw_os_error(-code),
                            ));
                        }
                        done = true;
                    }
                    _ => total += counted(payload.get(4..).unwrap_or_default()),
                }
            }
            if done {
                return Ok(total);
            }
        }
    }
}

/// The error code of an `NLMSG_ERROR` payload: 0 for an ACK, else a negated errno.
fn errno(payload: &[u8]) -> i32 {
    payload
        .get(..4)
        .map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

/// The netlink messages in `buf`: type, sequence number, payload.
fn messages(mut buf: &[u8]) -> Vec<(u16, u32, &[u8])> {
    let mut out = Vec::new();
    while buf.len() >= 16 {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < 16 || len > buf.len() {
            break;
        }
        let kind = u16::from_ne_bytes([buf[4], buf[5]]);
        let seq = u32::from_ne_bytes([buf[8], buf[9], buf[10], buf[11]]);
        out.push((kind, seq, &buf[16..len]));
        buf = &buf[align4(len).min(buf.len())..];
    }
    out
}

/// The attributes of `buf`: type (without the nested flag) and payload.
fn attrs(mut buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while buf.len() >= 4 {
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        let kind = u16::from_ne_bytes([buf[2], buf[3]]) & !NLA_F_NESTED;
        if len < 4 || len > buf.len() {
            break;
        }
        out.push((kind, &buf[4..len]));
        buf = &buf[align4(len).min(buf.len())..];
    }
    out
}

/// Which namespace a file names: its device and inode.
type Key = (u64, u64);

/// A socket shared by the tables of one namespace, kept a while after its last one goes:
/// opening one costs 0.2 ms, closing one that spoke nf_tables 8 to 24 ms here (the kernel
/// waits for readers), and a close on the way would hold up the next fault's commit.
#[derive(Debug)]
struct Pooled {
    socket: Arc<Mutex<Socket>>,
    tables: usize,
    idle_since: Option<Instant>,
}

static POOL: LazyLock<Mutex<HashMap<Key, Pooled>>> = LazyLock::new(Mutex::default);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn key_of(netns: &File) -> Result<Key, Error> {
    let meta = netns
        .metadata()
        .map_err(|e| Error::io("stat the network namespace".into(), e))?;
    Ok((meta.dev(), meta.ino()))
}

/// The namespace's socket, opened if there is none; counted as used by one more table.
fn acquire(netns: &File) -> Result<(Key, Arc<Mutex<Socket>>), Error> {
    let key = key_of(netns)?;
    let mut pool = lock(&POOL);
    if let Some(p) = pool.get_mut(&key) {
        p.tables += 1;
        p.idle_since = None;
        return Ok((key, p.socket.clone()));
    }
    let socket = Arc::new(Mutex::new(Socket::open_in(netns)?));
    pool.insert(
        key,
        Pooled {
            socket: socket.clone(),
            tables: 1,
            idle_since: None,
        },
    );
    Ok((key, socket))
}

/// One table fewer on the namespace's socket; the last one leaves it to the janitor, which
/// closes it after the linger (`FAULTLINE_NFT_LINGER_MS`, 2 s), on its own thread.
fn release(key: Key) {
    let linger = crate::nft::linger();
    let mut pool = lock(&POOL);
    let Some(p) = pool.get_mut(&key) else { return };
    p.tables = p.tables.saturating_sub(1);
    if p.tables > 0 {
        return;
    }
    if linger.is_zero() {
        if let Some(p) = pool.remove(&key) {
            std::thread::spawn(move || drop(p));
        }
        return;
    }
    p.idle_since = Some(Instant::now());
    static JANITOR: std::sync::Once = std::sync::Once::new();
    JANITOR.call_once(|| {
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(200));
                let idle: Vec<Pooled> = {
                    let mut pool = lock(&POOL);
                    let gone: Vec<Key> = pool
                        .iter()
                        .filter(|(_, p)| p.idle_since.is_some_and(|t| t.elapsed() >= linger))
                        .map(|(k, _)| *k)
                        .collect();
                    gone.iter().filter_map(|k| pool.remove(k)).collect()
                };
                drop(idle);
            }
        });
    });
}

/// A fault's table made over netlink and owned by its namespace's socket: deleted by
/// [`OwnedTable::remove`], or by the kernel when this process dies.
#[derive(Debug)]
pub struct OwnedTable {
    socket: Arc<Mutex<Socket>>,
    key: Key,
    name: String,
    netns: std::path::PathBuf,
    removed: bool,
}

impl OwnedTable {
    /// Creates table `inet NAME` with `fault`'s chains and rules in `netns`, in one
    /// transaction (all or nothing), then looks it up on the same socket.
    pub fn create(
        netns: &std::path::Path,
        name: &str,
        fault: &crate::net::NetFault,
    ) -> Result<Self, Error> {
        let file =
            File::open(netns).map_err(|e| Error::io(format!("open {}", netns.display()), e))?;
        let (key, socket) = acquire(&file)?;
        let mut batch = Batch::new();
        batch.table(name);
        for (chain, hook, rules) in fault.netlink_chains() {
            batch.chain(name, chain, hook, -10);
            for rule in rules {
                batch.rule(name, chain, &rule);
            }
        }
        let made = {
            let s = lock(&socket);
            s.apply(batch).and_then(|()| s.table_exists(name))
        };
        match made {
            Ok(true) => Ok(Self {
                socket,
                key,
                name: name.to_owned(),
                netns: netns.to_owned(),
                removed: false,
            }),
            Ok(false) => {
                release(key);
                Err(Error::Nft(format!(
                    "table inet {name} was not found after its creation"
                )))
            }
            Err(e) => {
                release(key);
                Err(e)
            }
        }
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Packets counted by its rules so far.
    pub fn packets(&self) -> Result<u64, Error> {
        lock(&self.socket).packets(&self.name)
    }

    /// Deletes the table and checks it is gone. Returns the packets its rules matched, read
    /// just before (`None` if they could not be); an error names the residue.
    pub fn remove(mut self) -> Result<Option<u64>, Error> {
        self.removed = true;
        let (packets, deleted, gone) = {
            let s = lock(&self.socket);
            let packets = s.packets(&self.name).ok();
            let mut batch = Batch::new();
            batch.delete_table(&self.name);
            let deleted = s.apply(batch);
            let gone = s.table_exists(&self.name).map(|exists| !exists);
            (packets, deleted, gone)
        };
        release(self.key);
        match gone {
            Ok(true) => Ok(packets),
            Ok(false) => Err(Error::Residue(format!(
                "table inet {} is still in {} after its delete ({})",
                self.name,
                self.netns.display(),
                deleted
                    .err()
                    .map_or_else(|| "the kernel acknowledged it".into(), |e| e.to_string())
            ))),
            Err(e) => Err(e),
        }
    }
}

impl Drop for OwnedTable {
    fn drop(&mut self) {
        if !self.removed {
            // Dropped without a revert (an error path): delete it, best effort.
            let mut batch = Batch::new();
            batch.delete_table(&self.name);
            let _ = lock(&self.socket).apply(batch);
            release(self.key);
        }
    }
}

/// The packets of the counters in one rule message's attributes.
fn counted(rule: &[u8]) -> u64 {
    let mut total = 0;
    for (kind, exprs) in attrs(rule) {
        if kind != 4 {
            continue; // NFTA_RULE_EXPRESSIONS
        }
        for (_, elem) in attrs(exprs) {
            let fields = attrs(elem);
            let is_counter = fields
                .iter()
                .any(|(k, v)| *k == 1 && v.starts_with(b"counter\0"));
            if !is_counter {
                continue;
            }
            for (k, body) in fields {
                if k != 2 {
                    continue;
                }
                for (ck, v) in attrs(body) {
                    if ck == 2 && v.len() == 8 {
                        let mut b = [0u8; 8];
                        b.copy_from_slice(v);
                        total += u64::from_be_bytes(b);
                    }
                }
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    /// A network namespace for one test, deleted on drop.
    struct Netns(String);

    impl Netns {
        fn new(tag: &str) -> Self {
            let name = format!("flnl{}{tag}", std::process::id());
            let ok = Command::new("ip")
                .args(["netns", "add", &name])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "ip netns add {name}");
            Self(name)
        }

        fn file(&self) -> File {
            File::open(format!("/run/netns/{}", self.0)).unwrap()
        }

        fn nft(&self, args: &[&str]) -> String {
            let out = Command::new("ip")
                .args(["netns", "exec", &self.0, "nft"])
                .args(args)
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    }

    impl Drop for Netns {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }

    #[test]
    fn an_owned_table_made_over_netlink_reads_as_nft_would_write_it_and_goes_with_its_socket() {
        let ns = Netns::new("own");
        let socket = Socket::open_in(&ns.file()).unwrap();
        let mut batch = Batch::new();
        batch
            .table("faultline_nl")
            .chain("faultline_nl", "to_peers", Hook::Output, -10)
            .rule("faultline_nl", "to_peers", &{
                let mut e = ipv4_peer("10.9.0.0".parse().unwrap(), 24, false);
                e.extend([Expr::Counter, Expr::Verdict(true)]);
                e
            });
        socket.apply(batch).unwrap();
        let listing = ns.nft(&["list", "table", "inet", "faultline_nl"]);
        assert!(listing.contains("flags owner"), "{listing}");
        assert!(
            listing.contains("type filter hook output priority filter - 10; policy accept;"),
            "{listing}"
        );
        assert!(
            listing.contains("ip daddr 10.9.0.0/24 counter packets 0 bytes 0 drop"),
            "{listing}"
        );
        // Traffic to the peers is counted and dropped (two UDP datagrams sent from inside the
        // namespace to an address of its own, by bash's /dev/udp).
        let in_ns = |command: &str| {
            Command::new("ip")
                .args(["netns", "exec", &ns.0, "bash", "-c", command])
                .output()
                .unwrap()
        };
        in_ns("ip link set lo up && ip addr add 10.9.0.1/24 dev lo");
        for _ in 0..2 {
            let sent = in_ns("echo x > /dev/udp/10.9.0.1/9");
            assert!(!sent.status.success(), "the datagram was not dropped");
        }
        let listing = ns.nft(&["list", "table", "inet", "faultline_nl"]);
        assert!(listing.contains("counter packets 2 "), "{listing}");
        assert_eq!(socket.packets("faultline_nl").unwrap(), 2, "{listing}");
        // A second table of the same name: refused, nothing half-applied.
        let mut again = Batch::new();
        again.table("faultline_nl");
        let e = socket.apply(again).unwrap_err().to_string();
        assert!(e.contains("File exists"), "{e}");
        drop(socket);
        let listing = ns.nft(&["list", "tables"]);
        assert!(!listing.contains("faultline_nl"), "{listing}");
    }
}
