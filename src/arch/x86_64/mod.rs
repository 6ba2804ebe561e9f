pub mod boot_params;
pub mod layout;
pub mod mptable;
