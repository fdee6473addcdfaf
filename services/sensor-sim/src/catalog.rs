//! The catalogue the world is drawn from: vendors with their OUIs, models, firmware and
//! protocols per device category, and the names of tenants, sites and zones.

use sitetally_core::DeviceCategory;

pub(crate) struct VendorModel {
    pub(crate) vendor: &'static str,
    pub(crate) oui: u32,
    pub(crate) models: &'static [&'static str],
    pub(crate) firmware: &'static [&'static str],
    pub(crate) protocols: &'static [&'static str],
}

const fn vm(
    vendor: &'static str,
    oui: u32,
    models: &'static [&'static str],
    firmware: &'static [&'static str],
    protocols: &'static [&'static str],
) -> VendorModel {
    VendorModel {
        vendor,
        oui,
        models,
        firmware,
        protocols,
    }
}

// OUIs are plausible, unicast, and each appears once (one MAC counter per OUI keeps
// every MAC in the world unique).
const OT_VENDORS: &[VendorModel] = &[
    vm(
        "Siemens",
        0x001B1B,
        &["SIMATIC S7-1500", "SIMATIC ET 200SP", "SCALANCE X208"],
        &["V2.9.4", "V3.0.1"],
        &["S7", "PROFINET"],
    ),
    vm(
        "Rockwell Automation",
        0x0000BC,
        &["ControlLogix 5580", "CompactLogix 5380", "PowerFlex 525"],
        &["33.011", "34.014"],
        &["CIP", "EtherNet/IP"],
    ),
    vm(
        "Schneider Electric",
        0x0080F4,
        &["Modicon M580", "Modicon M340", "PowerLogic PM8000"],
        &["3.20", "4.01"],
        &["Modbus/TCP"],
    ),
    vm(
        "ABB",
        0x000C01,
        &["AC500 PM5630", "Relion REF615"],
        &["2.8.1"],
        &["IEC 61850", "Modbus/TCP"],
    ),
    vm(
        "Honeywell",
        0x0040AB,
        &["Experion C300", "ControlEdge PLC"],
        &["R511.2"],
        &["CDA", "Modbus/TCP"],
    ),
    vm(
        "Mitsubishi Electric",
        0x0026A5,
        &["MELSEC iQ-R", "MELSEC FX5U"],
        &["1.270"],
        &["SLMP"],
    ),
];
const IOT_VENDORS: &[VendorModel] = &[
    vm(
        "Axis Communications",
        0x00408C,
        &["P3245-LVE", "M3106-L Mk II"],
        &["10.12.182"],
        &["RTSP", "ONVIF"],
    ),
    vm(
        "Hikvision",
        0x4419B6,
        &["DS-2CD2143G2-I"],
        &["V5.7.3"],
        &["RTSP"],
    ),
    vm(
        "Philips Lighting",
        0x001788,
        &["Hue Bridge", "Dynalite DDNG485"],
        &["1.59"],
        &["Zigbee"],
    ),
    vm(
        "Zebra Technologies",
        0x00A0F8,
        &["ZT411", "ZD621"],
        &["V92.21"],
        &["ZPL", "SNMP"],
    ),
    vm(
        "GE Healthcare",
        0x00000E,
        &["CARESCAPE B650", "Vivid E95"],
        &["3.2"],
        &["HL7", "DICOM"],
    ),
    vm(
        "Johnson Controls",
        0x0010A7,
        &["Metasys NAE55"],
        &["11.0"],
        &["BACnet/IP"],
    ),
];
const NETWORK_VENDORS: &[VendorModel] = &[
    vm(
        "Cisco",
        0x001AA1,
        &["Catalyst 9300", "IE-4000", "ISR 4331"],
        &["17.9.4"],
        &["SNMP", "CDP"],
    ),
    vm(
        "Hirschmann",
        0x008063,
        &["RSP35", "MACH4000"],
        &["9.1.05"],
        &["SNMP", "LLDP"],
    ),
    vm(
        "Juniper Networks",
        0x000585,
        &["EX4300", "SRX345"],
        &["21.4R3"],
        &["SNMP", "LLDP"],
    ),
    vm(
        "Aruba",
        0x000B86,
        &["AP-515", "CX 6300"],
        &["10.11"],
        &["LLDP"],
    ),
];
const COMPUTER_VENDORS: &[VendorModel] = &[
    vm(
        "Dell",
        0x14FEB5,
        &["OptiPlex 7090", "Latitude 5440", "PowerEdge R650"],
        &["1.18.0"],
        &["SMB", "RDP"],
    ),
    vm(
        "HP",
        0x3CD92B,
        &["EliteBook 840", "Z4 G5"],
        &["01.13"],
        &["SMB"],
    ),
    vm(
        "Apple",
        0xF01898,
        &["iPhone 15", "MacBook Pro", "iPad Air"],
        &["17.4"],
        &["mDNS"],
    ),
    vm(
        "Lenovo",
        0x54EE75,
        &["ThinkPad T14", "ThinkCentre M90q"],
        &["1.41"],
        &["SMB", "RDP"],
    ),
    vm(
        "Samsung",
        0x8425DB,
        &["Galaxy S23", "Galaxy Tab S9"],
        &["14"],
        &["mDNS"],
    ),
];
const UNKNOWN_VENDORS: &[VendorModel] = &[vm("", 0x02A0B0, &[""], &[""], &[])];

/// The vendors devices of `category` come from.
pub(crate) fn vendors(category: DeviceCategory) -> &'static [VendorModel] {
    match category {
        DeviceCategory::Ot => OT_VENDORS,
        DeviceCategory::Iot => IOT_VENDORS,
        DeviceCategory::Network => NETWORK_VENDORS,
        DeviceCategory::ComputersMobile => COMPUTER_VENDORS,
        DeviceCategory::Unknown => UNKNOWN_VENDORS,
    }
}

pub(crate) const TENANTS: &[&str] = &[
    "acme-energy",
    "borealis-pharma",
    "cobalt-water",
    "delta-foods",
    "evergreen-health",
    "fjord-shipping",
    "granite-mining",
    "helios-chemicals",
    "ironbridge-auto",
    "juniper-retail",
];
pub(crate) const OT_SITE_PREFIXES: &[&str] =
    &["plant", "substation", "refinery", "mill", "rig", "depot"];
pub(crate) const IOT_SITE_PREFIXES: &[&str] = &["campus", "hospital", "office", "warehouse"];
pub(crate) const ZONES: &[&str] = &[
    "scada",
    "plc-ring",
    "cell-a",
    "cell-b",
    "hvac",
    "office-lan",
    "dmz",
    "wifi",
    "lab",
    "packaging",
];
