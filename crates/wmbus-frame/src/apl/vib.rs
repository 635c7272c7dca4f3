//! VIB: value information block, `VIF ‖ VIFE*` (EN 13757-3 §6.4, Tables 10–16).
//!
//! The VIF names the quantity, unit and decimal exponent. FBh and FDh switch to the extension
//! tables (the first VIFE holds the code), 7Ch/FCh announces a plain-text unit (a length byte
//! and ASCII, last character first, after the VIFEs), 7Eh/FEh is "any VIF" (readout
//! requests), 7Fh/FFh manufacturer specific. Further VIFEs are the combinable (orthogonal)
//! codes of Table 15: per time unit, multiplicative correction, limit values, phases, error
//! codes. At most 10 VIFEs.

/// Which table the VIF selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VifTable {
    /// The primary table (VIF 00h–7Ah).
    Primary,
    /// First extension table (VIF FBh).
    Fb,
    /// Second extension table (VIF FDh).
    Fd,
    /// Plain-text unit (VIF 7Ch/FCh).
    PlainText,
    /// Any VIF (7Eh/FEh).
    Any,
    /// Manufacturer specific (7Fh/FFh).
    Manufacturer,
}

/// How the data of a record is to be read, beyond what the DIF says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Coding {
    /// A number: BCD (type A), signed integer (B) or real (H) as the DIF says.
    Number,
    /// An unsigned integer (type C): counters, versions, durations, addresses.
    Unsigned,
    /// Type G date, or type F/I date and time, or type J time, by length.
    Time,
    /// Type D bit field.
    Bits,
    /// An identifier, reported as a string (digits of BCD, decimal of integers).
    Identifier,
    /// A manufacturer code (FD 0Ah), reported as its three letters.
    Manufacturer,
    /// Bytes reported as hex (keys, containers, type K/L structures).
    Raw,
}

/// What a VIB means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Description {
    /// Snake-case quantity, e.g. "volume".
    pub quantity: &'static str,
    /// Unit from the report's list; `None` for dates and dimensionless values.
    pub unit: Option<&'static str>,
    /// Decimal exponent: value = raw × 10^exponent.
    pub exponent: i8,
    /// How to read the data.
    pub coding: Coding,
}

const fn d(
    quantity: &'static str,
    unit: Option<&'static str>,
    exponent: i8,
    coding: Coding,
) -> Description {
    Description {
        quantity,
        unit,
        exponent,
        coding,
    }
}

const UNKNOWN: Description = d("unknown", None, 0, Coding::Raw);

/// s, min, h, d for a two-bit duration code.
const fn duration_unit(nn: u8) -> &'static str {
    match nn & 3 {
        0 => "s",
        1 => "min",
        2 => "h",
        _ => "d",
    }
}

/// h, d, month, year for the FD 68h–6Fh codes.
const fn long_duration_unit(pp: u8) -> &'static str {
    match pp & 3 {
        0 => "h",
        1 => "d",
        2 => "month",
        _ => "year",
    }
}

/// The primary VIF table (EN 13757-3 Table 10).
pub fn primary(code: u8) -> Description {
    PRIMARY
        .get(usize::from(code & 0x7F))
        .copied()
        .unwrap_or(UNKNOWN)
}

/// [`primary_entry`] for every code, computed at compile time: the lookup on every record.
const PRIMARY: [Description; 128] = {
    let mut table = [UNKNOWN; 128];
    let mut code = 0;
    while code < 128 {
        // invariant: code < 128 = table.len().
        #[allow(clippy::indexing_slicing)]
        {
            table[code as usize] = primary_entry(code);
        }
        code += 1;
    }
    table
};

const fn primary_entry(code: u8) -> Description {
    use Coding::{Identifier, Number, Time, Unsigned};
    let n = (code & 0x07) as i8;
    let nn = (code & 0x03) as i8;
    match code & 0x7F {
        0x00..=0x07 => d("energy", Some("Wh"), n - 3, Number),
        0x08..=0x0F => d("energy", Some("J"), n, Number),
        0x10..=0x17 => d("volume", Some("m3"), n - 6, Number),
        0x18..=0x1F => d("mass", Some("kg"), n - 3, Number),
        0x20..=0x23 => d("on_time", Some(duration_unit(code)), 0, Unsigned),
        0x24..=0x27 => d("operating_time", Some(duration_unit(code)), 0, Unsigned),
        0x28..=0x2F => d("power", Some("W"), n - 3, Number),
        0x30..=0x37 => d("power", Some("J/h"), n, Number),
        0x38..=0x3F => d("volume_flow", Some("m3/h"), n - 6, Number),
        0x40..=0x47 => d("volume_flow", Some("m3/min"), n - 7, Number),
        0x48..=0x4F => d("volume_flow", Some("m3/s"), n - 9, Number),
        0x50..=0x57 => d("mass_flow", Some("kg/h"), n - 3, Number),
        0x58..=0x5B => d("flow_temperature", Some("°C"), nn - 3, Number),
        0x5C..=0x5F => d("return_temperature", Some("°C"), nn - 3, Number),
        0x60..=0x63 => d("temperature_difference", Some("K"), nn - 3, Number),
        0x64..=0x67 => d("external_temperature", Some("°C"), nn - 3, Number),
        0x68..=0x6B => d("pressure", Some("bar"), nn - 3, Number),
        0x6C => d("date", None, 0, Time),
        0x6D => d("datetime", None, 0, Time),
        0x6E => d("hca_units", Some("HCA"), 0, Number),
        0x70..=0x73 => d("averaging_duration", Some(duration_unit(code)), 0, Unsigned),
        0x74..=0x77 => d("actuality_duration", Some(duration_unit(code)), 0, Unsigned),
        0x78 => d("fabrication_number", None, 0, Identifier),
        0x79 => d("enhanced_identification", None, 0, Identifier),
        0x7A => d("bus_address", None, 0, Unsigned),
        _ => UNKNOWN,
    }
}

/// The first extension table, VIF FBh (EN 13757-3:2018 Table 14). Units are brought to
/// base units (MWh → Wh, GJ → J, MCal → cal, t → kg, MW → W, kvarh → varh) through the
/// exponent; codes the 2018 table reserves (the US units and °F of 2004) are unknown.
pub const fn table_fb(code: u8) -> Description {
    use Coding::Number;
    let n = (code & 0x01) as i8;
    let nn = (code & 0x03) as i8;
    match code & 0x7F {
        0x00 | 0x01 => d("energy", Some("Wh"), n + 5, Number),
        0x02 | 0x03 => d("reactive_energy", Some("varh"), n + 3, Number),
        0x04 | 0x05 => d("apparent_energy", Some("VAh"), n + 3, Number),
        0x08 | 0x09 => d("energy", Some("J"), n + 8, Number),
        0x0C..=0x0F => d("energy", Some("cal"), nn + 5, Number),
        0x10 | 0x11 => d("volume", Some("m3"), n + 2, Number),
        0x14..=0x17 => d("reactive_power", Some("var"), nn, Number),
        0x18 | 0x19 => d("mass", Some("kg"), n + 5, Number),
        0x1A | 0x1B => d("relative_humidity", Some("%"), n - 1, Number),
        0x20 => d("volume", Some("ft3"), 0, Number),
        0x21 => d("volume", Some("ft3"), -1, Number),
        0x28 | 0x29 => d("power", Some("W"), n + 5, Number),
        0x2A => d("phase_angle_voltage_voltage", Some("°"), 0, Number),
        0x2B => d("phase_angle_voltage_current", Some("°"), 0, Number),
        0x2C..=0x2F => d("frequency", Some("Hz"), nn - 3, Number),
        0x30 | 0x31 => d("power", Some("J/h"), n + 8, Number),
        0x34..=0x37 => d("apparent_power", Some("VA"), nn, Number),
        0x74..=0x77 => d("temperature_limit", Some("°C"), nn - 3, Number),
        0x78..=0x7F => d(
            "cumulative_maximum_power",
            Some("W"),
            (code & 0x07) as i8 - 3,
            Number,
        ),
        _ => UNKNOWN,
    }
}

/// The second extension table, VIF FDh (EN 13757-3 Table 12).
pub const fn table_fd(code: u8) -> Description {
    use Coding::{Bits, Identifier, Manufacturer, Number, Raw, Time, Unsigned};
    let nn = (code & 0x03) as i8;
    let nnnn = (code & 0x0F) as i8;
    match code & 0x7F {
        0x00..=0x03 => d("credit", Some("currency"), nn - 3, Number),
        0x04..=0x07 => d("debit", Some("currency"), nn - 3, Number),
        0x08 => d("access_number", None, 0, Unsigned),
        0x09 => d("device_type", None, 0, Unsigned),
        0x0A => d("manufacturer", None, 0, Manufacturer),
        0x0B => d("parameter_set_identification", None, 0, Identifier),
        0x0C => d("model_version", None, 0, Unsigned),
        0x0D => d("hardware_version", None, 0, Unsigned),
        0x0E => d("firmware_version", None, 0, Unsigned),
        0x0F => d("software_version", None, 0, Unsigned),
        0x10 => d("customer_location", None, 0, Identifier),
        0x11 => d("customer", None, 0, Identifier),
        0x12 => d("access_code_user", None, 0, Raw),
        0x13 => d("access_code_operator", None, 0, Raw),
        0x14 => d("access_code_system_operator", None, 0, Raw),
        0x15 => d("access_code_developer", None, 0, Raw),
        0x16 => d("password", None, 0, Raw),
        0x17 => d("error_flags", None, 0, Bits),
        0x18 => d("error_mask", None, 0, Bits),
        0x19 => d("security_key", None, 0, Raw),
        0x1A => d("digital_output", None, 0, Bits),
        0x1B => d("digital_input", None, 0, Bits),
        0x1C => d("baud_rate", Some("Bd"), 0, Unsigned),
        0x1D => d("response_delay_time", Some("bit_times"), 0, Unsigned),
        0x1E => d("retry", None, 0, Unsigned),
        0x1F => d("remote_control", None, 0, Unsigned),
        0x20 => d("first_storage_number", None, 0, Unsigned),
        0x21 => d("last_storage_number", None, 0, Unsigned),
        0x22 => d("storage_block_size", None, 0, Unsigned),
        0x23 => d("tariff_and_subunit_descriptor", None, 0, Raw),
        0x24..=0x27 => d("storage_interval", Some(duration_unit(code)), 0, Unsigned),
        0x28 => d("storage_interval", Some("month"), 0, Unsigned),
        0x29 => d("storage_interval", Some("year"), 0, Unsigned),
        0x2A => d("operator_specific_data", None, 0, Raw),
        0x2B => d("time_point_second", Some("s"), 0, Unsigned),
        0x2C..=0x2F => d(
            "duration_since_last_readout",
            Some(duration_unit(code)),
            0,
            Unsigned,
        ),
        0x30 => d("tariff_start", None, 0, Time),
        0x31..=0x33 => d("tariff_duration", Some(duration_unit(code)), 0, Unsigned),
        0x34..=0x37 => d("tariff_period", Some(duration_unit(code)), 0, Unsigned),
        0x38 => d("tariff_period", Some("month"), 0, Unsigned),
        0x39 => d("tariff_period", Some("year"), 0, Unsigned),
        0x3A => d("dimensionless", None, 0, Number),
        0x3B => d("wmbus_data_container", None, 0, Raw),
        0x3C..=0x3F => d(
            "nominal_transmission_period",
            Some(duration_unit(code)),
            0,
            Unsigned,
        ),
        0x40..=0x4F => d("voltage", Some("V"), nnnn - 9, Number),
        0x50..=0x5F => d("current", Some("A"), nnnn - 12, Number),
        0x60 => d("reset_counter", None, 0, Unsigned),
        0x61 => d("cumulation_counter", None, 0, Unsigned),
        0x62 => d("control_signal", None, 0, Raw),
        0x63 => d("day_of_week", None, 0, Unsigned),
        0x64 => d("week_number", None, 0, Unsigned),
        0x65 => d("day_change_time", None, 0, Time),
        0x66 => d("parameter_activation_state", None, 0, Raw),
        0x67 => d("special_supplier_information", None, 0, Raw),
        0x68..=0x6B => d(
            "duration_since_last_cumulation",
            Some(long_duration_unit(code)),
            0,
            Unsigned,
        ),
        0x6C..=0x6F => d(
            "battery_operating_time",
            Some(long_duration_unit(code)),
            0,
            Unsigned,
        ),
        0x70 => d("battery_change_datetime", None, 0, Time),
        0x71 => d("rf_level", Some("dBm"), 0, Number),
        0x72 => d("daylight_saving", None, 0, Raw),
        0x73 => d("listening_window_management", None, 0, Raw),
        0x74 => d("remaining_battery_life", Some("d"), 0, Unsigned),
        0x75 => d("meter_stop_count", None, 0, Unsigned),
        0x76 => d("manufacturer_data_container", None, 0, Raw),
        _ => UNKNOWN,
    }
}

/// Largest number of VIFEs (EN 13757-3 §6.4.1).
pub const MAX_VIFE: usize = 10;

/// The value information block as received: VIF and VIFEs, plus a plain-text unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Vib<'a> {
    /// VIF and every VIFE exactly as received.
    pub raw: &'a [u8],
    /// Plain-text unit (VIF 7Ch/FCh), as received (last character first).
    pub plain_text: Option<&'a [u8]>,
}

/// What a combinable VIFE adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Modifier {
    /// A note for the report, e.g. "per_hour", "lower_limit", "phase_l1".
    Annotation(&'static str),
    /// Multiply the value by 10^n.
    Scale(i8),
    /// A record error code (slave to master, EN 13757-3 Table 18).
    Error(&'static str),
    /// The following VIFEs and the data are manufacturer specific.
    ManufacturerSpecific,
    /// A compact profile (EN 13757-3:2018 Annex F): regular, with register numbers, inverse.
    CompactProfile(ProfileKind),
    /// An unknown or reserved code, kept raw.
    Unknown(u8),
}

/// The three compact profiles of EN 13757-3:2018 Annex F.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProfileKind {
    /// VIFE 1Fh: the values follow the base value forward in time.
    Regular,
    /// VIFE 1Eh: with register numbers (not expanded).
    WithRegisterNumbers,
    /// VIFE 13h: inverse: the values go back in time from the base value.
    Inverse,
}

/// Table 15, combinable (orthogonal) VIFEs; `second` for the codes after 7Ch (Table 16 of
/// EN 13757-3:2018, as far as public sources give it: phases and quadrants; provisional).
pub const fn combinable(code: u8, second: bool) -> Modifier {
    use Modifier::{Annotation as A, CompactProfile as P, Error as E, Scale};
    let code = code & 0x7F;
    if second {
        return match code {
            0x01 => A("phase_l1"),
            0x02 => A("phase_l2"),
            0x03 => A("phase_l3"),
            0x04 => A("neutral"),
            0x05 => A("phase_l1_l2"),
            0x06 => A("phase_l2_l3"),
            0x07 => A("phase_l3_l1"),
            0x08 => A("quadrant_1"),
            0x09 => A("quadrant_2"),
            0x0A => A("quadrant_3"),
            0x0B => A("quadrant_4"),
            0x0C => A("delta_import_export"),
            0x10 => A("accumulation_absolute_both_directions"),
            other => Modifier::Unknown(other),
        };
    }
    match code {
        0x00 => E("none"),
        0x01 => E("too_many_difes"),
        0x02 => E("storage_number_not_implemented"),
        0x03 => E("unit_number_not_implemented"),
        0x04 => E("tariff_number_not_implemented"),
        0x05 => E("function_not_implemented"),
        0x06 => E("data_class_not_implemented"),
        0x07 => E("data_size_not_implemented"),
        0x0B => E("too_many_vifes"),
        0x0C => E("illegal_vif_group"),
        0x0D => E("illegal_vif_exponent"),
        0x0E => E("vif_dif_mismatch"),
        0x0F => E("unimplemented_action"),
        0x12 => A("average_value"),
        0x13 => P(ProfileKind::Inverse),
        0x14 => A("relative_deviation"),
        0x15 => E("no_data_available"),
        0x16 => E("data_overflow"),
        0x17 => E("data_underflow"),
        0x18 => E("data_error"),
        0x1C => E("premature_end_of_record"),
        0x1D => A("standard_conform_data_content"),
        0x1E => P(ProfileKind::WithRegisterNumbers),
        0x1F => P(ProfileKind::Regular),
        0x20 => A("per_second"),
        0x21 => A("per_minute"),
        0x22 => A("per_hour"),
        0x23 => A("per_day"),
        0x24 => A("per_week"),
        0x25 => A("per_month"),
        0x26 => A("per_year"),
        0x27 => A("per_revolution"),
        0x28 => A("per_input_pulse_0"),
        0x29 => A("per_input_pulse_1"),
        0x2A => A("per_output_pulse_0"),
        0x2B => A("per_output_pulse_1"),
        0x2C => A("per_litre"),
        0x2D => A("per_m3"),
        0x2E => A("per_kg"),
        0x2F => A("per_kelvin"),
        0x30 => A("per_kwh"),
        0x31 => A("per_gj"),
        0x32 => A("per_kw"),
        0x33 => A("per_kelvin_litre"),
        0x34 => A("per_volt"),
        0x35 => A("per_ampere"),
        0x36 => A("multiplied_by_s"),
        0x37 => A("multiplied_by_s_per_v"),
        0x38 => A("multiplied_by_s_per_a"),
        0x39 => A("start_date_of"),
        0x3A => A("uncorrected"),
        0x3B => A("accumulation_positive_only"),
        0x3C => A("accumulation_absolute_negative_only"),
        0x3D => A("non_metric_units"),
        0x3E => A("value_at_base_conditions"),
        0x3F => A("obis_declaration"),
        0x40 => A("lower_limit"),
        0x48 => A("upper_limit"),
        0x41 => A("lower_limit_exceed_count"),
        0x49 => A("upper_limit_exceed_count"),
        0x42 => A("lower_limit_first_exceed_begin"),
        0x43 => A("lower_limit_first_exceed_end"),
        0x46 => A("lower_limit_last_exceed_begin"),
        0x47 => A("lower_limit_last_exceed_end"),
        0x4A => A("upper_limit_first_exceed_begin"),
        0x4B => A("upper_limit_first_exceed_end"),
        0x4E => A("upper_limit_last_exceed_begin"),
        0x4F => A("upper_limit_last_exceed_end"),
        0x50..=0x5F => A(match code & 0x0C {
            0x00 => "lower_limit_first_exceed_duration",
            0x04 => "lower_limit_last_exceed_duration",
            0x08 => "upper_limit_first_exceed_duration",
            _ => "upper_limit_last_exceed_duration",
        }),
        0x60..=0x63 => A("first_duration"),
        0x64..=0x67 => A("last_duration"),
        0x68 => A("value_during_lower_limit_exceed"),
        0x6C => A("value_during_upper_limit_exceed"),
        0x69 => A("leakage_values"),
        0x6D => A("overflow_values"),
        0x6A => A("first_begin_date"),
        0x6B => A("first_end_date"),
        0x6E => A("last_begin_date"),
        0x6F => A("last_end_date"),
        0x70..=0x77 => Scale((code & 0x07) as i8 - 6),
        0x78 => A("additive_correction_1e-3"),
        0x79 => A("additive_correction_1e-2"),
        0x7A => A("additive_correction_1e-1"),
        0x7B => A("additive_correction_1e0"),
        0x7D => Scale(3),
        0x7E => A("future_value"),
        0x7F => Modifier::ManufacturerSpecific,
        other => Modifier::Unknown(other),
    }
}

impl<'a> Vib<'a> {
    /// The VIF.
    pub fn vif(&self) -> u8 {
        self.raw.first().copied().unwrap_or(0)
    }

    /// The table the VIF selects.
    pub fn table(&self) -> VifTable {
        match self.vif() & 0x7F {
            0x7B => VifTable::Fb,
            0x7D => VifTable::Fd,
            0x7C => VifTable::PlainText,
            0x7E => VifTable::Any,
            0x7F => VifTable::Manufacturer,
            _ => VifTable::Primary,
        }
    }

    /// The code within the table: the VIF for the primary table, the first VIFE for FB/FD.
    pub fn code(&self) -> Option<u8> {
        match self.table() {
            VifTable::Fb | VifTable::Fd => self.raw.get(1).map(|b| b & 0x7F),
            _ => Some(self.vif() & 0x7F),
        }
    }

    /// The combinable VIFEs, after the table code.
    pub fn extensions(&self) -> &'a [u8] {
        let skip = match self.table() {
            VifTable::Fb | VifTable::Fd => 2,
            _ => 1,
        };
        self.raw.get(skip..).unwrap_or(&[])
    }

    /// The modifiers the combinable VIFEs add, in order; everything after a 7Fh VIFE is
    /// manufacturer specific and reported as one [`Modifier::ManufacturerSpecific`].
    pub fn modifiers(&self) -> impl Iterator<Item = Modifier> + 'a {
        let manufacturer_vif = self.table() == VifTable::Manufacturer;
        let mut second = false;
        let mut stop = manufacturer_vif;
        self.extensions().iter().filter_map(move |&b| {
            if stop {
                return None;
            }
            if second {
                second = false;
                return Some(combinable(b, true));
            }
            if b & 0x7F == 0x7C {
                second = true;
                return None;
            }
            let m = combinable(b, false);
            if m == Modifier::ManufacturerSpecific {
                stop = true;
            }
            Some(m)
        })
    }

    /// The meaning, with multiplicative VIFEs applied to the exponent.
    pub fn describe(&self) -> Description {
        if let [vif] = self.raw
            && !matches!(vif & 0x7F, 0x7B..=0x7F)
        {
            return primary(*vif);
        }
        let base = match (self.table(), self.code()) {
            (VifTable::Primary, Some(c)) => primary(c),
            (VifTable::Fb, Some(c)) => table_fb(c),
            (VifTable::Fd, Some(c)) => table_fd(c),
            (VifTable::PlainText, _) => d("plain_text_unit", None, 0, Coding::Number),
            (VifTable::Any, _) => d("any", None, 0, Coding::Raw),
            (VifTable::Manufacturer, _) => d("manufacturer_specific", None, 0, Coding::Number),
            _ => UNKNOWN,
        };
        let mut out = base;
        for m in self.modifiers() {
            match m {
                Modifier::Scale(n) => out.exponent = out.exponent.saturating_add(n),
                Modifier::Annotation(a) => out.unit = per_unit(out.unit, a),
                _ => {}
            }
        }
        out
    }

    /// The compact profile a VIFE announces, if any.
    pub fn profile(&self) -> Option<ProfileKind> {
        self.modifiers().find_map(|m| match m {
            Modifier::CompactProfile(k) => Some(k),
            _ => None,
        })
    }

    /// The same VIB without the compact-profile VIFE, as raw bytes into `out` (for finding
    /// a profile's base value); returns the length.
    pub fn without_profile(&self, out: &mut [u8; 1 + MAX_VIFE]) -> usize {
        let keep = |b: &u8| !matches!(b & 0x7F, 0x13 | 0x1E | 0x1F);
        let fixed = match self.table() {
            VifTable::Fb | VifTable::Fd => 2,
            _ => 1,
        };
        let mut n = 0;
        for (i, b) in self.raw.iter().enumerate() {
            if (i < fixed || keep(b))
                && let Some(slot) = out.get_mut(n)
            {
                *slot = *b | 0x80;
                n += 1;
            }
        }
        if let Some(last) = n.checked_sub(1).and_then(|i| out.get_mut(i)) {
            *last &= 0x7F;
        }
        n
    }
}

/// A per-time VIFE on a base unit gives a unit of the report's list where one exists.
fn per_unit(unit: Option<&'static str>, annotation: &'static str) -> Option<&'static str> {
    match (unit, annotation) {
        (Some("m3"), "per_hour") => Some("m3/h"),
        (Some("m3"), "per_minute") => Some("m3/min"),
        (Some("m3"), "per_second") => Some("m3/s"),
        (Some("kg"), "per_hour") => Some("kg/h"),
        (Some("J"), "per_hour") => Some("J/h"),
        _ => unit,
    }
}

/// Builds VIF ‖ VIFE bytes with the extension bits set: `vif` is the VIF without its
/// extension bit (7Bh/7Dh for the extension tables), `codes` the table code (FB/FD) and the
/// combinable codes, 7 bits each.
pub fn encode(vif: u8, codes: &[u8], out: &mut [u8; 1 + MAX_VIFE]) -> Option<usize> {
    let n = 1 + codes.len();
    if codes.len() > MAX_VIFE {
        return None;
    }
    *out.first_mut()? = (vif & 0x7F) | if codes.is_empty() { 0 } else { 0x80 };
    for (i, c) in codes.iter().enumerate() {
        let ext = if i + 1 < codes.len() { 0x80 } else { 0 };
        *out.get_mut(i + 1)? = (c & 0x7F) | ext;
    }
    Some(n)
}
