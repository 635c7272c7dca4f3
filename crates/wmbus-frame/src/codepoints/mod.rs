//! Wire code points as newtypes with named constants (rustls' `enum_builder!` habit): unknown
//! values round-trip unchanged and print in hex.

mod address;
mod ci;
mod control;
mod device_type;
mod manufacturer;
mod security_mode;

pub use address::{Address, Ident, MeterAddress};
pub use ci::{ApplicationContent, CiField, CiKind, TplHeaderKind};
pub use control::ControlField;
pub use device_type::DeviceType;
pub use manufacturer::ManufacturerCode;
pub use security_mode::SecurityMode;
