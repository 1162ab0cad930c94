pub mod error;
pub mod ids;
pub mod presence;
