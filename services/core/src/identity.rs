//! Device identity: which reports describe a device at all, and the one stable key per
//! device that dedup, sketches and storage count.
//!
//! Precedence (documented for users in the README):
//! 1. **MAC.** A device is its NICs: the numerically lowest valid unicast MAC among those
//!    reported. A multi-NIC device, a multi-module backplane or a many-port switch reported
//!    with all its MACs is one device, whichever sensor and spelling reported it.
//! 2. **IP within zone.** Without a usable MAC (a device seen only at layer 3), the lowest
//!    private IP within the reporting zone: sensors in the same zone seeing the same
//!    address see one device.
//! 3. **Sensor-assigned id.** Without MAC or private IP, the sensor's own device id, scoped
//!    to that sensor (it is not unique across sensors).
//!
//! Never devices (DESIGN §3): public internet addresses, multicast and broadcast groups
//! (MAC or IP). A report whose only identifiers are of that kind is *excluded*, counted by
//! reason, not dead-lettered: it is valid data about something that is not a device.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use xxhash_rust::xxh3::xxh3_64;

/// A MAC address as its 48-bit value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac(pub u64);

/// Value of an ASCII hex digit, 0xff for any other byte.
const HEX_DIGIT: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

impl Mac {
    /// Parses the common spellings: `aa:bb:cc:dd:ee:ff`, `AA-BB-CC-DD-EE-FF`,
    /// `aabb.ccdd.eeff` and bare `aabbccddeeff`, any case.
    pub fn parse(s: &str) -> Option<Mac> {
        // Digits at fixed positions per spelling, looked up without branching on each
        // character (the per-character match mispredicted on mixed letters and digits).
        const COLON_OR_DASH: [usize; 12] = [0, 1, 3, 4, 6, 7, 9, 10, 12, 13, 15, 16];
        const BARE: [usize; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
        const DOTTED: [usize; 12] = [0, 1, 2, 3, 5, 6, 7, 8, 10, 11, 12, 13];
        let b = s.as_bytes();
        let digits = match b.len() {
            12 => &BARE,
            17 if [2, 5, 8, 11, 14].iter().all(|&i| b[i] == b':')
                || [2, 5, 8, 11, 14].iter().all(|&i| b[i] == b'-') =>
            {
                &COLON_OR_DASH
            }
            14 if b[4] == b'.' && b[9] == b'.' => &DOTTED,
            _ => return None,
        };
        let mut v = 0u64;
        let mut invalid = 0u8;
        for &i in digits {
            let d = HEX_DIGIT[b[i] as usize];
            invalid |= d;
            v = (v << 4) | u64::from(d & 0x0f);
        }
        (invalid & 0xf0 == 0).then_some(Mac(v))
    }

    pub fn is_broadcast(self) -> bool {
        self.0 == 0xffff_ffff_ffff
    }

    /// Group bit (I/G) of the first octet: multicast groups are not devices.
    pub fn is_multicast(self) -> bool {
        (self.0 >> 40) & 1 == 1
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl std::fmt::Display for Mac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = self.0.to_be_bytes();
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[2], b[3], b[4], b[5], b[6], b[7]
        )
    }
}

/// Why an identifier or a whole report is not a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotADevice {
    PublicIp,
    Multicast,
    Broadcast,
}

impl NotADevice {
    pub fn reason(self) -> &'static str {
        match self {
            NotADevice::PublicIp => "public_ip",
            NotADevice::Multicast => "multicast",
            NotADevice::Broadcast => "broadcast",
        }
    }
}

/// Classifies an IP address as a possible device address or says why it is not one.
pub fn classify_ip(ip: IpAddr) -> Result<IpAddr, NotADevice> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4).map(IpAddr::V4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => classify_v4(v4).map(IpAddr::V4),
            None => classify_v6(v6).map(IpAddr::V6),
        },
    }
}

fn classify_v4(ip: Ipv4Addr) -> Result<Ipv4Addr, NotADevice> {
    let o = ip.octets();
    if ip.is_broadcast() || ip.is_unspecified() {
        return Err(NotADevice::Broadcast);
    }
    if ip.is_multicast() {
        return Err(NotADevice::Multicast);
    }
    let shared = o[0] == 100 && (o[1] & 0xc0) == 64; // 100.64.0.0/10 carrier-grade NAT
    if ip.is_private() || ip.is_link_local() || shared {
        Ok(ip)
    } else {
        Err(NotADevice::PublicIp)
    }
}

fn classify_v6(ip: Ipv6Addr) -> Result<Ipv6Addr, NotADevice> {
    let seg0 = ip.segments()[0];
    if ip.is_multicast() {
        return Err(NotADevice::Multicast);
    }
    if ip.is_unspecified() {
        return Err(NotADevice::Broadcast);
    }
    let unique_local = (seg0 & 0xfe00) == 0xfc00;
    let link_local = (seg0 & 0xffc0) == 0xfe80;
    if unique_local || link_local {
        Ok(ip)
    } else {
        Err(NotADevice::PublicIp)
    }
}

/// Which identifier a device key was derived from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityBasis {
    Mac(Mac),
    Ip(IpAddr),
    SensorId,
}

/// The device a report describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceKey {
    pub key: u64,
    pub basis: IdentityBasis,
}

/// Outcome of identifying a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identified {
    Device(DeviceKey),
    /// Valid report about something that is not a device.
    NotADevice(NotADevice),
}

/// A report the identity rules cannot accept (malformed identifier or none at all).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("invalid MAC address {0:?}")]
    InvalidMac(String),
    #[error("invalid IP address {0:?}")]
    InvalidIp(String),
    #[error("report has no MAC, IP or device id")]
    NoIdentifier,
}

const TAG_MAC: u8 = 1;
const TAG_IP: u8 = 2;
const TAG_SENSOR: u8 = 3;

/// Derives the device key of one report (see the module docs for the precedence).
pub fn identify<'s>(
    macs: impl IntoIterator<Item = &'s str>,
    ips: impl IntoIterator<Item = &'s str>,
    zone: Option<&str>,
    sensor: &str,
    device_id: Option<&str>,
) -> Result<Identified, IdentityError> {
    let mut excluded: Option<NotADevice> = None;
    let mut best_mac: Option<Mac> = None;
    for raw in macs {
        let mac = Mac::parse(raw.trim()).ok_or_else(|| IdentityError::InvalidMac(raw.into()))?;
        if mac.is_broadcast() {
            excluded.get_or_insert(NotADevice::Broadcast);
        } else if mac.is_multicast() {
            excluded.get_or_insert(NotADevice::Multicast);
        } else if !mac.is_zero() && best_mac.is_none_or(|b| mac < b) {
            best_mac = Some(mac);
        }
    }
    if let Some(mac) = best_mac {
        let mut buf = [0u8; 9];
        buf[0] = TAG_MAC;
        buf[1..].copy_from_slice(&mac.0.to_le_bytes());
        return Ok(Identified::Device(DeviceKey {
            key: xxh3_64(&buf),
            basis: IdentityBasis::Mac(mac),
        }));
    }
    let mut best_ip: Option<IpAddr> = None;
    for raw in ips {
        let ip: IpAddr = raw
            .trim()
            .parse()
            .map_err(|_| IdentityError::InvalidIp(raw.into()))?;
        match classify_ip(ip) {
            Ok(ip) if best_ip.is_none_or(|b| ip < b) => best_ip = Some(ip),
            Ok(_) => {}
            Err(why) => {
                excluded.get_or_insert(why);
            }
        }
    }
    if let Some(ip) = best_ip {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(&[TAG_IP]);
        h.update(zone.unwrap_or("").as_bytes());
        h.update(&[0xff]);
        match ip {
            IpAddr::V4(v4) => h.update(&v4.octets()),
            IpAddr::V6(v6) => h.update(&v6.octets()),
        }
        return Ok(Identified::Device(DeviceKey {
            key: h.digest(),
            basis: IdentityBasis::Ip(ip),
        }));
    }
    if let Some(id) = device_id.filter(|d| !d.trim().is_empty()) {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(&[TAG_SENSOR]);
        h.update(sensor.as_bytes());
        h.update(&[0xff]);
        h.update(id.trim().as_bytes());
        return Ok(Identified::Device(DeviceKey {
            key: h.digest(),
            basis: IdentityBasis::SensorId,
        }));
    }
    match excluded {
        Some(why) => Ok(Identified::NotADevice(why)),
        None => Err(IdentityError::NoIdentifier),
    }
}

/// Human-readable label of a device key for the sightings table.
pub fn label(
    basis: IdentityBasis,
    zone: Option<&str>,
    sensor: &str,
    device_id: Option<&str>,
) -> String {
    match basis {
        IdentityBasis::Mac(m) => format!("mac:{m}"),
        IdentityBasis::Ip(ip) => format!("ip:{}/{ip}", zone.unwrap_or("")),
        IdentityBasis::SensorId => format!("sensor:{sensor}/{}", device_id.unwrap_or("").trim()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reference_parse(s: &str) -> Option<Mac> {
        let b = s.as_bytes();
        let sep_ok = match b.len() {
            12 => true,
            17 => {
                [2, 5, 8, 11, 14].iter().all(|&i| b[i] == b':')
                    || [2, 5, 8, 11, 14].iter().all(|&i| b[i] == b'-')
            }
            14 => b[4] == b'.' && b[9] == b'.',
            _ => false,
        };
        if !sep_ok {
            return None;
        }
        let mut v = 0u64;
        let mut digits = 0;
        for &c in b {
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' => c - b'A' + 10,
                b':' | b'-' | b'.' => continue,
                _ => return None,
            };
            v = (v << 4) | d as u64;
            digits += 1;
        }
        (digits == 12).then_some(Mac(v))
    }

    fn key(
        macs: &[&str],
        ips: &[&str],
        zone: Option<&str>,
        sensor: &str,
        id: Option<&str>,
    ) -> Identified {
        identify(macs.iter().copied(), ips.iter().copied(), zone, sensor, id).unwrap()
    }

    #[test]
    fn mac_spellings_are_one_device() {
        let spellings = [
            "00:1a:2b:3c:4d:5e",
            "00-1A-2B-3C-4D-5E",
            "001a.2b3c.4d5e",
            "001A2B3C4D5E",
        ];
        let keys: Vec<_> = spellings
            .iter()
            .map(|m| key(&[m], &[], None, "s1", None))
            .collect();
        assert!(keys.windows(2).all(|w| w[0] == w[1]));
        assert_eq!(
            Mac::parse("001a.2b3c.4d5e").unwrap().to_string(),
            "00:1a:2b:3c:4d:5e"
        );
        for bad in [
            "00:1a:2b:3c:4d",
            "00:1a:2b:3c:4d:5g",
            "001a-2b3c-4d5e",
            "00:1a-2b:3c:4d:5e",
            "",
        ] {
            assert!(Mac::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn multi_nic_device_is_one_device_whatever_the_order_or_sensor() {
        let a = key(
            &["00:00:00:00:00:02", "00:00:00:00:00:01"],
            &["10.0.0.1"],
            Some("z1"),
            "s1",
            Some("x"),
        );
        let b = key(
            &["00-00-00-00-00-01", "00-00-00-00-00-02"],
            &["10.0.0.9"],
            Some("z2"),
            "s2",
            Some("y"),
        );
        assert_eq!(a, b);
    }

    #[test]
    fn ip_only_devices_are_per_zone() {
        let a = key(&[], &["10.1.1.1"], Some("z1"), "s1", None);
        let b = key(&[], &["10.1.1.1"], Some("z1"), "s2", None);
        let c = key(&[], &["10.1.1.1"], Some("z2"), "s1", None);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn sensor_ids_are_scoped_to_their_sensor() {
        assert_ne!(
            key(&[], &[], None, "s1", Some("7")),
            key(&[], &[], None, "s2", Some("7"))
        );
    }

    #[test]
    fn never_devices() {
        assert_eq!(
            key(&[], &["8.8.8.8"], None, "s", None),
            Identified::NotADevice(NotADevice::PublicIp)
        );
        assert_eq!(
            key(&[], &["224.0.0.251"], None, "s", None),
            Identified::NotADevice(NotADevice::Multicast)
        );
        assert_eq!(
            key(&[], &["255.255.255.255"], None, "s", None),
            Identified::NotADevice(NotADevice::Broadcast)
        );
        assert_eq!(
            key(&["ff:ff:ff:ff:ff:ff"], &[], None, "s", None),
            Identified::NotADevice(NotADevice::Broadcast)
        );
        assert_eq!(
            key(&["01:00:5e:00:00:fb"], &[], None, "s", None),
            Identified::NotADevice(NotADevice::Multicast)
        );
        assert_eq!(
            key(&[], &["2001:db8::1"], None, "s", None),
            Identified::NotADevice(NotADevice::PublicIp)
        );
        // A public address next to a private one: the private one is the device.
        assert!(matches!(
            key(&[], &["8.8.8.8", "192.168.1.4"], None, "s", None),
            Identified::Device(_)
        ));
        for private in [
            "10.0.0.1",
            "172.16.5.5",
            "192.168.0.1",
            "169.254.1.1",
            "100.64.0.1",
            "fd00::1",
            "fe80::1",
        ] {
            assert!(
                matches!(key(&[], &[private], None, "s", None), Identified::Device(_)),
                "{private}"
            );
        }
    }

    #[test]
    fn malformed_identifiers_are_errors() {
        assert!(matches!(
            identify(["zz"], [], None, "s", None),
            Err(IdentityError::InvalidMac(_))
        ));
        assert!(matches!(
            identify([], ["10.0.0.300"], None, "s", None),
            Err(IdentityError::InvalidIp(_))
        ));
        assert_eq!(
            identify([], [], None, "s", Some(" ")),
            Err(IdentityError::NoIdentifier)
        );
    }

    proptest! {
        /// Same answers as the straightforward per-character parser it replaced.
        #[test]
        fn mac_parse_matches_the_reference(s in "[0-9a-fA-FgG:.\\- ]{10,18}") {
            prop_assert_eq!(Mac::parse(&s), reference_parse(&s));
        }

        /// ... also for valid spellings with one character changed.
        #[test]
        fn mac_parse_matches_the_reference_near_valid(v in 0u64..(1 << 48), style in 0u8..4, pos in 0usize..18, c in "[0-9a-fA-FgG:.\\- ]") {
            let hex: Vec<String> = v.to_be_bytes()[2..].iter().map(|x| format!("{x:02x}")).collect();
            let mut s = match style {
                0 => hex.join(":"),
                1 => hex.join("-").to_uppercase(),
                2 => hex.concat(),
                _ => format!("{}{}.{}{}.{}{}", hex[0], hex[1], hex[2], hex[3], hex[4], hex[5]),
            };
            prop_assert!(Mac::parse(&s).is_some());
            if pos < s.len() {
                s.replace_range(pos..pos + 1, &c);
            }
            prop_assert_eq!(Mac::parse(&s), reference_parse(&s));
        }

        #[test]
        fn mac_parse_round_trips(v in 0u64..(1 << 48)) {
            let m = Mac(v);
            prop_assert_eq!(Mac::parse(&m.to_string()), Some(m));
            prop_assert_eq!(Mac::parse(&m.to_string().replace(':', "-").to_uppercase()), Some(m));
        }

        #[test]
        fn identify_never_panics(macs in proptest::collection::vec(".{0,20}", 0..3), ips in proptest::collection::vec(".{0,20}", 0..3)) {
            let _ = identify(macs.iter().map(String::as_str), ips.iter().map(String::as_str), None, "s", None);
        }
    }
}
