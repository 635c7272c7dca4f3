use core::fmt;

/// Device type (medium), the last byte of the A-field (EN 13757-7:2018 Table 3; EN 13757-3).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct DeviceType(pub u8);

#[allow(missing_docs)]
impl DeviceType {
    pub const OTHER: Self = Self(0x00);
    pub const OIL: Self = Self(0x01);
    pub const ELECTRICITY: Self = Self(0x02);
    pub const GAS: Self = Self(0x03);
    pub const HEAT_OUTLET: Self = Self(0x04);
    pub const STEAM: Self = Self(0x05);
    pub const WARM_WATER: Self = Self(0x06);
    pub const WATER: Self = Self(0x07);
    pub const HEAT_COST_ALLOCATOR: Self = Self(0x08);
    pub const COMPRESSED_AIR: Self = Self(0x09);
    pub const COOLING_OUTLET: Self = Self(0x0A);
    pub const COOLING_INLET: Self = Self(0x0B);
    pub const HEAT_INLET: Self = Self(0x0C);
    pub const HEAT_AND_COOLING: Self = Self(0x0D);
    pub const BUS_SYSTEM_COMPONENT: Self = Self(0x0E);
    pub const UNKNOWN_MEDIUM: Self = Self(0x0F);
    pub const CALORIFIC_VALUE: Self = Self(0x14);
    pub const HOT_WATER: Self = Self(0x15);
    pub const COLD_WATER: Self = Self(0x16);
    pub const DUAL_REGISTER_WATER: Self = Self(0x17);
    pub const PRESSURE: Self = Self(0x18);
    pub const AD_CONVERTER: Self = Self(0x19);
    pub const SMOKE_DETECTOR: Self = Self(0x1A);
    pub const ROOM_SENSOR: Self = Self(0x1B);
    pub const GAS_DETECTOR: Self = Self(0x1C);
    pub const BREAKER: Self = Self(0x20);
    pub const VALVE: Self = Self(0x21);
    pub const CUSTOMER_UNIT: Self = Self(0x25);
    pub const WASTE_WATER: Self = Self(0x28);
    pub const GARBAGE: Self = Self(0x29);
    pub const CARBON_DIOXIDE: Self = Self(0x2A);
    pub const COMMUNICATION_CONTROLLER: Self = Self(0x31);
    pub const UNIDIRECTIONAL_REPEATER: Self = Self(0x32);
    pub const BIDIRECTIONAL_REPEATER: Self = Self(0x33);
    pub const RADIO_CONVERTER_SYSTEM: Self = Self(0x36);
    pub const RADIO_CONVERTER_METER: Self = Self(0x37);
    pub const WILDCARD: Self = Self(0xFF);
}

impl DeviceType {
    /// The standard's name, e.g. "water", or a "reserved …" range name.
    pub const fn name(self) -> &'static str {
        match self.0 {
            0x00 => "other",
            0x01 => "oil",
            0x02 => "electricity",
            0x03 => "gas",
            0x04 => "heat (outlet)",
            0x05 => "steam",
            0x06 => "warm water",
            0x07 => "water",
            0x08 => "heat cost allocator",
            0x09 => "compressed air",
            0x0A => "cooling load (outlet)",
            0x0B => "cooling load (inlet)",
            0x0C => "heat (inlet)",
            0x0D => "heat and cooling load",
            0x0E => "bus/system component",
            0x0F => "unknown medium",
            0x10..=0x13 => "reserved for consumption meters",
            0x14 => "calorific value",
            0x15 => "hot water",
            0x16 => "cold water",
            0x17 => "dual register (hot/cold) water",
            0x18 => "pressure",
            0x19 => "A/D converter",
            0x1A => "smoke detector",
            0x1B => "room sensor",
            0x1C => "gas detector",
            0x1D..=0x1F => "reserved for sensors",
            0x20 => "breaker (electricity)",
            0x21 => "valve (gas or water)",
            0x22..=0x24 => "reserved for switching devices",
            0x25 => "customer unit (display)",
            0x26 | 0x27 => "reserved for customer units",
            0x28 => "waste water",
            0x29 => "garbage",
            0x2A => "carbon dioxide",
            0x2B..=0x2F => "reserved for environmental meters",
            0x30 => "reserved for system devices",
            0x31 => "communication controller",
            0x32 => "unidirectional repeater",
            0x33 => "bidirectional repeater",
            0x34 | 0x35 => "reserved for system devices",
            0x36 => "radio converter (system side)",
            0x37 => "radio converter (meter side)",
            0x38..=0x3F => "reserved for system devices",
            0xFF => "wildcard",
            _ => "reserved",
        }
    }
}

impl fmt::Debug for DeviceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceType({:02X}h, {})", self.0, self.name())
    }
}

impl fmt::Display for DeviceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
